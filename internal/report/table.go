package report

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/pkg/twwidth"
	"github.com/olekukonko/tablewriter/tw"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/result"
)

// tableWidths are the column widths (padding included) of the streamed table: image, grade,
// confidence, lesions, TCM, referral/error. Cells wrap inside them, so every row can be
// printed as soon as its result arrives. About 120 columns wide in all.
var tableWidths = []int{22, 20, 8, 16, 24, 24}

// tableWriter streams a terminal table, one row per result, then a summary line and the
// disclaimer.
type tableWriter struct {
	w      io.Writer
	opts   Options
	tx     *texts
	t      *tablewriter.Table
	tally  tally
	begun  bool
	closed bool
}

func newTableWriter(w io.Writer, opts Options, tx *texts) *tableWriter {
	return &tableWriter{w: w, opts: opts, tx: tx}
}

func (t *tableWriter) Begin() error {
	if t.begun {
		return nil
	}
	t.begun = true
	widths := tw.NewMapper[int, int]()
	for i, w := range tableWidths {
		widths.Set(i, w)
	}
	t.t = tablewriter.NewTable(t.w,
		tablewriter.WithConfig(tablewriter.Config{
			Header: tw.CellConfig{
				Alignment:  tw.CellAlignment{Global: tw.AlignLeft},
				Formatting: tw.CellFormatting{AutoFormat: tw.Off, AutoWrap: tw.WrapNormal},
			},
			Row: tw.CellConfig{
				Alignment:  tw.CellAlignment{Global: tw.AlignLeft},
				Formatting: tw.CellFormatting{AutoWrap: tw.WrapNormal},
			},
			Widths: tw.CellWidth{PerColumn: widths},
		}),
		tablewriter.WithRendition(tw.Rendition{
			Settings: tw.Settings{Separators: tw.Separators{BetweenRows: tw.On}},
		}),
		tablewriter.WithStreaming(tw.StreamConfig{Enable: true}),
	)
	if err := t.t.Start(); err != nil {
		return fmt.Errorf("start table: %w", err)
	}
	tx := t.tx
	t.t.Header([]string{tx.image, tx.grade, tx.confidence, tx.lesions, tx.tcm, tx.notes})
	return nil
}

func (t *tableWriter) Write(r *result.DiagnosisResult) error {
	if t.closed {
		return ErrClosed
	}
	if err := t.Begin(); err != nil {
		return err
	}
	t.tally.add(r, t.opts.Lang)
	cells := t.row(r)
	for i := range cells {
		cells[i] = wrapCell(cells[i], tableWidths[i]-2)
	}
	if err := t.t.Append(cells); err != nil {
		return fmt.Errorf("write table row for %s: %w", imageName(r), err)
	}
	return nil
}

// row renders one result as table cells (multi-line where useful).
func (t *tableWriter) row(r *result.DiagnosisResult) []string {
	tx, lang := t.tx, t.opts.Lang
	name := imageName(r)
	if r.Error != "" {
		return []string{name, tx.errorLabel, "", "", "", r.Error}
	}
	grade := gradeLabel(r, lang) + "\n(" + gradeCode(r.Severity) + ")"
	var lesions []string
	for _, typ := range dataset.ReportedLesionTypes {
		for _, l := range r.Lesions {
			if l.Type == typ && l.Count > 0 {
				lesions = append(lesions, lesionName(tx, typ)+" "+count(l.Count))
			}
		}
	}
	for _, l := range r.Lesions { // types outside the canonical ones, if a model reports any
		if !isReportedLesion(l.Type) && l.Count > 0 {
			lesions = append(lesions, l.Type+" "+count(l.Count))
		}
	}
	if len(lesions) == 0 && len(r.Lesions) > 0 {
		lesions = append(lesions, tx.none)
	}
	var tcm string
	if a := r.TCMAnalysis; a != nil {
		tcm = named(lang, a.Syndrome)
		if f := named(lang, a.Formula); f != "" {
			tcm += "\n" + f
		}
	}
	var notes []string
	for _, ref := range r.Referral {
		mark := "!"
		if ref.Urgent {
			mark = "!!"
		}
		notes = append(notes, mark+" "+pick(lang, ref.EN, ref.ZH))
	}
	return []string{name, grade, percent(r.Confidence), strings.Join(lesions, "\n"), tcm, strings.Join(notes, "\n")}
}

// wrapCell word-wraps a cell to width display columns itself, so the table never has to cut
// a long word (file paths, Chinese text without spaces): a word too wide for the line is
// split, after a path separator or punctuation where there is one.
func wrapCell(cell string, width int) string {
	var out []string
	for _, line := range strings.Split(cell, "\n") {
		cur, curW := "", 0
		for _, word := range strings.Split(line, " ") {
			for word != "" {
				ww, sep := twwidth.Width(word), 0
				if cur != "" {
					sep = 1
				}
				if curW+sep+ww <= width {
					if sep == 1 {
						cur += " "
					}
					cur, curW, word = cur+word, curW+sep+ww, ""
					continue
				}
				// Move a word that fits a line of its own to the next line, except text
				// with wide (CJK) characters, which may break anywhere.
				if ww <= width && cur != "" && ww == len([]rune(word)) {
					out, cur, curW = append(out, cur), "", 0
					continue
				}
				// Split the word to fill the rest of this line.
				room := width - curW - sep
				if room < 4 && cur != "" {
					out, cur, curW = append(out, cur), "", 0
					continue
				}
				runes := []rune(word)
				cut, w := 0, 0
				for cut < len(runes) && w+twwidth.Width(string(runes[cut])) <= room {
					w += twwidth.Width(string(runes[cut]))
					cut++
				}
				for k := cut; k > cut/2 && cut < len(runes); k-- {
					if strings.ContainsRune("/\\_-.:：，。", runes[k-1]) {
						cut = k
						break
					}
				}
				if cut == 0 {
					cut = 1
				}
				if sep == 1 {
					cur += " "
				}
				out = append(out, cur+string(runes[:cut]))
				cur, curW, word = "", 0, string(runes[cut:])
			}
		}
		out = append(out, cur)
	}
	return strings.Join(out, "\n")
}

// isReportedLesion tells whether typ is one of the types a prediction may report
// (dataset.ReportedLesionTypes).
func isReportedLesion(typ string) bool { return slices.Contains(dataset.ReportedLesionTypes, typ) }

func (t *tableWriter) Close() error {
	if err := t.Begin(); err != nil {
		return err
	}
	if t.closed {
		return nil
	}
	t.closed = true
	if err := t.t.Close(); err != nil {
		return fmt.Errorf("finish table: %w", err)
	}
	s := &t.tally
	var b strings.Builder
	fmt.Fprintf(&b, t.tx.summaryLine+"\n", s.total, s.total-s.failed, s.failed, s.referred)
	for _, d := range s.disclaimerText(t.opts.Lang) {
		fmt.Fprintf(&b, "%s%s%s\n", t.tx.disclaimer, t.tx.colon, d)
	}
	if _, err := io.WriteString(t.w, b.String()); err != nil {
		return fmt.Errorf("write table summary: %w", err)
	}
	return nil
}
