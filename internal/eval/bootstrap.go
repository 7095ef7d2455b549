package eval

import (
	"math"
	"math/rand/v2"
	"slices"
)

// HeadlineMetrics are the summary metrics that get bootstrap confidence intervals and can be
// gated, in display order.
var HeadlineMetrics = []string{"accuracy", "macro_f1", "weighted_f1", "kappa", "mae", "macro_auc", "ece", "lesion_count_mae"}

// lowerIsBetter marks error metrics, for which a regression is an increase.
var lowerIsBetter = map[string]bool{"mae": true, "ece": true, "lesion_count_mae": true}

// LowerIsBetter reports whether a larger value of the named metric is worse.
func LowerIsBetter(name string) bool { return lowerIsBetter[name] }

// Summary returns every scalar metric by name (the keys of metrics.json's "summary").
func (m *Metrics) Summary() map[string]Num {
	return map[string]Num{
		"accuracy":           m.Accuracy,
		"macro_precision":    m.MacroPrecision,
		"macro_recall":       m.MacroRecall,
		"macro_f1":           m.MacroF1,
		"weighted_precision": m.WeightedPrecision,
		"weighted_recall":    m.WeightedRecall,
		"weighted_f1":        m.WeightedF1,
		"kappa":              m.Kappa,
		"mae":                m.MAE,
		"macro_auc":          m.MacroAUC,
		"ece":                m.ECE,
		"lesion_count_mae":   m.LesionCountMAE,
	}
}

// Interval is a bootstrap confidence interval.
type Interval struct {
	Lower Num `json:"lower"`
	Upper Num `json:"upper"`
	// Valid is how many resamples had the metric defined (e.g. kappa is undefined on a
	// resample with a single grade); the interval is over those.
	Valid int `json:"valid"`
}

// BootstrapOptions configures Bootstrap.
type BootstrapOptions struct {
	Resamples int     // number of resamples; 0 disables
	Seed      uint64  // PCG seed: the same seed and data give the same intervals
	Level     float64 // e.g. 0.95
}

// Bootstrap computes percentile confidence intervals of the headline metrics: Resamples
// times, draw n samples with replacement (jointly: grade, probabilities and lesion counts),
// recompute the metrics, and take the (1−Level)/2 and (1+Level)/2 quantiles (linear
// interpolation, numpy's default) of the defined values. Metrics undefined on the full data
// are left out.
func Bootstrap(d Data, full *Metrics, opts BootstrapOptions) map[string]Interval {
	if opts.Resamples <= 0 {
		return nil
	}
	if opts.Level <= 0 || opts.Level >= 1 {
		opts.Level = 0.95
	}
	fullSum := full.Summary()
	var names []string
	for _, name := range HeadlineMetrics {
		if fullSum[name].Defined() {
			names = append(names, name)
		}
	}
	values := make(map[string][]float64, len(names))
	rng := rand.New(rand.NewPCG(opts.Seed, opts.Seed^0x9e3779b97f4a7c15))
	n := len(d.True)
	r := Data{K: d.K, True: make([]int, n), Pred: make([]int, n)}
	if d.Probs != nil {
		r.Probs = make([][]float64, n)
	}
	if d.CountTrue != nil && d.CountPred != nil {
		r.CountTrue, r.CountPred = make([]float64, n), make([]float64, n)
	}
	for range opts.Resamples {
		for i := range n {
			j := rng.IntN(n)
			r.True[i], r.Pred[i] = d.True[j], d.Pred[j]
			if r.Probs != nil {
				r.Probs[i] = d.Probs[j]
			}
			if r.CountTrue != nil {
				r.CountTrue[i], r.CountPred[i] = d.CountTrue[j], d.CountPred[j]
			}
		}
		m := computeLabels(r)
		if r.Probs != nil {
			computeProbabilities(r, m, false)
		} else {
			m.MacroAUC, m.ECE = Undefined, Undefined
		}
		m.LesionCountMAE, _ = lesionMAE(r)
		s := m.Summary()
		for _, name := range names {
			if v := s[name]; v.Defined() {
				values[name] = append(values[name], float64(v))
			}
		}
	}
	out := make(map[string]Interval, len(names))
	lo, hi := (1-opts.Level)/2, (1+opts.Level)/2
	for _, name := range names {
		v := values[name]
		slices.Sort(v)
		out[name] = Interval{Lower: Num(Percentile(v, lo)), Upper: Num(Percentile(v, hi)), Valid: len(v)}
	}
	return out
}

// Percentile returns the q-quantile (0..1) of sorted values with linear interpolation
// between order statistics (numpy.percentile's default); NaN for no values.
func Percentile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	pos := q * float64(len(sorted)-1)
	i := int(math.Floor(pos))
	if i >= len(sorted)-1 {
		return sorted[len(sorted)-1]
	}
	return sorted[i] + (sorted[i+1]-sorted[i])*(pos-float64(i))
}
