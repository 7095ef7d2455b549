package grader

import (
	"math"
	"sort"

	"gonum.org/v1/gonum/stat"

	"github.com/acdtcm/acdtcm/internal/eval"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// GradeMetrics are photo-level grading metrics.
type GradeMetrics struct {
	N        int     `json:"n"`
	Accuracy float64 `json:"accuracy"`
	MacroF1  float64 `json:"macro_f1"`
	Kappa    float64 `json:"quadratic_kappa"`
	MacroAUC float64 `json:"macro_auc"`
	CountMAE float64 `json:"count_mae"` // mean absolute error of the total lesion count
	CountAcc float64 `json:"count_rule_accuracy"`
	// CountSpearman is the rank correlation of predicted and true total counts: how well the
	// counter orders photos, whatever its scale (the grade calibration fixes the scale).
	CountSpearman float64   `json:"count_spearman"`
	Confusion     [][]int   `json:"confusion"` // [true][pred]
	PerClass      []float64 `json:"per_class_f1"`
}

// Map flattens the scalar metrics into the checkpoint/grader.json form: prefix_n,
// prefix_accuracy, prefix_macro_f1, prefix_quadratic_kappa, prefix_macro_auc,
// prefix_count_mae and prefix_count_spearman.
func (m GradeMetrics) Map(prefix string) map[string]float64 { return metricsMap(prefix, m) }

// ComputeMetrics scores predicted probabilities (argmax = predicted grade) against true
// grades with internal/eval (the metrics checked against scikit-learn). predCounts/trueCounts
// (total lesion counts) may be nil. Undefined values (e.g. kappa or AUC on a one-class set)
// are reported as 0 so the metrics stay valid JSON.
func ComputeMetrics(probs [][]float64, truth []int, predCounts, trueCounts []float64) GradeMetrics {
	m := GradeMetrics{N: len(truth)}
	if m.N == 0 {
		return m
	}
	pred := make([]int, len(probs))
	for i, p := range probs {
		pred[i] = argmax(p)
	}
	em, err := eval.Compute(eval.Data{K: NumGrades, True: truth, Pred: pred, Probs: probs})
	if err != nil {
		return m
	}
	num := func(v eval.Num) float64 {
		if v.Defined() {
			return float64(v)
		}
		return 0
	}
	m.Accuracy, m.MacroF1, m.Kappa, m.MacroAUC = num(em.Accuracy), num(em.MacroF1), num(em.Kappa), num(em.MacroAUC)
	m.Confusion = em.Confusion
	for _, c := range em.PerClass {
		m.PerClass = append(m.PerClass, num(c.F1))
	}
	if predCounts != nil && trueCounts != nil {
		var mae float64
		ok := 0
		for i := range predCounts {
			mae += math.Abs(predCounts[i] - trueCounts[i])
			if severity.HayashiFromCount(int(math.Round(predCounts[i]))) == truth[i] {
				ok++
			}
		}
		m.CountMAE = mae / float64(len(predCounts))
		m.CountAcc = float64(ok) / float64(len(predCounts))
		m.CountSpearman = spearman(predCounts, trueCounts)
	}
	return m
}

func argmax(p []float64) int {
	best := 0
	for i, v := range p {
		if v > p[best] {
			best = i
		}
	}
	return best
}

// spearman is the Spearman rank correlation of x and y (average ranks for ties; 0 when either
// is constant).
func spearman(x, y []float64) float64 {
	rx, ry := ranks(x), ranks(y)
	c := stat.Correlation(rx, ry, nil)
	if math.IsNaN(c) {
		return 0
	}
	return c
}

// ranks returns the 1-based ranks of v, ties sharing their average rank.
func ranks(v []float64) []float64 {
	idx := make([]int, len(v))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return v[idx[a]] < v[idx[b]] })
	r := make([]float64, len(v))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && v[idx[j+1]] == v[idx[i]] {
			j++
		}
		avg := float64(i+j)/2 + 1
		for k := i; k <= j; k++ {
			r[idx[k]] = avg
		}
		i = j + 1
	}
	return r
}
