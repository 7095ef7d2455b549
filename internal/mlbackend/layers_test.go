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

// TestDepthwiseConv2DMatchesReference checks DepthwiseConv2D against a direct loop: each
// output channel is its input channel convolved with its own filter, zero padding as Conv2D.
func TestDepthwiseConv2DMatchesReference(t *testing.T) {
	backend := testBackend(t)
	cases := []struct {
		h, w, k, stride int
		pad             Padding
	}{
		{6, 7, 3, 1, PaddingSame},
		{8, 8, 3, 2, PaddingSame}, // Keras MobileNetV2's stride-2 blocks: pad bottom/right by 1
		{7, 6, 3, 2, PaddingSame},
		{7, 7, 3, 2, PaddingValid},
		{5, 6, 1, 1, PaddingValid},
	}
	const n, c = 2, 5
	rng := rand.New(rand.NewPCG(3, 4))
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%dx%d_k%d_s%d_pad%d", tc.h, tc.w, tc.k, tc.stride, tc.pad), func(t *testing.T) {
			x := randTensor(rng, normal, n, tc.h, tc.w, c)
			k := randTensor(rng, normal, tc.k, tc.k, c, 1)
			opts := ConvOptions{Stride: tc.stride, Padding: tc.pad}
			out, err := MustNewExec(backend, func(x, k *Node) *Node { return DepthwiseConv2D(x, k, opts) }).Exec(x, k)
			if err != nil {
				t.Fatal(err)
			}
			oh, ow, padT, padL := (tc.h-tc.k)/tc.stride+1, (tc.w-tc.k)/tc.stride+1, 0, 0
			if tc.pad == PaddingSame {
				oh, ow = (tc.h+tc.stride-1)/tc.stride, (tc.w+tc.stride-1)/tc.stride
				padT, padL = samePadding(tc.h, tc.k, tc.stride)[0], samePadding(tc.w, tc.k, tc.stride)[0]
			}
			if got := out[0].Shape().Dimensions; got[1] != oh || got[2] != ow || got[3] != c {
				t.Fatalf("output shape %v, want [%d %d %d %d]", got, n, oh, ow, c)
			}
			xs, ks, got := flat64(t, x), flat64(t, k), flat64(t, out[0])
			for b := range n {
				for oy := range oh {
					for ox := range ow {
						for ch := range c {
							var want float64
							for i := range tc.k {
								for j := range tc.k {
									y, xx := oy*tc.stride+i-padT, ox*tc.stride+j-padL
									if y >= 0 && y < tc.h && xx >= 0 && xx < tc.w {
										want += xs[((b*tc.h+y)*tc.w+xx)*c+ch] * ks[(i*tc.k+j)*c+ch]
									}
								}
							}
							if g := got[((b*oh+oy)*ow+ox)*c+ch]; math.Abs(g-want) > 1e-9 {
								t.Fatalf("[%d %d %d %d]: got %g, want %g", b, oy, ox, ch, g, want)
							}
						}
					}
				}
			}
		})
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
