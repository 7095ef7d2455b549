package mlbackend

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
)

// naiveConv2D is a direct NHWC reference implementation with explicit low paddings.
func naiveConv2D(x []float64, n, h, w, c int, k []float64, kh, kw, cout, stride, dil, padT, padL, oh, ow int) []float64 {
	out := make([]float64, n*oh*ow*cout)
	for b := range n {
		for oy := range oh {
			for ox := range ow {
				for co := range cout {
					var s float64
					for i := range kh {
						for j := range kw {
							y, xx := oy*stride+i*dil-padT, ox*stride+j*dil-padL
							if y < 0 || y >= h || xx < 0 || xx >= w {
								continue
							}
							for ci := range c {
								s += x[((b*h+y)*w+xx)*c+ci] * k[((i*kw+j)*c+ci)*cout+co]
							}
						}
					}
					out[((b*oh+oy)*ow+ox)*cout+co] = s
				}
			}
		}
	}
	return out
}

func TestConv2DMatchesReference(t *testing.T) {
	backend := testBackend(t)
	cases := []struct {
		h, w, kh, kw, stride, dil int
		pad                       Padding
	}{
		{6, 7, 3, 3, 1, 1, PaddingSame},
		{6, 7, 3, 3, 2, 1, PaddingSame},
		{8, 8, 2, 2, 2, 1, PaddingSame},
		{7, 6, 3, 2, 2, 1, PaddingValid},
		{9, 9, 3, 3, 1, 2, PaddingSame},
		{9, 8, 3, 3, 1, 2, PaddingValid},
		{5, 5, 1, 1, 2, 1, PaddingValid},
	}
	const n, c, cout = 2, 3, 4
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range cases {
		for _, method := range []ConvMethod{ConvNative, ConvIm2Col, ConvAuto} {
			name := fmt.Sprintf("%dx%d_k%dx%d_s%d_d%d_pad%d_method%d", tc.h, tc.w, tc.kh, tc.kw, tc.stride, tc.dil, tc.pad, method)
			t.Run(name, func(t *testing.T) {
				x := randTensor(rng, normal, n, tc.h, tc.w, c)
				k := randTensor(rng, normal, tc.kh, tc.kw, c, cout)
				opts := ConvOptions{Stride: tc.stride, Padding: tc.pad, Dilation: tc.dil, Method: method}
				out, err := MustNewExec(backend, func(x, k *Node) *Node { return Conv2D(x, k, opts) }).Exec(x, k)
				if err != nil {
					t.Fatal(err)
				}
				var oh, ow, padT, padL int
				keh, kew := (tc.kh-1)*tc.dil+1, (tc.kw-1)*tc.dil+1
				if tc.pad == PaddingSame {
					oh, ow = (tc.h+tc.stride-1)/tc.stride, (tc.w+tc.stride-1)/tc.stride
					padT, padL = samePadding(tc.h, keh, tc.stride)[0], samePadding(tc.w, kew, tc.stride)[0]
				} else {
					oh, ow = (tc.h-keh)/tc.stride+1, (tc.w-kew)/tc.stride+1
				}
				if got := out[0].Shape().Dimensions; got[1] != oh || got[2] != ow || got[3] != cout {
					t.Fatalf("output shape %v, want [%d %d %d %d]", got, n, oh, ow, cout)
				}
				want := naiveConv2D(flat64(t, x), n, tc.h, tc.w, c, flat64(t, k), tc.kh, tc.kw, cout, tc.stride, tc.dil, padT, padL, oh, ow)
				for i, g := range flat64(t, out[0]) {
					if math.Abs(g-want[i]) > 1e-9 {
						t.Fatalf("element %d: got %g, want %g", i, g, want[i])
					}
				}
			})
		}
	}
}

func TestSamePadding(t *testing.T) {
	cases := []struct{ in, keff, stride, lo, hi int }{
		{7, 3, 1, 1, 1}, {8, 3, 2, 0, 1}, {7, 3, 2, 1, 1}, {8, 2, 2, 0, 0}, {5, 4, 1, 1, 2}, {4, 1, 3, 0, 0},
	}
	for _, tc := range cases {
		if got := samePadding(tc.in, tc.keff, tc.stride); got != [2]int{tc.lo, tc.hi} {
			t.Errorf("samePadding(%d, %d, %d) = %v, want [%d %d]", tc.in, tc.keff, tc.stride, got, tc.lo, tc.hi)
		}
	}
}
