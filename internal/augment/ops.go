// Package augment makes randomly transformed copies of annotated photos for training:
// rotation, random crop, flips, and brightness, contrast and saturation changes. Lesion
// boxes follow the geometric transforms; boxes that leave the image are dropped. All
// randomness of one output image comes from (seed, source image id, copy index), so the
// results do not depend on how work is scheduled.
package augment

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"

	"github.com/disintegration/imaging"

	"github.com/acdtcm/acdtcm/internal/dataset"
)

// Params are the probabilities and ranges of the transforms. Each transform is applied
// independently with its probability; ranges are sampled uniformly (crop aspect ratio
// log-uniformly).
type Params struct {
	// Rotation is the largest rotation in degrees; the angle is uniform in ±Rotation.
	Rotation  float64
	RotationP float64
	// RotationExpand keeps the whole rotated photo on a larger canvas; when false the
	// rotated photo is cropped back to the original size around its centre.
	RotationExpand bool
	// Fill colours the canvas uncovered by a rotation.
	Fill color.NRGBA

	// Brightness is the largest brightness shift as a fraction of full scale (0.15: each
	// channel moves by up to ±15% of 255).
	Brightness  float64
	BrightnessP float64
	// Contrast is the largest contrast change as a fraction (0.15: contrast factor in
	// [0.85, 1.15]).
	Contrast  float64
	ContrastP float64
	// Saturation is the largest saturation change as a fraction (0.15: saturation factor in
	// [0.85, 1.15]).
	Saturation  float64
	SaturationP float64

	// CropMinScale and CropMaxScale bound the crop area as a fraction of the image area.
	CropMinScale float64
	CropMaxScale float64
	// CropMinAspect and CropMaxAspect bound the crop's width/height ratio relative to the
	// image's (1 keeps the image's shape).
	CropMinAspect float64
	CropMaxAspect float64
	CropP         float64
	// CropResize scales the crop back to the size the image had before cropping.
	CropResize bool

	// FlipP and VFlipP are the probabilities of a horizontal and a vertical flip.
	FlipP  float64
	VFlipP float64

	// MinVisible drops a transformed box whose part inside the image is less than this
	// fraction of the whole transformed box.
	MinVisible float64
}

// DefaultParams are the defaults of `acdtcm augment`: mild changes that keep a face a
// face (no vertical flip).
func DefaultParams() Params {
	return Params{
		Rotation: 15, RotationP: 0.5, Fill: color.NRGBA{A: 255},
		Brightness: 0.15, BrightnessP: 0.5,
		Contrast: 0.15, ContrastP: 0.5,
		Saturation: 0.15, SaturationP: 0.5,
		CropMinScale: 0.8, CropMaxScale: 1, CropMinAspect: 3.0 / 4, CropMaxAspect: 4.0 / 3, CropP: 0.5, CropResize: true,
		FlipP: 0.5, VFlipP: 0,
		MinVisible: 0.3,
	}
}

// Validate reports the first parameter out of range.
func (p Params) Validate() error {
	probs := []struct {
		name string
		v    float64
	}{
		{"rotation-p", p.RotationP}, {"brightness-p", p.BrightnessP}, {"contrast-p", p.ContrastP},
		{"saturation-p", p.SaturationP}, {"crop-p", p.CropP}, {"flip-p", p.FlipP}, {"vflip-p", p.VFlipP},
		{"min-visible", p.MinVisible},
	}
	for _, q := range probs {
		if !(q.v >= 0 && q.v <= 1) {
			return fmt.Errorf("%s must be in [0,1], got %v", q.name, q.v)
		}
	}
	if !(p.Rotation >= 0 && p.Rotation <= 180) {
		return fmt.Errorf("rotation must be in [0,180] degrees, got %v", p.Rotation)
	}
	for _, q := range []struct {
		name string
		v    float64
	}{{"brightness", p.Brightness}, {"contrast", p.Contrast}, {"saturation", p.Saturation}} {
		if !(q.v >= 0 && q.v < 1) {
			return fmt.Errorf("%s must be in [0,1), got %v", q.name, q.v)
		}
	}
	if !(p.CropMinScale > 0 && p.CropMinScale <= p.CropMaxScale && p.CropMaxScale <= 1) {
		return fmt.Errorf("crop scale range must satisfy 0 < min (%v) <= max (%v) <= 1", p.CropMinScale, p.CropMaxScale)
	}
	if !(p.CropMinAspect > 0 && p.CropMinAspect <= p.CropMaxAspect && !math.IsInf(p.CropMaxAspect, 0)) {
		return fmt.Errorf("crop aspect range must satisfy 0 < min (%v) <= max (%v)", p.CropMinAspect, p.CropMaxAspect)
	}
	return nil
}

// ParseColor parses "#rrggbb" or "rrggbb" (also "#rrggbbaa") into an opaque colour.
func ParseColor(s string) (color.NRGBA, error) {
	h := strings.TrimPrefix(strings.TrimSpace(s), "#")
	if len(h) != 6 && len(h) != 8 {
		return color.NRGBA{}, fmt.Errorf("colour %q: want #rrggbb", s)
	}
	v, err := strconv.ParseUint(h, 16, 32)
	if err != nil {
		return color.NRGBA{}, fmt.Errorf("colour %q: want #rrggbb: %w", s, err)
	}
	if len(h) == 6 {
		v = v<<8 | 0xff
	}
	return color.NRGBA{R: uint8(v >> 24), G: uint8(v >> 16), B: uint8(v >> 8), A: uint8(v)}, nil
}

// NewRand returns the random source of one output image: a PCG generator seeded from a
// SHA-256 hash of (seed, source image id, copy index). The same triple always gives the
// same stream, whatever else runs concurrently.
func NewRand(seed int64, imageID string, copyIndex int) *rand.Rand {
	h := sha256.New()
	fmt.Fprintf(h, "acdtcm-augment\x00%d\x00%s\x00%d", seed, imageID, copyIndex)
	sum := h.Sum(nil)
	return rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])))
}

// Ops are the transforms drawn for one output image. The zero value changes nothing.
type Ops struct {
	Rotate bool
	Angle  float64 // degrees, counter-clockwise

	Crop bool
	// CropScale is the crop area as a fraction of the canvas area, CropAspect its
	// width/height ratio relative to the canvas's, CropX and CropY in [0,1] place it
	// (0: left/top edge, 1: right/bottom edge).
	CropScale, CropAspect, CropX, CropY float64

	FlipH, FlipV bool

	// Brightness, Contrast and Saturation are percentages (0: unchanged); see AdjustColour.
	Brightness, Contrast, Saturation float64
}

// Sample draws the transforms for one output image. It always consumes the same number of
// random values, so each transform's draw does not depend on the others' outcomes.
func Sample(p Params, r *rand.Rand) Ops {
	var o Ops
	uRot, angle := r.Float64(), (2*r.Float64()-1)*p.Rotation
	if uRot < p.RotationP && p.Rotation > 0 {
		o.Rotate, o.Angle = true, angle
	}
	uCrop, scale := r.Float64(), p.CropMinScale+r.Float64()*(p.CropMaxScale-p.CropMinScale)
	lo, hi := math.Log(p.CropMinAspect), math.Log(p.CropMaxAspect)
	aspect := math.Exp(lo + r.Float64()*(hi-lo))
	cx, cy := r.Float64(), r.Float64()
	if uCrop < p.CropP {
		o.Crop, o.CropScale, o.CropAspect, o.CropX, o.CropY = true, scale, aspect, cx, cy
	}
	o.FlipH = r.Float64() < p.FlipP
	o.FlipV = r.Float64() < p.VFlipP
	uB, b := r.Float64(), (2*r.Float64()-1)*p.Brightness*100
	if uB < p.BrightnessP {
		o.Brightness = b
	}
	uC, c := r.Float64(), (2*r.Float64()-1)*p.Contrast*100
	if uC < p.ContrastP {
		o.Contrast = c
	}
	uS, s := r.Float64(), (2*r.Float64()-1)*p.Saturation*100
	if uS < p.SaturationP {
		o.Saturation = s
	}
	return o
}

// CropRect is the crop window of o inside a w×h canvas (integer pixels, never empty, never
// outside the canvas).
func (o Ops) CropRect(w, h int) image.Rectangle {
	area := o.CropScale * float64(w) * float64(h)
	// CropAspect is relative to the canvas shape: 1 keeps w/h.
	ar := o.CropAspect * float64(w) / float64(h)
	fw, fh := math.Sqrt(area*ar), math.Sqrt(area/ar)
	// A side longer than the image is cut to it and the other side grows to keep the
	// area: the scale is honoured, the aspect ratio as far as the image allows.
	if fw > float64(w) {
		fw, fh = float64(w), area/float64(w)
	}
	if fh > float64(h) {
		fw, fh = math.Min(area/float64(h), float64(w)), float64(h)
	}
	cw := int(math.Round(fw))
	ch := int(math.Round(fh))
	cw = min(max(cw, 1), w)
	ch = min(max(ch, 1), h)
	x0 := int(math.Round(o.CropX * float64(w-cw)))
	y0 := int(math.Round(o.CropY * float64(h-ch)))
	return image.Rect(x0, y0, x0+cw, y0+ch)
}

// Geometry returns the affine map from source to output coordinates and the output size
// for a w×h source, without touching pixels.
func (o Ops) Geometry(p Params, w, h int) (Affine, int, int) {
	_, m, ow, oh := o.run(p, nil, w, h)
	return m, ow, oh
}

// Apply transforms img and returns the new image, the map from source to output
// coordinates and the output size.
func (o Ops) Apply(p Params, img image.Image) (image.Image, Affine, int, int) {
	b := img.Bounds()
	return o.run(p, img, b.Dx(), b.Dy())
}

// Augment transforms img and its lesions: boxes follow the geometry and those that leave
// the image are dropped (see TransformBox). It returns the new image, the kept lesions and
// the number dropped.
func (o Ops) Augment(p Params, img image.Image, lesions []dataset.Lesion) (image.Image, []dataset.Lesion, int) {
	out, m, w, h := o.Apply(p, img)
	kept, dropped := TransformLesions(lesions, m, w, h, p.MinVisible)
	return out, kept, dropped
}

// run walks the transforms once; with img == nil it only tracks the geometry, so the box
// map and the pixel work can never disagree about order or sizes.
func (o Ops) run(p Params, img image.Image, w, h int) (image.Image, Affine, int, int) {
	m := Identity()
	if img != nil && img.Bounds().Min != (image.Point{}) {
		img = imaging.Clone(img) // imaging's maps assume the origin at (0,0)
	}
	if o.Rotate {
		angle := o.Angle - math.Floor(o.Angle/360)*360 // as imaging normalises it
		ew, eh := rotatedSize(w, h, angle)
		m = m.Then(RotateMap(angle, float64(w), float64(h), float64(ew), float64(eh)))
		if img != nil {
			img = imaging.Rotate(img, angle, p.Fill)
		}
		if p.RotationExpand {
			w, h = ew, eh
		} else {
			ox, oy := (ew-w)/2, (eh-h)/2
			m = m.Then(Translate(float64(-ox), float64(-oy)))
			if img != nil {
				if ew >= w && eh >= h {
					img = imaging.Crop(img, image.Rect(ox, oy, ox+w, oy+h))
				} else { // a quarter turn of a non-square image: pad where it is narrower
					img = imaging.Paste(imaging.New(w, h, p.Fill), img, image.Pt(-ox, -oy))
				}
			}
		}
	}
	if o.Crop {
		r := o.CropRect(w, h)
		m = m.Then(Translate(float64(-r.Min.X), float64(-r.Min.Y)))
		if img != nil {
			img = imaging.Crop(img, r)
		}
		if p.CropResize {
			m = m.Then(Scale(float64(w)/float64(r.Dx()), float64(h)/float64(r.Dy())))
			if img != nil && (r.Dx() != w || r.Dy() != h) {
				img = imaging.Resize(img, w, h, imaging.Linear)
			}
		} else {
			w, h = r.Dx(), r.Dy()
		}
	}
	if o.FlipH {
		m = m.Then(FlipHMap(float64(w)))
		if img != nil {
			img = imaging.FlipH(img)
		}
	}
	if o.FlipV {
		m = m.Then(FlipVMap(float64(h)))
		if img != nil {
			img = imaging.FlipV(img)
		}
	}
	if img != nil && (o.Brightness != 0 || o.Contrast != 0 || o.Saturation != 0) {
		img = AdjustColour(img, o.Brightness, o.Contrast, o.Saturation)
	}
	return img, m, w, h
}

// String describes the drawn transforms briefly (for logs and debugging).
func (o Ops) String() string {
	var parts []string
	if o.Rotate {
		parts = append(parts, fmt.Sprintf("rotate %.2f°", o.Angle))
	}
	if o.Crop {
		parts = append(parts, fmt.Sprintf("crop scale %.3f aspect %.3f at (%.2f,%.2f)", o.CropScale, o.CropAspect, o.CropX, o.CropY))
	}
	if o.FlipH {
		parts = append(parts, "flip-h")
	}
	if o.FlipV {
		parts = append(parts, "flip-v")
	}
	if o.Brightness != 0 {
		parts = append(parts, fmt.Sprintf("brightness %+.1f%%", o.Brightness))
	}
	if o.Contrast != 0 {
		parts = append(parts, fmt.Sprintf("contrast %+.1f%%", o.Contrast))
	}
	if o.Saturation != 0 {
		parts = append(parts, fmt.Sprintf("saturation %+.1f%%", o.Saturation))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}
