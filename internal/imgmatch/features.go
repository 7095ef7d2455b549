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
	"sync"

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

// Keypoint is a corner in working-image coordinates (sub-pixel).
type Keypoint struct {
	X, Y float32
}

// View is the keypoints and descriptors of one orientation of an image.
type View struct {
	Keypoints   []Keypoint
	Descriptors []Descriptor
}

// Features are the local features of an image and of its horizontal mirror, in a working
// image of W×H pixels. A mirrored keypoint at x corresponds to x' = W-1-x in the original.
//
// They are what a caller keeps per image until FindPairs, so they hold nothing else:
// FeatureBytes per keypoint (both views), in two exactly sized allocations.
type Features struct {
	W, H   int
	Normal View
	Mirror View
}

// FeatureBytes is the memory a Features value holds per keypoint: a Keypoint and a
// Descriptor for each of the two views.
const FeatureBytes = 2 * (8 + 32)

// Bytes is the memory held by f's keypoints and descriptors.
func (f *Features) Bytes() int {
	return (cap(f.Normal.Keypoints)+cap(f.Mirror.Keypoints))*8 + (cap(f.Normal.Descriptors)+cap(f.Mirror.Descriptors))*32
}

// ErrEmpty is returned for an image with no pixels.
var ErrEmpty = errors.New("imgmatch: empty image")

// Extract computes the features of img (both orientations). It is safe for concurrent use;
// the working buffers (about 3 MB for the default size) are pooled between calls, so a
// long run of extractions allocates little more than the returned features.
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
	ws := workspaces.Get().(*workspace)
	defer workspaces.Put(ws)
	ws.reset(w, h)
	for y := 0; y < h; y++ {
		copy(ws.pix[y*w:(y+1)*w], g.Pix[y*g.Stride:y*g.Stride+w])
	}
	f := &Features{W: w, H: h}
	f.Normal, f.Mirror = ws.views(opts.Keypoints)
	return f, nil
}

// workspace holds the per-image working planes of Extract, reused across calls.
type workspace struct {
	w, h                int
	pix, med            []uint8   // gray plane and its median filter
	lo, mid, hi         []uint8   // median3 column sorts
	sm, smM, tmp        []float32 // smoothed plane, its mirror, filter scratch
	gxx, gyy, gxy, resp []float32 // structure tensor and corner response
	fill                []int32   // integral image of black-fill pixels
	cands               []cand
	counts              []int
	kps, mkps           []Keypoint
	descs, mdescs       []Descriptor
}

// cand is a corner candidate: a local maximum of the response.
type cand struct {
	x, y int
	r    float32
}

var workspaces = sync.Pool{New: func() any { return new(workspace) }}

// grow returns s resized to n elements, all zero.
func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	s = s[:n]
	clear(s)
	return s
}

// reset sizes the buffers for a w×h plane and zeroes them, so every call starts from the
// state freshly allocated buffers would have.
func (ws *workspace) reset(w, h int) {
	n := w * h
	ws.w, ws.h = w, h
	ws.pix, ws.med = grow(ws.pix, n), grow(ws.med, n)
	ws.lo, ws.mid, ws.hi = grow(ws.lo, w+2), grow(ws.mid, w+2), grow(ws.hi, w+2)
	ws.sm, ws.smM, ws.tmp = grow(ws.sm, n), grow(ws.smM, n), grow(ws.tmp, n)
	ws.gxx, ws.gyy, ws.gxy, ws.resp = grow(ws.gxx, n), grow(ws.gyy, n), grow(ws.gxy, n), grow(ws.resp, n)
	ws.fill = grow(ws.fill, (w+1)*(h+1))
	ws.cands = ws.cands[:0]
	ws.counts = grow(ws.counts, gridCells*gridCells)
	ws.kps, ws.mkps = ws.kps[:0], ws.mkps[:0]
	ws.descs, ws.mdescs = ws.descs[:0], ws.mdescs[:0]
}

// median3 writes the 3×3 median filter of src (w×h, edges replicate) to dst, removing
// salt-and-pepper noise. It sorts each 3-pixel column once: the median of the 3×3 window is
// the median of the largest column minimum, the median of the column medians and the
// smallest column maximum.
func (ws *workspace) median3(dst, src []uint8) {
	w, h := ws.w, ws.h
	lo, mid, hi := ws.lo, ws.mid, ws.hi
	for y := 0; y < h; y++ {
		up, row, down := src[max(y-1, 0)*w:], src[y*w:], src[min(y+1, h-1)*w:]
		for x := 0; x < w; x++ {
			a, b, c := sort3(up[x], row[x], down[x])
			lo[x+1], mid[x+1], hi[x+1] = a, b, c
		}
		lo[0], mid[0], hi[0] = lo[1], mid[1], hi[1]
		lo[w+1], mid[w+1], hi[w+1] = lo[w], mid[w], hi[w]
		o := dst[y*w : (y+1)*w]
		for x := range o {
			a := max(lo[x], lo[x+1], lo[x+2])
			_, b, _ := sort3(mid[x], mid[x+1], mid[x+2])
			c := min(hi[x], hi[x+1], hi[x+2])
			_, o[x], _ = sort3(a, b, c)
		}
	}
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

// blur writes src (w×h) smoothed with the binomial kernel [1 4 6 4 1]/16 in both
// directions to out, as float32 values; tmp is scratch of the same size.
func blur(out, tmp []float32, src []uint8, w, h int) {
	k := [5]float32{1.0 / 16, 4.0 / 16, 6.0 / 16, 4.0 / 16, 1.0 / 16}
	for y := 0; y < h; y++ {
		row, dst := src[y*w:(y+1)*w], tmp[y*w:(y+1)*w]
		for x := range dst {
			var s float32
			if x >= 2 && x < w-2 {
				// Same sum, in the same order, without the clamps.
				s += k[0] * float32(row[x-2])
				s += k[1] * float32(row[x-1])
				s += k[2] * float32(row[x])
				s += k[3] * float32(row[x+1])
				s += k[4] * float32(row[x+2])
			} else {
				for i := -2; i <= 2; i++ {
					s += k[i+2] * float32(row[min(max(x+i, 0), w-1)])
				}
			}
			dst[x] = s
		}
	}
	for y := 0; y < h; y++ {
		dst := out[y*w : (y+1)*w]
		if y >= 2 && y < h-2 {
			r0, r1, r2, r3, r4 := tmp[(y-2)*w:], tmp[(y-1)*w:], tmp[y*w:], tmp[(y+1)*w:], tmp[(y+2)*w:]
			for x := range dst {
				var s float32
				s += k[0] * r0[x]
				s += k[1] * r1[x]
				s += k[2] * r2[x]
				s += k[3] * r3[x]
				s += k[4] * r4[x]
				dst[x] = s
			}
			continue
		}
		for x := range dst {
			var s float32
			for i := -2; i <= 2; i++ {
				s += k[i+2] * tmp[min(max(y+i, 0), h-1)*w+x]
			}
			dst[x] = s
		}
	}
}

// views detects keypoints on the gray plane and describes them in it and in its horizontal
// mirror (the corner response is mirror-symmetric, so the mirrored keypoints are the same
// corners). The returned views share two exactly sized allocations.
func (ws *workspace) views(maxKeypoints int) (normal, mirror View) {
	w, h := ws.w, ws.h
	med := ws.med
	ws.median3(med, ws.pix)
	sm := ws.sm
	blur(sm, ws.tmp, med, w, h)
	// Integral image of black-fill pixels, to drop keypoints whose patch touches the fill.
	fill := ws.fill
	for y := 0; y < h; y++ {
		var run int32
		for x := 0; x < w; x++ {
			if med[y*w+x] <= fillLevel {
				run++
			}
			fill[(y+1)*(w+1)+x+1] = fill[y*(w+1)+x+1] + run
		}
	}
	fillIn := func(x0, y0, x1, y1 int) int32 { // [x0,x1)×[y0,y1)
		return fill[y1*(w+1)+x1] - fill[y0*(w+1)+x1] - fill[y1*(w+1)+x0] + fill[y0*(w+1)+x0]
	}
	// Shi–Tomasi corner response: smallest eigenvalue of the structure tensor over 5×5.
	gxx, gyy, gxy := ws.gxx, ws.gyy, ws.gxy
	for y := 1; y < h-1; y++ {
		for x := 1; x < w-1; x++ {
			i := y*w + x
			gx := (sm[i+1] - sm[i-1]) / 2
			gy := (sm[i+w] - sm[i-w]) / 2
			gxx[i], gyy[i], gxy[i] = gx*gx, gy*gy, gx*gy
		}
	}
	boxFilter5(gxx, ws.tmp, w, h)
	boxFilter5(gyy, ws.tmp, w, h)
	boxFilter5(gxy, ws.tmp, w, h)
	resp := ws.resp
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
	cands := ws.cands
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
	ws.cands = cands
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
	counts := ws.counts
	smM := ws.smM
	for y := 0; y < h; y++ {
		row, out := sm[y*w:(y+1)*w], smM[y*w:(y+1)*w]
		for x := range row {
			out[w-1-x] = row[x]
		}
	}
	kps, mkps, descs, mdescs := ws.kps, ws.mkps, ws.descs, ws.mdescs
	for _, c := range cands {
		if len(kps) == maxKeypoints {
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
		kps = append(kps, Keypoint{X: float32(c.x) + sx, Y: float32(c.y) + sy})
		descs = append(descs, describe(sm, w, c.x, c.y, angle))
		mx := w - 1 - c.x
		mangle := float32(math.Pi) - angle // the mirror negates the centroid's x
		mkps = append(mkps, Keypoint{X: float32(mx) - sx, Y: float32(c.y) + sy})
		mdescs = append(mdescs, describe(smM, w, mx, c.y, mangle))
	}
	ws.kps, ws.mkps, ws.descs, ws.mdescs = kps, mkps, descs, mdescs
	n := len(kps)
	k := make([]Keypoint, 2*n)
	d := make([]Descriptor, 2*n)
	copy(k, kps)
	copy(k[n:], mkps)
	copy(d, descs)
	copy(d[n:], mdescs)
	normal = View{Keypoints: k[:n:n], Descriptors: d[:n:n]}
	mirror = View{Keypoints: k[n:], Descriptors: d[n:]}
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

// boxFilter5 replaces v (w×h) by its 5×5 box sums, in place (edges clamp); tmp is scratch
// of the same size.
func boxFilter5(v, tmp []float32, w, h int) {
	for y := 0; y < h; y++ {
		row, dst := v[y*w:(y+1)*w], tmp[y*w:(y+1)*w]
		for x := range dst {
			var s float32
			if x >= 2 && x < w-2 {
				// Same sum, in the same order, without the clamps.
				s += row[x-2]
				s += row[x-1]
				s += row[x]
				s += row[x+1]
				s += row[x+2]
			} else {
				for d := -2; d <= 2; d++ {
					s += row[min(max(x+d, 0), w-1)]
				}
			}
			dst[x] = s
		}
	}
	for y := 0; y < h; y++ {
		dst := v[y*w : (y+1)*w]
		if y >= 2 && y < h-2 {
			r0, r1, r2, r3, r4 := tmp[(y-2)*w:], tmp[(y-1)*w:], tmp[y*w:], tmp[(y+1)*w:], tmp[(y+2)*w:]
			for x := range dst {
				var s float32
				s += r0[x]
				s += r1[x]
				s += r2[x]
				s += r3[x]
				s += r4[x]
				dst[x] = s
			}
			continue
		}
		for x := range dst {
			var s float32
			for d := -2; d <= 2; d++ {
				s += tmp[min(max(y+d, 0), h-1)*w+x]
			}
			dst[x] = s
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
