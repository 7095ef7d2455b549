package augment

import (
	"image"
	"image/color"
	"math"
	"testing"
)

func TestSampleProbabilityZeroAndOne(t *testing.T) {
	p := DefaultParams()
	p.RotationP, p.CropP, p.FlipP, p.VFlipP, p.BrightnessP, p.ContrastP, p.SaturationP = 0, 0, 0, 0, 0, 0, 0
	for i := range 50 {
		if o := Sample(p, NewRand(1, "x", i)); o != (Ops{}) {
			t.Fatalf("all probabilities 0 gave %v", o)
		}
	}
	p = DefaultParams()
	p.RotationP, p.CropP, p.FlipP, p.VFlipP, p.BrightnessP, p.ContrastP, p.SaturationP = 1, 1, 1, 1, 1, 1, 1
	for i := range 200 {
		o := Sample(p, NewRand(1, "x", i))
		if !o.Rotate || !o.Crop || !o.FlipH || !o.FlipV {
			t.Fatalf("all probabilities 1 gave %v", o)
		}
		if math.Abs(o.Angle) > p.Rotation {
			t.Errorf("angle %v outside ±%v", o.Angle, p.Rotation)
		}
		if o.CropScale < p.CropMinScale || o.CropScale > p.CropMaxScale {
			t.Errorf("crop scale %v outside [%v,%v]", o.CropScale, p.CropMinScale, p.CropMaxScale)
		}
		if o.CropAspect < p.CropMinAspect-1e-12 || o.CropAspect > p.CropMaxAspect+1e-12 {
			t.Errorf("crop aspect %v outside [%v,%v]", o.CropAspect, p.CropMinAspect, p.CropMaxAspect)
		}
		for _, v := range []float64{o.Brightness, o.Contrast, o.Saturation} {
			if math.Abs(v) > 15 || v == 0 {
				t.Errorf("colour change %v%% outside ±15%% or zero", v)
			}
		}
	}
}

func TestSampleProbabilityHalf(t *testing.T) {
	p := DefaultParams() // every p is 0.5 except vertical flip (0)
	const n = 1000
	var rot, crop, flip, vflip, bright int
	for i := range n {
		o := Sample(p, NewRand(7, "img", i))
		if o.Rotate {
			rot++
		}
		if o.Crop {
			crop++
		}
		if o.FlipH {
			flip++
		}
		if o.FlipV {
			vflip++
		}
		if o.Brightness != 0 {
			bright++
		}
	}
	// Binomial(1000, 0.5) stays within 500±80 with probability 1 - 4e-7.
	for name, c := range map[string]int{"rotate": rot, "crop": crop, "flip": flip, "brightness": bright} {
		if c < 420 || c > 580 {
			t.Errorf("%s applied %d of %d times at p=0.5", name, c, n)
		}
	}
	if vflip != 0 {
		t.Errorf("vertical flip applied %d times at p=0", vflip)
	}
}

func TestNewRandDeterministic(t *testing.T) {
	draw := func(seed int64, id string, k int) [4]uint64 {
		r := NewRand(seed, id, k)
		return [4]uint64{r.Uint64(), r.Uint64(), r.Uint64(), r.Uint64()}
	}
	base := draw(42, "levle1_10", 1)
	if base != draw(42, "levle1_10", 1) {
		t.Fatal("same (seed, id, copy) gave different streams")
	}
	for name, other := range map[string][4]uint64{
		"seed": draw(43, "levle1_10", 1),
		"id":   draw(42, "levle1_11", 1),
		"copy": draw(42, "levle1_10", 2),
	} {
		if other == base {
			t.Errorf("changing %s did not change the stream", name)
		}
	}
	// The separator keeps (id "a1", copy 0) and (id "a", copy 10) apart.
	if draw(42, "a1", 0) == draw(42, "a", 10) {
		t.Error("(a1, 0) and (a, 10) share a stream")
	}
}

func TestCropRect(t *testing.T) {
	cases := []struct {
		name string
		o    Ops
		w, h int
		want image.Rectangle
	}{
		{"quarter area top-left", Ops{CropScale: 0.25, CropAspect: 1}, 100, 100, image.Rect(0, 0, 50, 50)},
		{"quarter area bottom-right", Ops{CropScale: 0.25, CropAspect: 1, CropX: 1, CropY: 1}, 100, 100, image.Rect(50, 50, 100, 100)},
		{"keeps the image's shape", Ops{CropScale: 0.25, CropAspect: 1, CropX: 0.5, CropY: 0.5}, 200, 100, image.Rect(50, 25, 150, 75)},
		{"wide crop", Ops{CropScale: 0.5, CropAspect: 2, CropX: 0, CropY: 1}, 100, 100, image.Rect(0, 50, 100, 100)},
		// 190x47 does not fit: the width is cut to 100 and the height grows to keep 90% of the area.
		{"too wide is cut to the image, area kept", Ops{CropScale: 0.9, CropAspect: 4, CropX: 0.5, CropY: 0.5}, 100, 100, image.Rect(0, 5, 100, 95)},
		{"full", Ops{CropScale: 1, CropAspect: 1, CropX: 0.3, CropY: 0.9}, 64, 48, image.Rect(0, 0, 64, 48)},
	}
	for _, c := range cases {
		if got := c.o.CropRect(c.w, c.h); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

func TestParseColor(t *testing.T) {
	cases := []struct {
		in   string
		want color.NRGBA
		ok   bool
	}{
		{"#000000", color.NRGBA{A: 255}, true},
		{"ff8000", color.NRGBA{R: 255, G: 128, A: 255}, true},
		{"#10203040", color.NRGBA{R: 16, G: 32, B: 48, A: 64}, true},
		{"#fff", color.NRGBA{}, false},
		{"#gg0000", color.NRGBA{}, false},
	}
	for _, c := range cases {
		got, err := ParseColor(c.in)
		if (err == nil) != c.ok || (c.ok && got != c.want) {
			t.Errorf("ParseColor(%q) = %v, %v; want %v ok=%v", c.in, got, err, c.want, c.ok)
		}
	}
}

func TestParamsValidate(t *testing.T) {
	cases := []struct {
		name string
		edit func(*Params)
		ok   bool
	}{
		{"defaults", func(*Params) {}, true},
		{"probability above 1", func(p *Params) { p.FlipP = 1.5 }, false},
		{"negative probability", func(p *Params) { p.CropP = -0.1 }, false},
		{"NaN probability", func(p *Params) { p.RotationP = math.NaN() }, false},
		{"rotation above 180", func(p *Params) { p.Rotation = 200 }, false},
		{"brightness 1", func(p *Params) { p.Brightness = 1 }, false},
		{"crop min above max", func(p *Params) { p.CropMinScale, p.CropMaxScale = 0.9, 0.8 }, false},
		{"crop scale 0", func(p *Params) { p.CropMinScale = 0 }, false},
		{"crop aspect inverted", func(p *Params) { p.CropMinAspect, p.CropMaxAspect = 2, 1 }, false},
		{"min visible above 1", func(p *Params) { p.MinVisible = 2 }, false},
	}
	for _, c := range cases {
		p := DefaultParams()
		c.edit(&p)
		if err := p.Validate(); (err == nil) != c.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
