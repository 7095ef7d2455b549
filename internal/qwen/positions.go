package qwen

import "fmt"

// Host-side index computations of Qwen2.5-VL (pure integer logic, no graph): the vision
// tower's window order and attention segments, the per-patch 2-D rotary positions, and the
// language model's M-RoPE position ids.

// VisionLayout describes how the vision tower orders and groups the patches of a batch of
// images.
type VisionLayout struct {
	// WindowIndex maps window-ordered merged-token j to its merged-raster position.
	WindowIndex []int
	// WindowSegments are cumulative patch boundaries of attention windows (cu_window_seqlens
	// after removing empty windows); FullSegments are per-frame boundaries (cu_seqlens).
	WindowSegments []int
	FullSegments   []int
	// PatchRowCol holds (row, col) of every patch in processor order (before window reordering).
	PatchRowCol [][2]int
	// Patches is the total number of patches.
	Patches int
}

// NewVisionLayout computes the window index, segment boundaries and rotary positions for
// images with the given grids (t, h, w in patches), merge size and window size in pixels.
func NewVisionLayout(grids [][3]int, patchSize, mergeSize, windowSize int) (VisionLayout, error) {
	var lay VisionLayout
	vw := windowSize / mergeSize / patchSize
	if vw <= 0 {
		return lay, fmt.Errorf("window_size %d too small for patch %d and merge %d", windowSize, patchSize, mergeSize)
	}
	unit := mergeSize * mergeSize
	lay.WindowSegments = []int{0}
	lay.FullSegments = []int{0}
	offset := 0 // merged tokens before this frame
	for _, g := range grids {
		t, h, w := g[0], g[1], g[2]
		if h%mergeSize != 0 || w%mergeSize != 0 {
			return lay, fmt.Errorf("grid %v is not a multiple of merge size %d", g, mergeSize)
		}
		lh, lw := h/mergeSize, w/mergeSize
		padH, padW := vw-lh%vw, vw-lw%vw // a whole empty window row/column when already a multiple, as transformers does
		nwh, nww := (lh+padH)/vw, (lw+padW)/vw
		for f := 0; f < t; f++ {
			for wy := 0; wy < nwh; wy++ {
				for wx := 0; wx < nww; wx++ {
					n := 0
					for y := wy * vw; y < (wy+1)*vw; y++ {
						for x := wx * vw; x < (wx+1)*vw; x++ {
							if y < lh && x < lw {
								lay.WindowIndex = append(lay.WindowIndex, offset+y*lw+x)
								n++
							}
						}
					}
					if n > 0 { // empty windows would repeat a boundary; transformers drops them
						last := lay.WindowSegments[len(lay.WindowSegments)-1]
						lay.WindowSegments = append(lay.WindowSegments, last+n*unit)
					}
				}
			}
			offset += lh * lw
			lay.FullSegments = append(lay.FullSegments, lay.FullSegments[len(lay.FullSegments)-1]+h*w)
		}
		// Rotary positions in processor order: merge-block raster, then in-block raster.
		for f := 0; f < t; f++ {
			for by := 0; by < lh; by++ {
				for bx := 0; bx < lw; bx++ {
					for my := 0; my < mergeSize; my++ {
						for mx := 0; mx < mergeSize; mx++ {
							lay.PatchRowCol = append(lay.PatchRowCol, [2]int{by*mergeSize + my, bx*mergeSize + mx})
						}
					}
				}
			}
		}
		lay.Patches += t * h * w
	}
	return lay, nil
}

// RopeIndex computes M-RoPE position ids (temporal, height, width) for one unpadded
// sequence and the rope delta (max position + 1 - length). Image pad runs take their
// positions from the image grids in order; videos are not supported here.
func RopeIndex(ids []int, imageTokenID int, grids [][3]int, mergeSize int) (pos [3][]int, delta int, err error) {
	for a := range pos {
		pos[a] = make([]int, len(ids))
	}
	next, img := 0, 0
	for i := 0; i < len(ids); {
		if ids[i] != imageTokenID {
			pos[0][i], pos[1][i], pos[2][i] = next, next, next
			next++
			i++
			continue
		}
		if img >= len(grids) {
			return pos, 0, fmt.Errorf("more image token runs than images (%d)", len(grids))
		}
		g := grids[img]
		t, lh, lw := g[0], g[1]/mergeSize, g[2]/mergeSize
		n := t * lh * lw
		if i+n > len(ids) {
			return pos, 0, fmt.Errorf("image %d needs %d tokens but the sequence ends after %d", img, n, len(ids)-i)
		}
		maxPos := next
		for k := 0; k < n; k++ {
			if ids[i+k] != imageTokenID {
				return pos, 0, fmt.Errorf("image %d: expected %d image tokens, found %d", img, n, k)
			}
			tau, rem := k/(lh*lw), k%(lh*lw)
			row, col := rem/lw, rem%lw
			pos[0][i+k], pos[1][i+k], pos[2][i+k] = next+tau, next+row, next+col
			maxPos = max(maxPos, next+tau, next+row, next+col)
		}
		i += n
		next = maxPos + 1
		img++
	}
	if img != len(grids) {
		return pos, 0, fmt.Errorf("%d images but %d image token runs", len(grids), img)
	}
	return pos, next - len(ids), nil
}
