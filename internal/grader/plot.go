package grader

import (
	"bytes"
	"fmt"
	"math"
)

// CurvesSVG draws training curves (train loss and the holdout metric per epoch) as a small
// self-contained SVG.
func CurvesSVG(hist []EpochMetrics, metric string) []byte {
	const w, h, pad = 640.0, 320.0, 40.0
	var b bytes.Buffer
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	holdout := false // a refit (no holdout) plots the loss alone
	for _, e := range hist {
		holdout = holdout || e.Holdout.N > 0
	}
	if holdout || len(hist) == 0 {
		fmt.Fprintf(&b, `<text x="%.0f" y="16">train loss (blue, left axis) and holdout %s (red, 0..1)</text>`+"\n", pad, metric)
	} else {
		fmt.Fprintf(&b, `<text x="%.0f" y="16">train loss (blue, left axis); no holdout</text>`+"\n", pad)
	}
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", pad, h-pad, w-pad, h-pad)
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", pad, pad, pad, h-pad)
	if len(hist) > 0 {
		maxLoss := 0.0
		for _, e := range hist {
			maxLoss = math.Max(maxLoss, e.TrainLoss)
		}
		if maxLoss == 0 {
			maxLoss = 1
		}
		n := float64(max(1, len(hist)-1))
		x := func(i int) float64 { return pad + (w-2*pad)*float64(i)/n }
		y := func(v, top float64) float64 { return h - pad - (h-2*pad)*v/top }
		line := func(color string, val func(EpochMetrics) float64, top float64) {
			fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="`, color)
			for i, e := range hist {
				fmt.Fprintf(&b, "%.1f,%.1f ", x(i), y(val(e), top))
			}
			b.WriteString("\"/>\n")
		}
		line("steelblue", func(e EpochMetrics) float64 { return e.TrainLoss }, maxLoss)
		if holdout {
			line("firebrick", func(e EpochMetrics) float64 { return selectionValue(e.Holdout, metric) }, 1)
		}
		fmt.Fprintf(&b, `<text x="4" y="%.0f">%.3g</text>`+"\n", pad+4, maxLoss)
		fmt.Fprintf(&b, `<text x="%.0f" y="%.0f">epoch %d</text>`+"\n", w-pad-40, h-pad+16, hist[len(hist)-1].Epoch)
	}
	b.WriteString("</svg>\n")
	return b.Bytes()
}
