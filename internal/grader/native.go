package grader

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"

	"github.com/acdtcm/acdtcm/internal/parallel"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// nativeNet is a GoMLX-free inference engine for BuildModel: the same network, read from the
// same checkpoint tensors, computed directly on NHWC float32 buffers. Each convolution (the
// space-to-depth stem is a patch x patch convolution with stride patch, the backbone 3x3
// "same" convolutions, the density head a 1x1 convolution) is an im2col tile of output pixels
// times the packed kernel (native_gemm.go), with bias added as the tile is written out; then
// one fused GroupNorm + ReLU pass. Images of a batch run in parallel on GOMAXPROCS workers
// (or, for batches too small to share out evenly, the tiles of each layer do), and every
// buffer is kept between calls. forward is safe for concurrent use (calls are serialised).
// A pretrained MobileNetV2 backbone, when the model has one, runs first (native_mobilenet.go).
type nativeNet struct {
	mc       ModelConfig
	backbone *nativeMobileNetV2 // the pretrained backbone (native_mobilenet.go), if any
	layers   []*nativeConv      // the stem (if any), then the 3x3 convolutions
	head     *nativeConv        // 1x1 density head: no norm, no ReLU
	// Grade head: [gin x hidden] and [hidden x NumGrades], row-major as stored.
	hiddenW, hiddenB, outW, outB []float32

	mu      sync.Mutex
	workers []*nativeWorker
}

// nativeConv is one convolution with bias, then (unless it is the head) GroupNorm and ReLU.
type nativeConv struct {
	kh, kw, stride, padT, padL int
	inH, inW, cin              int
	outH, outW, cout           int
	w                          *packedB
	bias                       []float32
	groups                     int // 0: no GroupNorm
	scale, offset              []float32
	relu                       bool
	relu6                      bool // no GroupNorm: min(max(x, 0), 6) instead of relu
	tileRows                   int  // output pixels per im2col tile, a multiple of gemmMR
}

// nativeWorker holds one worker's buffers.
type nativeWorker struct {
	feat         featureScratch
	input        []float32
	act          [2][]float32
	tileA, tileC []float32
	sums         []float64 // per-channel sums and sums of squares
	mean, mul    []float32
	gin, hid     []float32
	acc          []float64
	mb           [4][]float32 // backbone activations (three) and its rescaled input
}

// nativeStatChunk is how many pixels GroupNorm statistics sum in float32 before adding the
// partial sums into float64 accumulators.
const nativeStatChunk = 32

// nativeTileBytes is the target size of an im2col tile (A): well inside L2, near L1.
const nativeTileBytes = 48 << 10

// newNativeNet builds the engine from a checkpoint's model tensors (float32 only).
func newNativeNet(ck *Checkpoint) (*nativeNet, error) {
	mc := ck.Header.Model
	if err := mc.Validate(); err != nil {
		return nil, err
	}
	get := func(name string, want ...int) ([]float32, error) {
		t, err := ck.Tensor("/" + modelScope + "/" + name)
		if err != nil {
			return nil, err
		}
		if t.DType() != dtypes.Float32 {
			return nil, fmt.Errorf("native grader: tensor %s is %s, want float32", name, t.DType())
		}
		if !equalDims(t.Shape().Dimensions, want) {
			return nil, fmt.Errorf("native grader: tensor %s has shape %v, want %v", name, t.Shape().Dimensions, want)
		}
		return tensors.MustCopyFlatData[float32](t), nil
	}
	n := &nativeNet{mc: mc}
	s, cin := mc.InputSize, mc.inputChannels()
	addConv := func(scope string, k, stride, cout int, biasName string, norm bool) (*nativeConv, error) {
		var w []float32
		var err error
		if scope == "stem" {
			w, err = get(scope+"/weights", k*k*cin, cout)
		} else {
			w, err = get(scope+"/weights", k, k, cin, cout)
		}
		if err != nil {
			return nil, err
		}
		l := newNativeConv(k, stride, s, cin, cout, w)
		l.relu = norm
		if l.bias, err = get(scope+"/"+biasName, cout); err != nil {
			return nil, err
		}
		if norm && mc.Norm > 0 {
			l.groups = mc.Norm
			if l.scale, err = get(scope+"/norm/scale", cout); err != nil {
				return nil, err
			}
			if l.offset, err = get(scope+"/norm/offset", cout); err != nil {
				return nil, err
			}
		}
		s, cin = l.outH, cout
		return l, nil
	}
	if mc.Backbone == BackboneMobileNetV2 {
		var err error
		if n.backbone, err = newNativeMobileNetV2(get, s); err != nil {
			return nil, err
		}
		s, cin = s/8, mobileNetV2Channels()
	} else if mc.Patch > 1 {
		l, err := addConv("stem", mc.Patch, mc.Patch, mc.PatchOut, "bias", true)
		if err != nil {
			return nil, err
		}
		n.layers = append(n.layers, l)
	}
	for i, ly := range mc.Layers {
		l, err := addConv(fmt.Sprintf("conv%d", i), 3, ly.Stride, ly.Channels, "biases", true)
		if err != nil {
			return nil, err
		}
		n.layers = append(n.layers, l)
	}
	feat := cin
	w, err := get("density/weights", feat, NumTypes)
	if err != nil {
		return nil, err
	}
	n.head = newNativeConv(1, 1, s, feat, NumTypes, w)
	if n.head.bias, err = get("density/bias", NumTypes); err != nil {
		return nil, err
	}
	gin := NumTypes + 1 + feat
	if n.hiddenW, err = get("grade_hidden/weights", gin, mc.GradeHidden); err != nil {
		return nil, err
	}
	if n.hiddenB, err = get("grade_hidden/bias", mc.GradeHidden); err != nil {
		return nil, err
	}
	if n.outW, err = get("grade_out/weights", mc.GradeHidden, NumGrades); err != nil {
		return nil, err
	}
	if n.outB, err = get("grade_out/bias", NumGrades); err != nil {
		return nil, err
	}
	return n, nil
}

// newNativeConv is a k x k convolution with the given stride over a size x size input of cin
// channels, with TF/XLA "same" padding (as mlbackend.Conv2D; none when the stride tiles the
// input exactly, as for the patch stem), weights w [k*k*cin x cout] (row-major, as checkpoints
// store [k, k, cin, cout]) packed for the GEMM, and im2col tiles sized for the cache. Bias,
// normalisation and activation are the caller's.
func newNativeConv(k, stride, size, cin, cout int, w []float32) *nativeConv {
	out := (size + stride - 1) / stride
	total := max((out-1)*stride+k-size, 0)
	kk := k * k * cin
	return &nativeConv{kh: k, kw: k, stride: stride, inH: size, inW: size, cin: cin, cout: cout,
		outH: out, outW: out, padT: total / 2, padL: total / 2, w: packB(w, kk, cout),
		tileRows: min(max(gemmMR, nativeTileBytes/(4*kk)/gemmMR*gemmMR), (out*out+gemmMR-1)/gemmMR*gemmMR)}
}

// ensureTiles grows the worker's im2col buffers (A and C tiles) to fit every one of convs.
func (w *nativeWorker) ensureTiles(convs []*nativeConv) {
	for _, l := range convs {
		if n := l.tileRows * l.w.k; len(w.tileA) < n {
			w.tileA = make([]float32, n)
		}
		if n := l.tileRows * l.w.npad; len(w.tileC) < n {
			w.tileC = make([]float32, n)
		}
	}
}

func equalDims(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// newWorker allocates one worker's buffers.
func (n *nativeNet) newWorker() *nativeWorker {
	s := n.mc.InputSize
	w := &nativeWorker{input: make([]float32, s*s*n.mc.inputChannels())}
	maxAct, maxCh := 0, 0
	convs := append(append([]*nativeConv{}, n.layers...), n.head)
	for _, l := range convs {
		maxAct = max(maxAct, l.outH*l.outW*l.cout)
		maxCh = max(maxCh, l.cout)
	}
	w.act[0], w.act[1] = make([]float32, maxAct), make([]float32, maxAct)
	w.ensureTiles(convs)
	if n.backbone != nil {
		n.backbone.allocate(w, len(w.input))
	}
	w.sums = make([]float64, 2*max(maxCh, NumTypes))
	w.mean, w.mul = make([]float32, maxCh), make([]float32, maxCh)
	feat := n.head.cin
	w.gin, w.hid = make([]float32, NumTypes+1+feat), make([]float32, n.mc.GradeHidden)
	w.acc = make([]float64, max(n.mc.GradeHidden, NumGrades))
	return w
}

// forward runs the network on resized RGB rows (InputSize^2*3 bytes each) and writes what the
// GoMLX inference graph returns: density [b, grid, grid, types], counts [b, types] and grade
// probabilities [b, NumGrades] (all flat, row-major).
func (n *nativeNet) forward(rows [][]uint8, flip bool, dens, counts, probs []float32) error {
	s := n.mc.InputSize
	for i, r := range rows {
		if len(r) != s*s*3 {
			return fmt.Errorf("input %d: %d bytes, want %d", i, len(r), s*s*3)
		}
	}
	return n.run(len(rows), func(w *nativeWorker, i int) []float32 {
		fillInput(w.input, rows[i], s, flip, 1, n.mc.HighPass, &w.feat)
		return w.input
	}, dens, counts, probs)
}

// run runs a batch of b images whose network inputs (fillInput's layout) input(worker, i)
// returns; forward and the benchmarks call it.
func (n *nativeNet) run(b int, input func(w *nativeWorker, i int) []float32, dens, counts, probs []float32) error {
	g2 := n.head.outH * n.head.outW * NumTypes
	if len(dens) < b*g2 || len(counts) < b*NumTypes || len(probs) < b*NumGrades {
		return fmt.Errorf("native grader: output buffers too small for a batch of %d", b)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	nw := max(1, runtime.GOMAXPROCS(0))
	for len(n.workers) < nw {
		n.workers = append(n.workers, n.newWorker())
	}
	one := func(w, i int, tiles bool) {
		wk := n.workers[w]
		n.image(wk, input(wk, i), dens[i*g2:(i+1)*g2], counts[i*NumTypes:(i+1)*NumTypes], probs[i*NumGrades:(i+1)*NumGrades], tiles, nw)
	}
	if b%nw == 0 || b >= 4*nw { // images in parallel: each worker runs whole images
		parallel.For(b, nw, func(w, i int) { one(w, i, false) })
		return nil
	}
	for i := range b { // too few images to share out: the tiles of each layer in parallel
		one(0, i, true)
	}
	return nil
}

// image runs the network on one photo's input (fillInput's layout, not modified) with worker
// w's buffers; with tiles, each layer's tiles are shared among nw workers.
func (n *nativeNet) image(w *nativeWorker, in []float32, dens, counts, probs []float32, tiles bool, nw int) {
	if n.backbone != nil {
		in = n.backbone.run(n, w, in, tiles, nw)
	}
	for i, l := range n.layers {
		out := w.act[i%2][:l.outH*l.outW*l.cout]
		n.conv(l, in, out, w, tiles, nw)
		l.normRelu(out, w)
		in = out
	}
	h := n.head
	n.conv(h, in, dens, w, tiles, nw)
	hw := h.outH * h.outW
	sums := w.sums[:NumTypes]
	clear(sums)
	for p := 0; p < hw; p++ {
		px := dens[p*NumTypes : (p+1)*NumTypes]
		for t, v := range px {
			d := float32(softplus(float64(v)) / densityScale)
			px[t] = d
			sums[t] += float64(d)
		}
	}
	// Grade head input: log1p(counts), log1p(total count), globally pooled features.
	gin := w.gin
	var total float64
	for t := 0; t < NumTypes; t++ {
		counts[t] = float32(sums[t])
		total += float64(counts[t])
		gin[t] = float32(math.Log1p(float64(counts[t])))
	}
	gin[NumTypes] = float32(math.Log1p(total))
	pooled := w.sums[:h.cin]
	clear(pooled)
	for p := 0; p < hw; p++ {
		for c, v := range in[p*h.cin : (p+1)*h.cin] {
			pooled[c] += float64(v)
		}
	}
	for c, v := range pooled {
		gin[NumTypes+1+c] = float32(v / float64(hw))
	}
	hid := w.hid
	dense32(gin, n.hiddenW, n.hiddenB, hid, w.acc)
	for j, v := range hid {
		hid[j] = max(v, 0)
	}
	var logits [NumGrades]float32
	dense32(hid, n.outW, n.outB, logits[:], w.acc)
	mx := logits[0]
	for _, v := range logits[1:] {
		mx = max(mx, v)
	}
	var den float64
	for g, v := range logits {
		e := math.Exp(float64(v - mx))
		probs[g] = float32(e)
		den += e
	}
	for g := range probs[:NumGrades] {
		probs[g] = float32(float64(probs[g]) / den)
	}
}

// softplus is log(1 + e^x), computed stably.
func softplus(x float64) float64 { return max(x, 0) + math.Log1p(math.Exp(-math.Abs(x))) }

// dense32 computes out = x · w + b for w [len(x) x len(out)] row-major, accumulating in acc.
func dense32(x, w, b, out []float32, acc []float64) {
	no := len(out)
	acc = acc[:no]
	for j := range acc {
		acc[j] = float64(b[j])
	}
	for i, xv := range x {
		wr := w[i*no : (i+1)*no]
		for j, wv := range wr {
			acc[j] += float64(xv) * float64(wv)
		}
	}
	for j := range out {
		out[j] = float32(acc[j])
	}
}

// conv computes out = conv(in) + bias, tile by tile, the tiles shared among nw workers
// when tiles is set.
func (n *nativeNet) conv(l *nativeConv, in, out []float32, w *nativeWorker, tiles bool, nw int) {
	nt := (l.outH*l.outW + l.tileRows - 1) / l.tileRows
	if !tiles {
		for t := 0; t < nt; t++ {
			l.tile(in, out, t, w)
		}
		return
	}
	parallel.For(nt, nw, func(wi, t int) {
		tw := w
		if wi > 0 {
			tw = n.workers[wi]
		}
		l.tile(in, out, t, tw)
	})
}

// tile computes output pixels [t*tileRows, (t+1)*tileRows) of the convolution: im2col of
// their receptive fields into w.tileA, one GEMM into w.tileC, then + bias into out.
func (l *nativeConv) tile(in, out []float32, t int, w *nativeWorker) {
	m0 := t * l.tileRows
	m1 := min(m0+l.tileRows, l.outH*l.outW)
	rows := (m1 - m0 + gemmMR - 1) / gemmMR * gemmMR
	k, cin, seg := l.w.k, l.cin, l.kw*l.cin
	a := w.tileA[:rows*k]
	for m := m0; m < m1; m++ {
		oy, ox := m/l.outW, m%l.outW
		dst := a[(m-m0)*k : (m-m0+1)*k]
		iy0, ix0 := oy*l.stride-l.padT, ox*l.stride-l.padL
		for ky := 0; ky < l.kh; ky++ {
			d := dst[ky*seg : (ky+1)*seg]
			iy := iy0 + ky
			if iy < 0 || iy >= l.inH {
				clear(d)
				continue
			}
			base := iy * l.inW
			if ix0 >= 0 && ix0+l.kw <= l.inW {
				copy(d, in[(base+ix0)*cin:(base+ix0+l.kw)*cin])
				continue
			}
			for kx := 0; kx < l.kw; kx++ {
				dd := d[kx*cin : (kx+1)*cin]
				if ix := ix0 + kx; ix < 0 || ix >= l.inW {
					clear(dd)
				} else {
					copy(dd, in[(base+ix)*cin:(base+ix+1)*cin])
				}
			}
		}
	}
	c := w.tileC[:rows*l.w.npad]
	gemmTile(a, rows, l.w, c)
	np, co := l.w.npad, l.cout
	bias := l.bias[:co]
	for r := 0; r < m1-m0; r++ {
		src := c[r*np : r*np+co]
		dst := out[(m0+r)*co : (m0+r+1)*co]
		for j, v := range src {
			dst[j] = v + bias[j]
		}
	}
}

// normRelu applies GroupNorm (as mlbackend.GroupNorm: statistics per image over the spatial
// axes and each group of channels, epsilon 1e-5, then scale and offset) and ReLU in place.
func (l *nativeConv) normRelu(x []float32, w *nativeWorker) {
	c := l.cout
	if l.groups == 0 {
		switch {
		case l.relu6:
			for i, v := range x {
				x[i] = min(max(v, 0), 6)
			}
		case l.relu:
			for i, v := range x {
				x[i] = max(v, 0)
			}
		}
		return
	}
	hw := len(x) / c
	sum, sq := w.sums[:c], w.sums[c:2*c]
	clear(sum)
	clear(sq)
	// float32 partial sums over chunks of nativeStatChunk pixels, flushed into float64.
	ps, pq := w.mean[:c], w.mul[:c]
	for p0 := 0; p0 < hw; p0 += nativeStatChunk {
		clear(ps)
		clear(pq)
		for p := p0; p < min(p0+nativeStatChunk, hw); p++ {
			px := x[p*c : (p+1)*c]
			for j, v := range px {
				ps[j] += v
				pq[j] += v * v
			}
		}
		for j := range ps {
			sum[j] += float64(ps[j])
			sq[j] += float64(pq[j])
		}
	}
	cg := c / l.groups
	cnt := float64(hw * cg)
	mean, mul := w.mean[:c], w.mul[:c]
	for g := 0; g < l.groups; g++ {
		var s, q float64
		for j := g * cg; j < (g+1)*cg; j++ {
			s += sum[j]
			q += sq[j]
		}
		mu := s / cnt
		r := 1 / math.Sqrt(max(q/cnt-mu*mu, 0)+1e-5)
		for j := g * cg; j < (g+1)*cg; j++ {
			mean[j], mul[j] = float32(mu), float32(r*float64(l.scale[j]))
		}
	}
	off := l.offset[:c]
	for p := 0; p < hw; p++ {
		px := x[p*c : (p+1)*c]
		for j, v := range px {
			px[j] = max((v-mean[j])*mul[j]+off[j], 0)
		}
	}
}

// useNative reports whether a backend spec selects the native engine for the grader: the
// default spec ("" or "go") does; "simplego", "go:<options>" and XLA specs keep GoMLX's graph.
func useNative(spec string) bool {
	spec = strings.TrimSpace(spec)
	return spec == "" || spec == "go"
}

// predictRowsNative is predictRows on the native engine.
func predictRowsNative(n *nativeNet, mc ModelConfig, cal *Calibration, rows [][]uint8, flip bool) ([]Prediction, error) {
	b, g := len(rows), mc.Grid()
	dens, counts, probs := make([]float32, b*g*g*NumTypes), make([]float32, b*NumTypes), make([]float32, b*NumGrades)
	if err := n.forward(rows, flip, dens, counts, probs); err != nil {
		return nil, err
	}
	return decodePredictions(mc, cal, b, dens, counts, probs), nil
}
