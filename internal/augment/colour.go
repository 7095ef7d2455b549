package augment

import (
	"image"
	"image/color"
	"math"

	"github.com/disintegration/imaging"
)

// AdjustColour applies, in one pass over the pixels, a brightness shift of brightness
// percent of full scale (x + 2.55·brightness), a contrast factor of 1+contrast/100 about
// mid-grey ((x − 127.5)·f + 127.5) and a saturation factor of 1+saturation/100 (each
// channel moved away from or towards the pixel's luma 0.299R + 0.587G + 0.114B), clamping
// after each step. Zero percentages leave the image unchanged; alpha is kept.
func AdjustColour(img image.Image, brightness, contrast, saturation float64) *image.NRGBA {
	shift := 255 * brightness / 100
	cf := 1 + contrast/100
	sf := 1 + saturation/100
	clamp := func(v float64) float64 { return math.Min(math.Max(v, 0), 255) }
	var lut [256]float64
	for i := range lut {
		lut[i] = clamp((clamp(float64(i)+shift)-127.5)*cf + 127.5)
	}
	if saturation == 0 {
		var lut8 [256]uint8
		for i, v := range lut {
			lut8[i] = uint8(math.Round(v))
		}
		return imaging.AdjustFunc(img, func(c color.NRGBA) color.NRGBA {
			return color.NRGBA{R: lut8[c.R], G: lut8[c.G], B: lut8[c.B], A: c.A}
		})
	}
	return imaging.AdjustFunc(img, func(c color.NRGBA) color.NRGBA {
		r, g, b := lut[c.R], lut[c.G], lut[c.B]
		y := 0.299*r + 0.587*g + 0.114*b
		return color.NRGBA{
			R: uint8(math.Round(clamp(y + sf*(r-y)))),
			G: uint8(math.Round(clamp(y + sf*(g-y)))),
			B: uint8(math.Round(clamp(y + sf*(b-y)))),
			A: c.A,
		}
	})
}
