package report

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/result"
)

// csvColumns are the CSV column keys. p0..p3 are the grade probabilities on the result's
// scale; comedone..nodule the lesion counts by type (empty when the model does not tell types),
// lesions the total count; referral the referral codes joined by ";".
var csvColumns = []string{
	"image", "image_id", "grade", "scale", "label", "confidence",
	"p0", "p1", "p2", "p3",
	dataset.LesionComedone, dataset.LesionPapule, dataset.LesionPustule, dataset.LesionNodule, "lesions",
	"syndrome", "formula", "referral", "error",
}

// csvIndex maps each CSV column key to its position.
var csvIndex = func() map[string]int {
	m := make(map[string]int, len(csvColumns))
	for i, c := range csvColumns {
		m[c] = i
	}
	return m
}()

// CSVColumns returns the CSV header this build writes (a copy).
func CSVColumns() []string { return slices.Clone(csvColumns) }

// csvWriter writes one flat row per result.
type csvWriter struct {
	cw     *csv.Writer
	opts   Options
	tx     *texts
	begun  bool
	closed bool
}

func newCSVWriter(w io.Writer, opts Options, tx *texts) *csvWriter {
	return &csvWriter{cw: csv.NewWriter(w), opts: opts, tx: tx}
}

func (c *csvWriter) Begin() error {
	if c.begun {
		return nil
	}
	c.begun = true
	return c.flush(c.cw.Write(csvColumns))
}

func (c *csvWriter) flush(err error) error {
	if err == nil {
		c.cw.Flush()
		err = c.cw.Error()
	}
	if err != nil {
		return fmt.Errorf("write CSV report: %w", err)
	}
	return nil
}

func (c *csvWriter) Write(r *result.DiagnosisResult) error {
	if c.closed {
		return ErrClosed
	}
	if err := c.Begin(); err != nil {
		return err
	}
	row := make([]string, len(csvColumns))
	set := func(column, value string) { row[csvIndex[column]] = value }
	set("image", r.Image)
	set("image_id", r.ImageID)
	if r.Error != "" {
		set("error", r.Error)
		return c.flush(c.cw.Write(row))
	}
	lang := c.opts.Lang
	set("grade", strconv.Itoa(r.Severity.Value))
	set("scale", string(r.Severity.Scale))
	set("label", gradeLabel(r, lang))
	set("confidence", strconv.FormatFloat(r.Confidence, 'f', 4, 64))
	for i, p := range r.Probabilities {
		if i < 4 {
			set("p"+strconv.Itoa(i), strconv.FormatFloat(p, 'f', 4, 64))
		}
	}
	// No lesion findings: leave the counts empty rather than claim zeros; likewise the
	// per-type counts when the model reports untyped lesions only.
	typed, total := false, 0.0
	for _, l := range r.Lesions {
		typed = typed || l.Type != dataset.LesionUnspecified
		total += l.Count
	}
	for _, typ := range dataset.LesionTypes {
		if !typed {
			break
		}
		set(typ, "0")
		for _, l := range r.Lesions {
			if l.Type == typ {
				set(typ, count(l.Count))
			}
		}
	}
	if len(r.Lesions) > 0 {
		set("lesions", count(total))
	}
	if t := r.TCMAnalysis; t != nil {
		set("syndrome", named(lang, t.Syndrome))
		set("formula", named(lang, t.Formula))
	}
	set("referral", referralCodes(r))
	return c.flush(c.cw.Write(row))
}

func (c *csvWriter) Close() error {
	c.closed = true
	return c.Begin()
}
