package validate

import (
	"fmt"
	"io"
	"sort"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
)

// TextOptions tunes WriteText.
type TextOptions struct {
	MaxPerCheck int // findings listed per check; 0 lists all
}

func newTable(w io.Writer) *tablewriter.Table {
	return tablewriter.NewTable(w, tablewriter.WithConfig(tablewriter.Config{
		Header: tw.CellConfig{Formatting: tw.CellFormatting{AutoFormat: tw.Off}, Alignment: tw.CellAlignment{Global: tw.AlignLeft}},
		Row: tw.CellConfig{
			Formatting: tw.CellFormatting{AutoWrap: tw.WrapNone},
			Alignment:  tw.CellAlignment{Global: tw.AlignLeft},
		},
		Footer: tw.CellConfig{Alignment: tw.CellAlignment{Global: tw.AlignLeft}},
	}))
}

// WriteText writes the human-readable report: a summary table, the findings grouped by
// check, class balance per split, lesion statistics and duplicate groups.
func WriteText(w io.Writer, r *Report, opts TextOptions) error {
	ew := &errWriter{w: w}
	fmt.Fprintf(ew, "Dataset %s: %d lines, %d records, %d images checked, %d decoded within limits\n\n",
		r.Manifest, r.Lines, r.Records, r.ImagesChecked, r.ImagesOK)

	fmt.Fprintln(ew, "Findings by check")
	t := newTable(ew)
	t.Header("check", "errors", "warnings", "infos")
	for _, c := range r.ByCheck {
		t.Append(c.Check, fmt.Sprint(c.Errors), fmt.Sprint(c.Warnings), fmt.Sprint(c.Infos))
	}
	t.Footer("total", fmt.Sprint(r.Summary.Errors), fmt.Sprint(r.Summary.Warnings), fmt.Sprint(r.Summary.Infos))
	if err := t.Render(); err != nil {
		return err
	}

	for _, c := range r.ByCheck {
		var fs []Finding
		for _, f := range r.Findings {
			if f.Check == c.Check {
				fs = append(fs, f)
			}
		}
		fmt.Fprintf(ew, "\n%s (%d)\n", c.Check, len(fs))
		shown := fs
		if opts.MaxPerCheck > 0 && len(fs) > opts.MaxPerCheck {
			shown = fs[:opts.MaxPerCheck]
		}
		t := newTable(ew)
		t.Header("severity", "line", "image", "message")
		for _, f := range shown {
			line := "-"
			if f.Line > 0 {
				line = fmt.Sprint(f.Line)
			}
			t.Append(string(f.Severity), line, f.Image, f.Message)
		}
		if err := t.Render(); err != nil {
			return err
		}
		if len(shown) < len(fs) {
			fmt.Fprintf(ew, "... %d more %s findings (all are in --json)\n", len(fs)-len(shown), c.Check)
		}
	}

	fmt.Fprintln(ew, "\nClass balance per split (images per severity grade)")
	gradeSet := map[string]bool{}
	for _, s := range r.Splits {
		for g := range s.Grades {
			gradeSet[g] = true
		}
	}
	grades := make([]string, 0, len(gradeSet))
	for g := range gradeSet {
		grades = append(grades, g)
	}
	sort.Strings(grades)
	t = newTable(ew)
	header := []any{"split", "images", "sources"}
	for _, g := range grades {
		header = append(header, g)
	}
	t.Header(header...)
	for _, s := range r.Splits {
		row := []string{s.Split, fmt.Sprint(s.Images), fmt.Sprint(s.Sources)}
		for _, g := range grades {
			row = append(row, share(s.Grades[g], s.Images))
		}
		t.Append(row)
	}
	if err := t.Render(); err != nil {
		return err
	}

	ls := r.Lesions
	fmt.Fprintf(ew, "\nLesions: %d in %d images (per image mean %.2f, median %g, max %d); %d boxes, median box area %.4f%% of the image\n",
		ls.Lesions, ls.ImagesWithLesions, ls.PerImageMean, ls.PerImageMedian, ls.PerImageMax, ls.Boxes, ls.BoxAreaMedian*100)
	if len(ls.ByType) > 0 {
		types := make([]string, 0, len(ls.ByType))
		for k := range ls.ByType {
			types = append(types, k)
		}
		sort.Strings(types)
		t = newTable(ew)
		t.Header("lesion type", "lesions")
		for _, k := range types {
			t.Append(k, share(ls.ByType[k], ls.Lesions))
		}
		if err := t.Render(); err != nil {
			return err
		}
	}

	fmt.Fprintf(ew, "\nDuplicate groups (near: perceptual hash distance <= %d, mirror included; augmented: local-feature match with >= %d agreeing keypoints)\n", r.PHashThreshold, r.MatchInliers)
	t = newTable(ew)
	t.Header("kind", "groups", "images", "largest", "across splits", "several source_ids")
	for _, kind := range []string{"exact", "near", "augmented"} {
		groups, images, largest, leaks, mixed := 0, 0, 0, 0, 0
		for _, g := range r.DuplicateGroups {
			if g.Kind != kind {
				continue
			}
			groups++
			images += len(g.Members)
			largest = max(largest, len(g.Members))
			if g.Leak {
				leaks++
			}
			if g.Sources > 1 {
				mixed++
			}
		}
		t.Append(kind, fmt.Sprint(groups), fmt.Sprint(images), fmt.Sprint(largest), fmt.Sprint(leaks), fmt.Sprint(mixed))
	}
	if err := t.Render(); err != nil {
		return err
	}
	if sr := r.SourceRecovery; sr.Sources > 0 {
		fmt.Fprintf(ew, "source_id groups (2+ images) entirely inside one near-duplicate group: %d of %d (%d partly); near groups spanning several source_ids: %d\n",
			sr.Full, sr.Sources, sr.Partial, sr.MixedGroups)
	}
	if sr := r.AugmentedRecovery; sr.Sources > 0 && r.MatchInliers >= 0 {
		fmt.Fprintf(ew, "source_id groups (2+ images) entirely inside one augmented group: %d of %d (%d partly); augmented groups spanning several source_ids: %d\n",
			sr.Full, sr.Sources, sr.Partial, sr.MixedGroups)
	}
	fmt.Fprintf(ew, "\nSource leakage: %s in more than one split\n", plural(len(r.SourceLeaks), "source_id"))

	verdict := "OK"
	if r.Summary.Errors > 0 {
		verdict = "FAILED"
	}
	fmt.Fprintf(ew, "\nResult: %s: %s, %s, %s\n", verdict, plural(r.Summary.Errors, "error"), plural(r.Summary.Warnings, "warning"), plural(r.Summary.Infos, "info"))
	return ew.err
}

func share(n, total int) string {
	if total == 0 || n == 0 {
		return fmt.Sprint(n)
	}
	return fmt.Sprintf("%d (%.1f%%)", n, 100*float64(n)/float64(total))
}

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// errWriter remembers the first write error so the report code can stay linear.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(p)
	e.err = err
	return n, err
}
