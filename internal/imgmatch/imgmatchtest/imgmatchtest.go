// Package imgmatchtest generates synthetic photos and augmented copies of them for tests
// of local-feature matching.
package imgmatchtest

import (
	"image"
	"image/color"
	"math"
	"math/rand/v2"
)

// Texture is a photo-like RGB image: smooth shading, a few hundred soft blobs of random
// size and contrast, and mild noise; seed picks the content.
func Texture(seed uint64, w, h int) *image.RGBA {
	r := rand.New(rand.NewPCG(seed, 7))
	type blob struct{ x, y, s, a float64 }
	blobs := make([]blob, 700)
	for i := range blobs {
		blobs[i] = blob{r.Float64() * float64(w), r.Float64() * float64(h), 1.5 + r.Float64()*6, (r.Float64() - 0.5) * 160}
	}
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			v := 110 + 40*math.Sin(float64(x)/90+float64(seed)) + 30*math.Cos(float64(y)/70)
			for _, b := range blobs {
				dx, dy := float64(x)-b.x, float64(y)-b.y
				if d2 := dx*dx + dy*dy; d2 < 9*b.s*b.s {
					v += b.a * math.Exp(-d2/(2*b.s*b.s))
				}
			}
			v += r.NormFloat64() * 2
			g := uint8(min(max(v, 0), 255))
			m.Set(x, y, color.RGBA{g, uint8(min(max(v*0.8, 0), 255)), uint8(min(max(v*0.7, 0), 255)), 255})
		}
	}
	return m
}

// Warp maps src through an augmentation: optional horizontal flip, rotation by deg about
// the centre, horizontal shear, a centred crop keeping the fraction keep of each side
// (resized back), brightness gain, black fill outside and salt-and-pepper noise on frac
// of the pixels.
func Warp(src *image.RGBA, flip bool, deg, shear, keep, gain, frac float64) *image.RGBA {
	b := src.Bounds()
	w, h := float64(b.Dx()), float64(b.Dy())
	cx, cy := w/2, h/2
	c, s := math.Cos(deg*math.Pi/180), math.Sin(deg*math.Pi/180)
	out := image.NewRGBA(b)
	r := rand.New(rand.NewPCG(uint64(deg*1000+keep*10), 3))
	for y := 0; y < b.Dy(); y++ {
		for x := 0; x < b.Dx(); x++ {
			// output → crop → unshear → unrotate → unflip (inverse mapping)
			u := (float64(x)-cx)*keep + cx
			v := (float64(y)-cy)*keep + cy
			u -= shear * (v - cy)
			px := c*(u-cx) + s*(v-cy) + cx
			py := -s*(u-cx) + c*(v-cy) + cy
			if flip {
				px = w - 1 - px
			}
			var col color.RGBA
			if px >= 0 && py >= 0 && px < w-1 && py < h-1 {
				x0, y0 := int(px), int(py)
				fx, fy := px-float64(x0), py-float64(y0)
				var ch [3]float64
				for k := 0; k < 3; k++ {
					p := func(xx, yy int) float64 { return float64(src.Pix[yy*src.Stride+xx*4+k]) }
					ch[k] = gain * ((1-fx)*(1-fy)*p(x0, y0) + fx*(1-fy)*p(x0+1, y0) + (1-fx)*fy*p(x0, y0+1) + fx*fy*p(x0+1, y0+1))
				}
				col = color.RGBA{uint8(min(ch[0], 255)), uint8(min(ch[1], 255)), uint8(min(ch[2], 255)), 255}
			} else {
				col = color.RGBA{0, 0, 0, 255}
			}
			if r.Float64() < frac {
				if r.IntN(2) == 0 {
					col = color.RGBA{0, 0, 0, 255}
				} else {
					col = color.RGBA{255, 255, 255, 255}
				}
			}
			out.SetRGBA(x, y, col)
		}
	}
	return out
}
