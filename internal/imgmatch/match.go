package imgmatch

import (
	"math"
	"math/rand/v2"
)

// Match is the outcome of verifying one image pair.
type Match struct {
	Inliers  int        // correspondences consistent with the affine map
	Mirrored bool       // the second image is a horizontal mirror of the first
	Affine   [6]float64 // x' = A0·x + A1·y + A2, y' = A3·x + A4·y + A5 (first → second, mirror applied)
}

// Verification thresholds.
const (
	maxMatchDist = 64   // largest Hamming distance of a putative correspondence
	ratio        = 0.85 // best distance must be below ratio × second best
	ransacTol    = 3.0  // inlier reprojection error, working-image pixels
	ransacIters  = 300
	minScale     = 0.6 // accepted range of the affine map's singular values
	maxScale     = 1.7
	maxAniso     = 1.6 // largest ratio of the two singular values (shear + stretch)
)

// corr is a putative correspondence between keypoint indices.
type corr struct{ a, b int32 }

// Compare matches two images by brute force (every descriptor of a against both views of
// b), verifies the correspondences as FindPairs does and returns the better orientation.
// It costs O(n²) descriptor comparisons per pair; FindPairs uses an index instead.
func Compare(a, b *Features) Match {
	best := Match{}
	for _, mirrored := range []bool{false, true} {
		vb := &b.Normal
		if mirrored {
			vb = &b.Mirror
		}
		m := verify(&a.Normal, vb, bruteMatches(&a.Normal, vb), uint64(len(a.Normal.Keypoints))*31+uint64(len(vb.Keypoints)))
		if m.Inliers >= 3 {
			m = guided(&a.Normal, vb, b.W, b.H, m.Affine)
		}
		m.Mirrored = mirrored
		if m.Inliers > best.Inliers {
			best = m
		}
	}
	return best
}

// bruteMatches pairs each descriptor of a with its nearest neighbour in b, keeping
// distinctive matches (ratio test) within maxMatchDist.
func bruteMatches(a, b *View) []corr {
	var cs []corr
	for i := range a.Descriptors {
		d1, d2, j1 := 257, 257, -1
		for j := range b.Descriptors {
			d := a.Descriptors[i].Distance(&b.Descriptors[j])
			if d < d1 {
				d1, d2, j1 = d, d1, j
			} else if d < d2 {
				d2 = d
			}
		}
		if j1 >= 0 && d1 <= maxMatchDist && float64(d1) < ratio*float64(d2) {
			cs = append(cs, corr{int32(i), int32(j1)})
		}
	}
	return cs
}

// verify fits an affine map to the correspondences with RANSAC and counts its inliers.
// seed makes the sampling reproducible.
func verify(a, b *View, cs []corr, seed uint64) Match {
	var best Match
	if len(cs) < 3 {
		return best
	}
	rng := rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
	pa := func(c corr) (float64, float64) {
		k := a.Keypoints[c.a]
		return float64(k.X), float64(k.Y)
	}
	pb := func(c corr) (float64, float64) {
		k := b.Keypoints[c.b]
		return float64(k.X), float64(k.Y)
	}
	count := func(m *[6]float64) int {
		n := 0
		for _, c := range cs {
			x, y := pa(c)
			u, v := pb(c)
			dx := m[0]*x + m[1]*y + m[2] - u
			dy := m[3]*x + m[4]*y + m[5] - v
			if dx*dx+dy*dy <= ransacTol*ransacTol {
				n++
			}
		}
		return n
	}
	for it := 0; it < ransacIters; it++ {
		i, j, k := rng.IntN(len(cs)), rng.IntN(len(cs)), rng.IntN(len(cs))
		if i == j || j == k || i == k {
			continue
		}
		x1, y1 := pa(cs[i])
		x2, y2 := pa(cs[j])
		x3, y3 := pa(cs[k])
		u1, v1 := pb(cs[i])
		u2, v2 := pb(cs[j])
		u3, v3 := pb(cs[k])
		m, ok := solveAffine(x1, y1, x2, y2, x3, y3, u1, v1, u2, v2, u3, v3)
		if !ok || !plausible(&m) {
			continue
		}
		if n := count(&m); n > best.Inliers {
			best.Inliers, best.Affine = n, m
		}
	}
	return best
}

// solveAffine returns the affine map taking the three points (x, y) to (u, v).
func solveAffine(x1, y1, x2, y2, x3, y3, u1, v1, u2, v2, u3, v3 float64) ([6]float64, bool) {
	det := x1*(y2-y3) - y1*(x2-x3) + (x2*y3 - x3*y2)
	if math.Abs(det) < 1e-3*100 { // nearly collinear (area below 150 px²)
		return [6]float64{}, false
	}
	inv := 1 / det
	// Cramer's rule for [x y 1] · [p q r]ᵀ = t, for t = u and t = v.
	solve := func(t1, t2, t3 float64) (float64, float64, float64) {
		p := (t1*(y2-y3) - y1*(t2-t3) + (t2*y3 - t3*y2)) * inv
		q := (x1*(t2-t3) - t1*(x2-x3) + (x2*t3 - x3*t2)) * inv
		r := (x1*(y2*t3-y3*t2) - y1*(x2*t3-x3*t2) + t1*(x2*y3-x3*y2)) * inv
		return p, q, r
	}
	a, b, c := solve(u1, u2, u3)
	d, e, f := solve(v1, v2, v3)
	return [6]float64{a, b, c, d, e, f}, true
}

// plausible rejects affine maps an augmentation cannot produce: reflections (mirrors are
// matched against the mirrored view), strong zoom and strong anisotropy.
func plausible(m *[6]float64) bool {
	a, b, c, d := m[0], m[1], m[3], m[4]
	det := a*d - b*c
	if det <= 0 {
		return false
	}
	// singular values of [[a b] [c d]]
	s := a*a + b*b + c*c + d*d
	disc := math.Sqrt(math.Max(0, s*s/4-det*det))
	s1 := math.Sqrt(s/2 + disc)
	s2 := math.Sqrt(math.Max(0, s/2-disc))
	return s2 >= minScale && s1 <= maxScale && s1 <= maxAniso*s2
}

// Guided matching: the map is refined with correspondences within guidedTol pixels and
// guidedDist descriptor bits; the final count uses the tighter tightTol.
const (
	guidedTol  = 4.0
	tightTol   = 2.0
	guidedDist = 16
)

// guided re-counts the support of an affine map over all keypoints: a keypoint of a whose
// projection lands near an unused keypoint of b with a nearly equal descriptor is an
// inlier. The map is refitted to those inliers by least squares twice, and the final
// support is counted at the tight tolerance, so the result does not depend on which
// correspondences the index happened to propose, and photos that only look alike (same
// pose, another shot) score far lower than copies of one photo.
func guided(a, b *View, w, h int, m [6]float64) Match {
	const cell = 8
	gw, gh := (w+cell-1)/cell, (h+cell-1)/cell
	grid := make([][]int32, gw*gh)
	for j, k := range b.Keypoints {
		cx, cy := int(k.X)/cell, int(k.Y)/cell
		if cx >= 0 && cy >= 0 && cx < gw && cy < gh {
			grid[cy*gw+cx] = append(grid[cy*gw+cx], int32(j))
		}
	}
	used := make([]bool, len(b.Keypoints))
	var in []corr
	tol := guidedTol
	support := func(m *[6]float64) {
		in = in[:0]
		clear(used)
		for i, k := range a.Keypoints {
			x, y := float64(k.X), float64(k.Y)
			u, v := m[0]*x+m[1]*y+m[2], m[3]*x+m[4]*y+m[5]
			cx, cy := int(u)/cell, int(v)/cell
			best, bestD := -1, guidedDist+1
			for gy := cy - 1; gy <= cy+1; gy++ {
				for gx := cx - 1; gx <= cx+1; gx++ {
					if gx < 0 || gy < 0 || gx >= gw || gy >= gh || u < 0 || v < 0 {
						continue
					}
					for _, j := range grid[gy*gw+gx] {
						kb := b.Keypoints[j]
						dx, dy := float64(kb.X)-u, float64(kb.Y)-v
						if used[j] || dx*dx+dy*dy > tol*tol {
							continue
						}
						if d := a.Descriptors[i].Distance(&b.Descriptors[j]); d < bestD {
							best, bestD = int(j), d
						}
					}
				}
			}
			if best >= 0 {
				used[best] = true
				in = append(in, corr{int32(i), int32(best)})
			}
		}
	}
	support(&m)
	for range 2 {
		if len(in) < 6 {
			break
		}
		r, ok := fitAffine(a, b, in)
		if !ok || !plausible(&r) {
			break
		}
		m = r
		support(&m)
	}
	tol = tightTol
	support(&m)
	return Match{Inliers: len(in), Affine: m}
}

// fitAffine is the least-squares affine map taking a's keypoints to b's over cs.
func fitAffine(a, b *View, cs []corr) ([6]float64, bool) {
	// Normal equations: (XᵀX) p = Xᵀu with rows X = [x y 1].
	var sxx, sxy, sx, syy, sy, n float64
	var sxu, syu, su, sxv, syv, sv float64
	for _, c := range cs {
		ka, kb := a.Keypoints[c.a], b.Keypoints[c.b]
		x, y, u, v := float64(ka.X), float64(ka.Y), float64(kb.X), float64(kb.Y)
		sxx += x * x
		sxy += x * y
		sx += x
		syy += y * y
		sy += y
		n++
		sxu += x * u
		syu += y * u
		su += u
		sxv += x * v
		syv += y * v
		sv += v
	}
	m := [3][3]float64{{sxx, sxy, sx}, {sxy, syy, sy}, {sx, sy, n}}
	det := m[0][0]*(m[1][1]*m[2][2]-m[1][2]*m[2][1]) - m[0][1]*(m[1][0]*m[2][2]-m[1][2]*m[2][0]) + m[0][2]*(m[1][0]*m[2][1]-m[1][1]*m[2][0])
	if math.Abs(det) < 1e-9 {
		return [6]float64{}, false
	}
	solve := func(r0, r1, r2 float64) (float64, float64, float64) {
		d0 := r0*(m[1][1]*m[2][2]-m[1][2]*m[2][1]) - m[0][1]*(r1*m[2][2]-m[1][2]*r2) + m[0][2]*(r1*m[2][1]-m[1][1]*r2)
		d1 := m[0][0]*(r1*m[2][2]-m[1][2]*r2) - r0*(m[1][0]*m[2][2]-m[1][2]*m[2][0]) + m[0][2]*(m[1][0]*r2-r1*m[2][0])
		d2 := m[0][0]*(m[1][1]*r2-r1*m[2][1]) - m[0][1]*(m[1][0]*r2-r1*m[2][0]) + r0*(m[1][0]*m[2][1]-m[1][1]*m[2][0])
		return d0 / det, d1 / det, d2 / det
	}
	p0, p1, p2 := solve(sxu, syu, su)
	q0, q1, q2 := solve(sxv, syv, sv)
	return [6]float64{p0, p1, p2, q0, q1, q2}, true
}
