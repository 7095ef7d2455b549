package dataset

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// VOCAnnotation is the part of a Pascal VOC annotation file acdtcm uses.
type VOCAnnotation struct {
	Filename string      `xml:"filename"`
	Width    int         `xml:"size>width"`
	Height   int         `xml:"size>height"`
	Objects  []VOCObject `xml:"object"`
}

// VOCObject is one labelled box of a Pascal VOC annotation.
type VOCObject struct {
	Name string `xml:"name"`
	XMin float64
	YMin float64
	XMax float64
	YMax float64
}

type vocXML struct {
	XMLName  xml.Name `xml:"annotation"`
	Filename string   `xml:"filename"`
	Size     struct {
		Width  string `xml:"width"`
		Height string `xml:"height"`
	} `xml:"size"`
	Objects []struct {
		Name   string `xml:"name"`
		BndBox *struct {
			XMin string `xml:"xmin"`
			YMin string `xml:"ymin"`
			XMax string `xml:"xmax"`
			YMax string `xml:"ymax"`
		} `xml:"bndbox"`
	} `xml:"object"`
}

// vocLesionNames maps the ACNE04 (Roboflow export) class names onto the canonical lesion
// types.
var vocLesionNames = map[string]string{
	"whitehead and blackhead": LesionComedone,
	"papules":                 LesionPapule,
	"pustules":                LesionPustule,
	"nodules and cysts":       LesionNodule,
}

// VOCLesionType maps a VOC object name onto a canonical lesion type. Besides the four
// ACNE04 class names it accepts the canonical names themselves (case-insensitive).
func VOCLesionType(name string) (string, bool) {
	n := strings.ToLower(strings.Join(strings.Fields(name), " "))
	if t, ok := vocLesionNames[n]; ok {
		return t, true
	}
	for _, t := range LesionTypes {
		if n == t {
			return t, true
		}
	}
	return "", false
}

// ParseVOC decodes a Pascal VOC XML annotation. It checks that the root element is
// <annotation>, that the image size is present and positive, and that every object has a
// name and a well-formed box with finite, ordered coordinates.
func ParseVOC(data []byte) (*VOCAnnotation, error) {
	var v vocXML
	dec := xml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("malformed VOC XML: %w", err)
	}
	// Anything but whitespace, comments or processing instructions after the root is an error.
	for {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.CharData:
			if len(bytes.TrimSpace(t)) != 0 {
				return nil, errors.New("malformed VOC XML: text after </annotation>")
			}
		case xml.StartElement:
			return nil, fmt.Errorf("malformed VOC XML: element <%s> after </annotation>", t.Name.Local)
		}
	}
	a := &VOCAnnotation{Filename: strings.TrimSpace(v.Filename)}
	var err error
	if a.Width, err = parsePositiveInt("size/width", v.Size.Width); err != nil {
		return nil, err
	}
	if a.Height, err = parsePositiveInt("size/height", v.Size.Height); err != nil {
		return nil, err
	}
	for i, o := range v.Objects {
		name := strings.TrimSpace(o.Name)
		if name == "" {
			return nil, fmt.Errorf("object %d: missing <name>", i+1)
		}
		if o.BndBox == nil {
			return nil, fmt.Errorf("object %d (%s): missing <bndbox>", i+1, name)
		}
		obj := VOCObject{Name: name}
		coords := []struct {
			tag string
			src string
			dst *float64
		}{
			{"xmin", o.BndBox.XMin, &obj.XMin}, {"ymin", o.BndBox.YMin, &obj.YMin},
			{"xmax", o.BndBox.XMax, &obj.XMax}, {"ymax", o.BndBox.YMax, &obj.YMax},
		}
		for _, c := range coords {
			f, err := parseCoord(c.src)
			if err != nil {
				return nil, fmt.Errorf("object %d (%s): bndbox/%s: %w", i+1, name, c.tag, err)
			}
			*c.dst = f
		}
		if obj.XMax < obj.XMin || obj.YMax < obj.YMin {
			return nil, fmt.Errorf("object %d (%s): inverted box (%g,%g)-(%g,%g)", i+1, name, obj.XMin, obj.YMin, obj.XMax, obj.YMax)
		}
		a.Objects = append(a.Objects, obj)
	}
	return a, nil
}

func parsePositiveInt(what, s string) (int, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, fmt.Errorf("missing <%s>", what)
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("<%s> is not an integer: %q", what, s)
	}
	if n <= 0 || n > 1<<20 {
		return 0, fmt.Errorf("<%s> out of range: %d", what, n)
	}
	return n, nil
}

func parseCoord(s string) (float64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("missing")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, fmt.Errorf("not a number: %q", s)
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e7 {
		return 0, fmt.Errorf("out of range: %q", s)
	}
	return f, nil
}

// Lesions converts the VOC objects into lesions with boxes. An unknown object name is an
// error naming it.
func (a *VOCAnnotation) Lesions() ([]Lesion, error) {
	out := make([]Lesion, 0, len(a.Objects))
	var unknown []string
	for _, o := range a.Objects {
		t, ok := VOCLesionType(o.Name)
		if !ok {
			unknown = append(unknown, o.Name)
			continue
		}
		out = append(out, Lesion{Type: t, Box: &Box{X0: o.XMin, Y0: o.YMin, X1: o.XMax, Y1: o.YMax}})
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown lesion name(s) %q (want one of %q)", dedupe(unknown), knownVOCNames())
	}
	return out, nil
}

func knownVOCNames() []string {
	return []string{"whitehead and blackhead", "papules", "pustules", "nodules and cysts"}
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
