package grader

import (
	"math"
	"sort"
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
// grades. predCounts/trueCounts (total lesion counts) may be nil.
func ComputeMetrics(probs [][]float64, truth []int, predCounts, trueCounts []float64) GradeMetrics {
	k := NumGrades
	m := GradeMetrics{N: len(truth)}
	conf := make([][]int, k)
	for i := range conf {
		conf[i] = make([]int, k)
	}
	correct := 0
	for i, p := range probs {
		pr := argmax(p)
		conf[truth[i]][pr]++
		if pr == truth[i] {
			correct++
		}
	}
	if m.N == 0 {
		return m
	}
	m.Accuracy = float64(correct) / float64(m.N)
	m.Confusion = conf
	var f1sum float64
	for c := 0; c < k; c++ {
		tp, fp, fn := conf[c][c], 0, 0
		for o := 0; o < k; o++ {
			if o != c {
				fp += conf[o][c]
				fn += conf[c][o]
			}
		}
		f1 := 0.0
		if 2*tp+fp+fn > 0 {
			f1 = 2 * float64(tp) / float64(2*tp+fp+fn)
		}
		m.PerClass = append(m.PerClass, f1)
		f1sum += f1
	}
	m.MacroF1 = f1sum / float64(k)
	m.Kappa = quadraticKappa(conf)
	var aucSum float64
	nAUC := 0
	for c := 0; c < k; c++ {
		scores := make([]float64, len(probs))
		labels := make([]bool, len(probs))
		for i := range probs {
			scores[i], labels[i] = probs[i][c], truth[i] == c
		}
		if a, ok := binaryAUC(scores, labels); ok {
			aucSum += a
			nAUC++
		}
	}
	if nAUC > 0 {
		m.MacroAUC = aucSum / float64(nAUC)
	}
	if predCounts != nil && trueCounts != nil {
		var mae float64
		ok := 0
		for i := range predCounts {
			mae += math.Abs(predCounts[i] - trueCounts[i])
			if hayashiFromFloat(predCounts[i]) == truth[i] {
				ok++
			}
		}
		m.CountMAE = mae / float64(len(predCounts))
		m.CountAcc = float64(ok) / float64(len(predCounts))
	}
	return m
}

// hayashiFromFloat applies ACNE04's count rule to an estimated (real-valued) count.
func hayashiFromFloat(c float64) int {
	switch n := math.Round(c); {
	case n <= 5:
		return 0
	case n <= 20:
		return 1
	case n <= 50:
		return 2
	}
	return 3
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

func quadraticKappa(conf [][]int) float64 {
	k := len(conf)
	var n float64
	rows, cols := make([]float64, k), make([]float64, k)
	for i := range conf {
		for j := range conf[i] {
			v := float64(conf[i][j])
			rows[i] += v
			cols[j] += v
			n += v
		}
	}
	var num, den float64
	for i := 0; i < k; i++ {
		for j := 0; j < k; j++ {
			w := float64((i-j)*(i-j)) / float64((k-1)*(k-1))
			num += w * float64(conf[i][j])
			den += w * rows[i] * cols[j] / n
		}
	}
	if den == 0 {
		return 1
	}
	return 1 - num/den
}

// binaryAUC is the ROC AUC (Mann-Whitney, ties averaged); ok is false with one class only.
func binaryAUC(scores []float64, labels []bool) (float64, bool) {
	idx := make([]int, len(scores))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return scores[idx[a]] < scores[idx[b]] })
	ranks := make([]float64, len(scores))
	for i := 0; i < len(idx); {
		j := i
		for j+1 < len(idx) && scores[idx[j+1]] == scores[idx[i]] {
			j++
		}
		r := float64(i+j)/2 + 1
		for t := i; t <= j; t++ {
			ranks[idx[t]] = r
		}
		i = j + 1
	}
	var pos, neg, sumPos float64
	for i, l := range labels {
		if l {
			pos++
			sumPos += ranks[i]
		} else {
			neg++
		}
	}
	if pos == 0 || neg == 0 {
		return 0, false
	}
	return (sumPos - pos*(pos+1)/2) / (pos * neg), true
}
