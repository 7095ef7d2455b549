package train

import (
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph-building code reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// The LoRA optimizer runs inside the graph, on the backend's device: gradients, moments and
// parameters never leave it during training (on the GPU, copying 120 M gradients to the
// host and running AdamW there took most of a step).

// adamwHyper is the per-step input of adamwGraph, computed on the host in float64 for
// optimizer step number step (1-based) at learning rate lr: the weight-decay factor
// 1 - lr·wd, the step size lr / (1 - β1^step) and √(1 - β2^step).
func adamwHyper(c LoRAConfig, lr float64, step int) *tensors.Tensor {
	bc1, bc2 := 1-math.Pow(c.Beta1, float64(step)), 1-math.Pow(c.Beta2, float64(step))
	return tensors.FromValue([]float32{float32(1 - lr*c.WeightDecay), float32(lr / bc1), float32(math.Sqrt(bc2))})
}

// adamwGraph applies one AdamW step to params (float32) with gradients grads: first the
// global-norm clipping of torch.nn.utils.clip_grad_norm_ (to c.ClipNorm; off when <= 0),
// then torch.optim.AdamW's update with decoupled weight decay and bias-corrected moments m
// and v. hyper is adamwHyper's vector. It returns the new parameters and moments and the
// gradients' global L2 norm before clipping.
func adamwGraph(c LoRAConfig, params, grads, m, v []*Node, hyper *Node) (newParams, newM, newV []*Node, norm *Node) {
	g := hyper.Graph()
	hp := func(i int) *Node { return Reshape(Slice(hyper, AxisElem(i))) }
	decay, stepSize, bc2Sqrt := hp(0), hp(1), hp(2)
	sq := ScalarZero(g, grads[0].DType())
	for _, gr := range grads {
		sq = Add(sq, ReduceAllSum(Square(gr)))
	}
	norm = Sqrt(sq)
	scale := ScalarOne(g, norm.DType())
	if c.ClipNorm > 0 {
		maxNorm := Scalar(g, norm.DType(), c.ClipNorm)
		scale = Min(Div(maxNorm, AddScalar(norm, 1e-6)), scale)
	}
	b1, b2 := Scalar(g, norm.DType(), c.Beta1), Scalar(g, norm.DType(), c.Beta2)
	one := ScalarOne(g, norm.DType())
	for i, p := range params {
		gr := Mul(grads[i], scale)
		mi := Add(Mul(m[i], b1), Mul(gr, Sub(one, b1)))
		vi := Add(Mul(v[i], b2), Mul(Square(gr), Sub(one, b2)))
		denom := AddScalar(Div(Sqrt(vi), bc2Sqrt), c.Eps)
		newParams = append(newParams, Sub(Mul(p, decay), Mul(stepSize, Div(mi, denom))))
		newM, newV = append(newM, mi), append(newV, vi)
	}
	return newParams, newM, newV, norm
}
