package mlbackend

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
)

// PoolKind selects the reduction of Pool2D.
type PoolKind int

const (
	// PoolMax takes the maximum of each window; the gradient goes to the first maximum only.
	PoolMax PoolKind = iota
	// PoolAvg averages each window over the pixels inside the image (padding is not counted).
	PoolAvg
)

// PoolOptions configures Pool2D. Zero values: window 2, stride = window, valid padding.
type PoolOptions struct {
	Kind    PoolKind
	Window  int
	Stride  int
	Padding Padding
}

// Pool2D max- or average-pools x [N, H, W, C] over Window x Window windows. GoMLX's MaxPool and
// AvgPool run forward on simplego but their gradients need SelectAndScatter and Pad, which
// simplego lacks; Pool2D is built from strided slices (max) or a reshape (non-overlapping
// average), whose gradients work everywhere.
func Pool2D(x *Node, opts PoolOptions) *Node {
	if opts.Window <= 0 {
		opts.Window = 2
	}
	if opts.Stride <= 0 {
		opts.Stride = opts.Window
	}
	if x.Rank() != 4 {
		panic(fmt.Sprintf("mlbackend.Pool2D: want x [N,H,W,C], got %s", x.Shape()))
	}
	k, s := opts.Window, opts.Stride
	h, w := x.Shape().Dimensions[1], x.Shape().Dimensions[2]
	var pads [2][2]int
	if opts.Padding == PaddingSame {
		pads = [2][2]int{samePadding(h, k, s), samePadding(w, k, s)}
	}
	oh := (h+pads[0][0]+pads[0][1]-k)/s + 1
	ow := (w+pads[1][0]+pads[1][1]-k)/s + 1
	if oh <= 0 || ow <= 0 {
		panic(fmt.Sprintf("mlbackend.Pool2D: window %d larger than input %dx%d", k, h, w))
	}
	noPad := pads == [2][2]int{}
	if opts.Kind == PoolAvg && noPad && k == s {
		// Non-overlapping: crop the remainder, reshape and average.
		if oh*k != h || ow*k != w {
			x = Slice(x, AxisRange(), AxisRange(0, oh*k), AxisRange(0, ow*k), AxisRange())
		}
		n, c := x.Shape().Dimensions[0], x.Shape().Dimensions[3]
		return ReduceMean(Reshape(x, n, oh, k, ow, k, c), 2, 4)
	}
	fill := 0.0
	if opts.Kind == PoolMax {
		fill = lowestFinite(x.DType())
	}
	xp := padConst(padConst(x, 1, pads[0][0], pads[0][1], fill), 2, pads[1][0], pads[1][1], fill)
	window := func(t *Node, i, j int) *Node {
		return Slice(t, AxisRange(), AxisRange(i, i+(oh-1)*s+1).Stride(s), AxisRange(j, j+(ow-1)*s+1).Stride(s), AxisRange())
	}
	var out *Node
	for i := range k {
		for j := range k {
			v := window(xp, i, j)
			switch {
			case out == nil:
				out = v
			case opts.Kind == PoolMax:
				out = Max(out, v) // ties go to the earlier window element
			default:
				out = Add(out, v)
			}
		}
	}
	if opts.Kind == PoolMax {
		return out
	}
	if noPad {
		return DivScalar(out, float64(k*k))
	}
	// Count the in-image pixels of each window: the same sum over a padded constant of ones.
	ones := Ones(x.Graph(), shapes.Make(x.DType(), 1, h, w, 1))
	onesP := padConst(padConst(ones, 1, pads[0][0], pads[0][1], 0), 2, pads[1][0], pads[1][1], 0)
	var count *Node
	for i := range k {
		for j := range k {
			if count == nil {
				count = window(onesP, i, j)
			} else {
				count = Add(count, window(onesP, i, j))
			}
		}
	}
	return Div(out, StopGradient(count))
}

// lowestFinite is the most negative finite value of a float dtype (used instead of -Inf for max
// pooling padding, so that gradient indicators never compute Inf-Inf).
func lowestFinite(dt dtypes.DType) float64 {
	switch dt {
	case dtypes.Float64:
		return -1.7976931348623157e308
	case dtypes.BFloat16:
		return -3.38e38
	default:
		return -3.4028234663852886e38
	}
}

// padConst pads axis of x with lo and hi copies of value using Concatenate.
func padConst(x *Node, axis, lo, hi int, value float64) *Node {
	if value == 0 {
		return padZeros(x, axis, lo, hi)
	}
	fill := func(n int) *Node {
		return AddScalar(zerosLikeAxis(x, axis, n), value)
	}
	parts := make([]*Node, 0, 3)
	if lo > 0 {
		parts = append(parts, fill(lo))
	}
	parts = append(parts, x)
	if hi > 0 {
		parts = append(parts, fill(hi))
	}
	if len(parts) == 1 {
		return x
	}
	return Concatenate(parts, axis)
}

// GlobalAvgPool2D averages x [N, H, W, C] over H and W, giving [N, C].
func GlobalAvgPool2D(x *Node) *Node { return ReduceMean(x, 1, 2) }
