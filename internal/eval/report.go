package eval

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"strings"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// Comparison modes of a Report.
const (
	// LikeWithLike means truth and predictions were already on the evaluation scale.
	LikeWithLike = "like-with-like"
	// Mapped means some grades were mapped onto the evaluation scale with severity.Convert.
	Mapped = "mapped"
)

// Conversion counts grades mapped from one scale to another.
type Conversion struct {
	Side  string         `json:"side"` // "truth" or "prediction"
	From  severity.Scale `json:"from"`
	To    severity.Scale `json:"to"`
	Count int            `json:"count"`
	// Unconvertible counts grades with no equivalent on the target scale (skipped).
	Unconvertible int `json:"unconvertible,omitempty"`
}

// Comparison says how truth and predictions were put on one scale.
type Comparison struct {
	Scale       severity.Scale `json:"scale"`
	Mode        string         `json:"mode"`
	Conversions []Conversion   `json:"conversions,omitempty"`
	Notes       []string       `json:"notes,omitempty"`
}

// Counts accounts for every manifest record and every prediction.
type Counts struct {
	Records        int `json:"records"`          // manifest records
	NoTruth        int `json:"no_truth"`         // records without a severity grade
	Predictions    int `json:"predictions"`      // predictions read
	Unparsable     int `json:"unparsable"`       // prediction lines that were not valid JSON
	Matched        int `json:"matched"`          // pairs evaluated
	MatchedByPath  int `json:"matched_by_path"`  // of Matched, joined on the image path
	Unmatched      int `json:"unmatched"`        // predictions with no manifest record
	Duplicates     int `json:"duplicates"`       // further predictions for an already matched record
	Errored        int `json:"errored"`          // predictions carrying an error
	Retried        int `json:"retried"`          // errored predictions replaced by a later successful one for the same record
	Invalid        int `json:"invalid"`          // predictions with an invalid grade
	Unconvertible  int `json:"unconvertible"`    // pairs skipped: no equivalent grade on the scale
	MissingPred    int `json:"missing"`          // records with truth but no usable prediction
	WithoutProbs   int `json:"without_probs"`    // matched predictions without usable probabilities
	WithLesionPair int `json:"with_lesion_pair"` // matched pairs with both lesion counts
}

// Problem is one skipped prediction or record, for the report.
type Problem struct {
	ImageID string `json:"image_id,omitempty"`
	Image   string `json:"image,omitempty"`
	Line    int    `json:"line,omitempty"` // 1-based line of the predictions file, when known
	Reason  string `json:"reason"`
}

// GateCheck is the regression gate's verdict on one metric.
type GateCheck struct {
	Metric      string `json:"metric"`
	Baseline    Num    `json:"baseline"`
	Current     Num    `json:"current"`
	Degradation Num    `json:"degradation"` // positive = worse than the baseline
	Allowed     Num    `json:"allowed"`
	Passed      bool   `json:"passed"`
	Reason      string `json:"reason,omitempty"`
}

// Report is the outcome of an evaluation, written as metrics.json.
type Report struct {
	Comparison Comparison          `json:"comparison"`
	Counts     Counts              `json:"counts"`
	Problems   []Problem           `json:"problems,omitempty"`
	Summary    map[string]Num      `json:"summary"`
	CI         map[string]Interval `json:"ci,omitempty"`
	Bootstrap  *BootstrapOptions   `json:"bootstrap,omitempty"`
	Metrics    *Metrics            `json:"metrics"`
	Gate       []GateCheck         `json:"gate,omitempty"`
	// Labels are the grade names on the evaluation scale.
	Labels []string `json:"labels"`
	// Data is the joined evaluation set (not serialised; plots and the bootstrap use it).
	Data Data `json:"-"`
}

// MaxProblems bounds how many problems a Report lists (the counts are always complete).
const MaxProblems = 50

// Prediction is one prediction with where it came from.
type Prediction struct {
	result.DiagnosisResult
	Line int // 1-based line in the predictions file (0 when not from a file)
}

// ReadPredictions reads diagnose's JSON Lines output. A line that does not parse is
// returned as a Problem and skipped; reading continues.
func ReadPredictions(r io.Reader, name string) ([]Prediction, []Problem, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 64<<20)
	var preds []Prediction
	var probs []Problem
	n := 0
	for sc.Scan() {
		n++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		var p Prediction
		if err := json.Unmarshal(b, &p.DiagnosisResult); err != nil {
			probs = append(probs, Problem{Line: n, Reason: fmt.Sprintf("%s:%d: invalid JSON: %v", name, n, err)})
			continue
		}
		p.Line = n
		preds = append(preds, p)
	}
	if err := sc.Err(); err != nil {
		return preds, probs, fmt.Errorf("read predictions %s after line %d: %w", name, n, err)
	}
	return preds, probs, nil
}

// Options configures Evaluate.
type Options struct {
	// Scale is the evaluation scale; empty means the scale of the first graded record.
	Scale     severity.Scale
	Bootstrap BootstrapOptions
}

// Evaluate joins predictions to the manifest's ground truth by image_id (falling back to the
// image path), puts both on one scale and computes the metrics. Unusable predictions and
// records are counted, listed (up to MaxProblems) and skipped.
func Evaluate(m *dataset.Manifest, preds []Prediction, opts Options) (*Report, error) {
	rep := &Report{}
	rep.Counts.Records = len(m.Records)
	rep.Counts.Predictions = len(preds)
	scale := opts.Scale
	if scale == "" {
		for _, r := range m.Records {
			if r.Diagnosis.Severity != nil {
				scale = r.Diagnosis.Severity.Scale
				break
			}
		}
	}
	if _, err := severity.ParseScale(string(scale)); err != nil {
		return nil, fmt.Errorf("evaluation scale: %w (no graded record in %s?)", err, m.Path)
	}
	k := scale.NumGrades()
	rep.Comparison.Scale = scale
	for g := 0; g < k; g++ {
		rep.Labels = append(rep.Labels, scale.Label(g).EN)
	}
	problem := func(p Problem) {
		if len(rep.Problems) < MaxProblems {
			rep.Problems = append(rep.Problems, p)
		}
	}
	conv := map[[3]string]*Conversion{}
	var convOrder [][3]string
	convert := func(side string, g severity.Grade) (int, bool) {
		if g.Scale == scale {
			return g.Value, true
		}
		key := [3]string{side, string(g.Scale), string(scale)}
		c := conv[key]
		if c == nil {
			c = &Conversion{Side: side, From: g.Scale, To: scale}
			conv[key] = c
			convOrder = append(convOrder, key)
		}
		v, ok := severity.Convert(g.Value, g.Scale, scale)
		if ok {
			c.Count++
		} else {
			c.Unconvertible++
		}
		return v, ok
	}

	byID := make(map[string]int, len(m.Records))
	byPath := make(map[string]int, len(m.Records))
	for i := range m.Records {
		r := &m.Records[i]
		if r.ImageID != "" {
			if _, dup := byID[r.ImageID]; !dup {
				byID[r.ImageID] = i
			}
		}
		byPath[cleanAbs(m.ImagePath(r))] = i
	}
	matched := make([]int, len(m.Records)) // index+1 into preds
	for pi := range preds {
		p := &preds[pi]
		ri, ok := -1, false
		if p.ImageID != "" {
			ri, ok = byID[p.ImageID]
		}
		if !ok && p.Image != "" {
			ri, ok = byPath[cleanAbs(p.Image)]
			if !ok && !filepath.IsAbs(p.Image) {
				ri, ok = byPath[cleanAbs(filepath.Join(m.Dir, p.Image))]
			}
		}
		if !ok {
			rep.Counts.Unmatched++
			problem(Problem{ImageID: p.ImageID, Image: p.Image, Line: p.Line, Reason: "no manifest record with this image_id or image path"})
			continue
		}
		if prev := matched[ri]; prev != 0 && preds[prev-1].Error != "" && p.Error == "" {
			// A failed prediction retried successfully (diagnose --resume --retry-failed): the
			// success replaces it.
			rep.Counts.Retried++
			matched[ri] = pi + 1
			continue
		}
		if matched[ri] != 0 {
			rep.Counts.Duplicates++
			problem(Problem{ImageID: p.ImageID, Image: p.Image, Line: p.Line, Reason: fmt.Sprintf("duplicate prediction for %q (first one used)", m.Records[ri].ImageID)})
			continue
		}
		matched[ri] = pi + 1
	}

	d := Data{K: k}
	probsOK := true
	var probRows [][]float64
	var countTrue, countPred []float64
	anyCountPair := false
	for ri := range m.Records {
		r := &m.Records[ri]
		if r.Diagnosis.Severity == nil {
			rep.Counts.NoTruth++
			continue
		}
		if matched[ri] == 0 {
			rep.Counts.MissingPred++
			problem(Problem{ImageID: r.ImageID, Image: r.Image, Reason: "no prediction for this record"})
			continue
		}
		p := &preds[matched[ri]-1]
		if p.Error != "" {
			rep.Counts.Errored++
			rep.Counts.MissingPred++
			problem(Problem{ImageID: r.ImageID, Image: p.Image, Line: p.Line, Reason: "prediction error: " + p.Error})
			continue
		}
		if err := p.Severity.Validate(); err != nil {
			rep.Counts.Invalid++
			rep.Counts.MissingPred++
			problem(Problem{ImageID: r.ImageID, Image: p.Image, Line: p.Line, Reason: "invalid predicted grade: " + err.Error()})
			continue
		}
		if err := r.Diagnosis.Severity.Validate(); err != nil {
			rep.Counts.NoTruth++
			problem(Problem{ImageID: r.ImageID, Image: r.Image, Reason: "invalid ground-truth grade: " + err.Error()})
			continue
		}
		tv, tok := convert("truth", *r.Diagnosis.Severity)
		pv, pok := convert("prediction", p.Severity)
		if !tok || !pok {
			rep.Counts.Unconvertible++
			problem(Problem{ImageID: r.ImageID, Image: r.Image, Line: p.Line, Reason: fmt.Sprintf("no %s equivalent of truth %s %d / prediction %s %d",
				scale, r.Diagnosis.Severity.Scale, r.Diagnosis.Severity.Value, p.Severity.Scale, p.Severity.Value)})
			continue
		}
		if p.ImageID == "" || p.ImageID != r.ImageID {
			rep.Counts.MatchedByPath++
		}
		d.True = append(d.True, tv)
		d.Pred = append(d.Pred, pv)
		row := convertProbs(p.Probabilities, p.Severity.Scale, scale)
		if row == nil {
			rep.Counts.WithoutProbs++
			probsOK = false
		}
		probRows = append(probRows, row)
		ct, cp := truthCount(r), predCount(&p.DiagnosisResult)
		if !math.IsNaN(ct) && !math.IsNaN(cp) {
			anyCountPair = true
			rep.Counts.WithLesionPair++
		}
		countTrue = append(countTrue, ct)
		countPred = append(countPred, cp)
	}
	rep.Counts.Matched = len(d.True)
	if probsOK {
		d.Probs = probRows
	} else {
		rep.Comparison.Notes = append(rep.Comparison.Notes, fmt.Sprintf("%d of %d predictions lack usable probabilities: AUC, ECE and the ROC/reliability plots are skipped", rep.Counts.WithoutProbs, rep.Counts.Matched))
	}
	if anyCountPair {
		d.CountTrue, d.CountPred = countTrue, countPred
	}

	rep.Comparison.Mode = LikeWithLike
	for _, key := range convOrder {
		c := conv[key]
		rep.Comparison.Conversions = append(rep.Comparison.Conversions, *c)
		rep.Comparison.Mode = Mapped
		note := fmt.Sprintf("%d %s grades mapped %s→%s with severity.Convert (cross-walk, not a published standard)", c.Count, c.Side, c.From, c.To)
		if c.Unconvertible > 0 {
			note += fmt.Sprintf("; %d had no %s equivalent and were skipped", c.Unconvertible, c.To)
		}
		rep.Comparison.Notes = append(rep.Comparison.Notes, note)
	}
	if rep.Comparison.Mode == LikeWithLike {
		rep.Comparison.Notes = append([]string{fmt.Sprintf("truth and predictions both on the %s scale: compared like with like", scale)}, rep.Comparison.Notes...)
	}

	if len(d.True) == 0 {
		return rep, fmt.Errorf("no prediction could be matched to a graded record of %s (%d predictions, %d unmatched, %d errored)",
			m.Path, rep.Counts.Predictions, rep.Counts.Unmatched, rep.Counts.Errored)
	}
	metrics, err := Compute(d)
	if err != nil {
		return rep, fmt.Errorf("compute metrics: %w", err)
	}
	for i := range metrics.PerClass {
		metrics.PerClass[i].Label = rep.Labels[i]
	}
	rep.Metrics = metrics
	rep.Summary = metrics.Summary()
	rep.Data = d
	if opts.Bootstrap.Resamples > 0 {
		b := opts.Bootstrap
		if b.Level <= 0 || b.Level >= 1 {
			b.Level = 0.95
		}
		rep.Bootstrap = &b
		rep.CI = Bootstrap(d, metrics, b)
	}
	return rep, nil
}

func cleanAbs(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// convertProbs maps a probability row from one scale onto another by summing the mass of
// the source grades that convert to each target grade; mass on grades without an equivalent
// is dropped and the row renormalised. nil when the row is unusable (wrong length, negative
// or non-finite entries, or no mass left).
func convertProbs(p []float64, from, to severity.Scale) []float64 {
	if len(p) != from.NumGrades() {
		return nil
	}
	out := make([]float64, to.NumGrades())
	total := 0.0
	for g, v := range p {
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			return nil
		}
		t, ok := severity.Convert(g, from, to)
		if !ok {
			continue
		}
		out[t] += v
		total += v
	}
	if total <= 0 {
		return nil
	}
	if from != to {
		for i := range out {
			out[i] /= total
		}
	}
	return out
}

// truthCount is the record's lesion count: diagnosis.lesion_count, else the number of
// annotated lesions; NaN when neither is present.
func truthCount(r *dataset.Record) float64 {
	if r.Diagnosis.LesionCount != nil {
		return float64(*r.Diagnosis.LesionCount)
	}
	if len(r.Diagnosis.Lesions) > 0 {
		return float64(len(r.Diagnosis.Lesions))
	}
	return math.NaN()
}

// predCount is the total predicted lesion count; NaN when the result reports no lesion
// findings (a model that does not count lesions).
func predCount(r *result.DiagnosisResult) float64 {
	if len(r.Lesions) == 0 {
		return math.NaN()
	}
	s := 0.0
	for _, l := range r.Lesions {
		s += l.Count
	}
	return s
}

// Describe is a one-line summary of how the comparison was made.
func (c Comparison) Describe() string {
	if c.Mode == LikeWithLike {
		return fmt.Sprintf("%s (%s)", c.Mode, c.Scale)
	}
	var parts []string
	for _, cv := range c.Conversions {
		parts = append(parts, fmt.Sprintf("%s %s→%s ×%d", cv.Side, cv.From, cv.To, cv.Count))
	}
	return fmt.Sprintf("%s onto %s via severity.Convert: %s", c.Mode, c.Scale, strings.Join(parts, ", "))
}
