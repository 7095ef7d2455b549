package augment

import (
	"image"
	"image/color"
	"math"
	"testing"

	"github.com/disintegration/imaging"

	"github.com/acdtcm/acdtcm/internal/dataset"
)

func box(x0, y0, x1, y1 float64) dataset.Box { return dataset.Box{X0: x0, Y0: y0, X1: x1, Y1: y1} }

func TestTransformBox(t *testing.T) {
	cases := []struct {
		name       string
		in         dataset.Box
		m          Affine
		w, h       int
		minVisible float64
		want       dataset.Box
		keep       bool
	}{
		{"identity", box(4, 4, 12, 10), Identity(), 64, 48, 0.3, box(4, 4, 12, 10), true},
		{"flip horizontal", box(4, 4, 12, 10), FlipHMap(64), 64, 48, 0.3, box(52, 4, 60, 10), true},
		{"flip vertical", box(4, 4, 12, 10), FlipVMap(48), 64, 48, 0.3, box(4, 38, 12, 44), true},
		{"flip horizontal twice", box(4, 4, 12, 10), FlipHMap(64).Then(FlipHMap(64)), 64, 48, 0.3, box(4, 4, 12, 10), true},
		{"crop shifts inside box", box(30, 20, 38, 28), Translate(-10, -5), 30, 30, 0.3, box(20, 15, 28, 23), true},
		{"crop clips box half outside", box(20, 10, 40, 20), Identity(), 30, 30, 0.3, box(20, 10, 30, 20), true},
		// 2x5 of 8x6 = 21% is left: below 30% the box is dropped, above 20% it is kept.
		{"crop leaves 21% of box: dropped", box(4, 4, 12, 10), Translate(-10, -5), 30, 30, 0.3, box(0, 0, 2, 5), false},
		{"crop leaves 21% of box: kept at 0.2", box(4, 4, 12, 10), Translate(-10, -5), 30, 30, 0.2, box(0, 0, 2, 5), true},
		{"crop removes box entirely", box(56, 38, 63, 47), Translate(-10, -5), 30, 30, 0, box(46, 33, 30, 30), false},
		{"box touching the edge from outside", box(-8, 0, 0, 10), Identity(), 30, 30, 0, box(0, 0, 0, 10), false},
		{"crop then resize x2", box(30, 20, 38, 28), Translate(-10, -5).Then(Scale(2, 2)), 60, 60, 0.3, box(40, 30, 56, 46), true},
		// A quarter turn counter-clockwise about the centre of a 100x100 image maps (x,y) to
		// (y, 100-x): the top-left region moves to the bottom-left.
		{"rotate 90 square", box(10, 20, 30, 40), RotateMap(90, 100, 100, 100, 100), 100, 100, 0.3, box(20, 70, 40, 90), true},
		{"rotate 180 square", box(10, 20, 30, 40), RotateMap(180, 100, 100, 100, 100), 100, 100, 0.3, box(70, 60, 90, 80), true},
		{"rotate 270 square", box(10, 20, 30, 40), RotateMap(270, 100, 100, 100, 100), 100, 100, 0.3, box(60, 10, 80, 30), true},
		// 64x48 turned a quarter is 48x64 and (x,y) goes to (y, 64-x).
		{"rotate 90 expand non-square", box(4, 4, 12, 10), RotateMap(90, 64, 48, 48, 64), 48, 64, 0.3, box(4, 52, 10, 60), true},
		// A centred 20x20 square turned 45° has half-diagonal 10·√2 = 14.142.
		{"rotate 45 centred square", box(40, 40, 60, 60), RotateMap(45, 100, 100, 100, 100), 100, 100, 0.3, box(35.86, 35.86, 64.14, 64.14), true},
		// The top-left corner box turned 45° about the centre spans x -20.71..7.57 and
		// y 35.86..64.14: 7.57/28.28 = 27% of it stays inside.
		{"rotate 45 corner box clipped", box(0, 0, 20, 20), RotateMap(45, 100, 100, 100, 100), 100, 100, 0.25, box(0, 35.86, 7.57, 64.14), true},
		{"rotate 45 corner box dropped", box(0, 0, 20, 20), RotateMap(45, 100, 100, 100, 100), 100, 100, 0.3, box(0, 35.86, 7.57, 64.14), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, keep := TransformBox(c.in, c.m, c.w, c.h, c.minVisible)
			if keep != c.keep {
				t.Errorf("keep = %v, want %v (box %+v)", keep, c.keep, got)
			}
			if keep && got != c.want {
				t.Errorf("box = %+v, want %+v", got, c.want)
			}
			if !keep && c.want.X1 > c.want.X0 && got != c.want {
				t.Errorf("clipped box = %+v, want %+v", got, c.want)
			}
		})
	}
}

func TestTransformLesionsCountsAndKeepsUnboxed(t *testing.T) {
	b1, b2 := box(1, 1, 5, 5), box(90, 90, 99, 99)
	in := []dataset.Lesion{{Type: "papule", Box: &b1}, {Type: "nodule"}, {Type: "pustule", Box: &b2}}
	// Crop to the top-left 50x50: the second box leaves the image.
	kept, dropped := TransformLesions(in, Identity(), 50, 50, 0.3)
	if dropped != 1 || len(kept) != 2 {
		t.Fatalf("kept %d dropped %d, want 2 and 1", len(kept), dropped)
	}
	if kept[0].Type != "papule" || *kept[0].Box != b1 || kept[1].Type != "nodule" || kept[1].Box != nil {
		t.Errorf("kept = %+v", kept)
	}
	if kept[0].Box == in[0].Box {
		t.Error("kept box aliases the input box")
	}
	if *in[2].Box != b2 {
		t.Error("input modified")
	}
}

func TestAffineThen(t *testing.T) {
	m := Translate(3, 4).Then(Scale(2, 10)) // translate first
	if x, y := m.Apply(1, 1); x != 8 || y != 50 {
		t.Errorf("translate then scale: (%v,%v), want (8,50)", x, y)
	}
	m = Scale(2, 10).Then(Translate(3, 4))
	if x, y := m.Apply(1, 1); x != 5 || y != 14 {
		t.Errorf("scale then translate: (%v,%v), want (5,14)", x, y)
	}
}

// TestRotatedSizeMatchesImaging pins rotatedSize to the canvas imaging.Rotate really makes.
func TestRotatedSizeMatchesImaging(t *testing.T) {
	sizes := [][2]int{{64, 48}, {33, 17}, {10, 10}, {1, 5}}
	angles := []float64{-90, -45, -15, -7.3, 0, 1, 12.5, 15, 30, 89.99, 90, 135, 180, 270, 359}
	for _, s := range sizes {
		src := image.NewNRGBA(image.Rect(0, 0, s[0], s[1]))
		for _, a := range angles {
			b := imaging.Rotate(src, a, color.Black).Bounds()
			w, h := rotatedSize(s[0], s[1], a-math.Floor(a/360)*360)
			if b.Dx() != w || b.Dy() != h {
				t.Errorf("%dx%d rotated %v°: imaging %dx%d, rotatedSize %dx%d", s[0], s[1], a, b.Dx(), b.Dy(), w, h)
			}
		}
	}
}

// field is a smooth test image: each channel is a different function of position, in
// continuous coordinates, so any mistake in direction, centre or scale of the map shows.
func field(x, y float64) [3]float64 {
	return [3]float64{
		128 + 100*math.Sin(x/8+0.3),
		128 + 100*math.Cos(y/10+0.7),
		128 + 60*math.Sin((x+2*y)/14),
	}
}

func fieldImage(w, h int) *image.NRGBA {
	img := image.NewNRGBA(image.Rect(0, 0, w, h))
	for j := 0; j < h; j++ {
		for i := 0; i < w; i++ {
			f := field(float64(i)+0.5, float64(j)+0.5)
			img.SetNRGBA(i, j, color.NRGBA{uint8(math.Round(f[0])), uint8(math.Round(f[1])), uint8(math.Round(f[2])), 255})
		}
	}
	return img
}

func invert(m Affine) Affine {
	det := m.A*m.E - m.B*m.D
	a, b, d, e := m.E/det, -m.B/det, -m.D/det, m.A/det
	return Affine{A: a, B: b, C: -(a*m.C + b*m.F), D: d, E: e, F: -(d*m.C + e*m.F)}
}

// TestGeometryMatchesPixels checks that the affine map used for boxes is the map imaging
// applies to pixels: every output pixel must show the source field at the inverse-mapped
// point. A half-pixel error in a centre would already raise the mean error above 3.
func TestGeometryMatchesPixels(t *testing.T) {
	const w, h = 97, 73
	src := fieldImage(w, h)
	p := DefaultParams()
	p.Rotation, p.RotationP, p.CropP, p.FlipP, p.VFlipP = 30, 1, 1, 0.5, 0.5
	p.BrightnessP, p.ContrastP, p.SaturationP = 0, 0, 0
	p.CropMinScale = 0.5
	for _, expand := range []bool{false, true} {
		for _, resize := range []bool{true, false} {
			p.RotationExpand, p.CropResize = expand, resize
			var list []Ops
			for seed := int64(0); seed < 6; seed++ {
				list = append(list, Sample(p, NewRand(seed, "field", 1)))
			}
			// Quarter and half turns of a non-square image take imaging's exact paths
			// (Rotate90 and friends, and padding instead of cropping when not expanding).
			list = append(list, Ops{Rotate: true, Angle: 90}, Ops{Rotate: true, Angle: -90, FlipV: true},
				Ops{Rotate: true, Angle: 180, Crop: true, CropScale: 0.6, CropAspect: 1, CropX: 1, CropY: 0})
			for _, ops := range list {
				out, m, ow, oh := ops.Apply(p, src)
				if b := out.Bounds(); b.Dx() != ow || b.Dy() != oh || b.Min != (image.Point{}) {
					t.Fatalf("%v: image bounds %v, geometry says %dx%d", ops, b, ow, oh)
				}
				gm, gw, gh := ops.Geometry(p, w, h)
				if gm != m || gw != ow || gh != oh {
					t.Fatalf("Geometry disagrees with Apply: %+v %dx%d vs %+v %dx%d", gm, gw, gh, m, ow, oh)
				}
				inv := invert(m)
				var sum, worst float64
				n := 0
				for j := 0; j < oh; j++ {
					for i := 0; i < ow; i++ {
						x, y := inv.Apply(float64(i)+0.5, float64(j)+0.5)
						if x < 2 || y < 2 || x > w-2 || y > h-2 {
							continue // fill colour or interpolated edge
						}
						want := field(x, y)
						got := out.(*image.NRGBA).NRGBAAt(i, j)
						for c, v := range []uint8{got.R, got.G, got.B} {
							d := math.Abs(float64(v) - want[c])
							sum += d
							worst = math.Max(worst, d)
							n++
						}
					}
				}
				if n < 1000 {
					t.Fatalf("%v: only %d samples", ops, n)
				}
				mean := sum / float64(n)
				t.Logf("expand=%v resize=%v %v: %d samples, mean abs error %.2f, max %.1f", expand, resize, ops, n, mean, worst)
				if mean > 0.8 || worst > 4 {
					t.Errorf("expand=%v resize=%v %v: mean abs error %.2f, max %.1f (want <= 0.8, <= 4)", expand, resize, ops, mean, worst)
				}
			}
		}
	}
}
