package mlbackend

import (
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/gomlx/gomlx/backends"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// benchBackend is shared by all benchmarks: tensors are tied to the backend that first used them.
var benchBackend = sync.OnceValues(func() (backends.Backend, error) { return New("go") })

func sharedBackend(b *testing.B) backends.Backend {
	be, err := benchBackend()
	if err != nil {
		b.Fatal(err)
	}
	return be
}

// withStockRule runs fn with GoMLX's own VJP rule for t installed instead of this package's.
func withStockRule(t NodeType, fn func()) {
	VJPRegistration[t] = stockVJP[t]
	defer func() { VJPRegistration[t] = ourVJP[t] }()
	fn()
}

func randFloat32(rng *rand.Rand, dims ...int) *tensors.Tensor {
	n := 1
	for _, d := range dims {
		n *= d
	}
	data := make([]float32, n)
	for i := range data {
		data[i] = float32(rng.NormFloat64())
	}
	return tensors.FromFlatDataAndDimensions(data, dims...)
}

// benchFwdBwd times one forward+backward pass of sum(f(a, b)) w.r.t. a and b.
func benchFwdBwd(b *testing.B, f func(a, b *Node) *Node, aT, bT *tensors.Tensor) {
	backend := sharedBackend(b)
	exec := MustNewExec(backend, func(a, bb *Node) []*Node {
		y := f(a, bb)
		loss := ReduceAllSum(y)
		grads := Gradient(loss, a, bb)
		return []*Node{loss, grads[0], grads[1]}
	})
	run := func() {
		out, err := exec.Exec(aT, bT)
		if err != nil {
			b.Fatal(err)
		}
		for _, t := range out {
			t.FinalizeAll()
		}
	}
	run() // compile
	b.ResetTimer()
	for range b.N {
		run()
	}
}

// benchFwd times the forward pass only.
func benchFwd(b *testing.B, f func(a, b *Node) *Node, aT, bT *tensors.Tensor) {
	backend := sharedBackend(b)
	exec := MustNewExec(backend, f)
	run := func() {
		out, err := exec.Exec(aT, bT)
		if err != nil {
			b.Fatal(err)
		}
		out[0].FinalizeAll()
	}
	run()
	b.ResetTimer()
	for range b.N {
		run()
	}
}

func matmul(a, b *Node) *Node { return DotGeneral(a, []int{1}, nil, b, []int{0}, nil) }

// BenchmarkMatMul512 is a 512x512x512 float32 matmul forward+backward with GoMLX's stock
// DotGeneral gradient and with this package's two-matmul rule.
func BenchmarkMatMul512(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	x, y := randFloat32(rng, 512, 512), randFloat32(rng, 512, 512)
	b.Run("forward", func(b *testing.B) { benchFwd(b, matmul, x, y) })
	b.Run("fwd+bwd/stock", func(b *testing.B) {
		withStockRule(NodeTypeDotGeneral, func() { benchFwdBwd(b, matmul, x, y) })
	})
	b.Run("fwd+bwd/mlbackend", func(b *testing.B) { benchFwdBwd(b, matmul, x, y) })
}

// BenchmarkConv2D is a 1x128x128x16 -> 32 channels 3x3 same-padded float32 convolution.
// The stock ConvGeneral gradient cannot run on simplego (it needs Reverse), so only this
// package's rule and the im2col formulation are timed.
func BenchmarkConv2D(b *testing.B) {
	rng := rand.New(rand.NewPCG(5, 6))
	x, k := randFloat32(rng, 1, 128, 128, 16), randFloat32(rng, 3, 3, 16, 32)
	for _, tc := range []struct {
		name string
		opts ConvOptions
	}{{"convgeneral", ConvOptions{Method: ConvNative}}, {"im2col", ConvOptions{Method: ConvIm2Col}}} {
		conv := func(x, k *Node) *Node { return Conv2D(x, k, tc.opts) }
		b.Run("forward/"+tc.name, func(b *testing.B) { benchFwd(b, conv, x, k) })
		b.Run("fwd+bwd/"+tc.name, func(b *testing.B) { benchFwdBwd(b, conv, x, k) })
	}
}

// BenchmarkMaxPool2x2 is a 1x128x128x32 2x2/2 float32 max pooling forward+backward: Pool2D
// (strided slices) vs graph.MaxPool (ReduceWindow with this package's gradient rule).
func BenchmarkMaxPool2x2(b *testing.B) {
	rng := rand.New(rand.NewPCG(7, 8))
	x := randFloat32(rng, 1, 128, 128, 32)
	dummy := randFloat32(rng, 1)
	for _, tc := range []struct {
		name string
		pool func(x *Node) *Node
	}{
		{"Pool2D", func(x *Node) *Node { return Pool2D(x, PoolOptions{Kind: PoolMax}) }},
		{"graph.MaxPool", func(x *Node) *Node { return MaxPool(x).Window(2).Done() }},
	} {
		f := func(x, s *Node) *Node { return Mul(tc.pool(x), Reshape(s)) }
		b.Run("fwd+bwd/"+tc.name, func(b *testing.B) { benchFwdBwd(b, f, x, dummy) })
	}
}

// BenchmarkDepthwiseConv2D is a 16x28x28x192 3x3 same-padded depthwise convolution (MobileNetV2
// block_4's size at 224 px), forward+backward: DepthwiseConv2D (strided slices) vs ConvGeneral
// with one channel group per channel (this package's gradient rule).
func BenchmarkDepthwiseConv2D(b *testing.B) {
	rng := rand.New(rand.NewPCG(9, 10))
	const c = 192
	x, k := randFloat32(rng, 16, 28, 28, c), randFloat32(rng, 3, 3, c, 1)
	for _, tc := range []struct {
		name string
		conv func(x, k *Node) *Node
	}{
		{"slices", func(x, k *Node) *Node { return DepthwiseConv2D(x, k, ConvOptions{}) }},
		{"convgeneral-groups", func(x, k *Node) *Node {
			return Convolve(x, Reshape(k, 3, 3, 1, c)).PadSame().Strides(1).Dilations(1).ChannelGroupCount(c).Done()
		}},
	} {
		b.Run("fwd+bwd/"+tc.name, func(b *testing.B) { benchFwdBwd(b, tc.conv, x, k) })
	}
}
