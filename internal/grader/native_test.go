package grader

import (
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/gonum"

	"github.com/acdtcm/acdtcm/internal/grader/weights"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
)

// randomCheckpoint writes a checkpoint of mc with random weights, large enough that every
// layer matters (unlike the training initialisation's near-zero heads), and reads it back.
func randomCheckpoint(t *testing.T, mc ModelConfig, seed uint64) *Checkpoint {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 11))
	ctx := context.New()
	add := func(scope, name string, std, mean float64, dims ...int) {
		n := 1
		for _, d := range dims {
			n *= d
		}
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(mean + std*rng.NormFloat64())
		}
		ctx.InAbsPath("/"+modelScope+"/"+scope).VariableWithValue(name, tensors.FromFlatDataAndDimensions(v, dims...))
	}
	norm := func(scope string, c int) {
		if mc.Norm > 0 {
			add(scope+"/norm", "scale", 0.3, 1, c)
			add(scope+"/norm", "offset", 0.3, 0, c)
		}
	}
	cin := mc.inputChannels()
	if mc.Backbone == BackboneMobileNetV2 {
		addPerturbedMobileNetV2(t, ctx, rng)
		cin = mobileNetV2Channels()
	} else if mc.Patch > 1 {
		fan := mc.Patch * mc.Patch * cin
		add("stem", "weights", 1/math.Sqrt(float64(fan)), 0, fan, mc.PatchOut)
		add("stem", "bias", 0.2, 0, mc.PatchOut)
		norm("stem", mc.PatchOut)
		cin = mc.PatchOut
	}
	for i, l := range mc.Layers {
		scope := fmt.Sprintf("conv%d", i)
		add(scope, "weights", 1/math.Sqrt(float64(9*cin)), 0, 3, 3, cin, l.Channels)
		add(scope, "biases", 0.2, 0, l.Channels)
		norm(scope, l.Channels)
		cin = l.Channels
	}
	add("density", "weights", 1/math.Sqrt(float64(cin)), 0, cin, NumTypes)
	add("density", "bias", 0.5, 0.5, NumTypes)
	gin := NumTypes + 1 + cin
	add("grade_hidden", "weights", 1/math.Sqrt(float64(gin)), 0, gin, mc.GradeHidden)
	add("grade_hidden", "bias", 0.2, 0, mc.GradeHidden)
	add("grade_out", "weights", 1/math.Sqrt(float64(mc.GradeHidden)), 0, mc.GradeHidden, NumGrades)
	add("grade_out", "bias", 0.2, 0, NumGrades)
	path := filepath.Join(t.TempDir(), "random.ckpt")
	if err := SaveCheckpoint(path, ctx, mc, nil, nil, true); err != nil {
		t.Fatal(err)
	}
	ck, err := ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

// addPerturbedMobileNetV2 adds the pretrained backbone's weights to ctx with random
// BatchNorm parameters and statistics, so that folding them (native engine) is tested.
func addPerturbedMobileNetV2(t *testing.T, ctx *context.Context, rng *rand.Rand) {
	t.Helper()
	pre, err := pretrainedMobileNetV2()
	if err != nil {
		t.Fatal(err)
	}
	for key, tv := range pre {
		v := tensors.MustCopyFlatData[float32](tv)
		for i := range v {
			switch {
			case strings.HasSuffix(key, "/gamma"):
				v[i] *= float32(1 + 0.3*rng.NormFloat64())
			case strings.HasSuffix(key, "/beta"), strings.HasSuffix(key, "/moving_mean"):
				v[i] += float32(0.2 * rng.NormFloat64())
			case strings.HasSuffix(key, "/moving_variance"):
				v[i] *= float32(math.Exp(0.3 * rng.NormFloat64()))
			}
		}
		layer, param, _ := strings.Cut(key, "/")
		ctx.InAbsPath("/"+modelScope+"/"+BackboneMobileNetV2+"/"+layer).
			VariableWithValue(param, tensors.FromFlatDataAndDimensions(v, tv.Shape().Dimensions...))
	}
}

// randomRows makes n random resized photos for mc.
func randomRows(mc ModelConfig, n int, seed uint64) [][]uint8 {
	rng := rand.New(rand.NewPCG(seed, 5))
	rows := make([][]uint8, n)
	for i := range rows {
		rows[i] = make([]uint8, mc.InputSize*mc.InputSize*3)
		for k := range rows[i] {
			rows[i][k] = uint8(rng.IntN(256))
		}
	}
	return rows
}

// maxRelDiff is max |got - want| / max(max |want|, 1e-6).
func maxRelDiff(got, want []float32) float64 {
	var d, m float64
	for i := range want {
		d = max(d, math.Abs(float64(got[i])-float64(want[i])))
		m = max(m, math.Abs(float64(want[i])))
	}
	return d / max(m, 1e-6)
}

// TestNativeMatchesGoMLX runs the native engine and the GoMLX graph on the same weights and
// inputs: density, counts and grade probabilities must agree to 1e-4 of their magnitude, for
// several architectures (with and without stem, norm and high-pass channels, odd map sizes,
// channel counts that are not multiples of 8), batch sizes that take both parallel paths,
// and both the assembly and the Go micro-kernels.
func TestNativeMatchesGoMLX(t *testing.T) {
	cases := []struct {
		name  string
		mc    ModelConfig
		batch []int
	}{
		{"tiny", tinyModel(), []int{1, 4}},
		{"patch2-odd-nonorm", ModelConfig{InputSize: 30, Patch: 2, PatchOut: 6, Layers: []Layer{{5, 1}, {12, 1}}, GradeHidden: 5}, []int{3}},
		{"patch3-odd-norm3", ModelConfig{InputSize: 42, Patch: 3, PatchOut: 9, Layers: []Layer{{9, 2}, {6, 1}, {24, 1}}, Norm: 3, HighPass: true, GradeHidden: 7}, []int{2, 5}},
		{"wide", ModelConfig{InputSize: 64, Patch: 4, PatchOut: 40, Layers: []Layer{{48, 2}, {40, 1}}, Norm: 8, HighPass: true, GradeHidden: 16}, []int{2}},
		{"mobilenetv2", ModelConfig{InputSize: 56, Backbone: BackboneMobileNetV2, Layers: []Layer{{16, 1}}, Norm: 4, GradeHidden: 8}, []int{1, 4}},
	}
	for ci, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			compareNative(t, randomCheckpoint(t, c.mc, uint64(ci)+1), c.batch, uint64(ci)+100)
		})
	}
	t.Run("builtin", func(t *testing.T) {
		if len(weights.Grader) == 0 {
			t.Skip("no built-in weights")
		}
		ck, err := ParseCheckpoint(weights.Grader)
		if err != nil {
			t.Fatal(err)
		}
		compareNative(t, ck, []int{3}, 7)
	})
}

func compareNative(t *testing.T, ck *Checkpoint, batches []int, seed uint64) {
	t.Helper()
	m, err := fromCheckpoint(ck, "simplego")
	if err != nil {
		t.Fatal(err)
	}
	if m.native != nil {
		t.Fatal(`backend "simplego" should select the GoMLX graph`)
	}
	net, err := newNativeNet(ck)
	if err != nil {
		t.Fatal(err)
	}
	mc := m.Config
	s, nc, g := mc.InputSize, mc.inputChannels(), mc.Grid()
	for _, b := range batches {
		rows := randomRows(mc, b, seed+uint64(b))
		img := make([]float32, b*s*s*nc)
		var scratch featureScratch
		for i, r := range rows {
			fillInput(img[i*s*s*nc:(i+1)*s*s*nc], r, s, false, 1, mc.HighPass, &scratch)
		}
		outs, err := m.exec.Exec(tensors.FromFlatDataAndDimensions(img, b, s, s, nc))
		if err != nil {
			t.Fatal(err)
		}
		want := [][]float32{tensors.MustCopyFlatData[float32](outs[0]), tensors.MustCopyFlatData[float32](outs[1]), tensors.MustCopyFlatData[float32](outs[2])}
		for _, asm := range []bool{true, false} {
			if asm && !nativeAsm {
				continue
			}
			saved := nativeAsm
			nativeAsm = asm
			got := [][]float32{make([]float32, b*g*g*NumTypes), make([]float32, b*NumTypes), make([]float32, b*NumGrades)}
			err := net.forward(rows, false, got[0], got[1], got[2])
			nativeAsm = saved
			if err != nil {
				t.Fatal(err)
			}
			for i, name := range []string{"density", "counts", "probabilities"} {
				d := maxRelDiff(got[i], want[i])
				t.Logf("batch %d asm %v: %s max relative difference %.2g", b, asm, name, d)
				if d > 1e-4 || math.IsNaN(d) {
					t.Errorf("batch %d asm %v: %s differs from GoMLX by %.3g of its magnitude", b, asm, name, d)
				}
			}
		}
	}
}

// gemmOperands returns seeded random A [m x k] and B [k x n], B packed, and C for the packed width.
func gemmOperands(m, k, n int) (a, w []float32, pb *packedB, c []float32) {
	rng := rand.New(rand.NewPCG(1, 1))
	a, w = make([]float32, m*k), make([]float32, k*n)
	for i := range a {
		a[i] = float32(rng.NormFloat64())
	}
	for i := range w {
		w[i] = float32(rng.NormFloat64())
	}
	pb = packB(w, k, n)
	return a, w, pb, make([]float32, m*pb.npad)
}

// BenchmarkNativeGEMM times one im2col tile of the built-in network's 3x3 convolutions
// (54 x 288 times 288 x 32) with the assembly and Go micro-kernels and with gonum's Sgemm.
func BenchmarkNativeGEMM(b *testing.B) {
	const m, k, n = 54, 288, 32
	a, w, pb, c := gemmOperands(m, k, n)
	flops := func(b *testing.B) { b.ReportMetric(2*m*k*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s") }
	for _, asm := range []bool{true, false} {
		b.Run(map[bool]string{true: "asm", false: "go"}[asm], func(b *testing.B) {
			if asm && !nativeAsm {
				b.Skip("no AVX2/FMA kernels")
			}
			saved := nativeAsm
			nativeAsm = asm
			defer func() { nativeAsm = saved }()
			for b.Loop() {
				gemmTile(a, m, pb, c)
			}
			flops(b)
		})
	}
	b.Run("gonum-sgemm", func(b *testing.B) {
		impl := gonum.Implementation{}
		for b.Loop() {
			impl.Sgemm(blas.NoTrans, blas.NoTrans, m, n, k, 1, a, k, w, n, 0, c, n)
		}
		flops(b)
	})
}

// BenchmarkGEMMQwen3BShape times one matmul of a Qwen2.5-VL-3B MLP projection over a photo's
// prompt (654 rows: one 448x448 photo's grading prompt is 638 tokens with the random 3B
// checkpoint's tokenizer; hidden 2048, intermediate 11008: 29.5 GFLOP) with the native
// micro-kernel on one goroutine and with simplego (what Qwen2.5-VL runs on the CPU today, on
// every core). It measures what a native CPU forward pass for Qwen2.5-VL would gain; both
// compute the same product (checked to 1e-4 relative before timing).
func BenchmarkGEMMQwen3BShape(b *testing.B) {
	const m, k, n = 654, 2048, 11008
	a, w, pb, c := gemmOperands(m, k, n)
	backend, err := mlbackend.NewForInference("go")
	if err != nil {
		b.Fatal(err)
	}
	exec := graph.MustNewExec(backend, func(x, y *graph.Node) *graph.Node { return graph.Dot(x, y) })
	at, wt := tensors.FromFlatDataAndDimensions(a, m, k), tensors.FromFlatDataAndDimensions(w, k, n)
	gemmTile(a, m, pb, c)
	ref := exec.MustExec(at, wt)[0].Value().([][]float32)
	for _, idx := range [][2]int{{0, 0}, {5, 7}, {m - 1, n - 1}, {300, 5000}} {
		got, want := c[idx[0]*pb.npad+idx[1]], ref[idx[0]][idx[1]]
		if math.Abs(float64(got-want)) > 1e-4*math.Max(1, math.Abs(float64(want))) {
			b.Fatalf("native c%v = %v, simplego %v", idx, got, want)
		}
	}
	flops := func(b *testing.B) { b.ReportMetric(2*m*k*n*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s") }
	b.Run("native-1-goroutine", func(b *testing.B) {
		for b.Loop() {
			gemmTile(a, m, pb, c)
		}
		flops(b)
	})
	b.Run("simplego", func(b *testing.B) {
		for b.Loop() {
			exec.MustExec(at, wt)[0].FinalizeAll()
		}
		flops(b)
	})
}

// TestNativeDefaultAndConcurrent checks that the default backend selects the native engine
// and that concurrent PredictPreprocessed calls give what serial calls give.
func TestNativeDefaultAndConcurrent(t *testing.T) {
	m, err := fromCheckpoint(randomCheckpoint(t, tinyModel(), 3), "go")
	if err != nil {
		t.Fatal(err)
	}
	if m.native == nil {
		t.Fatal(`backend "go" should select the native engine`)
	}
	batches := make([][][]uint8, 6)
	want := make([][]Prediction, len(batches))
	for i := range batches {
		batches[i] = randomRows(m.Config, 1+i%4, uint64(i))
		if want[i], err = m.PredictPreprocessed(batches[i]); err != nil {
			t.Fatal(err)
		}
	}
	errs := make(chan error, len(batches))
	for i := range batches {
		go func() {
			got, err := m.PredictPreprocessed(batches[i])
			if err == nil && fmt.Sprint(got) != fmt.Sprint(want[i]) {
				err = fmt.Errorf("batch %d: concurrent result differs", i)
			}
			errs <- err
		}()
	}
	for range batches {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
