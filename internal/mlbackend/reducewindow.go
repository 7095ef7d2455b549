package mlbackend

import (
	"slices"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// reduceWindowVJP makes graph.MaxPool, MinPool and MeanPool (ReduceWindow with max, min or sum)
// trainable on simplego: GoMLX v0.26.0's rule needs SelectAndScatter and Pad. For every window
// offset, the adjoint is scattered back with the Pad-free "unslice" of sliceVJP; for max/min
// only the first maximal (minimal) element of each window receives it, like SelectAndScatter.
// Dilated windows and product reductions fall back to GoMLX's rule.
func reduceWindowVJP(node, v *Node) []*Node {
	p := nodeParams(node)
	x := node.Inputs()[0]
	rank := x.Rank()
	kind := backends.ReduceOpType(p.FieldByName("reductionType").Int())
	win, strides := intsField(p, "windowDimensions"), intsField(p, "strides")
	dilated := func(d []int) bool { return slices.ContainsFunc(d, func(v int) bool { return v != 1 }) }
	if dilated(intsField(p, "baseDilations")) || dilated(intsField(p, "windowDilations")) ||
		(kind != backends.ReduceOpSum && kind != backends.ReduceOpMax && kind != backends.ReduceOpMin) {
		return stockVJP[NodeTypeReduceWindow](node, []*Node{v}, shapes.Shape{})
	}
	pads := make([][2]int, rank)
	pv := p.FieldByName("paddings")
	for i := 0; i < pv.Len() && i < rank; i++ {
		pads[i] = [2]int{int(pv.Index(i).Index(0).Int()), int(pv.Index(i).Index(1).Int())}
	}
	if len(win) == 0 {
		win = onesN(rank)
	}
	if len(strides) == 0 {
		strides = slices.Clone(win)
	}

	// Padded input, filled so that padding never wins a max/min.
	xp := x
	if kind != backends.ReduceOpSum {
		fill := lowestFinite(x.DType())
		if kind == backends.ReduceOpMin {
			fill = -fill
		}
		for a := range rank {
			xp = padConst(xp, a, pads[a][0], pads[a][1], fill)
		}
	}
	padded := make([]int, rank)
	for a := range rank {
		padded[a] = x.Shape().Dimensions[a] + pads[a][0] + pads[a][1]
	}
	out := v.Shape().Dimensions
	zeros := ZerosLike(v)
	var grad, taken *Node
	offset := make([]int, rank)
	for {
		contribution := v
		if kind != backends.ReduceOpSum {
			ranges := make([]SliceAxisSpec, rank)
			for a := range rank {
				ranges[a] = AxisRange(offset[a], offset[a]+(out[a]-1)*strides[a]+1).Stride(strides[a])
			}
			hit := Equal(Slice(xp, ranges...), node)
			if taken != nil {
				hit = LogicalAnd(hit, LogicalNot(taken))
				taken = LogicalOr(taken, hit)
			} else {
				taken = hit
			}
			contribution = Where(hit, v, zeros)
		}
		for a := range rank {
			contribution = unsliceAxis(contribution, a, padded[a], offset[a], 0, strides[a])
		}
		if grad == nil {
			grad = contribution
		} else {
			grad = Add(grad, contribution)
		}
		// Next window offset (odometer order: the last axis moves fastest).
		a := rank - 1
		for ; a >= 0; a-- {
			offset[a]++
			if offset[a] < win[a] {
				break
			}
			offset[a] = 0
		}
		if a < 0 {
			break
		}
	}
	ranges := make([]SliceAxisSpec, rank)
	cropped := false
	for a := range rank {
		ranges[a] = AxisRange(pads[a][0], pads[a][0]+x.Shape().Dimensions[a])
		cropped = cropped || pads[a] != [2]int{}
	}
	if cropped {
		grad = Slice(grad, ranges...)
	}
	return []*Node{grad}
}
