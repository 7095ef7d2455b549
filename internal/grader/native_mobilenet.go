package grader

import (
	"fmt"
	"math"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/acdtcm/acdtcm/internal/parallel"
)

// The native engine's MobileNetV2 backbone (ModelConfig.Backbone = BackboneMobileNetV2): the
// same layers as buildMobileNetV2 with every BatchNorm folded into the preceding convolution's
// weights and a bias (BatchNorm here always uses its stored statistics, so the fold is exact up
// to rounding). 1x1 and the stem's 3x3 convolutions are nativeConv GEMM tiles; depthwise
// convolutions are direct loops vectorised over channels.

// nativeMobileNetV2 is the backbone: the stem convolution, then the blocks.
type nativeMobileNetV2 struct {
	stem   *nativeConv
	blocks []nativeMBBlock
	maxAct int // the largest activation (floats) of any layer
}

// nativeMBBlock is one inverted-residual block.
type nativeMBBlock struct {
	expand   *nativeConv // nil when the expansion factor is 1
	dw       *nativeDepthwise
	project  *nativeConv
	residual bool
}

// nativeDepthwise is a depthwise convolution with folded BatchNorm and ReLU6.
type nativeDepthwise struct {
	k, stride, padT, padL int
	inH, inW, c           int
	outH, outW            int
	w                     []float32 // [k*k][c]
	bias                  []float32
}

// foldBatchNorm returns the per-channel scale gamma/sqrt(var+eps) and bias beta-mean*scale.
func foldBatchNorm(gamma, beta, mean, variance []float32) (scale, bias []float32) {
	scale, bias = make([]float32, len(gamma)), make([]float32, len(gamma))
	for c := range gamma {
		s := float64(gamma[c]) / math.Sqrt(float64(variance[c])+mobileNetV2Eps)
		scale[c] = float32(s)
		bias[c] = float32(float64(beta[c]) - float64(mean[c])*s)
	}
	return scale, bias
}

// newNativeMobileNetV2 reads the backbone from checkpoint tensors; get(name, dims...) returns
// "/model/<name>" checked against dims. s is the input size.
func newNativeMobileNetV2(get func(name string, want ...int) ([]float32, error), s int) (*nativeMobileNetV2, error) {
	scope := BackboneMobileNetV2 + "/"
	bn := func(layer string, c int) (scale, bias []float32, err error) {
		var p [4][]float32
		for i, name := range []string{"gamma", "beta", "moving_mean", "moving_variance"} {
			if p[i], err = get(scope+layer+"/"+name, c); err != nil {
				return nil, nil, err
			}
		}
		scale, bias = foldBatchNorm(p[0], p[1], p[2], p[3])
		return scale, bias, nil
	}
	// conv reads a k x k convolution [k, k, cin, cout] and folds BatchNorm bnLayer into it.
	conv := func(layer, bnLayer string, k, stride, size, cin, cout int, relu6 bool) (*nativeConv, error) {
		w, err := get(scope+layer+"/kernel", k, k, cin, cout)
		if err != nil {
			return nil, err
		}
		scale, bias, err := bn(bnLayer, cout)
		if err != nil {
			return nil, err
		}
		folded := make([]float32, len(w))
		for i, v := range w {
			folded[i] = v * scale[i%cout]
		}
		l := newNativeConv(k, stride, size, cin, cout, folded)
		l.bias, l.relu6 = bias, relu6
		return l, nil
	}
	m := &nativeMobileNetV2{}
	var err error
	if m.stem, err = conv("Conv1", "bn_Conv1", 3, 2, s, 3, 32, true); err != nil {
		return nil, err
	}
	s, cin := m.stem.outH, 32
	m.maxAct = s * s * 32
	for _, b := range mobileNetV2Blocks {
		var nb nativeMBBlock
		mid := cin * b.expand
		if b.expand > 1 {
			if nb.expand, err = conv(b.name+"_expand", b.name+"_expand_BN", 1, 1, s, cin, mid, true); err != nil {
				return nil, err
			}
			m.maxAct = max(m.maxAct, s*s*mid)
		}
		dwName := b.name + "_depthwise"
		w, err := get(scope+dwName+"/depthwise_kernel", 3, 3, mid, 1)
		if err != nil {
			return nil, err
		}
		scale, bias, err := bn(dwName+"_BN", mid)
		if err != nil {
			return nil, err
		}
		out := (s + b.stride - 1) / b.stride
		dw := &nativeDepthwise{k: 3, stride: b.stride, inH: s, inW: s, c: mid, outH: out, outW: out, bias: bias,
			w: make([]float32, len(w))}
		total := max((out-1)*b.stride+3-s, 0)
		dw.padT, dw.padL = total/2, total/2
		for i, v := range w { // [3, 3, mid, 1]: the channel is the fastest axis
			dw.w[i] = v * scale[i%mid]
		}
		nb.dw = dw
		s = out
		if nb.project, err = conv(b.name+"_project", b.name+"_project_BN", 1, 1, s, mid, b.out, false); err != nil {
			return nil, err
		}
		nb.residual = b.stride == 1 && cin == b.out
		m.maxAct = max(m.maxAct, s*s*mid)
		m.blocks = append(m.blocks, nb)
		cin = b.out
	}
	return m, nil
}

// convs lists the backbone's GEMM convolutions (for sizing worker buffers).
func (m *nativeMobileNetV2) convs() []*nativeConv {
	out := []*nativeConv{m.stem}
	for _, b := range m.blocks {
		if b.expand != nil {
			out = append(out, b.expand)
		}
		out = append(out, b.project)
	}
	return out
}

// run computes the backbone on in (fillInput's normalised RGB) with the worker's backbone
// buffers and returns the output activation (a view of one of them). Per block: the input
// stays in buffer cur (the residual), the expansion goes to buffer e, the depthwise output to
// buffer 2, the projection back to e, which becomes the next block's input.
func (m *nativeMobileNetV2) run(n *nativeNet, w *nativeWorker, in []float32, tiles bool, nw int) []float32 {
	return m.runUnits(n, w, in, 1+len(m.blocks), tiles, nw)
}

// runUnits is run stopped after the first units units (the stem, then blocks).
func (m *nativeMobileNetV2) runUnits(n *nativeNet, w *nativeWorker, in []float32, units int, tiles bool, nw int) []float32 {
	x01 := w.mb[3][:len(in)]
	for i, v := range in { // MobileNetV2 was trained on v/255; fillInput gives (v/255-0.5)/0.25
		x01[i] = v*0.25 + 0.5
	}
	cur, e := 0, 1
	x := w.mb[cur][:m.stem.outH*m.stem.outW*m.stem.cout]
	n.conv(m.stem, x01, x, w, tiles, nw)
	m.stem.normRelu(x, w)
	for _, b := range m.blocks[:units-1] {
		blockIn, mid := x, x
		if b.expand != nil {
			mid = w.mb[e][:b.expand.outH*b.expand.outW*b.expand.cout]
			n.conv(b.expand, blockIn, mid, w, tiles, nw)
			b.expand.normRelu(mid, w)
		}
		d := w.mb[2][:b.dw.outH*b.dw.outW*b.dw.c]
		b.dw.run(mid, d)
		x = w.mb[e][:b.project.outH*b.project.outW*b.project.cout]
		n.conv(b.project, d, x, w, tiles, nw)
		if b.residual {
			for i, v := range blockIn[:len(x)] {
				x[i] += v
			}
		}
		cur, e = e, cur
	}
	return x
}

// run computes out = ReLU6(depthwise(in) + bias).
func (d *nativeDepthwise) run(in, out []float32) {
	c := d.c
	for oy := 0; oy < d.outH; oy++ {
		for ox := 0; ox < d.outW; ox++ {
			acc := out[(oy*d.outW+ox)*c : (oy*d.outW+ox+1)*c]
			copy(acc, d.bias)
			iy0, ix0 := oy*d.stride-d.padT, ox*d.stride-d.padL
			for ky := 0; ky < d.k; ky++ {
				iy := iy0 + ky
				if iy < 0 || iy >= d.inH {
					continue
				}
				for kx := 0; kx < d.k; kx++ {
					ix := ix0 + kx
					if ix < 0 || ix >= d.inW {
						continue
					}
					src := in[(iy*d.inW+ix)*c : (iy*d.inW+ix+1)*c]
					wk := d.w[(ky*d.k+kx)*c : (ky*d.k+kx+1)*c]
					src, wk = src[:len(acc)], wk[:len(acc)]
					for j := range acc {
						acc[j] += src[j] * wk[j]
					}
				}
			}
			for j, v := range acc {
				acc[j] = min(max(v, 0), 6)
			}
		}
	}
}

// allocate sizes worker w's backbone buffers for an input of inputLen floats and grows its
// im2col tiles to fit the backbone's convolutions.
func (m *nativeMobileNetV2) allocate(w *nativeWorker, inputLen int) {
	for i := range 3 {
		w.mb[i] = make([]float32, m.maxAct)
	}
	w.mb[3] = make([]float32, inputLen)
	w.ensureTiles(m.convs())
}

// nativeStem computes the frozen first units of the pretrained MobileNetV2 (its embedded
// weights) on the native engine, so that training runs only the trainable rest in GoMLX.
type nativeStem struct {
	net     *nativeMobileNetV2
	units   int
	size    int   // input size
	outDims []int // [h, w, c] of the features
	workers []*nativeWorker
}

// newNativeStem builds the first units units (mobileNetV2Units order) for size x size photos,
// with nw workers.
func newNativeStem(size, units, nw int) (*nativeStem, error) {
	pre, err := pretrainedMobileNetV2()
	if err != nil {
		return nil, err
	}
	get := func(name string, want ...int) ([]float32, error) {
		t, ok := pre[strings.TrimPrefix(name, BackboneMobileNetV2+"/")]
		if !ok {
			return nil, fmt.Errorf("embedded MobileNetV2 weights: no %s", name)
		}
		if !equalDims(t.Shape().Dimensions, want) {
			return nil, fmt.Errorf("embedded MobileNetV2 weight %s has shape %v, want %v", name, t.Shape().Dimensions, want)
		}
		return tensors.MustCopyFlatData[float32](t), nil
	}
	net, err := newNativeMobileNetV2(get, size)
	if err != nil {
		return nil, err
	}
	if units < 1 || units > 1+len(net.blocks) {
		return nil, fmt.Errorf("native stem: %d units, want 1..%d", units, 1+len(net.blocks))
	}
	st := &nativeStem{net: net, units: units, size: size}
	last := net.stem
	c := net.stem.cout
	if units > 1 {
		last = net.blocks[units-2].project
		c = last.cout
	}
	st.outDims = []int{last.outH, last.outW, c}
	for range max(1, nw) {
		w := &nativeWorker{}
		net.allocate(w, size*size*3)
		st.workers = append(st.workers, w)
	}
	return st, nil
}

// featureLen is the number of floats of one photo's features.
func (st *nativeStem) featureLen() int { return st.outDims[0] * st.outDims[1] * st.outDims[2] }

// features computes the stem on b inputs (fillInput's RGB layout, contiguous in in) into out
// (b*featureLen floats), the photos shared among the workers.
func (st *nativeStem) features(in, out []float32, b int) {
	n := &nativeNet{} // conv needs the workers only for tile-parallel layers, not used here
	inLen, fl := st.size*st.size*3, st.featureLen()
	parallel.For(b, len(st.workers), func(wi, i int) {
		f := st.net.runUnits(n, st.workers[wi], in[i*inLen:(i+1)*inLen], st.units, false, 1)
		copy(out[i*fl:(i+1)*fl], f)
	})
}
