package mlbackend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// naivePool2D is a direct NHWC reference: windows start at o*stride-padLow; out-of-image pixels
// are skipped (max ignores them, avg does not count them).
func naivePool2D(x []float64, n, h, w, c, k, s, padT, padL, oh, ow int, kind PoolKind) []float64 {
	out := make([]float64, n*oh*ow*c)
	for b := range n {
		for oy := range oh {
			for ox := range ow {
				for ch := range c {
					acc, cnt := math.Inf(-1), 0
					if kind == PoolAvg {
						acc = 0
					}
					for i := range k {
						for j := range k {
							y, xx := oy*s+i-padT, ox*s+j-padL
							if y < 0 || y >= h || xx < 0 || xx >= w {
								continue
							}
							v := x[((b*h+y)*w+xx)*c+ch]
							if kind == PoolMax {
								acc = math.Max(acc, v)
							} else {
								acc += v
							}
							cnt++
						}
					}
					if kind == PoolAvg {
						acc /= float64(cnt)
					}
					out[((b*oh+oy)*ow+ox)*c+ch] = acc
				}
			}
		}
	}
	return out
}

func TestPool2DMatchesReference(t *testing.T) {
	backend := testBackend(t)
	cases := []struct {
		h, w, k, s int
		pad        Padding
	}{
		{8, 6, 2, 2, PaddingValid},
		{7, 5, 2, 2, PaddingValid},
		{7, 7, 3, 2, PaddingSame},
		{6, 5, 3, 1, PaddingSame},
		{7, 6, 3, 2, PaddingValid},
		{5, 5, 2, 2, PaddingSame},
	}
	const n, c = 2, 3
	rng := rand.New(rand.NewPCG(7, 8))
	for _, tc := range cases {
		for _, kind := range []PoolKind{PoolMax, PoolAvg} {
			t.Run(fmt.Sprintf("%dx%d_k%d_s%d_pad%d_kind%d", tc.h, tc.w, tc.k, tc.s, tc.pad, kind), func(t *testing.T) {
				x := randTensor(rng, normal, n, tc.h, tc.w, c)
				opts := PoolOptions{Kind: kind, Window: tc.k, Stride: tc.s, Padding: tc.pad}
				out, err := MustNewExec(backend, func(x *Node) *Node { return Pool2D(x, opts) }).Exec(x)
				if err != nil {
					t.Fatal(err)
				}
				var oh, ow, padT, padL int
				if tc.pad == PaddingSame {
					oh, ow = (tc.h+tc.s-1)/tc.s, (tc.w+tc.s-1)/tc.s
					padT, padL = samePadding(tc.h, tc.k, tc.s)[0], samePadding(tc.w, tc.k, tc.s)[0]
				} else {
					oh, ow = (tc.h-tc.k)/tc.s+1, (tc.w-tc.k)/tc.s+1
				}
				if got := out[0].Shape().Dimensions; got[1] != oh || got[2] != ow {
					t.Fatalf("output shape %v, want [%d %d %d %d]", got, n, oh, ow, c)
				}
				want := naivePool2D(flat64(t, x), n, tc.h, tc.w, c, tc.k, tc.s, padT, padL, oh, ow, kind)
				for i, g := range flat64(t, out[0]) {
					if math.Abs(g-want[i]) > 1e-12 {
						t.Fatalf("element %d: got %g, want %g", i, g, want[i])
					}
				}
			})
		}
	}
}

// TestMaxPoolTiesGoToFirst: with all-equal inputs (e.g. after ReLU), each window's adjoint must
// go to exactly one element (the first), not to every tied element.
func TestMaxPoolTiesGoToFirst(t *testing.T) {
	backend := testBackend(t)
	cases := []struct {
		name string
		pool func(x *Node) *Node
	}{
		{"Pool2D", func(x *Node) *Node { return Pool2D(x, PoolOptions{Kind: PoolMax}) }},
		{"graph.MaxPool", func(x *Node) *Node { return MaxPool(x).Window(2).Done() }},
	}
	want := []float64{
		1, 0, 1, 0,
		0, 0, 0, 0,
		1, 0, 1, 0,
		0, 0, 0, 0,
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			x := tensors.FromFlatDataAndDimensions(make([]float64, 16), 1, 4, 4, 1)
			out, err := MustNewExec(backend, func(x *Node) *Node {
				return Gradient(ReduceAllSum(tc.pool(x)), x)[0]
			}).Exec(x)
			if err != nil {
				t.Fatal(err)
			}
			got := flat64(t, out[0])
			for i := range want {
				if got[i] != want[i] {
					t.Fatalf("gradient %v, want %v", got, want)
				}
			}
		})
	}
}
