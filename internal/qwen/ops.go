package qwen

import (
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph-building code reads best unqualified
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/lora"
)

// Linear computes x·Wᵀ (+ b) for a PyTorch-layout weight W [out, in]; x is [..., in].
// A LoRA adapter attached to the module in ctx (internal/lora) adds its low-rank update.
func Linear(ctx *context.Context, x *Node, module string, bias bool) *Node {
	g := x.Graph()
	w := param(ctx, g, module+".weight")
	y := DotGeneral(x, []int{x.Rank() - 1}, nil, w, []int{1}, nil)
	if bias {
		y = Add(y, alignRank(param(ctx, g, module+".bias"), y.Rank()))
	}
	return lora.Apply(ctx, x, y, module)
}

// RMSNorm normalises over the last axis: x / sqrt(mean(x²) + eps) · weight. As
// Qwen2RMSNorm, the normalisation runs in float32 for half-precision x and is rounded back
// to x's dtype before the scale multiplies it.
func RMSNorm(ctx *context.Context, x *Node, weightName string, eps float64) *Node {
	g := x.Graph()
	y := inAccum(x, func(x *Node) *Node {
		ms := ReduceAndKeep(Square(x), ReduceMean, -1)
		return Mul(x, Rsqrt(AddScalar(ms, eps)))
	})
	return Mul(y, alignRank(param(ctx, g, weightName), y.Rank()))
}

// alignRank prefixes size-1 axes so a vector broadcasts against a rank-r operand.
func alignRank(v *Node, r int) *Node {
	if v.Rank() >= r {
		return v
	}
	dims := make([]int, r-v.Rank(), r)
	for i := range dims {
		dims[i] = 1
	}
	return Reshape(v, append(dims, v.Shape().Dimensions...)...)
}

// rotateHalf returns [-x₂, x₁] for the halves x₁, x₂ of the last axis.
func rotateHalf(x *Node) *Node {
	d := x.Shape().Dimensions[x.Rank()-1]
	x1 := SliceAxis(x, -1, AxisRange(0, d/2))
	x2 := SliceAxis(x, -1, AxisRange(d/2, d))
	return Concatenate([]*Node{Neg(x2), x1}, -1)
}

// applyRotary computes x·cos + rotate_half(x)·sin; cos and sin (in accumDType of x's dtype)
// broadcast against x. Half-precision x rotates in float32 and is rounded back once.
func applyRotary(x, cos, sin *Node) *Node {
	return inAccum(x, func(x *Node) *Node { return Add(Mul(x, cos), Mul(rotateHalf(x), sin)) })
}

// GELU is the exact (erf) GELU.
func GELU(x *Node) *Node {
	return Mul(MulScalar(x, 0.5), OnePlus(Erf(MulScalar(x, 1/math.Sqrt2))))
}

// maskedSoftmax applies softmax over the last axis where mask is true; masked entries get
// the lowest float32 (as transformers' eager attention does), so a fully masked row stays
// finite. Half-precision scores are softmaxed in float32 (softmax(dtype=torch.float32)) and
// the probabilities rounded back to the scores' dtype.
func maskedSoftmax(scores, mask *Node) *Node {
	return inAccum(scores, func(scores *Node) *Node {
		low := Scalar(scores.Graph(), scores.DType(), -math.MaxFloat32)
		return Softmax(Where(mask, scores, BroadcastToShape(low, scores.Shape())), -1)
	})
}
