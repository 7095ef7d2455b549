package grader

import (
	"math"
	"math/rand/v2"

	"github.com/acdtcm/acdtcm/internal/grader/heatmap"
)

// Training-time augmentation beyond flip and brightness (TrainConfig.ScaleJitter and
// ColorJitter): a random zoom-in crop resized back to the input size, with the lesion boxes
// following, and per-channel colour gains. Both are drawn from the step's generator after
// flip and brightness, so runs with them off see exactly the batches they saw before.

// cropWindow is a square crop of a photo in normalised coordinates: [X0, X0+W] x [Y0, Y0+W].
type cropWindow struct{ X0, Y0, W float64 }

// drawCrop draws a zoom factor in [1, 1+jitter] and a uniformly placed window of side 1/zoom.
func drawCrop(r *rand.Rand, jitter float64) cropWindow {
	w := 1 / (1 + r.Float64()*jitter)
	return cropWindow{X0: r.Float64() * (1 - w), Y0: r.Float64() * (1 - w), W: w}
}

// cropResize writes into dst (s*s*3 bytes) the window of the s x s RGB row src, resampled
// bilinearly back to s x s.
func cropResize(src []uint8, s int, win cropWindow, dst []uint8) {
	for i := range s {
		sy := win.Y0*float64(s) + (float64(i)+0.5)*win.W - 0.5
		y0, fy := splitCoord(sy, s)
		for j := range s {
			sx := win.X0*float64(s) + (float64(j)+0.5)*win.W - 0.5
			x0, fx := splitCoord(sx, s)
			x1, y1 := min(x0+1, s-1), min(y0+1, s-1)
			o := (i*s + j) * 3
			for c := range 3 {
				a := float64(src[(y0*s+x0)*3+c])*(1-fx) + float64(src[(y0*s+x1)*3+c])*fx
				b := float64(src[(y1*s+x0)*3+c])*(1-fx) + float64(src[(y1*s+x1)*3+c])*fx
				dst[o+c] = uint8(math.Round(a*(1-fy) + b*fy))
			}
		}
	}
}

// splitCoord clamps a source coordinate to [0, s-1] and returns its integer part and fraction.
func splitCoord(v float64, s int) (int, float64) {
	v = math.Max(0, math.Min(float64(s-1), v))
	i := int(v)
	return i, v - float64(i)
}

// cropBoxes maps boxes (normalised coordinates) into the window's coordinates, keeping those
// whose centre lies inside it and clipping them to it.
func cropBoxes(boxes []heatmap.Box, win cropWindow) []heatmap.Box {
	out := make([]heatmap.Box, 0, len(boxes))
	for _, b := range boxes {
		cx, cy := (b.X0+b.X1)/2, (b.Y0+b.Y1)/2
		if cx < win.X0 || cx >= win.X0+win.W || cy < win.Y0 || cy >= win.Y0+win.W {
			continue
		}
		m := func(v, o float64) float64 { return math.Max(0, math.Min(1, (v-o)/win.W)) }
		out = append(out, heatmap.Box{Type: b.Type, X0: m(b.X0, win.X0), X1: m(b.X1, win.X0), Y0: m(b.Y0, win.Y0), Y1: m(b.Y1, win.Y0)})
	}
	return out
}

// colourGains draws per-channel gains in [1-jitter, 1+jitter].
func colourGains(r *rand.Rand, jitter float64) [3]float64 {
	var g [3]float64
	for c := range g {
		g[c] = 1 + (2*r.Float64()-1)*jitter
	}
	return g
}

// applyGains multiplies each channel of the RGB row by its gain in place, clamping to 0..255.
func applyGains(row []uint8, g [3]float64) {
	for i := 0; i+2 < len(row); i += 3 {
		for c := range 3 {
			row[i+c] = uint8(math.Round(math.Max(0, math.Min(255, float64(row[i+c])*g[c]))))
		}
	}
}
