// Package report writes diagnosis results (result.DiagnosisResult) in the formats shared by
// `diagnose`, `eval` and `serve`: a terminal table, JSON, JSON Lines, CSV and a
// self-contained HTML report.
//
// Writers stream: call Begin once, Write once per result as it arrives, and Close at the end.
// Table, JSON, JSON Lines, CSV and HTML all write each result as soon as Write is called and
// keep only a few counters between results, so memory does not grow with the number of
// results (the HTML report places its summary, written at Close, at the top with CSS).
// A result whose Error is set is shown as a failed row or card in every format.
//
// Human-facing text (headings, grade labels, lesion names, TCM wording) follows Options.Lang,
// "en" or "zh". JSON and JSON Lines are language-neutral: they hold both languages, exactly as
// result.DiagnosisResult marshals. CSV column names are fixed English keys; its label,
// syndrome and formula values follow Options.Lang.
//
// Typical use:
//
//	w, err := report.New("table", os.Stdout, report.Options{Lang: "en"})
//	if err != nil { ... }
//	if err := w.Begin(); err != nil { ... }
//	for r := range results { if err := w.Write(r); err != nil { ... } }
//	if err := w.Close(); err != nil { ... }
package report

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// ErrClosed is returned by Write after Close.
var ErrClosed = errors.New("report writer already closed")

// Writer writes a stream of diagnosis results in one format. A Writer is not safe for
// concurrent use: call it from the goroutine that collects results, in output order.
type Writer interface {
	// Begin writes the preamble (table header, CSV header, "[", HTML head). Write and Close
	// call it if it was not called.
	Begin() error
	// Write writes one result and flushes it to the underlying writer (the HTML writer also
	// reads the result's image to embed a thumbnail).
	Write(r *result.DiagnosisResult) error
	// Close writes the epilogue (summary, disclaimer, "]"); later calls do nothing and Write
	// returns ErrClosed. It does not close the underlying io.Writer.
	Close() error
}

// Formats lists the supported output formats, in the order shown in help texts.
var Formats = []string{"table", "json", "jsonl", "csv", "html"}

// Langs lists the supported languages of human-facing text.
var Langs = []string{"en", "zh"}

// DefaultThumbnailSize is the longest side, in pixels, of HTML thumbnails.
const DefaultThumbnailSize = 160

// Options configures a Writer. The zero value is English, with thumbnails.
type Options struct {
	// Lang is the language of human-facing text: "en" (the default when empty) or "zh".
	Lang string
	// Title is the HTML report's title; empty uses a default in Lang.
	Title string
	// Generated, when non-zero, is printed in the HTML report's header.
	Generated time.Time
	// NoThumbnails leaves photos out of the HTML report.
	NoThumbnails bool
	// ThumbnailSize is the longest side of HTML thumbnails in pixels (0: DefaultThumbnailSize).
	ThumbnailSize int
	// Open opens the photo named by a result's Image for its HTML thumbnail; nil uses os.Open.
	Open func(name string) (io.ReadCloser, error)
}

// New returns a Writer for format (one of Formats) writing to w.
func New(format string, w io.Writer, opts Options) (Writer, error) {
	if opts.Lang == "" {
		opts.Lang = "en"
	}
	tx, ok := allTexts[opts.Lang]
	if !ok {
		return nil, fmt.Errorf("unknown report language %q (want one of %s)", opts.Lang, strings.Join(Langs, ", "))
	}
	if opts.ThumbnailSize <= 0 {
		opts.ThumbnailSize = DefaultThumbnailSize
	}
	if opts.Open == nil {
		opts.Open = func(name string) (io.ReadCloser, error) { return os.Open(name) }
	}
	switch strings.ToLower(strings.TrimSpace(format)) {
	case "table":
		return newTableWriter(w, opts, tx), nil
	case "json":
		return newJSONWriter(w, false), nil
	case "jsonl":
		return newJSONWriter(w, true), nil
	case "csv":
		return newCSVWriter(w, opts, tx), nil
	case "html":
		return newHTMLWriter(w, opts, tx), nil
	}
	return nil, fmt.Errorf("unknown output format %q (want one of %s)", format, strings.Join(Formats, ", "))
}

// WriteAll writes results with a new Writer of the given format: Begin, Write each, Close.
func WriteAll(format string, w io.Writer, opts Options, results []*result.DiagnosisResult) error {
	rw, err := New(format, w, opts)
	if err != nil {
		return err
	}
	if err := rw.Begin(); err != nil {
		return err
	}
	for _, r := range results {
		if err := rw.Write(r); err != nil {
			return err
		}
	}
	return rw.Close()
}

// tally counts results for the summaries written at Close.
type tally struct {
	total, failed, referred int
	byGrade                 map[severity.Grade]int
	disclaimers             []string // distinct, in order of appearance (capped)
}

const maxDisclaimers = 4

func (t *tally) add(r *result.DiagnosisResult, lang string) {
	t.total++
	if r.Error != "" {
		t.failed++
		return
	}
	if r.Referred() {
		t.referred++
	}
	if t.byGrade == nil {
		t.byGrade = map[severity.Grade]int{}
	}
	t.byGrade[r.Severity]++
	d := disclaimer(r, lang)
	for _, have := range t.disclaimers {
		if have == d {
			return
		}
	}
	if len(t.disclaimers) < maxDisclaimers {
		t.disclaimers = append(t.disclaimers, d)
	}
}

// grades returns the grades seen, sorted by scale then value.
func (t *tally) grades() []severity.Grade {
	gs := make([]severity.Grade, 0, len(t.byGrade))
	for g := range t.byGrade {
		gs = append(gs, g)
	}
	sort.Slice(gs, func(i, j int) bool {
		if gs[i].Scale != gs[j].Scale {
			return gs[i].Scale < gs[j].Scale
		}
		return gs[i].Value < gs[j].Value
	})
	return gs
}

// disclaimerText returns the disclaimers to print at the end: those seen, or the default.
func (t *tally) disclaimerText(lang string) []string {
	if len(t.disclaimers) > 0 {
		return t.disclaimers
	}
	return []string{disclaimer(&result.DiagnosisResult{}, lang)}
}

// disclaimer returns the result's disclaimer in lang, falling back to the defaults.
func disclaimer(r *result.DiagnosisResult, lang string) string {
	if lang == "zh" {
		if r.DisclaimerZH != "" {
			return r.DisclaimerZH
		}
		if r.Disclaimer == "" || r.Disclaimer == result.Disclaimer {
			return result.DisclaimerZH
		}
		return r.Disclaimer
	}
	if r.Disclaimer != "" {
		return r.Disclaimer
	}
	return result.Disclaimer
}

// pick returns the text in lang, falling back to the other language when it is empty.
func pick(lang, en, zh string) string {
	if lang == "zh" && zh != "" || en == "" {
		return zh
	}
	return en
}

func named(lang string, n result.Named) string { return pick(lang, n.EN, n.ZH) }

// gradeLabel is the grade's label in lang ("moderate", "中度").
func gradeLabel(r *result.DiagnosisResult, lang string) string {
	l := r.Diagnosis
	if l.EN == "" && l.ZH == "" {
		l = r.Severity.Scale.Label(r.Severity.Value)
	}
	return pick(lang, l.EN, l.ZH)
}

// gradeCode is the grade as written on its scale with the scale name ("hayashi 1", "cn2019 II").
func gradeCode(g severity.Grade) string {
	return string(g.Scale) + " " + g.Scale.Format(g.Value)
}

// gradeLevel maps a grade onto clinical4 (0 normal .. 3 severe) for colouring.
func gradeLevel(g severity.Grade) int {
	if c, ok := severity.Convert(g.Value, g.Scale, severity.Clinical4); ok {
		return c
	}
	return 0
}

// count formats a lesion count: whole numbers without decimals, others with one.
func count(v float64) string {
	if v == float64(int64(v)) {
		return strconv.FormatInt(int64(v), 10)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

// percent formats a probability as a percentage with one decimal.
func percent(p float64) string { return strconv.FormatFloat(p*100, 'f', 1, 64) + "%" }

// lesionName returns the localized name of a lesion type (the type itself when unknown).
func lesionName(tx *texts, typ string) string {
	if n, ok := tx.lesionNames[typ]; ok {
		return n
	}
	return typ
}

// categoryName returns the localized name of a recommendation category.
func categoryName(tx *texts, cat string) string {
	if n, ok := tx.categories[cat]; ok {
		return n
	}
	return strings.ReplaceAll(cat, "_", " ")
}

// referralCodes joins the result's referral codes with ";".
func referralCodes(r *result.DiagnosisResult) string {
	codes := make([]string, len(r.Referral))
	for i, ref := range r.Referral {
		codes[i] = ref.Code
	}
	return strings.Join(codes, ";")
}

// imageName is what identifies a result to a reader: its image, else its id.
func imageName(r *result.DiagnosisResult) string {
	if r.Image != "" {
		return r.Image
	}
	if r.ImageID != "" {
		return r.ImageID
	}
	return "-"
}
