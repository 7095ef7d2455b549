package dataset

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
)

// ParseAnnotation decodes one per-image annotation JSON document (the Record schema, one
// object, possibly pretty-printed) strictly and checks the values a manifest relies on:
// a valid grade, known lesion types, finite ordered boxes and a non-negative lesion count.
func ParseAnnotation(data []byte) (Record, error) {
	r, err := ParseRecord(data)
	if err != nil {
		return Record{}, err
	}
	if err := CheckRecordValues(&r); err != nil {
		return Record{}, err
	}
	return r, nil
}

// CheckRecordValues checks a record's values that do not need the image: the grade, the
// lesion types, boxes and counts, and the image size.
func CheckRecordValues(r *Record) error {
	if r.Width < 0 || r.Height < 0 {
		return fmt.Errorf("negative image size %dx%d", r.Width, r.Height)
	}
	if s := r.Diagnosis.Severity; s != nil {
		if err := s.Validate(); err != nil {
			return fmt.Errorf("diagnosis.severity: %w", err)
		}
	}
	if c := r.Diagnosis.LesionCount; c != nil && *c < 0 {
		return fmt.Errorf("diagnosis.lesion_count is negative: %d", *c)
	}
	for i, l := range r.Diagnosis.Lesions {
		known := false
		for _, t := range LesionTypes {
			known = known || l.Type == t
		}
		if !known {
			return fmt.Errorf("diagnosis.lesions[%d]: unknown type %q (want one of %s)", i, l.Type, strings.Join(LesionTypes, ", "))
		}
		if b := l.Box; b != nil {
			for _, v := range []float64{b.X0, b.Y0, b.X1, b.Y1} {
				if math.IsNaN(v) || math.IsInf(v, 0) {
					return fmt.Errorf("diagnosis.lesions[%d]: non-finite box coordinate", i)
				}
			}
			if b.X1 < b.X0 || b.Y1 < b.Y0 {
				return fmt.Errorf("diagnosis.lesions[%d]: inverted box (%g,%g)-(%g,%g)", i, b.X0, b.Y0, b.X1, b.Y1)
			}
		}
	}
	return nil
}

// readJSONAnnotations reads one annotation JSON per image: src is a folder searched
// recursively for *.json (beside the images or in a separate folder), or one JSON file. An
// annotation's "image" is resolved against the JSON's folder, then against src; without it,
// the image with the JSON's stem beside it, or else the unique image of that stem below src.
func readJSONAnnotations(src string, opts ImportOptions) ([]item, []Skip, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, nil, fmt.Errorf("json source: %w", err)
	}
	root := src
	var jsons []string
	if !st.IsDir() {
		root = filepath.Dir(src)
		jsons = []string{src}
	}
	byStem := map[string][]string{}
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if d != nil && d.IsDir() && p != root {
				return fs.SkipDir
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		if IsImageFile(p) {
			byStem[stem(p)] = append(byStem[stem(p)], p)
		} else if st.IsDir() && strings.EqualFold(filepath.Ext(p), ".json") {
			jsons = append(jsons, p)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("walk json source %s: %w", root, err)
	}
	if len(jsons) == 0 {
		return nil, nil, fmt.Errorf("json source %s has no .json annotation files", src)
	}
	var items []item
	var skips []Skip
	for _, jp := range jsons {
		data, err := os.ReadFile(jp)
		if err != nil {
			skips = append(skips, Skip{File: jp, Kind: SkipUnreadable, Reason: err.Error()})
			continue
		}
		rec, err := ParseAnnotation(data)
		if err != nil {
			skips = append(skips, Skip{File: jp, Kind: SkipBadAnnotation, Reason: err.Error()})
			continue
		}
		img, err := resolveAnnotationImage(rec.Image, jp, root, byStem)
		if err != nil {
			skips = append(skips, Skip{File: jp, Kind: SkipBadImage, Reason: err.Error()})
			continue
		}
		if rec.ImageID == "" {
			rec.ImageID = stem(img)
		}
		if rec.SourceID == "" {
			if _, source, ok := ParseACNE04Name(img); ok {
				rec.SourceID = source
			}
		}
		items = append(items, item{rec: rec, img: img, file: jp, needDim: rec.Width == 0 || rec.Height == 0})
	}
	return items, skips, nil
}

func resolveAnnotationImage(image, jsonPath, root string, byStem map[string][]string) (string, error) {
	if image != "" {
		p := filepath.FromSlash(image)
		if filepath.IsAbs(p) {
			return p, nil
		}
		cands := []string{filepath.Join(filepath.Dir(jsonPath), p), filepath.Join(root, p)}
		for _, c := range cands {
			if _, err := os.Stat(c); err == nil {
				return c, nil
			}
		}
		return "", fmt.Errorf("image %q not found beside the JSON or below %s", image, root)
	}
	s := stem(jsonPath)
	for _, ext := range imageExtList {
		for _, e := range []string{ext, strings.ToUpper(ext)} {
			c := filepath.Join(filepath.Dir(jsonPath), s+e)
			if _, err := os.Stat(c); err == nil {
				return c, nil
			}
		}
	}
	switch c := byStem[s]; len(c) {
	case 0:
		return "", errors.New(`no "image" field and no image named ` + s + ".* below " + root)
	case 1:
		return c[0], nil
	default:
		return "", fmt.Errorf(`no "image" field and %d images named %s.* below %s (ambiguous)`, len(c), s, root)
	}
}
