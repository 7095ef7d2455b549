package grader

import (
	"math"

	"github.com/acdtcm/acdtcm/internal/eval"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// GradeMetrics are photo-level grading metrics.
type GradeMetrics struct {
	N         int       `json:"n"`
	Accuracy  float64   `json:"accuracy"`
	MacroF1   float64   `json:"macro_f1"`
	Kappa     float64   `json:"quadratic_kappa"`
	MacroAUC  float64   `json:"macro_auc"`
	CountMAE  float64   `json:"count_mae"` // mean absolute error of the total lesion count
	CountAcc  float64   `json:"count_rule_accuracy"`
	Confusion [][]int   `json:"confusion"` // [true][pred]
	PerClass  []float64 `json:"per_class_f1"`
}

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
