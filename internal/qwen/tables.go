package qwen

import (
	"math"
)

// Host-side rotary tables and attention masks, computed in float32 as transformers does.

// invFreq returns 1/theta^(2j/dim) for j < dim/2, in float32 arithmetic.
func invFreq(theta float64, dim int) []float32 {
	out := make([]float32, dim/2)
	for j := range out {
		exp := float32(2*j) / float32(dim)
		out[j] = float32(1 / math.Pow(theta, float64(exp)))
	}
	return out
}

// VisionTables holds the vision tower's host inputs for one batch of images.
type VisionTables struct {
	Layout         VisionLayout
	WindowIndex    []int32   // [N/U]
	InverseIndex   []int32   // [N/U]
	Cos, Sin       []float32 // [N, headDim], window order
	WindowMask     []bool    // [N, N]
	FullMask       []bool    // [N, N]
	Patches, Units int
	HeadDim        int
}

// NewVisionTables builds the window permutation, rotary tables and masks for grids.
func NewVisionTables(cfg *Config, grids [][3]int) (*VisionTables, error) {
	v := cfg.Vision
	lay, err := NewVisionLayout(grids, v.PatchSize, v.SpatialMergeSize, v.WindowSize)
	if err != nil {
		return nil, err
	}
	U := v.SpatialMergeSize * v.SpatialMergeSize
	hd := v.HiddenSize / v.NumHeads
	N := lay.Patches
	t := &VisionTables{Layout: lay, Patches: N, Units: N / U, HeadDim: hd}
	t.WindowIndex = make([]int32, len(lay.WindowIndex))
	t.InverseIndex = make([]int32, len(lay.WindowIndex))
	for j, src := range lay.WindowIndex {
		t.WindowIndex[j] = int32(src)
		t.InverseIndex[src] = int32(j)
	}
	// Rotary: dim = hd/2 with hd/4 frequencies; per patch [row·f, col·f], doubled to hd.
	inv := invFreq(10000, hd/2)
	nf := len(inv)
	t.Cos, t.Sin = make([]float32, N*hd), make([]float32, N*hd)
	for j, src := range lay.WindowIndex {
		for u := 0; u < U; u++ {
			dst := j*U + u
			rc := lay.PatchRowCol[src*U+u]
			for k := 0; k < nf; k++ {
				for axis := 0; axis < 2; axis++ {
					angle := float64(float32(rc[axis]) * inv[k])
					c, s := float32(math.Cos(angle)), float32(math.Sin(angle))
					for half := 0; half < 2; half++ {
						idx := dst*hd + half*hd/2 + axis*nf + k
						t.Cos[idx], t.Sin[idx] = c, s
					}
				}
			}
		}
	}
	t.WindowMask = blockMask(N, lay.WindowSegments)
	t.FullMask = blockMask(N, lay.FullSegments)
	return t, nil
}

// blockMask allows attention within each [seg[i], seg[i+1]) block.
func blockMask(n int, segments []int) []bool {
	m := make([]bool, n*n)
	for i := 0; i+1 < len(segments); i++ {
		for r := segments[i]; r < segments[i+1]; r++ {
			for c := segments[i]; c < segments[i+1]; c++ {
				m[r*n+c] = true
			}
		}
	}
	return m
}

// MRopeTables fills cos/sin [S, D] for the given per-axis positions (temporal, height,
// width), using mrope_section to pick each frequency's axis, duplicated over both halves.
func MRopeTables(cfg *Config, pos [3][]int, cos, sin []float32) {
	D := cfg.Text.HeadDim()
	inv := invFreq(cfg.Text.RopeTheta, D)
	axisOf := make([]int, len(inv))
	j := 0
	for a, n := range cfg.Text.MRopeSection {
		for k := 0; k < n; k++ {
			axisOf[j] = a
			j++
		}
	}
	for s := range pos[0] {
		for f, invf := range inv {
			angle := float64(float32(pos[axisOf[f]][s]) * invf)
			c, sn := float32(math.Cos(angle)), float32(math.Sin(angle))
			cos[s*D+f], cos[s*D+f+D/2] = c, c
			sin[s*D+f], sin[s*D+f+D/2] = sn, sn
		}
	}
}
