// Package heatmap turns lesion boxes into per-type density maps (the training target of the
// grader's counting head) and turns predicted density maps back into lesion centres.
//
// A density map has one channel per lesion type on a Grid x Grid lattice covering the whole
// (stretched) image. Every lesion adds a Gaussian bump centred on its box centre that sums
// to exactly 1 over the lattice, so the sum of a channel is that type's lesion count.
package heatmap

import (
	"math"
	"sort"
)

// Box is one lesion in normalised image coordinates (0..1 on both axes) with its type index.
type Box struct {
	Type           int
	X0, Y0, X1, Y1 float64
}

// Target builds a density map of shape [grid][grid][types] (row-major, types innermost)
// from boxes. Each box contributes a Gaussian of standard deviation sigma (in cells) at its
// centre, truncated at 3 sigma, clipped to the lattice and renormalised to sum to 1, so the
// per-type sums equal the per-type box counts. Boxes whose centre lies outside the image or
// whose type is out of range are ignored.
func Target(boxes []Box, grid, types int, sigma float64) []float32 {
	out := make([]float32, grid*grid*types)
	if sigma <= 0 {
		sigma = 0.5
	}
	r := int(math.Ceil(3 * sigma))
	w := make([]float64, 0, (2*r+1)*(2*r+1))
	for _, b := range boxes {
		if b.Type < 0 || b.Type >= types {
			continue
		}
		cx := (b.X0 + b.X1) / 2 * float64(grid)
		cy := (b.Y0 + b.Y1) / 2 * float64(grid)
		if cx < 0 || cy < 0 || cx > float64(grid) || cy > float64(grid) {
			continue
		}
		// Cell (i,j) has its centre at (j+0.5, i+0.5).
		ci, cj := int(math.Floor(cy)), int(math.Floor(cx))
		w = w[:0]
		var total float64
		for i := ci - r; i <= ci+r; i++ {
			for j := cj - r; j <= cj+r; j++ {
				if i < 0 || j < 0 || i >= grid || j >= grid {
					w = append(w, 0)
					continue
				}
				dy, dx := float64(i)+0.5-cy, float64(j)+0.5-cx
				v := math.Exp(-(dx*dx + dy*dy) / (2 * sigma * sigma))
				w = append(w, v)
				total += v
			}
		}
		if total == 0 {
			// Centre on the border with every neighbour clipped: put the mass in the nearest cell.
			i, j := min(max(ci, 0), grid-1), min(max(cj, 0), grid-1)
			out[(i*grid+j)*types+b.Type]++
			continue
		}
		k := 0
		for i := ci - r; i <= ci+r; i++ {
			for j := cj - r; j <= cj+r; j++ {
				if v := w[k]; v > 0 {
					out[(i*grid+j)*types+b.Type] += float32(v / total)
				}
				k++
			}
		}
	}
	return out
}

// Peak is a local maximum of one channel of a density map.
type Peak struct {
	Type  int
	Row   int
	Col   int
	Score float64 // the density summed over the peak's 3x3 neighbourhood
}

// Peaks finds lesion centres in a density map of shape [grid][grid][types]: for each type
// it takes cells that are the maximum of their 3x3 neighbourhood and whose 3x3 mass is at
// least minMass, strongest first, at most round(count) peaks per type where count is the
// channel's total mass. It is the cheap decoder behind the grader's optional boxes.
func Peaks(density []float32, grid, types int, minMass float64) []Peak {
	var out []Peak
	at := func(i, j, t int) float64 {
		if i < 0 || j < 0 || i >= grid || j >= grid {
			return 0
		}
		return float64(density[(i*grid+j)*types+t])
	}
	for t := 0; t < types; t++ {
		var total float64
		for i := 0; i < grid; i++ {
			for j := 0; j < grid; j++ {
				total += at(i, j, t)
			}
		}
		var cand []Peak
		for i := 0; i < grid; i++ {
			for j := 0; j < grid; j++ {
				v := at(i, j, t)
				if v <= 0 {
					continue
				}
				isMax := true
				var mass float64
				for di := -1; di <= 1; di++ {
					for dj := -1; dj <= 1; dj++ {
						u := at(i+di, j+dj, t)
						mass += u
						if u > v || (u == v && (di < 0 || (di == 0 && dj < 0))) {
							isMax = false
						}
					}
				}
				if isMax && mass >= minMass {
					cand = append(cand, Peak{Type: t, Row: i, Col: j, Score: mass})
				}
			}
		}
		sort.SliceStable(cand, func(a, b int) bool { return cand[a].Score > cand[b].Score })
		if n := int(math.Round(total)); len(cand) > n {
			cand = cand[:n]
		}
		out = append(out, cand...)
	}
	return out
}
