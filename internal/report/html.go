package report

import (
	_ "embed"
	"fmt"
	"html/template"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

//go:embed report.css
var reportCSS string

//go:embed report.html.tmpl
var reportTemplate string

var htmlTemplates = template.Must(template.New("report").Parse(reportTemplate))

// htmlWriter streams a self-contained HTML report: the head at Begin, one card per result at
// Write (with a small JPEG thumbnail embedded as a data URI), and the summary and disclaimer
// at Close (shown first through CSS order), so memory stays bounded.
type htmlWriter struct {
	w      io.Writer
	opts   Options
	tx     *texts
	tally  tally
	begun  bool
	closed bool
}

func newHTMLWriter(w io.Writer, opts Options, tx *texts) *htmlWriter {
	return &htmlWriter{w: w, opts: opts, tx: tx}
}

// htmlHead is the data of the "head" template.
type htmlHead struct {
	Lang, Title, Subtitle string
	CSS                   template.CSS
	Generated             string
	GeneratedLabel        string
}

func (h *htmlWriter) exec(name string, data any) error {
	if err := htmlTemplates.ExecuteTemplate(h.w, name, data); err != nil {
		return fmt.Errorf("write HTML report (%s): %w", name, err)
	}
	return nil
}

func (h *htmlWriter) Begin() error {
	if h.begun {
		return nil
	}
	h.begun = true
	head := htmlHead{
		Lang:           map[string]string{"en": "en", "zh": "zh-CN"}[h.opts.Lang],
		Title:          h.opts.Title,
		Subtitle:       h.tx.subtitle,
		CSS:            template.CSS(reportCSS),
		GeneratedLabel: h.tx.generated,
	}
	if head.Title == "" {
		head.Title = h.tx.title
	}
	if !h.opts.Generated.IsZero() {
		head.Generated = h.opts.Generated.UTC().Format("2006-01-02 15:04 UTC")
	}
	return h.exec("head", head)
}

// htmlCard is the data of the "card" template: one result, already localized.
type htmlCard struct {
	T        *htmlLabels
	Index    int
	Image    string
	ImageID  string
	Thumb    template.URL
	NoThumb  string
	Error    string
	Label    string
	Code     string
	Level    int
	Conf     string
	Probs    []htmlBar
	Lesions  []htmlLesion
	HasBoxes bool
	NoLesion bool
	Western  []htmlGroup
	TCM      *htmlTCM
	Referral []htmlReferral
	Urgent   bool
	Model    string
	Timing   string
	Created  string
}

type htmlBar struct {
	Label, Pct string
	Width      template.CSS
	Top        bool
	Level      int // clinical4 level of the bar's grade, for its colour
}

type htmlLesion struct {
	Name, Count string
	Color       template.CSS
}

type htmlGroup struct {
	Category string
	Items    []htmlItem
}

type htmlItem struct{ Text, Source string }

type htmlTCM struct {
	Syndrome, Constitution, Principle, Formula, Source string
	Secondary, External, Lifestyle, Reasoning          []string
	Scores                                             []htmlBar
}

type htmlReferral struct {
	Text, Code, Source string
	Urgent             bool
}

// htmlLabels exposes the localized wording to the templates.
type htmlLabels struct {
	Probabilities, Findings, NoLesions, BoxesNote, Western, WesternNote     string
	TCM, Syndrome, Secondary, Constitution, Principle, Formula, FormulaNote string
	External, Lifestyle, Reasoning, Scores, TCMOnlyNote                     string
	Referral, ReferralUrgent, ReferralAdvice, Error, Model, Timing, Created string
	Confidence, Source, Colon                                               string
	Summary, Photos, Diagnosed, Failed, Referred, Grades, Disclaimer        string
}

func (tx *texts) htmlLabels() *htmlLabels {
	return &htmlLabels{
		Probabilities: tx.probabilities, Findings: tx.findings, NoLesions: tx.noLesions,
		BoxesNote: tx.boxesNote, Western: tx.western, WesternNote: tx.westernNote,
		TCM: tx.tcmCard, Syndrome: tx.syndrome, Secondary: tx.secondary,
		Constitution: tx.constitution, Principle: tx.principle, Formula: tx.formula,
		FormulaNote: tx.formulaNote, External: tx.external, Lifestyle: tx.lifestyle,
		Reasoning: tx.reasoning, Scores: tx.scores, TCMOnlyNote: tx.tcmOnlyNote,
		Referral: tx.referral, ReferralUrgent: tx.referralUrgent, ReferralAdvice: tx.referralAdvice,
		Error: tx.errorLabel, Model: tx.model, Timing: tx.timing, Created: tx.created,
		Confidence: tx.confidence, Source: tx.source, Colon: tx.colon, Summary: tx.summary, Photos: tx.photos,
		Diagnosed: tx.diagnosed, Failed: tx.failed, Referred: tx.referred,
		Grades: tx.gradeDistribution, Disclaimer: tx.disclaimer,
	}
}

func (h *htmlWriter) Write(r *result.DiagnosisResult) error {
	if h.closed {
		return ErrClosed
	}
	if err := h.Begin(); err != nil {
		return err
	}
	h.tally.add(r, h.opts.Lang)
	return h.exec("card", h.card(r, h.tally.total))
}

func (h *htmlWriter) card(r *result.DiagnosisResult, index int) *htmlCard {
	tx, lang := h.tx, h.opts.Lang
	c := &htmlCard{T: tx.htmlLabels(), Index: index, Image: imageName(r), Error: r.Error}
	if r.Image != "" && r.ImageID != "" && r.ImageID != r.Image {
		c.ImageID = r.ImageID
	}
	if !h.opts.NoThumbnails {
		c.Thumb, c.NoThumb = h.thumb(r)
	}
	if r.Error != "" {
		return c
	}
	c.Label, c.Code, c.Level = gradeLabel(r, lang), gradeCode(r.Severity), gradeLevel(r.Severity)
	c.Conf = percent(r.Confidence)
	for i, p := range r.Probabilities {
		l := r.Severity.Scale.Label(i)
		name := pick(lang, l.EN, l.ZH)
		if name == "" {
			name = "p" + strconv.Itoa(i)
		}
		c.Probs = append(c.Probs, htmlBar{Label: name, Pct: percent(p), Width: barWidth(p), Top: i == r.Severity.Value,
			Level: gradeLevel(severity.Grade{Value: i, Scale: r.Severity.Scale})})
	}
	for _, typ := range dataset.ReportedLesionTypes {
		for _, l := range r.Lesions {
			if l.Type == typ {
				c.Lesions = append(c.Lesions, htmlLesion{Name: lesionName(tx, typ), Count: count(l.Count), Color: lesionCSS(typ)})
				c.HasBoxes = c.HasBoxes || len(l.Boxes) > 0
			}
		}
	}
	for _, l := range r.Lesions {
		if !isReportedLesion(l.Type) {
			c.Lesions = append(c.Lesions, htmlLesion{Name: l.Type, Count: count(l.Count), Color: lesionCSS(l.Type)})
			c.HasBoxes = c.HasBoxes || len(l.Boxes) > 0
		}
	}
	c.HasBoxes = c.HasBoxes && c.Thumb != ""
	c.NoLesion = len(c.Lesions) == 0
	for _, rec := range r.Recommendations {
		cat := categoryName(tx, rec.Category)
		if len(c.Western) == 0 || c.Western[len(c.Western)-1].Category != cat {
			c.Western = append(c.Western, htmlGroup{Category: cat})
		}
		g := &c.Western[len(c.Western)-1]
		g.Items = append(g.Items, htmlItem{Text: pick(lang, rec.EN, rec.ZH), Source: sourceTag(tx, rec.Source, rec.Guideline, rec.Confidence)})
	}
	if a := r.TCMAnalysis; a != nil {
		t := &htmlTCM{
			Syndrome: named(lang, a.Syndrome), Principle: named(lang, a.TreatmentPrinciple),
			Formula: named(lang, a.Formula), Reasoning: a.Reasoning, Source: a.Source,
		}
		if a.Constitution != nil {
			t.Constitution = named(lang, *a.Constitution)
		}
		for _, n := range a.Secondary {
			t.Secondary = append(t.Secondary, named(lang, n))
		}
		for _, n := range a.ExternalTreatment {
			t.External = append(t.External, named(lang, n))
		}
		for _, n := range a.Lifestyle {
			t.Lifestyle = append(t.Lifestyle, named(lang, n))
		}
		top := 0.0
		for _, s := range a.Scores {
			top = max(top, s.Score)
		}
		for _, s := range a.Scores {
			frac := 0.0
			if top > 0 {
				frac = s.Score / top
			}
			t.Scores = append(t.Scores, htmlBar{Label: s.Syndrome, Pct: strconv.FormatFloat(s.Score, 'f', 2, 64), Width: barWidth(frac), Top: s.Score == top})
		}
		c.TCM = t
	}
	for _, ref := range r.Referral {
		c.Referral = append(c.Referral, htmlReferral{Text: pick(lang, ref.EN, ref.ZH), Code: ref.Code, Source: sourceTag(tx, ref.Source, "", ref.Confidence), Urgent: ref.Urgent})
		c.Urgent = c.Urgent || ref.Urgent
	}
	c.Model = r.ModelVersion
	if r.Timing.TotalMS > 0 {
		c.Timing = strconv.FormatFloat(r.Timing.TotalMS, 'f', 0, 64) + " " + tx.ms
	}
	if !r.CreatedAt.IsZero() {
		c.Created = r.CreatedAt.UTC().Format(time.DateTime + " UTC")
	}
	return c
}

// thumb returns the result's thumbnail data URI, or the reason there is none.
func (h *htmlWriter) thumb(r *result.DiagnosisResult) (template.URL, string) {
	if r.Image == "" {
		return "", h.tx.noPreview
	}
	rc, err := h.opts.Open(r.Image)
	if err != nil {
		return "", h.tx.noPreview
	}
	defer rc.Close()
	uri, err := thumbnail(rc, h.opts.ThumbnailSize, r.Lesions)
	if err != nil {
		return "", h.tx.noPreview
	}
	return template.URL(uri), ""
}

// sourceTag joins a source, guideline and evidence tag for display ("S12 · cn2019 · verified source").
func sourceTag(tx *texts, source, guideline, conf string) string {
	var parts []string
	for _, p := range []string{source, guideline} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	if conf != "" {
		if n, ok := tx.confidenceTag[conf]; ok {
			conf = n
		}
		parts = append(parts, conf)
	}
	return strings.Join(parts, " · ")
}

func barWidth(frac float64) template.CSS {
	frac = min(max(frac, 0), 1)
	return template.CSS("width:" + strconv.FormatFloat(frac*100, 'f', 1, 64) + "%")
}

func lesionCSS(typ string) template.CSS {
	c, ok := lesionColors[typ]
	if !ok {
		c = otherLesionColor
	}
	return template.CSS(fmt.Sprintf("background:#%02x%02x%02x", c.R, c.G, c.B))
}

// htmlTail is the data of the "tail" template.
type htmlTail struct {
	T                                  *htmlLabels
	Total, Diagnosed, Failed, Referred int
	Grades                             []htmlGrade
	Disclaimers                        []string
}

type htmlGrade struct {
	Label string
	Level int
	N     int
}

func (h *htmlWriter) Close() error {
	if err := h.Begin(); err != nil {
		return err
	}
	if h.closed {
		return nil
	}
	h.closed = true
	s := &h.tally
	tail := htmlTail{T: h.tx.htmlLabels(), Total: s.total, Diagnosed: s.total - s.failed, Failed: s.failed, Referred: s.referred, Disclaimers: s.disclaimerText(h.opts.Lang)}
	for _, g := range s.grades() {
		r := &result.DiagnosisResult{Severity: g}
		tail.Grades = append(tail.Grades, htmlGrade{Label: gradeLabel(r, h.opts.Lang) + " (" + gradeCode(g) + ")", Level: gradeLevel(g), N: s.byGrade[g]})
	}
	return h.exec("tail", tail)
}
