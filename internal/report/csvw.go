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
	row[0], row[1] = r.Image, r.ImageID
	if r.Error != "" {
		row[len(row)-1] = r.Error
		return c.flush(c.cw.Write(row))
	}
	lang := c.opts.Lang
	row[2] = strconv.Itoa(r.Severity.Value)
	row[3] = string(r.Severity.Scale)
	row[4] = gradeLabel(r, lang)
	row[5] = strconv.FormatFloat(r.Confidence, 'f', 4, 64)
	for i, p := range r.Probabilities {
		if i < 4 {
			row[6+i] = strconv.FormatFloat(p, 'f', 4, 64)
		}
	}
	// No lesion findings: leave the counts empty rather than claim zeros; likewise the
	// per-type counts when the model reports untyped lesions only.
	typed, total := false, 0.0
	for _, l := range r.Lesions {
		typed = typed || l.Type != dataset.LesionUnspecified
		total += l.Count
	}
	for i, typ := range dataset.LesionTypes {
		if !typed {
			break
		}
		row[10+i] = "0"
		for _, l := range r.Lesions {
			if l.Type == typ {
				row[10+i] = count(l.Count)
			}
		}
	}
	if len(r.Lesions) > 0 {
		row[14] = count(total)
	}
	if t := r.TCMAnalysis; t != nil {
		row[15] = named(lang, t.Syndrome)
		row[16] = named(lang, t.Formula)
	}
	row[17] = referralCodes(r)
	return c.flush(c.cw.Write(row))
}

func (c *csvWriter) Close() error {
	c.closed = true
	return c.Begin()
}
