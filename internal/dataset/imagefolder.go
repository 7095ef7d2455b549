package dataset

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/acdtcm/acdtcm/internal/severity"
)

// ParseGradeName parses a class-folder or answer grade on scale s: a number ("2"), a cn2019
// Roman numeral, optionally prefixed by grade/level/levle/class ("grade_2", "level2"), or the
// grade's English or Chinese label ("moderate", "very_severe", "中度").
func ParseGradeName(s severity.Scale, text string) (int, error) {
	t := strings.ToLower(strings.TrimSpace(text))
	t = strings.NewReplacer("_", " ", "-", " ").Replace(t)
	t = strings.Join(strings.Fields(t), " ")
	if g, err := s.ParseGrade(t); err == nil {
		return g, nil
	}
	for _, p := range []string{"grade", "level", "levle", "class", "severity"} {
		if rest, ok := strings.CutPrefix(t, p); ok && rest != "" {
			if g, err := s.ParseGrade(strings.TrimSpace(rest)); err == nil {
				return g, nil
			}
		}
	}
	for g := 0; g < s.NumGrades(); g++ {
		l := s.Label(g)
		if t == strings.ToLower(l.EN) || t == l.ZH || strings.ReplaceAll(t, " ", "") == strings.ReplaceAll(strings.ToLower(l.EN), " ", "") {
			return g, nil
		}
	}
	return 0, fmt.Errorf("%q is not a grade on the %s scale (want 0..%d or a name such as %q)", text, s, s.NumGrades()-1, s.Label(1).EN)
}

// readImageFolder reads src/<class>/… or src/<split>/<class>/… where each class folder is a
// grade on opts.Scale. Images may sit anywhere below the class folder.
func readImageFolder(src string, opts ImportOptions) ([]item, []Skip, error) {
	ents, err := readDirSorted(src)
	if err != nil {
		return nil, nil, fmt.Errorf("imagefolder source %s: %w", src, err)
	}
	var dirs []string
	for _, e := range ents {
		if e.IsDir() {
			dirs = append(dirs, e.Name())
		}
	}
	if len(dirs) == 0 {
		return nil, nil, fmt.Errorf("imagefolder source %s has no class folders", src)
	}
	// With a split level every top folder is a split name and no top folder is a grade.
	withSplits := true
	for _, d := range dirs {
		if _, err := ParseGradeName(opts.Scale, d); err == nil {
			withSplits = false
		}
		if _, ok := splitNames[strings.ToLower(d)]; !ok {
			withSplits = false
		}
	}
	var items []item
	var skips []Skip
	type classDir struct{ dir, split string }
	var classes []classDir
	if withSplits {
		for _, d := range dirs {
			sub, err := readDirSorted(filepath.Join(src, d))
			if err != nil {
				return nil, nil, fmt.Errorf("imagefolder split %s: %w", filepath.Join(src, d), err)
			}
			for _, e := range sub {
				p := filepath.Join(src, d, e.Name())
				if e.IsDir() {
					classes = append(classes, classDir{p, splitNames[strings.ToLower(d)]})
				} else if IsImageFile(e.Name()) {
					skips = append(skips, Skip{File: p, Kind: SkipNoClass, Reason: "image outside a class folder"})
				}
			}
		}
	} else {
		for _, d := range dirs {
			classes = append(classes, classDir{filepath.Join(src, d), ""})
		}
		for _, e := range ents {
			if !e.IsDir() && IsImageFile(e.Name()) {
				skips = append(skips, Skip{File: filepath.Join(src, e.Name()), Kind: SkipNoClass, Reason: "image outside a class folder"})
			}
		}
	}
	for _, c := range classes {
		grade, gerr := ParseGradeName(opts.Scale, filepath.Base(c.dir))
		var files []string
		err := filepath.WalkDir(c.dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				skips = append(skips, Skip{File: p, Kind: SkipUnreadable, Reason: err.Error()})
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if !d.IsDir() && IsImageFile(p) {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, nil, fmt.Errorf("walk %s: %w", c.dir, err)
		}
		if gerr != nil {
			if len(files) > 0 {
				skips = append(skips, Skip{File: c.dir, Kind: SkipNoClass, Reason: fmt.Sprintf("class folder skipped with its %d images: %v", len(files), gerr)})
			}
			continue
		}
		for _, p := range files {
			rel, _ := filepath.Rel(src, p)
			rec := Record{
				ImageID:   filepath.ToSlash(strings.TrimSuffix(rel, filepath.Ext(rel))),
				Diagnosis: Diagnosis{Severity: &severity.Grade{Value: grade, Scale: opts.Scale}},
				Split:     c.split,
			}
			if _, source, ok := ParseACNE04Name(p); ok {
				rec.SourceID = source
			}
			items = append(items, item{rec: rec, img: p, file: p, needDim: true})
		}
	}
	return items, skips, nil
}
