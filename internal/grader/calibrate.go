package grader

import (
	"errors"
	"fmt"
	"math"

	"gonum.org/v1/gonum/optimize"
)

// Calibration maps the network's predicted total lesion count to Hayashi grade probabilities
// with an ordinal (cumulative-logit, proportional-odds) model:
//
//	P(grade <= k) = sigmoid(Cuts[k] - Slope*log1p(total count)),  k = 0, 1, 2
//
// The Hayashi grade is defined by lesion-count thresholds, so once the counter ranks photos
// well, three ordered cut points on its count are the natural grade rule; fitting them (and
// the slope) by maximum likelihood on the training photos corrects the counter's systematic
// scale error (a from-scratch counter undercounts busy faces) without touching the valid
// split. It is fitted after training (FitCalibration) and stored in the checkpoint header.
type Calibration struct {
	Slope float64                `json:"slope"`
	Cuts  [NumGrades - 1]float64 `json:"cuts"` // increasing
	// FlipTTA: the counts are the mean of the photo and its mirror image (test-time
	// augmentation); the fit used such counts, so inference must too.
	FlipTTA  bool    `json:"flip_tta,omitempty"`
	FittedOn string  `json:"fitted_on"` // which photos the fit used
	N        int     `json:"n"`         // number of photos in the fit
	NLL      float64 `json:"nll"`       // mean negative log-likelihood at the optimum
}

// CountThresholds returns the total counts at which the most likely grade changes from k to
// k+1 under the fitted model's median rule (where P(grade <= k) = 1/2), for reports.
func (c *Calibration) CountThresholds() [NumGrades - 1]float64 {
	var t [NumGrades - 1]float64
	for k, cut := range c.Cuts {
		t[k] = math.Expm1(cut / c.Slope)
	}
	return t
}

// Probabilities returns the grade probabilities for a predicted total lesion count.
func (c *Calibration) Probabilities(total float64) []float64 {
	z := c.Slope * math.Log1p(math.Max(0, total))
	p := make([]float64, NumGrades)
	prev := 0.0
	for k, cut := range c.Cuts {
		cum := sigmoid(cut - z)
		p[k] = math.Max(0, cum-prev)
		prev = cum
	}
	p[NumGrades-1] = math.Max(0, 1-prev)
	return p
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// hayashiCountCuts are the Hayashi rule's grade boundaries in lesions (grade 0 up to 5, 1 up
// to 20, 2 up to 50): where the calibration's fit and OrdinalCountLoss's cuts start.
var hayashiCountCuts = [NumGrades - 1]float64{5.5, 20.5, 50.5}

// calibrationParams maps an unconstrained vector (slope, first cut, log gaps) to a
// Calibration with increasing cuts.
func calibrationParams(x []float64) Calibration {
	c := Calibration{Slope: x[0]}
	c.Cuts[0] = x[1]
	for k := 1; k < len(c.Cuts); k++ {
		c.Cuts[k] = c.Cuts[k-1] + math.Exp(x[k+1])
	}
	return c
}

// FitCalibration fits the ordinal model by maximum likelihood to predicted total counts and
// true grades (0..3). It needs photos of at least two grades.
func FitCalibration(totals []float64, grades []int, fittedOn string) (*Calibration, error) {
	if len(totals) != len(grades) || len(totals) == 0 {
		return nil, fmt.Errorf("calibration: %d counts for %d grades", len(totals), len(grades))
	}
	seen := map[int]bool{}
	for _, g := range grades {
		if g < 0 || g >= NumGrades {
			return nil, fmt.Errorf("calibration: grade %d out of range 0..%d", g, NumGrades-1)
		}
		seen[g] = true
	}
	if len(seen) < 2 {
		return nil, errors.New("calibration: needs photos of at least two grades")
	}
	const ridge = 1e-4 // keeps the optimum finite when the classes separate perfectly
	nll := func(x []float64) float64 {
		c := calibrationParams(x)
		var s float64
		for i, t := range totals {
			p := c.Probabilities(t)[grades[i]]
			s -= math.Log(math.Max(p, 1e-12))
		}
		var r float64
		for _, v := range x {
			r += v * v
		}
		return s/float64(len(totals)) + ridge*r
	}
	// Start from the Hayashi rule on the raw counts.
	const slope0 = 3.0
	x0 := []float64{slope0, slope0 * math.Log1p(hayashiCountCuts[0])}
	for k := 1; k < len(hayashiCountCuts); k++ {
		x0 = append(x0, math.Log(slope0*(math.Log1p(hayashiCountCuts[k])-math.Log1p(hayashiCountCuts[k-1]))))
	}
	res, err := optimize.Minimize(optimize.Problem{Func: nll}, x0, &optimize.Settings{MajorIterations: 2000}, &optimize.NelderMead{})
	if err != nil && res == nil {
		return nil, fmt.Errorf("calibration: %w", err)
	}
	c := calibrationParams(res.X)
	if c.Slope <= 0 || math.IsNaN(res.F) {
		return nil, fmt.Errorf("calibration: degenerate fit (slope %.4g): the counts do not rank the grades", c.Slope)
	}
	c.FittedOn, c.N, c.NLL = fittedOn, len(totals), res.F
	return &c, nil
}
