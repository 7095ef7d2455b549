// Package eval scores severity predictions against ground truth: classification metrics
// with scikit-learn's conventions (verified against fixtures computed by scikit-learn, see
// scripts/sklearn_reference.py), calibration, bootstrap confidence intervals, plots, the
// human-readable tables and the CI regression gate used by `acdtcm eval`.
//
// Conventions (all over the K grades 0..K-1 of the evaluation scale, i.e. sklearn's
// labels=range(K), so a grade missing from both truth and predictions still counts):
//   - precision, recall and F1 use zero_division=0: an undefined ratio is 0. F1 is
//     2·TP/(2·TP+FP+FN). Macro averages are unweighted means over the K grades; weighted
//     averages weight each grade by its true support.
//   - AUC-ROC is one-vs-rest per grade from the predicted probabilities, the trapezoid over
//     the ROC points at every distinct threshold (ties handled like roc_auc_score). A grade
//     with no positives or no negatives in the ground truth has no AUC: it is undefined
//     (null in JSON), listed, and left out of the macro AUC, which averages the rest.
//   - kappa is Cohen's kappa with quadratic weights (i−j)² over grades 0..K-1.
//   - sensitivity = TP/(TP+FN), specificity = TN/(TN+FP), Youden J = sens+spec−1, per grade
//     one-vs-rest; undefined (null) when a denominator is 0.
//   - MAE is the mean absolute grade difference |true−predicted|.
//   - ECE (expected calibration error) uses the confidence max_k p_k and the correctness of
//     the arg-max grade (first on ties), in 15 equal-width bins (b/15, (b+1)/15]:
//     ECE = Σ_b n_b/n · |acc_b − conf_b|.
package eval

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"slices"

	"gonum.org/v1/gonum/floats"
)

// ECEBins is the number of equal-width confidence bins of the expected calibration error.
const ECEBins = 15

// Data is one evaluation set: true and predicted grades on 0..K-1, optionally the predicted
// probabilities (one row of K per sample) and paired lesion counts.
type Data struct {
	K     int
	True  []int
	Pred  []int
	Probs [][]float64 // nil, or one row of K probabilities per sample
	// CountTrue and CountPred are lesion counts per sample (NaN where unknown); nil when no
	// sample has both.
	CountTrue []float64
	CountPred []float64
}

// Validate checks shapes and ranges.
func (d *Data) Validate() error {
	if d.K < 2 {
		return fmt.Errorf("need at least 2 classes, got %d", d.K)
	}
	if len(d.True) != len(d.Pred) {
		return fmt.Errorf("%d true labels but %d predictions", len(d.True), len(d.Pred))
	}
	if len(d.True) == 0 {
		return errors.New("no samples to evaluate")
	}
	for i := range d.True {
		if d.True[i] < 0 || d.True[i] >= d.K || d.Pred[i] < 0 || d.Pred[i] >= d.K {
			return fmt.Errorf("sample %d: label out of range 0..%d (true %d, predicted %d)", i, d.K-1, d.True[i], d.Pred[i])
		}
	}
	if d.Probs != nil {
		if len(d.Probs) != len(d.True) {
			return fmt.Errorf("%d probability rows for %d samples", len(d.Probs), len(d.True))
		}
		for i, row := range d.Probs {
			if len(row) != d.K {
				return fmt.Errorf("sample %d: %d probabilities, want %d", i, len(row), d.K)
			}
		}
	}
	if d.CountTrue != nil && len(d.CountTrue) != len(d.True) || d.CountPred != nil && len(d.CountPred) != len(d.True) {
		return errors.New("lesion count arrays must have one entry per sample")
	}
	return nil
}

// ClassMetrics are the one-vs-rest metrics of one grade.
type ClassMetrics struct {
	Class       int    `json:"class"`
	Label       string `json:"label,omitempty"`
	Support     int    `json:"support"`   // samples whose true grade is Class
	Predicted   int    `json:"predicted"` // samples predicted as Class
	Precision   Num    `json:"precision"`
	Recall      Num    `json:"recall"`
	F1          Num    `json:"f1"`
	Sensitivity Num    `json:"sensitivity"`
	Specificity Num    `json:"specificity"`
	Youden      Num    `json:"youden"`
	AUC         Num    `json:"auc"`
	// ROC is the curve behind AUC (absent when AUC is undefined or without probabilities).
	ROC *ROCCurve `json:"roc,omitempty"`
}

// ROCCurve holds the ROC points at every distinct score threshold, from (0,0) to (1,1).
type ROCCurve struct {
	FPR []float64 `json:"fpr"`
	TPR []float64 `json:"tpr"`
}

// CalibrationBin is one bin of the reliability diagram.
type CalibrationBin struct {
	Lower      float64 `json:"lower"`
	Upper      float64 `json:"upper"`
	Count      int     `json:"count"`
	Confidence Num     `json:"confidence"` // mean max-probability in the bin
	Accuracy   Num     `json:"accuracy"`   // fraction of correct arg-max predictions
}

// Metrics is the full set of metrics of one Data.
type Metrics struct {
	N                 int            `json:"n"`
	K                 int            `json:"k"`
	Accuracy          Num            `json:"accuracy"`
	MacroPrecision    Num            `json:"macro_precision"`
	MacroRecall       Num            `json:"macro_recall"`
	MacroF1           Num            `json:"macro_f1"`
	WeightedPrecision Num            `json:"weighted_precision"`
	WeightedRecall    Num            `json:"weighted_recall"`
	WeightedF1        Num            `json:"weighted_f1"`
	Kappa             Num            `json:"kappa"`
	MAE               Num            `json:"mae"`
	MacroAUC          Num            `json:"macro_auc"`
	ECE               Num            `json:"ece"`
	Confusion         [][]int        `json:"confusion"` // [true][predicted]
	PerClass          []ClassMetrics `json:"per_class"`
	// AUCUndefined lists the grades without an AUC (no positives or no negatives).
	AUCUndefined []int            `json:"auc_undefined,omitempty"`
	Calibration  []CalibrationBin `json:"calibration,omitempty"`
	// LesionCountMAE is the mean absolute lesion-count error over LesionCountN samples
	// that have both counts.
	LesionCountMAE Num `json:"lesion_count_mae"`
	LesionCountN   int `json:"lesion_count_n"`
}

// Compute evaluates d.
func Compute(d Data) (*Metrics, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	m := computeLabels(d)
	if d.Probs != nil {
		computeProbabilities(d, m, true)
	} else {
		m.MacroAUC, m.ECE = Undefined, Undefined
	}
	m.LesionCountMAE, m.LesionCountN = lesionMAE(d)
	return m, nil
}

func ratio(num, den float64) Num {
	if den == 0 {
		return Undefined
	}
	return Num(num / den)
}

// zeroDiv is sklearn's zero_division=0.
func zeroDiv(num, den float64) Num {
	if den == 0 {
		return 0
	}
	return Num(num / den)
}

// ConfusionMatrix counts samples by [true][predicted] grade.
func ConfusionMatrix(k int, yTrue, yPred []int) [][]int {
	c := make([][]int, k)
	for i := range c {
		c[i] = make([]int, k)
	}
	for i := range yTrue {
		c[yTrue[i]][yPred[i]]++
	}
	return c
}

func computeLabels(d Data) *Metrics {
	k, n := d.K, len(d.True)
	c := ConfusionMatrix(k, d.True, d.Pred)
	m := &Metrics{N: n, K: k, Confusion: c, PerClass: make([]ClassMetrics, k)}
	rowSum := make([]float64, k)
	colSum := make([]float64, k)
	correct := 0.0
	absErr := 0.0
	for i := 0; i < k; i++ {
		for j := 0; j < k; j++ {
			rowSum[i] += float64(c[i][j])
			colSum[j] += float64(c[i][j])
			absErr += float64(c[i][j]) * math.Abs(float64(i-j))
		}
		correct += float64(c[i][i])
	}
	fn := float64(n)
	m.Accuracy = Num(correct / fn)
	m.MAE = Num(absErr / fn)
	var sumP, sumR, sumF, wP, wR, wF float64
	for i := 0; i < k; i++ {
		tp := float64(c[i][i])
		fp := colSum[i] - tp
		fnn := rowSum[i] - tp
		tn := fn - tp - fp - fnn
		cm := &m.PerClass[i]
		cm.Class, cm.Support, cm.Predicted = i, int(rowSum[i]), int(colSum[i])
		cm.Precision = zeroDiv(tp, tp+fp)
		cm.Recall = zeroDiv(tp, tp+fnn)
		cm.F1 = zeroDiv(2*tp, 2*tp+fp+fnn)
		cm.Sensitivity = ratio(tp, tp+fnn)
		cm.Specificity = ratio(tn, tn+fp)
		cm.Youden = cm.Sensitivity + cm.Specificity - 1 // NaN propagates
		cm.AUC = Undefined
		sumP += float64(cm.Precision)
		sumR += float64(cm.Recall)
		sumF += float64(cm.F1)
		wP += float64(cm.Precision) * rowSum[i]
		wR += float64(cm.Recall) * rowSum[i]
		wF += float64(cm.F1) * rowSum[i]
	}
	fk := float64(k)
	m.MacroPrecision, m.MacroRecall, m.MacroF1 = Num(sumP/fk), Num(sumR/fk), Num(sumF/fk)
	m.WeightedPrecision, m.WeightedRecall, m.WeightedF1 = Num(wP/fn), Num(wR/fn), Num(wF/fn)
	m.Kappa = quadraticKappa(c, rowSum, colSum, fn)
	return m
}

// quadraticKappa follows sklearn's cohen_kappa_score(weights="quadratic"):
// 1 − Σ w·C / Σ w·E with E = outer(row sums, column sums)/n and w_ij = (i−j)².
func quadraticKappa(c [][]int, rowSum, colSum []float64, n float64) Num {
	var obs, exp float64
	for i := range c {
		for j := range c[i] {
			w := float64((i - j) * (i - j))
			obs += w * float64(c[i][j])
			exp += w * rowSum[i] * colSum[j] / n
		}
	}
	if exp == 0 {
		return Undefined
	}
	return Num(1 - obs/exp)
}

// computeProbabilities fills AUC, macro AUC, ECE and calibration bins; curves keeps the ROC
// points (the bootstrap does not need them).
func computeProbabilities(d Data, m *Metrics, curves bool) {
	n := len(d.True)
	scores := make([]float64, n)
	pos := make([]bool, n)
	var aucs []float64
	m.AUCUndefined = nil
	for c := 0; c < d.K; c++ {
		for i := range d.True {
			scores[i] = d.Probs[i][c]
			pos[i] = d.True[i] == c
		}
		fpr, tpr, ok := ROC(scores, pos)
		if !ok {
			m.PerClass[c].AUC = Undefined
			m.AUCUndefined = append(m.AUCUndefined, c)
			continue
		}
		auc := Trapezoid(fpr, tpr)
		m.PerClass[c].AUC = Num(auc)
		if curves {
			m.PerClass[c].ROC = &ROCCurve{FPR: fpr, TPR: tpr}
		}
		aucs = append(aucs, auc)
	}
	if len(aucs) == 0 {
		m.MacroAUC = Undefined
	} else {
		m.MacroAUC = Num(floats.Sum(aucs) / float64(len(aucs)))
	}
	m.ECE, m.Calibration = calibration(d)
}

// ROC returns the ROC curve of scores against binary labels at every distinct threshold, as
// sklearn's roc_curve(drop_intermediate=False) does: samples sorted by decreasing score,
// one point per distinct score, preceded by (0,0). ok is false when the labels
// have no positives or no negatives.
func ROC(scores []float64, positive []bool) (fpr, tpr []float64, ok bool) {
	type sample struct {
		score float64
		pos   bool
	}
	n := len(scores)
	ss := make([]sample, n)
	for i := range ss {
		ss[i] = sample{scores[i], positive[i]}
	}
	// The order within a run of equal scores does not matter: only the totals at the end
	// of each run become points.
	slices.SortFunc(ss, func(a, b sample) int { return cmp.Compare(b.score, a.score) })
	fpr = []float64{0}
	tpr = []float64{0}
	var tp, fp float64
	for r, s := range ss {
		if s.pos {
			tp++
		} else {
			fp++
		}
		if r == n-1 || ss[r+1].score != s.score {
			fpr = append(fpr, fp)
			tpr = append(tpr, tp)
		}
	}
	if tp == 0 || fp == 0 {
		return nil, nil, false
	}
	for i := range fpr {
		fpr[i] /= fp
		tpr[i] /= tp
	}
	return fpr, tpr, true
}

// Trapezoid integrates y over x with the trapezoid rule (numpy.trapz).
func Trapezoid(x, y []float64) float64 {
	s := 0.0
	for i := 1; i < len(x); i++ {
		s += (x[i] - x[i-1]) * (y[i] + y[i-1]) / 2
	}
	return s
}

// calibration computes the expected calibration error and the reliability bins.
func calibration(d Data) (Num, []CalibrationBin) {
	bins := make([]CalibrationBin, ECEBins)
	confSum := make([]float64, ECEBins)
	accSum := make([]float64, ECEBins)
	for i, row := range d.Probs {
		best := 0
		for c := 1; c < len(row); c++ {
			if row[c] > row[best] {
				best = c
			}
		}
		conf := row[best]
		b := int(math.Ceil(conf*ECEBins)) - 1
		b = max(0, min(ECEBins-1, b))
		bins[b].Count++
		confSum[b] += conf
		if best == d.True[i] {
			accSum[b]++
		}
	}
	n := float64(len(d.Probs))
	ece := 0.0
	for b := range bins {
		bins[b].Lower = float64(b) / ECEBins
		bins[b].Upper = float64(b+1) / ECEBins
		if bins[b].Count == 0 {
			bins[b].Confidence, bins[b].Accuracy = Undefined, Undefined
			continue
		}
		cnt := float64(bins[b].Count)
		bins[b].Confidence = Num(confSum[b] / cnt)
		bins[b].Accuracy = Num(accSum[b] / cnt)
		ece += cnt / n * math.Abs(accSum[b]/cnt-confSum[b]/cnt)
	}
	return Num(ece), bins
}

func lesionMAE(d Data) (Num, int) {
	if d.CountTrue == nil || d.CountPred == nil {
		return Undefined, 0
	}
	s, n := 0.0, 0
	for i := range d.CountTrue {
		a, b := d.CountTrue[i], d.CountPred[i]
		if math.IsNaN(a) || math.IsNaN(b) {
			continue
		}
		s += math.Abs(a - b)
		n++
	}
	if n == 0 {
		return Undefined, 0
	}
	return Num(s / float64(n)), n
}
