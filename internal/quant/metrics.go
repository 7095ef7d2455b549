package quant

import "math"

// Error compares original values with their reconstruction.
type Error struct {
	RelRMS float64 // ‖x − x̂‖ / ‖x‖ (0 when both are zero)
	SNRdB  float64 // 10·log10(‖x‖² / ‖x − x̂‖²); +Inf when exact
	MaxAbs float64 // max |x − x̂|
}

// Measure computes the reconstruction error of approx against orig (same length).
func Measure(orig, approx []float32) Error {
	var sig, noise, mx float64
	for i, x := range orig {
		d := float64(x) - float64(approx[i])
		sig += float64(x) * float64(x)
		noise += d * d
		mx = math.Max(mx, math.Abs(d))
	}
	e := Error{MaxAbs: mx}
	switch {
	case noise == 0:
		e.SNRdB = math.Inf(1)
	case sig == 0:
		e.RelRMS, e.SNRdB = math.Inf(1), math.Inf(-1)
	default:
		e.RelRMS = math.Sqrt(noise / sig)
		e.SNRdB = 10 * math.Log10(sig/noise)
	}
	return e
}
