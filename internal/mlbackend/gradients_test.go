package mlbackend

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// testBackend returns the default simplego backend used by the tests.
func testBackend(tb testing.TB) backends.Backend {
	tb.Helper()
	b, err := New("go")
	if err != nil {
		tb.Fatalf("New(go): %v", err)
	}
	return b
}

// randTensor returns a float64 tensor of the given dimensions with values from gen.
func randTensor(rng *rand.Rand, gen func(*rand.Rand) float64, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := make([]float64, n)
	for i := range data {
		data[i] = gen(rng)
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

func normal(r *rand.Rand) float64 { return r.NormFloat64() }

// flat64 copies a float64 tensor's values.
func flat64(tb testing.TB, t *tensors.Tensor) []float64 {
	tb.Helper()
	v, err := tensors.CopyFlatData[float64](t)
	if err != nil {
		tb.Fatalf("CopyFlatData: %v", err)
	}
	return v
}

// gradCase is one finite-difference check: fn builds the op under test from the inputs.
type gradCase struct {
	name   string
	inputs func(rng *rand.Rand) []*tensors.Tensor
	fn     func(xs []*Node) *Node
}

// checkGradients compares the reverse-mode gradient of sum(fn(xs) * w), for a fixed random w,
// with central finite differences, on simplego in float64.
func checkGradients(t *testing.T, backend backends.Backend, tc gradCase) {
	t.Helper()
	rng := rand.New(rand.NewPCG(42, uint64(len(tc.name))))
	inputs := tc.inputs(rng)
	var weights *tensors.Tensor
	loss := func(xs []*Node) *Node {
		y := tc.fn(xs)
		if weights == nil {
			weights = randTensor(rng, normal, y.Shape().Dimensions...)
		}
		return ReduceAllSum(Mul(y, Const(y.Graph(), weights)))
	}
	// Build the loss once to fix the weights' shape.
	lossExec := MustNewExecAny(backend, func(xs []*Node) *Node { return loss(xs) })
	gradExec := MustNewExecAny(backend, func(xs []*Node) []*Node { return Gradient(loss(xs), xs...) })
	args := make([]any, len(inputs))
	for i, x := range inputs {
		args[i] = x
	}
	eval := func() float64 {
		out, err := lossExec.Exec(args...)
		if err != nil {
			t.Fatalf("loss: %v", err)
		}
		return flat64(t, out[0])[0]
	}
	eval() // fixes weights before the gradient graph is built
	grads, err := gradExec.Exec(args...)
	if err != nil {
		t.Fatalf("gradient: %v", err)
	}
	const h = 1e-6
	for i, x := range inputs {
		analytic := flat64(t, grads[i])
		base := flat64(t, x)
		if len(analytic) != len(base) {
			t.Fatalf("input #%d: gradient has %d values, input %d", i, len(analytic), len(base))
		}
		for j := range base {
			perturbed := func(delta float64) float64 {
				data := append([]float64(nil), base...)
				data[j] += delta
				args[i] = tensors.FromFlatDataAndDimensions(data, x.Shape().Dimensions...)
				return eval()
			}
			numeric := (perturbed(h) - perturbed(-h)) / (2 * h)
			args[i] = x
			if diff := math.Abs(numeric - analytic[j]); diff > 1e-6+1e-5*math.Abs(numeric) {
				t.Errorf("input #%d element %d: analytic %.9g, finite difference %.9g", i, j, analytic[j], numeric)
			}
		}
	}
}

func ins(shapes ...[]int) func(*rand.Rand) []*tensors.Tensor {
	return func(rng *rand.Rand) []*tensors.Tensor {
		out := make([]*tensors.Tensor, len(shapes))
		for i, dims := range shapes {
			out[i] = randTensor(rng, normal, dims...)
		}
		return out
	}
}

func TestGradients(t *testing.T) {
	backend := testBackend(t)
	cases := []gradCase{
		{"DotGeneral/matmul", ins([]int{3, 4}, []int{4, 5}),
			func(x []*Node) *Node { return DotGeneral(x[0], []int{1}, nil, x[1], []int{0}, nil) }},
		{"DotGeneral/batched", ins([]int{2, 3, 4}, []int{2, 4, 5}),
			func(x []*Node) *Node { return DotGeneral(x[0], []int{2}, []int{0}, x[1], []int{1}, []int{0}) }},
		{"DotGeneral/odd-axes", ins([]int{4, 2, 3}, []int{2, 5, 4}),
			func(x []*Node) *Node { return DotGeneral(x[0], []int{0}, []int{1}, x[1], []int{2}, []int{0}) }},
		{"DotGeneral/two-contracting-swapped", ins([]int{3, 4, 2}, []int{2, 5, 4}),
			func(x []*Node) *Node { return DotGeneral(x[0], []int{2, 1}, nil, x[1], []int{0, 2}, nil) }},
		{"DotGeneral/outer", ins([]int{3}, []int{4}),
			func(x []*Node) *Node { return DotGeneral(x[0], nil, nil, x[1], nil, nil) }},
		{"DotGeneral/batch-only", ins([]int{3, 2}, []int{3, 2}),
			func(x []*Node) *Node { return DotGeneral(x[0], nil, []int{0, 1}, x[1], nil, []int{0, 1}) }},
		{"Einsum/attention-like", ins([]int{2, 3, 2, 4}, []int{2, 5, 2, 4}),
			func(x []*Node) *Node { return Einsum("bqhd,bkhd->bhqk", x[0], x[1]) }},
		{"Dot/matrix-matrix", ins([]int{3, 4}, []int{4, 2}),
			func(x []*Node) *Node { return Dot(x[0], x[1]) }},
		{"Dot/matrix-vector", ins([]int{3, 4}, []int{4}),
			func(x []*Node) *Node { return Dot(x[0], x[1]) }},
		{"Dot/vector-vector", ins([]int{5}, []int{5}),
			func(x []*Node) *Node { return Dot(x[0], x[1]) }},
		{"MatMul/rank3", ins([]int{2, 3, 4}, []int{4, 5}),
			func(x []*Node) *Node { return MatMul(x[0], x[1]) }},
		{"Slice/ranges", ins([]int{5, 6}),
			func(x []*Node) *Node { return Slice(x[0], AxisRange(1, 4), AxisRange(2)) }},
		{"Slice/strides", ins([]int{7, 5, 3}),
			func(x []*Node) *Node {
				return Slice(x[0], AxisRange(1, 7).Stride(2), AxisRange(0, 5).Stride(2), AxisElem(1))
			}},
		{"Slice/stride-tail", ins([]int{9}),
			func(x []*Node) *Node { return Slice(x[0], AxisRange(2, 8).Stride(3)) }},
		{"Split", ins([]int{4, 6}),
			func(x []*Node) *Node {
				parts := Split(x[0], 1, 3)
				return Add(Mul(parts[0], parts[1]), parts[2])
			}},
		{"Rsqrt", func(r *rand.Rand) []*tensors.Tensor {
			return []*tensors.Tensor{randTensor(r, func(r *rand.Rand) float64 { return 0.5 + 2*r.Float64() }, 3, 4)}
		}, func(x []*Node) *Node { return Rsqrt(x[0]) }},
		{"Clamp/tensor-bounds", func(r *rand.Rand) []*tensors.Tensor {
			lo := randTensor(r, func(r *rand.Rand) float64 { return -1 - r.Float64() }, 4, 5)
			hi := randTensor(r, func(r *rand.Rand) float64 { return 1 + r.Float64() }, 4, 5)
			x := randTensor(r, awayFromBounds, 4, 5)
			return []*tensors.Tensor{lo, x, hi}
		}, func(x []*Node) *Node { return Clamp(x[0], x[1], x[2]) }},
		{"Clamp/scalar-bounds", func(r *rand.Rand) []*tensors.Tensor {
			return []*tensors.Tensor{tensors.FromValue(-1.5), randTensor(r, awayFromBounds, 3, 6), tensors.FromValue(1.5)}
		}, func(x []*Node) *Node { return Clamp(x[0], x[1], x[2]) }},
		{"Conv/same-stride1", ins([]int{2, 5, 6, 3}, []int{3, 3, 3, 4}),
			func(x []*Node) *Node { return Convolve(x[0], x[1]).PadSame().Strides(1).Done() }},
		{"Conv/valid-stride2", ins([]int{1, 7, 6, 2}, []int{3, 3, 2, 3}),
			func(x []*Node) *Node { return Convolve(x[0], x[1]).NoPadding().Strides(2).Done() }},
		{"Conv/same-stride2-even", ins([]int{1, 6, 5, 2}, []int{2, 2, 2, 2}),
			func(x []*Node) *Node { return Convolve(x[0], x[1]).PadSame().Strides(2).Done() }},
		{"Conv/dilated", ins([]int{1, 7, 7, 2}, []int{3, 3, 2, 2}),
			func(x []*Node) *Node { return Convolve(x[0], x[1]).PadSame().Strides(1).Dilations(2).Done() }},
		{"Conv/grouped", ins([]int{1, 5, 5, 4}, []int{3, 3, 2, 4}),
			func(x []*Node) *Node {
				return Convolve(x[0], x[1]).PadSame().Strides(1).Dilations(1).ChannelGroupCount(2).Done()
			}},
		{"Conv/1d-asymmetric-padding", ins([]int{2, 9, 2}, []int{4, 2, 3}),
			func(x []*Node) *Node { return Convolve(x[0], x[1]).PaddingPerDim([][2]int{{2, 1}}).Strides(3).Done() }},
		{"Conv2D/im2col-same-stride2", ins([]int{2, 6, 5, 2}, []int{3, 3, 2, 3}),
			func(x []*Node) *Node { return Conv2D(x[0], x[1], ConvOptions{Stride: 2, Method: ConvIm2Col}) }},
		{"Conv2D/im2col-valid-dilated", ins([]int{1, 7, 6, 2}, []int{2, 3, 2, 2}),
			func(x []*Node) *Node {
				return Conv2D(x[0], x[1], ConvOptions{Dilation: 2, Padding: PaddingValid, Method: ConvIm2Col})
			}},
		{"Conv2D/convgeneral-same-stride2", ins([]int{2, 6, 5, 2}, []int{3, 3, 2, 3}),
			func(x []*Node) *Node { return Conv2D(x[0], x[1], ConvOptions{Stride: 2, Method: ConvNative}) }},
		{"DepthwiseConv2D/same-stride1", ins([]int{2, 5, 6, 3}, []int{3, 3, 3, 1}),
			func(x []*Node) *Node { return DepthwiseConv2D(x[0], x[1], ConvOptions{}) }},
		{"DepthwiseConv2D/same-stride2-even", ins([]int{1, 6, 6, 2}, []int{3, 3, 2, 1}),
			func(x []*Node) *Node { return DepthwiseConv2D(x[0], x[1], ConvOptions{Stride: 2}) }},
		{"Pool2D/max-2x2", ins([]int{2, 6, 5, 2}),
			func(x []*Node) *Node { return Pool2D(x[0], PoolOptions{Kind: PoolMax}) }},
		{"Pool2D/max-3x3-stride2-same", ins([]int{1, 7, 6, 2}),
			func(x []*Node) *Node {
				return Pool2D(x[0], PoolOptions{Kind: PoolMax, Window: 3, Stride: 2, Padding: PaddingSame})
			}},
		{"Pool2D/avg-2x2", ins([]int{2, 6, 5, 2}),
			func(x []*Node) *Node { return Pool2D(x[0], PoolOptions{Kind: PoolAvg}) }},
		{"Pool2D/avg-3x3-stride2-same", ins([]int{1, 7, 6, 2}),
			func(x []*Node) *Node {
				return Pool2D(x[0], PoolOptions{Kind: PoolAvg, Window: 3, Stride: 2, Padding: PaddingSame})
			}},
		{"GlobalAvgPool2D", ins([]int{2, 3, 4, 2}),
			func(x []*Node) *Node { return GlobalAvgPool2D(x[0]) }},
		{"groupNormalize", ins([]int{2, 3, 2, 4}),
			func(x []*Node) *Node { return groupNormalize(x[0], 2, 1e-5) }},
		{"Sign-Round-Floor-Ceil", ins([]int{3, 4}),
			func(x []*Node) *Node {
				// Piecewise constant: the finite difference is 0 away from the steps; x*... keeps a path.
				return Add(Mul(x[0], Add(Add(Sign(x[0]), Round(x[0])), Add(Floor(x[0]), Ceil(x[0])))), x[0])
			}},
		{"ReduceWindow/MaxPool-2x2", ins([]int{2, 6, 5, 2}),
			func(x []*Node) *Node { return MaxPool(x[0]).Window(2).Done() }},
		{"ReduceWindow/MaxPool-3x3-stride2-same", ins([]int{1, 7, 6, 2}),
			func(x []*Node) *Node { return MaxPool(x[0]).Window(3).Strides(2).PadSame().Done() }},
		{"ReduceWindow/MinPool-3x3-stride1", ins([]int{1, 5, 5, 2}),
			func(x []*Node) *Node { return MinPool(x[0]).Window(3).Strides(1).Done() }},
		{"ReduceWindow/MeanPool-2x2", ins([]int{2, 6, 4, 3}),
			func(x []*Node) *Node { return MeanPool(x[0]).Window(2).Done() }},
		{"ReduceWindow/MeanPool-3x3-same", ins([]int{1, 5, 6, 2}),
			func(x []*Node) *Node { return MeanPool(x[0]).Window(3).Strides(2).PadSame().Done() }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) { checkGradients(t, backend, tc) })
	}
}

// awayFromBounds draws values in [-3, 3] not within 0.05 of the clamp bounds used in the tests
// (finite differences are undefined at a kink).
func awayFromBounds(r *rand.Rand) float64 {
	for {
		v := 6*r.Float64() - 3
		ok := true
		for _, b := range []float64{-1.5, 1.5, -1, -2, 1, 2} {
			if math.Abs(v-b) < 0.05 {
				ok = false
			}
		}
		if ok {
			return v
		}
	}
}
