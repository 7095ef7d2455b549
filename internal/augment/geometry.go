package augment

import (
	"math"

	"github.com/acdtcm/acdtcm/internal/dataset"
)

// Coordinates: boxes and the maps below use continuous pixel coordinates. An image of
// width W and height H spans [0,W]×[0,H] and pixel (i,j) covers [i,i+1)×[j,j+1), so its
// centre is (i+0.5, j+0.5). Every map here matches, in these coordinates, the pixel
// transform that github.com/disintegration/imaging applies (tests check this by sampling).

// Affine maps a point (x,y) to (A·x + B·y + C, D·x + E·y + F).
type Affine struct {
	A, B, C float64
	D, E, F float64
}

// Identity is the affine map that leaves every point in place.
func Identity() Affine { return Affine{A: 1, E: 1} }

// Translate moves points by (dx,dy).
func Translate(dx, dy float64) Affine { return Affine{A: 1, C: dx, E: 1, F: dy} }

// Scale scales points by (sx,sy) about the origin.
func Scale(sx, sy float64) Affine { return Affine{A: sx, E: sy} }

// FlipHMap mirrors points left-right inside an image of width w.
func FlipHMap(w float64) Affine { return Affine{A: -1, C: w, E: 1} }

// FlipVMap mirrors points top-bottom inside an image of height h.
func FlipVMap(h float64) Affine { return Affine{A: 1, E: -1, F: h} }

// RotateMap maps a point of a srcW×srcH image to its place in the dstW×dstH canvas of
// imaging.Rotate(img, deg, fill): a counter-clockwise rotation by deg degrees about the
// source centre, whose image is the canvas centre.
func RotateMap(deg float64, srcW, srcH, dstW, dstH float64) Affine {
	sin, cos := math.Sincos(math.Pi * deg / 180)
	cx, cy := srcW/2, srcH/2
	dx, dy := dstW/2, dstH/2
	// Image y grows downwards, so a visually counter-clockwise turn is
	// x' = cos·x + sin·y, y' = −sin·x + cos·y about the centre.
	return Affine{
		A: cos, B: sin, C: dx - cos*cx - sin*cy,
		D: -sin, E: cos, F: dy + sin*cx - cos*cy,
	}
}

// Apply maps one point.
func (m Affine) Apply(x, y float64) (float64, float64) {
	return m.A*x + m.B*y + m.C, m.D*x + m.E*y + m.F
}

// Then returns the map that applies m first and n second.
func (m Affine) Then(n Affine) Affine {
	return Affine{
		A: n.A*m.A + n.B*m.D, B: n.A*m.B + n.B*m.E, C: n.A*m.C + n.B*m.F + n.C,
		D: n.D*m.A + n.E*m.D, E: n.D*m.B + n.E*m.E, F: n.D*m.C + n.E*m.F + n.F,
	}
}

// rotatedSize is the canvas size imaging.Rotate produces for a w×h image (the same
// arithmetic as imaging v1.6.2, which does not export it; a test pins the two together).
func rotatedSize(w, h int, angle float64) (int, int) {
	if w <= 0 || h <= 0 {
		return 0, 0
	}
	angle = angle - math.Floor(angle/360)*360
	switch angle {
	case 0, 180:
		return w, h
	case 90, 270:
		return h, w
	}
	sin, cos := math.Sincos(math.Pi * angle / 180)
	rot := func(x, y float64) (float64, float64) { return x*cos - y*sin, x*sin + y*cos }
	x1, y1 := rot(float64(w-1), 0)
	x2, y2 := rot(float64(w-1), float64(h-1))
	x3, y3 := rot(0, float64(h-1))
	minx := math.Min(x1, math.Min(x2, math.Min(x3, 0)))
	maxx := math.Max(x1, math.Max(x2, math.Max(x3, 0)))
	miny := math.Min(y1, math.Min(y2, math.Min(y3, 0)))
	maxy := math.Max(y1, math.Max(y2, math.Max(y3, 0)))
	neww := maxx - minx + 1
	if neww-math.Floor(neww) > 0.1 {
		neww++
	}
	newh := maxy - miny + 1
	if newh-math.Floor(newh) > 0.1 {
		newh++
	}
	return int(neww), int(newh)
}

// boxPrecision is the grid output box coordinates are rounded to (1/100 pixel), so that
// manifests are readable and do not depend on the last bits of floating-point arithmetic.
const boxPrecision = 100

func roundCoord(v float64) float64 { return math.Round(v*boxPrecision) / boxPrecision }

// TransformBox maps box b through m, takes the axis-aligned bounding box of its four mapped
// corners and clips it to the w×h output image. It reports false (drop the box) when
// nothing of it is left inside the image, or when the clipped area is less than minVisible
// times the area of the unclipped mapped box. Coordinates are rounded to 0.01 pixel.
func TransformBox(b dataset.Box, m Affine, w, h int, minVisible float64) (dataset.Box, bool) {
	xs := [4]float64{b.X0, b.X1, b.X1, b.X0}
	ys := [4]float64{b.Y0, b.Y0, b.Y1, b.Y1}
	x0, y0 := math.Inf(1), math.Inf(1)
	x1, y1 := math.Inf(-1), math.Inf(-1)
	for i := range xs {
		x, y := m.Apply(xs[i], ys[i])
		x0, x1 = math.Min(x0, x), math.Max(x1, x)
		y0, y1 = math.Min(y0, y), math.Max(y1, y)
	}
	full := (x1 - x0) * (y1 - y0)
	cx0, cy0 := math.Max(x0, 0), math.Max(y0, 0)
	cx1, cy1 := math.Min(x1, float64(w)), math.Min(y1, float64(h))
	out := dataset.Box{X0: roundCoord(cx0), Y0: roundCoord(cy0), X1: roundCoord(cx1), Y1: roundCoord(cy1)}
	if !(out.X1 > out.X0 && out.Y1 > out.Y0) { // also false for NaN
		return out, false
	}
	visible := (cx1 - cx0) * (cy1 - cy0)
	if visible < minVisible*full {
		return out, false
	}
	return out, true
}

// TransformLesions maps every boxed lesion through m into a w×h image (see TransformBox)
// and returns the lesions kept and how many were dropped. Lesions without a box cannot be
// located, so they are kept unchanged. The input slice is not modified.
func TransformLesions(lesions []dataset.Lesion, m Affine, w, h int, minVisible float64) ([]dataset.Lesion, int) {
	if lesions == nil {
		return nil, 0
	}
	kept := make([]dataset.Lesion, 0, len(lesions))
	dropped := 0
	for _, l := range lesions {
		if l.Box == nil {
			kept = append(kept, l)
			continue
		}
		nb, ok := TransformBox(*l.Box, m, w, h, minVisible)
		if !ok {
			dropped++
			continue
		}
		kept = append(kept, dataset.Lesion{Type: l.Type, Box: &nb})
	}
	return kept, dropped
}
