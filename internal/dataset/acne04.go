package dataset

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/acdtcm/acdtcm/internal/severity"
)

// acne04Name matches ACNE04 file stems: levle<G>_<ID> as in the original release, optionally
// followed by Roboflow's _jpg.rf.<hash>.
var acne04Name = regexp.MustCompile(`^levle([0-9])_([0-9]+)(?:_jpg(?:\.rf\.[0-9A-Za-z]+)?)?$`)

// ParseACNE04Name extracts the Hayashi grade and the source ID ("G_ID") from an ACNE04 file
// name such as levle2_113_jpg.rf.<hash>.jpg. ok is false when the name does not follow that
// pattern or the grade is not 0..3.
func ParseACNE04Name(name string) (grade int, sourceID string, ok bool) {
	m := acne04Name.FindStringSubmatch(stem(name))
	if m == nil {
		return 0, "", false
	}
	g, _ := strconv.Atoi(m[1])
	if !severity.Hayashi.Valid(g) {
		return 0, "", false
	}
	return g, m[1] + "_" + m[2], true
}

// readACNE04 reads the ACNE04 Roboflow VOC export: src holds split folders (train/, valid/,
// ...) of images with a Pascal VOC XML of the same stem beside each, or is one such folder.
func readACNE04(src string, opts ImportOptions) ([]item, []Skip, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, nil, fmt.Errorf("acne04-voc source: %w", err)
	}
	if !st.IsDir() {
		return nil, nil, fmt.Errorf("acne04-voc source %s is not a directory", src)
	}
	ents, err := readDirSorted(src)
	if err != nil {
		return nil, nil, fmt.Errorf("acne04-voc source %s: %w", src, err)
	}
	type folder struct{ dir, split string }
	var folders []folder
	direct := false
	for _, e := range ents {
		if !e.IsDir() && (IsImageFile(e.Name()) || filepath.Ext(e.Name()) == ".xml") {
			direct = true
		}
	}
	if direct {
		folders = append(folders, folder{src, splitNames[filepath.Base(src)]})
	} else {
		for _, e := range ents {
			if e.IsDir() {
				split := e.Name()
				if s, ok := splitNames[split]; ok {
					split = s
				}
				folders = append(folders, folder{filepath.Join(src, e.Name()), split})
			}
		}
	}
	if len(folders) == 0 {
		return nil, nil, fmt.Errorf("acne04-voc source %s has neither images nor split folders", src)
	}
	var items []item
	var skips []Skip
	for _, f := range folders {
		it, sk, err := readACNE04Folder(f.dir, f.split)
		if err != nil {
			return nil, nil, err
		}
		items = append(items, it...)
		skips = append(skips, sk...)
	}
	return items, skips, nil
}

func readACNE04Folder(dir, split string) ([]item, []Skip, error) {
	ents, err := readDirSorted(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("acne04-voc folder %s: %w", dir, err)
	}
	xmls := map[string]bool{}
	images := map[string]bool{}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		switch {
		case filepath.Ext(e.Name()) == ".xml":
			xmls[stem(e.Name())] = true
		case IsImageFile(e.Name()):
			images[stem(e.Name())] = true
		}
	}
	var items []item
	var skips []Skip
	for _, e := range ents {
		name := e.Name()
		path := filepath.Join(dir, name)
		if e.IsDir() {
			continue
		}
		if filepath.Ext(name) == ".xml" {
			if !images[stem(name)] {
				skips = append(skips, Skip{File: path, Kind: SkipOrphanAnnotation, Reason: "VOC XML without an image of the same name"})
			}
			continue
		}
		if !IsImageFile(name) {
			continue
		}
		grade, source, ok := ParseACNE04Name(name)
		if !ok {
			skips = append(skips, Skip{File: path, Kind: SkipBadName, Reason: "file name does not follow levle<G>_<ID>_jpg.rf.<hash>.jpg (G = Hayashi grade 0..3)"})
			continue
		}
		id := stem(name)
		xmlPath := filepath.Join(dir, id+".xml")
		if !xmls[id] {
			skips = append(skips, Skip{File: path, Kind: SkipMissingAnnotation, Reason: "no VOC XML " + filepath.Base(xmlPath) + " beside the image"})
			continue
		}
		data, err := os.ReadFile(xmlPath)
		if err != nil {
			skips = append(skips, Skip{File: xmlPath, Kind: SkipUnreadable, Reason: err.Error()})
			continue
		}
		ann, err := ParseVOC(data)
		if err != nil {
			skips = append(skips, Skip{File: xmlPath, Kind: SkipBadAnnotation, Reason: err.Error()})
			continue
		}
		lesions, err := ann.Lesions()
		if err != nil {
			skips = append(skips, Skip{File: xmlPath, Kind: SkipUnknownLesion, Reason: err.Error()})
			continue
		}
		n := len(lesions)
		items = append(items, item{
			rec: Record{
				ImageID: id,
				Width:   ann.Width,
				Height:  ann.Height,
				Diagnosis: Diagnosis{
					Severity:    &severity.Grade{Value: grade, Scale: severity.Hayashi},
					Type:        "acne vulgaris",
					LesionCount: &n,
					Lesions:     lesions,
				},
				Split:    split,
				SourceID: source,
			},
			img:   path,
			file:  xmlPath,
			warns: degenerateBoxes(ann),
		})
	}
	return items, skips, nil
}

// degenerateBoxes describes the zero-width or zero-height boxes of an annotation; they are
// kept (the lesion still counts) but reported.
func degenerateBoxes(a *VOCAnnotation) []string {
	var out []string
	for i, o := range a.Objects {
		if o.XMax == o.XMin || o.YMax == o.YMin {
			out = append(out, fmt.Sprintf("object %d (%s): zero-area box (%g,%g)-(%g,%g) kept", i+1, o.Name, o.XMin, o.YMin, o.XMax, o.YMax))
		}
	}
	return out
}
