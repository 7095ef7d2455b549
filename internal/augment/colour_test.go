package augment

import (
	"image"
	"image/color"
	"testing"

	"github.com/disintegration/imaging"
)

func onePixel(c color.NRGBA) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, 1, 1))
	img.SetNRGBA(0, 0, c)
	return img
}

func TestAdjustColour(t *testing.T) {
	cases := []struct {
		name                 string
		in                   color.NRGBA
		bright, contr, satur float64
		want                 color.NRGBA
	}{
		{"unchanged", color.NRGBA{200, 100, 50, 255}, 0, 0, 0, color.NRGBA{200, 100, 50, 255}},
		{"brightness +10% of 255 = +25.5", color.NRGBA{200, 100, 250, 255}, 10, 0, 0, color.NRGBA{226, 126, 255, 255}},
		{"brightness -50%", color.NRGBA{200, 100, 50, 128}, -50, 0, 0, color.NRGBA{73, 0, 0, 128}},
		// factor 0.5 about 127.5: 0 → 63.75, 255 → 191.25, 100 → 113.75
		{"contrast -50%", color.NRGBA{0, 255, 100, 255}, 0, -50, 0, color.NRGBA{64, 191, 114, 255}},
		{"contrast +100% clamps", color.NRGBA{0, 255, 127, 255}, 0, 100, 0, color.NRGBA{0, 255, 127, 255}},
		// luma of (200,100,50) is 124.2
		{"saturation -100% is grey", color.NRGBA{200, 100, 50, 255}, 0, 0, -100, color.NRGBA{124, 124, 124, 255}},
		{"saturation +50%", color.NRGBA{200, 100, 50, 255}, 0, 0, 50, color.NRGBA{238, 88, 13, 255}},
		{"saturation leaves grey alone", color.NRGBA{90, 90, 90, 255}, 0, 0, 80, color.NRGBA{90, 90, 90, 255}},
		// brightness first (100 → 125.5), then contrast 0.5 (→ 126.5), then no saturation
		{"brightness then contrast", color.NRGBA{100, 100, 100, 255}, 10, -50, 0, color.NRGBA{127, 127, 127, 255}},
	}
	for _, c := range cases {
		got := AdjustColour(onePixel(c.in), c.bright, c.contr, c.satur).NRGBAAt(0, 0)
		if got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// TestAdjustColourBrightnessMatchesImaging: the brightness step is imaging's.
func TestAdjustColourBrightnessMatchesImaging(t *testing.T) {
	img := fieldImage(31, 17)
	for _, p := range []float64{-15, -3.3, 7.25, 15} {
		want := imaging.AdjustBrightness(img, p)
		got := AdjustColour(img, p, 0, 0)
		for i := range want.Pix {
			if want.Pix[i] != got.Pix[i] {
				t.Fatalf("brightness %v: byte %d is %d, imaging %d", p, i, got.Pix[i], want.Pix[i])
			}
		}
	}
}
