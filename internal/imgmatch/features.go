// Package imgmatch finds images that show the same scene after geometric and photometric
// augmentation (crop, rotation, shear, mirror, brightness, noise) by local-feature matching:
// oriented binary (ORB-like) descriptors at corner keypoints, a locality-sensitive hash
// index that proposes candidate image pairs from shared descriptors, and RANSAC affine
// verification of each candidate. It is pure Go and needs no training data.
package imgmatch

import (
	"errors"
	"fmt"
	"image"
	"math"
	"math/bits"
	"math/rand/v2"
	"slices"

	"github.com/acdtcm/acdtcm/internal/imageio"
)

// Options tunes feature extraction. The zero value means the defaults.
type Options struct {
	Size      int // longer side of the grayscale working image in pixels (default 256)
	Keypoints int // most keypoints kept per view (default 400)
}

const (
	defaultSize      = 256
	defaultKeypoints = 400
	patchRadius      = 13 // radius of the descriptor patch, in working-image pixels
	border           = 20 // keypoints keep this far from the edge (patch radius × √2, rounded up)
	fillLevel        = 8  // median-filtered gray at or below this is treated as black border fill
	gridCells        = 8  // keypoints are spread over a gridCells × gridCells grid
)

func (o Options) normalized() Options {
	if o.Size <= 0 {
		o.Size = defaultSize
	}
	if o.Keypoints <= 0 {
		o.Keypoints = defaultKeypoints
	}
	return o
}

// Descriptor is a 256-bit binary descriptor; similar patches have a small Hamming distance.
type Descriptor [4]uint64

// Distance is the Hamming distance between two descriptors (0..256).
func (d *Descriptor) Distance(e *Descriptor) int {
	return bits.OnesCount64(d[0]^e[0]) + bits.OnesCount64(d[1]^e[1]) + bits.OnesCount64(d[2]^e[2]) + bits.OnesCount64(d[3]^e[3])
}

// Keypoint is a corner in working-image coordinates with its dominant orientation.
type Keypoint struct {
	X, Y  float32
	Angle float32 // radians
}

// View is the keypoints and descriptors of one orientation of an image.
type View struct {
	Keypoints   []Keypoint
	Descriptors []Descriptor
}

// Features are the local features of an image and of its horizontal mirror, in a working
// image of W×H pixels. A mirrored keypoint at x corresponds to x' = W-1-x in the original.
type Features struct {
	W, H   int
	Normal View
	Mirror View
}

// ErrEmpty is returned for an image with no pixels.
var ErrEmpty = errors.New("imgmatch: empty image")

// Extract computes the features of img (both orientations).
func Extract(img image.Image, opts Options) (*Features, error) {
	opts = opts.normalized()
	b := img.Bounds()
	if b.Dx() <= 0 || b.Dy() <= 0 {
		return nil, ErrEmpty
	}
	w, h := opts.Size, opts.Size
	if b.Dx() > b.Dy() {
		h = max(1, opts.Size*b.Dy()/b.Dx())
	} else if b.Dy() > b.Dx() {
		w = max(1, opts.Size*b.Dx()/b.Dy())
	}
	if w <= 2*border+2 || h <= 2*border+2 {
		return nil, fmt.Errorf("imgmatch: working image %dx%d too small for features: %w", w, h, ErrEmpty)
	}
	g := imageio.GrayThumbnail(img, w, h)
	f := &Features{W: w, H: h}
	p := newPlane(w, h, g.Pix, g.Stride)
	f.Normal, f.Mirror = p.views(opts.Keypoints)
	return f, nil
}

// plane is a grayscale image as bytes, row-major, stride w.
type plane struct {
	w, h int
	pix  []uint8
}

func newPlane(w, h int, src []uint8, stride int) *plane {
	p := &plane{w: w, h: h, pix: make([]uint8, w*h)}
	for y := 0; y < h; y++ {
		copy(p.pix[y*w:(y+1)*w], src[y*stride:y*stride+w])
	}
	return p
}

// median3 returns the 3×3 median filter of p (edges replicate), removing salt-and-pepper
// noise. It sorts each 3-pixel column once: the median of the 3×3 window is the median of
// the largest column minimum, the median of the column medians and the smallest column
// maximum.
func (p *plane) median3() *plane {
	w, h := p.w, p.h
	out := &plane{w: w, h: h, pix: make([]uint8, len(p.pix))}
	lo, mid, hi := make([]uint8, w+2), make([]uint8, w+2), make([]uint8, w+2)
	for y := 0; y < h; y++ {
		up, row, down := p.pix[max(y-1, 0)*w:], p.pix[y*w:], p.pix[min(y+1, h-1)*w:]
		for x := 0; x < w; x++ {
			a, b, c := sort3(up[x], row[x], down[x])
			lo[x+1], mid[x+1], hi[x+1] = a, b, c
		}
		lo[0], mid[0], hi[0] = lo[1], mid[1], hi[1]
		lo[w+1], mid[w+1], hi[w+1] = lo[w], mid[w], hi[w]
		o := out.pix[y*w : (y+1)*w]
		for x := range o {
			a := max(lo[x], lo[x+1], lo[x+2])
			_, b, _ := sort3(mid[x], mid[x+1], mid[x+2])
			c := min(hi[x], hi[x+1], hi[x+2])
			_, o[x], _ = sort3(a, b, c)
		}
	}
	return out
}

// sort3 returns a, b, c in increasing order.
func sort3(a, b, c uint8) (uint8, uint8, uint8) {
	if a > b {
		a, b = b, a
	}
	if b > c {
		b, c = c, b
	}
	if a > b {
		a, b = b, a
	}
	return a, b, c
}

// blur returns p smoothed with the binomial kernel [1 4 6 4 1]/16 in both directions, as
// float32 values.
func (p *plane) blur() []float32 {
	w, h := p.w, p.h
	tmp := make([]float32, w*h)
	out := make([]float32, w*h)
	k := [5]float32{1.0 / 16, 4.0 / 16, 6.0 / 16, 4.0 / 16, 1.0 / 16}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var s float32
			for i := -2; i <= 2; i++ {
				xx := min(max(x+i, 0), w-1)
				s += k[i+2] * float32(p.pix[y*w+xx])
			}
			tmp[y*w+x] = s
		}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var s float32
			for i := -2; i <= 2; i++ {
				yy := min(max(y+i, 0), h-1)
				s += k[i+2] * tmp[yy*w+x]
			}
			out[y*w+x] = s
		}
	}
	return out
}

// views detects keypoints on p and describes them in p and in its horizontal mirror (the
// corner response is mirror-symmetric, so the mirrored keypoints are the same corners).
func (p *plane) views(maxKeypoints int) (normal, mirror View) {
	med := p.median3()
	sm := med.blur()
	w, h := p.w, p.h
	// Integral image of black-fill pixels, to drop keypoints whose patch touches the fill.
	fill := make([]int32, (w+1)*(h+1))
	for y := 0; y < h; y++ {
		var run int32
		for x := 0; x < w; x++ {
			if med.pix[y*w+x] <= fillLevel {
				run++
			}
			fill[(y+1)*(w+1)+x+1] = fill[y*(w+1)+x+1] + run
		}
	}
	fillIn := func(x0, y0, x1, y1 int) int32 { // [x0,x1)×[y0,y1)
		return fill[y1*(w+1)+x1] - fill[y0*(w+1)+x1] - fill[y1*(w+1)+x0] + fill[y0*(w+1)+x0]
	}
	// Shi–Tomasi corner response: smallest eigenvalue of the structure tensor over 5×5.
	gxx := make([]float32, w*h)
	gyy := make([]float32, w*h)
	gxy := make([]float32, w*h)
	for y := 1; y < h-1; y++ {
		for x := 1; x < w-1; x++ {
			i := y*w + x
			gx := (sm[i+1] - sm[i-1]) / 2
			gy := (sm[i+w] - sm[i-w]) / 2
			gxx[i], gyy[i], gxy[i] = gx*gx, gy*gy, gx*gy
		}
	}
	boxFilter5(gxx, w, h)
	boxFilter5(gyy, w, h)
	boxFilter5(gxy, w, h)
	resp := make([]float32, w*h)
	for y := border - 1; y < h-border+1; y++ {
		for x := border - 1; x < w-border+1; x++ {
			i := y*w + x
			a, b, c := gxx[i], gyy[i], gxy[i]
			tr, det := a+b, a*b-c*c
			disc := tr*tr/4 - det
			if disc < 0 {
				disc = 0
			}
			resp[y*w+x] = tr/2 - float32(math.Sqrt(float64(disc)))
		}
	}
	type cand struct {
		x, y int
		r    float32
	}
	var cands []cand
	for y := border; y < h-border; y++ {
		for x := border; x < w-border; x++ {
			v := resp[y*w+x]
			if v <= 1 {
				continue
			}
			local := true
			for dy := -1; dy <= 1 && local; dy++ {
				for dx := -1; dx <= 1; dx++ {
					if (dx != 0 || dy != 0) && resp[(y+dy)*w+x+dx] >= v {
						local = false
						break
					}
				}
			}
			if !local || fillIn(x-border, y-border, x+border+1, y+border+1) > 0 {
				continue
			}
			cands = append(cands, cand{x, y, v})
		}
	}
	slices.SortFunc(cands, func(a, b cand) int {
		switch {
		case a.r > b.r:
			return -1
		case a.r < b.r:
			return 1
		}
		return 0
	})
	// Spread: at most perCell keypoints per grid cell.
	perCell := max(2, (maxKeypoints*3/2+gridCells*gridCells-1)/(gridCells*gridCells))
	counts := make([]int, gridCells*gridCells)
	smM := make([]float32, len(sm))
	for y := 0; y < h; y++ {
		row, out := sm[y*w:(y+1)*w], smM[y*w:(y+1)*w]
		for x := range row {
			out[w-1-x] = row[x]
		}
	}
	for _, c := range cands {
		if len(normal.Keypoints) == maxKeypoints {
			break
		}
		cell := (c.y*gridCells/h)*gridCells + c.x*gridCells/w
		if counts[cell] == perCell {
			continue
		}
		counts[cell]++
		angle := orientation(sm, w, c.x, c.y)
		// Sub-pixel position: vertex of the parabola through the response and its neighbours.
		i := c.y*w + c.x
		sx := subpixel(resp[i-1], resp[i], resp[i+1])
		sy := subpixel(resp[i-w], resp[i], resp[i+w])
		normal.Keypoints = append(normal.Keypoints, Keypoint{X: float32(c.x) + sx, Y: float32(c.y) + sy, Angle: angle})
		normal.Descriptors = append(normal.Descriptors, describe(sm, w, c.x, c.y, angle))
		mx := w - 1 - c.x
		mangle := float32(math.Pi) - angle // the mirror negates the centroid's x
		mirror.Keypoints = append(mirror.Keypoints, Keypoint{X: float32(mx) - sx, Y: float32(c.y) + sy, Angle: mangle})
		mirror.Descriptors = append(mirror.Descriptors, describe(smM, w, mx, c.y, mangle))
	}
	return normal, mirror
}

// subpixel is the offset (-0.5..0.5) of the peak of the parabola through (-1, l), (0, c), (1, r).
func subpixel(l, c, r float32) float32 {
	d := l - 2*c + r
	if d >= 0 {
		return 0
	}
	return min(max((l-r)/(2*d), -0.5), 0.5)
}

// boxFilter5 replaces v (w×h) by its 5×5 box sums, in place (edges clamp).
func boxFilter5(v []float32, w, h int) {
	tmp := make([]float32, len(v))
	for y := 0; y < h; y++ {
		row := v[y*w : (y+1)*w]
		for x := 0; x < w; x++ {
			var s float32
			for d := -2; d <= 2; d++ {
				s += row[min(max(x+d, 0), w-1)]
			}
			tmp[y*w+x] = s
		}
	}
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			var s float32
			for d := -2; d <= 2; d++ {
				s += tmp[min(max(y+d, 0), h-1)*w+x]
			}
			v[y*w+x] = s
		}
	}
}

// orientation is the intensity-centroid angle of the patch around (x, y).
func orientation(sm []float32, w, x, y int) float32 {
	var mx, my float32
	for dy := -patchRadius; dy <= patchRadius; dy++ {
		row := (y + dy) * w
		for dx := -patchRadius; dx <= patchRadius; dx++ {
			if dx*dx+dy*dy > patchRadius*patchRadius {
				continue
			}
			v := sm[row+x+dx]
			mx += float32(dx) * v
			my += float32(dy) * v
		}
	}
	return float32(math.Atan2(float64(my), float64(mx)))
}

// pattern holds the 256 point pairs of the binary tests, in patch coordinates.
var pattern = func() [256][4]float64 {
	var p [256][4]float64
	r := rand.New(rand.NewPCG(0x1a2b3c, 0x4d5e6f))
	sigma := float64(patchRadius) / 2
	for i := range p {
		for j := 0; j < 4; j += 2 {
			for {
				x, y := r.NormFloat64()*sigma, r.NormFloat64()*sigma
				if x*x+y*y <= float64(patchRadius*patchRadius) {
					p[i][j], p[i][j+1] = x, y
					break
				}
			}
		}
	}
	return p
}()

// angleBins is how many discrete orientations the descriptor pattern is steered to.
const angleBins = 32

// steered holds, per orientation bin, the pattern's sample points as (dx, dy) offsets.
var steered = func() [angleBins][256][4]int8 {
	var s [angleBins][256][4]int8
	for b := range s {
		a := 2 * math.Pi * float64(b) / angleBins
		c, sn := math.Cos(a), math.Sin(a)
		for i, t := range pattern {
			for j := 0; j < 4; j += 2 {
				s[b][i][j] = int8(math.Round(c*t[j] - sn*t[j+1]))
				s[b][i][j+1] = int8(math.Round(sn*t[j] + c*t[j+1]))
			}
		}
	}
	return s
}()

// describe computes the binary descriptor of the patch around (x, y), steered to angle.
func describe(sm []float32, w, x, y int, angle float32) Descriptor {
	bin := int(math.Round(float64(angle)*angleBins/(2*math.Pi))) % angleBins
	if bin < 0 {
		bin += angleBins
	}
	c := y*w + x
	var d Descriptor
	for i, t := range &steered[bin] {
		if sm[c+int(t[1])*w+int(t[0])] < sm[c+int(t[3])*w+int(t[2])] {
			d[i/64] |= 1 << (i % 64)
		}
	}
	return d
}
