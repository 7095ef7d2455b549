package qwen

import (
	"bytes"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/quant"
	"github.com/acdtcm/acdtcm/internal/safetensors"
)

// tinyPair loads one tiny checkpoint twice: with float32 and with bfloat16 compute. The
// checkpoint is stored in bfloat16 (as released Qwen checkpoints are), so both models hold
// the same weight values and their differences come from the compute alone.
func tinyPair(t *testing.T, seed uint64) (f32, bf16 *Model) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny")
	if _, err := InitCheckpoint(dir, InitOptions{Preset: PresetTiny, Seed: seed, BF16: true}); err != nil {
		t.Fatal(err)
	}
	return loadPair(t, dir)
}

// loadPair loads the checkpoint dir with float32 and with bfloat16 compute.
func loadPair(t *testing.T, dir string) (f32, bf16 *Model) {
	t.Helper()
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	if f32, err = Load(dir, backend); err != nil {
		t.Fatal(err)
	}
	if bf16, err = LoadWith(dir, backend, LoadOptions{ComputeDType: dtypes.BFloat16}); err != nil {
		t.Fatal(err)
	}
	return f32, bf16
}

// stdDev is the standard deviation of v.
func stdDev(v []float32) float64 {
	mean, sq := 0.0, 0.0
	for _, x := range v {
		mean += float64(x)
	}
	mean /= float64(len(v))
	for _, x := range v {
		sq += (float64(x) - mean) * (float64(x) - mean)
	}
	return math.Sqrt(sq / float64(len(v)))
}

// forwardBoth returns the logits of prompt p from the float32 and the bfloat16 model, and
// the prompt's length.
func forwardBoth(t *testing.T, f32, bf16 *Model, p Prompt) (want, got []float32, S int) {
	t.Helper()
	want, ids, err := f32.Forward([]Prompt{p})
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err = bf16.Forward([]Prompt{p}); err != nil {
		t.Fatal(err)
	}
	return want, got, len(ids[0])
}

// logitsDiff is max|got-want| absolute and relative to the standard deviation of want.
func logitsDiff(want, got []float32) (abs, rel float64) {
	abs = maxAbsDiff(want, got)
	return abs, abs / stdDev(want)
}

// TestBF16LogitsMatchFloat32: bfloat16 compute gives the float32 logits within a few
// percent of their spread, and the same greedy choices (argmax per position, and the
// tokens generated through the bfloat16 KV cache).
func TestBF16LogitsMatchFloat32(t *testing.T) {
	f32, bf16 := tinyPair(t, 7)
	p := imagePrompt(testImage(112, 84, 6), "Grade the acne in this photo")
	want, got, S := forwardBoth(t, f32, bf16, p)
	V := f32.Config.Text.VocabSize
	delta, rel := logitsDiff(want, got)
	same := 0
	for s := 0; s < S; s++ {
		w, g := want[s*V:(s+1)*V], got[s*V:(s+1)*V]
		if argmax(w) == argmax(g) {
			same++
		} else {
			t.Logf("position %d: f32 picks %d, bf16 %d; f32 margin %.4g", s, argmax(w), argmax(g), w[argmax(w)]-w[argmax(g)])
		}
	}
	t.Logf("bf16 vs f32 logits over %d positions: max|Δ| = %.4g = %.4f·std(logits) (std %.3g); argmax equal at %d/%d", S, delta, rel, stdDev(want), same, S)
	gc := f32.Generation
	gc.MaxNewTokens = 8
	g32, err := f32.Generate([]Prompt{p}, gc)
	if err != nil {
		t.Fatal(err)
	}
	g16, err := bf16.Generate([]Prompt{p}, gc)
	if err != nil {
		t.Fatal(err)
	}
	agree := 0
	for i := range min(len(g32[0].TokenIDs), len(g16[0].TokenIDs)) {
		if g32[0].TokenIDs[i] == g16[0].TokenIDs[i] {
			agree++
		}
	}
	t.Logf("greedy generation (KV cache): f32 %v, bf16 %v: %d of %d equal", g32[0].TokenIDs, g16[0].TokenIDs, agree, gc.MaxNewTokens)
	// Bounds: measured 0.067 std, 95/99 positions and 7/8 tokens (every flip is a near-tie
	// of the random tiny model, whose logits spread only 0.41).
	if rel > 0.1 {
		t.Errorf("bf16 logits differ from float32 by %.3f standard deviations (bound 0.1)", rel)
	}
	if float64(same) < 0.9*float64(S) {
		t.Errorf("greedy choice equal at only %d of %d positions", same, S)
	}
	if 4*agree < 3*gc.MaxNewTokens {
		t.Errorf("bf16 greedy tokens %v differ from float32's %v at more than a quarter of the steps", g16[0].TokenIDs, g32[0].TokenIDs)
	}
}

// loraLossAndGrads attaches the same adapter to m (adaptedTrainInputs) and returns the loss
// of a training sample, the gradients of every lora_A and lora_B, the adapter variables and
// a function evaluating the loss again.
func loraLossAndGrads(t *testing.T, m *Model) (float32, [][]float32, []*context.Variable, func() float32) {
	t.Helper()
	inputs := adaptedTrainInputs(t, m, true)
	var params []*context.Variable
	for _, mod := range lora.Adapted(m.Ctx) {
		for _, name := range []string{"lora_A", "lora_B"} {
			params = append(params, m.Ctx.GetVariableByScopeAndName("/lora/"+dots(mod), name))
		}
	}
	exec, err := context.NewExecAny(m.Backend, m.Ctx, func(ctx *context.Context, in []*Node) []*Node {
		loss := LossFromInputs(ctx, m.Config, LossOptions{}, in)
		nodes := make([]*Node, len(params))
		for i, p := range params {
			nodes[i] = p.ValueGraph(loss.Graph())
		}
		return append([]*Node{loss}, Gradient(loss, nodes...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	run := func() []*tensors.Tensor {
		out, err := exec.Exec(inputs)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	out := run()
	grads := make([][]float32, len(params))
	for i := range params {
		if d := out[1+i].DType(); d != dtypes.Float32 {
			t.Fatalf("gradient of %s/%s is %s, want Float32", params[i].Scope(), params[i].Name(), d)
		}
		grads[i], _ = tensors.CopyFlatData[float32](out[1+i])
	}
	loss := func() float32 { return run()[0].Value().(float32) }
	return out[0].Value().(float32), grads, params, loss
}

// TestBF16LoRAGradients: under bfloat16 compute the loss is float32, the float32 LoRA
// parameters get float32 gradients close to the float32 model's, and a gradient step on them
// lowers the loss.
func TestBF16LoRAGradients(t *testing.T) {
	f32, bf16 := tinyPair(t, 9)
	loss32, g32, _, _ := loraLossAndGrads(t, f32)
	loss16, g16, params, lossNow := loraLossAndGrads(t, bf16)
	t.Logf("loss f32 %.6f, bf16 %.6f (rel %.2g)", loss32, loss16, math.Abs(float64(loss16-loss32))/float64(loss32))
	if math.Abs(float64(loss16-loss32)) > 0.02*float64(loss32) {
		t.Errorf("bf16 loss %g, float32 loss %g", loss16, loss32)
	}
	var num, den, worst float64
	for i := range g32 {
		var n, d float64
		for k := range g32[i] {
			diff := float64(g16[i][k] - g32[i][k])
			n += diff * diff
			d += float64(g32[i][k]) * float64(g32[i][k])
		}
		num, den = num+n, den+d
		worst = math.Max(worst, math.Sqrt(n/d))
		if v := params[i].Shape().DType; v != dtypes.Float32 {
			t.Errorf("%s/%s is %s under bf16 compute, want Float32", params[i].Scope(), params[i].Name(), v)
		}
	}
	global := math.Sqrt(num / den)
	t.Logf("LoRA gradients bf16 vs f32 over %d tensors: ‖Δg‖/‖g‖ = %.4f overall, worst tensor %.4f", len(g32), global, worst)
	if global > 0.05 || worst > 0.1 {
		t.Errorf("bf16 LoRA gradients differ from float32: relative error %.3f overall, %.3f worst tensor (bounds 0.05, 0.1)", global, worst)
	}
	// One normalised gradient-descent step on the float32 adapter variables lowers the loss.
	lr := 0.05 / math.Sqrt(den)
	for i, p := range params {
		vals, _ := tensors.CopyFlatData[float32](p.MustValue())
		for k := range vals {
			vals[k] -= float32(lr) * g16[i][k]
		}
		setValue(t, p, tensors.FromFlatDataAndDimensions(vals, p.Shape().Dimensions...))
	}
	after := lossNow()
	t.Logf("bf16 loss after one step: %.6f -> %.6f", loss16, after)
	if after >= loss16 {
		t.Errorf("a gradient step under bf16 compute did not lower the loss: %g -> %g", loss16, after)
	}
}

// TestBF16WeightMemory: with bfloat16 compute every base weight is a bfloat16 variable,
// holding exactly half the bytes of the float32 model, while LoRA adapters stay float32.
func TestBF16WeightMemory(t *testing.T) {
	f32, bf16 := tinyPair(t, 3)
	attachLoRA(t, bf16, defaultLoRA(t, true), 1)
	bytes := func(m *Model, dt dtypes.DType) (n int, size uintptr) {
		for v := range m.Ctx.IterVariables() {
			if strings.HasPrefix(v.Scope(), "/lora/") {
				if v.Shape().DType != dtypes.Float32 {
					t.Errorf("adapter variable %s/%s is %s", v.Scope(), v.Name(), v.Shape().DType)
				}
				continue
			}
			if v.Shape().DType != dt {
				t.Errorf("base variable %s/%s is %s, want %s", v.Scope(), v.Name(), v.Shape().DType, dt)
			}
			if v.Trainable {
				t.Errorf("base variable %s/%s is trainable", v.Scope(), v.Name())
			}
			n++
			size += v.Shape().Memory()
		}
		return n, size
	}
	n32, size32 := bytes(f32, dtypes.Float32)
	n16, size16 := bytes(bf16, dtypes.BFloat16)
	t.Logf("base weights: %d float32 variables %d bytes; %d bfloat16 variables %d bytes", n32, size32, n16, size16)
	if want := len(f32.Config.ExpectedTensors()); n16 != want || n32 != want {
		t.Errorf("%d/%d base variables, want %d", n32, n16, want)
	}
	if 2*size16 != size32 {
		t.Errorf("bfloat16 weights take %d bytes, float32 %d: want exactly half", size16, size32)
	}
	if _, err := ParseComputeDType("bf16"); err != nil {
		t.Error(err)
	}
	if _, err := ParseComputeDType("fp16"); err == nil {
		t.Error("fp16 compute should be refused")
	}
}

// TestBF16QuantizedBase: an nf4 checkpoint loads under bfloat16 compute: packed weights stay
// packed and dequantize to bfloat16 in the graph, the kept float weights are bfloat16, and
// the logits match the float32-compute ones.
func TestBF16QuantizedBase(t *testing.T) {
	root := t.TempDir()
	src, qdir := filepath.Join(root, "f32"), filepath.Join(root, "nf4")
	if _, err := InitCheckpoint(src, InitOptions{Preset: PresetTiny, Seed: 13}); err != nil {
		t.Fatal(err)
	}
	if _, err := quant.ConvertCheckpoint(src, qdir, quant.ConvertOptions{Method: quant.NF4, Keep: []string{"embeddings"}, Canonical: CanonicalName}); err != nil {
		t.Fatal(err)
	}
	f32, bf16 := loadPair(t, qdir)
	if !IsQuantized(bf16.Ctx, "model.layers.0.mlp.up_proj.weight") {
		t.Error("nf4 weight not held packed under bf16 compute")
	}
	if dt := bf16.Ctx.GetVariableByScopeAndName("/model/embed_tokens", "weight").Shape().DType; dt != dtypes.BFloat16 {
		t.Errorf("kept embedding is %s under bf16 compute", dt)
	}
	p := imagePrompt(testImage(56, 56, 2), "Grade?")
	want, got, _ := forwardBoth(t, f32, bf16, p)
	abs, rel := logitsDiff(want, got)
	t.Logf("nf4 base, bf16 vs f32 compute: max|Δ logits| = %.4g = %.4f·std", abs, rel)
	if rel > 0.1 {
		t.Errorf("bf16 logits on the nf4 base differ by %.3f standard deviations (bound 0.1)", rel)
	}
}

// TestBF16CheckpointLoadsWithoutConversion: a checkpoint stored in bf16 and loaded for bf16
// compute holds exactly the stored bytes (the direct copy), and equals what the float32 round
// trip gives (bf16 -> float32 -> bf16 is lossless).
func TestBF16CheckpointLoadsWithoutConversion(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny-bf16")
	if _, err := InitCheckpoint(dir, InitOptions{Preset: PresetTiny, Seed: 5, BF16: true}); err != nil {
		t.Fatal(err)
	}
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	m, err := LoadWith(dir, backend, LoadOptions{ComputeDType: dtypes.BFloat16})
	if err != nil {
		t.Fatal(err)
	}
	ckpt, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer ckpt.Close()
	checked := 0
	for _, spec := range m.Config.ExpectedTensors() {
		raw, err := ckpt.Bytes(spec.Name)
		if err != nil {
			t.Fatal(err)
		}
		scope, name := scopeAndName(spec.Name)
		v := m.Ctx.GetVariableByScopeAndName(scope, name)
		if v == nil || v.Shape().DType != dtypes.BFloat16 {
			t.Fatalf("%s: variable %v", spec.Name, v)
		}
		f32, err := ckpt.Float32(spec.Name, spec.Shape)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip, err := weightTensor(f32, spec.Shape, dtypes.BFloat16)
		if err != nil {
			t.Fatal(err)
		}
		got, want := tensorBytes(t, v.MustValue()), tensorBytes(t, roundTrip)
		if !bytes.Equal(got, raw) || !bytes.Equal(got, want) {
			t.Fatalf("%s: loaded bytes differ from the stored ones or from the float32 round trip", spec.Name)
		}
		checked++
	}
	if checked == 0 {
		t.Fatal("no tensor checked")
	}
}

func tensorBytes(t *testing.T, x *tensors.Tensor) []byte {
	t.Helper()
	var out []byte
	x.ConstBytes(func(b []byte) { out = slices.Clone(b) })
	return out
}

// BenchmarkLoadBF16 times loading a bf16 checkpoint for bf16 compute, with the direct copy
// and with the float32 round trip it replaced, on the pure-Go backend:
//
//	ACDTCM_BENCH_CHECKPOINT=/tmp/qwen-3b go test -tags noxla ./internal/qwen/ -run XXX -bench LoadBF16 -benchtime 1x
//
// (acdtcm model init --preset 3b --bf16 --out /tmp/qwen-3b). Without the variable it uses the
// tiny preset.
func BenchmarkLoadBF16(b *testing.B) {
	dir := os.Getenv("ACDTCM_BENCH_CHECKPOINT")
	if dir == "" {
		dir = filepath.Join(b.TempDir(), "tiny-bf16")
		if _, err := InitCheckpoint(dir, InitOptions{Preset: PresetTiny, Seed: 5, BF16: true}); err != nil {
			b.Fatal(err)
		}
	}
	backend, err := mlbackend.New("go")
	if err != nil {
		b.Fatal(err)
	}
	for _, direct := range []bool{true, false} {
		b.Run(map[bool]string{true: "direct", false: "float32-round-trip"}[direct], func(b *testing.B) {
			loadBF16Direct = direct
			defer func() { loadBF16Direct = true }()
			for range b.N {
				m, err := LoadWith(dir, backend, LoadOptions{ComputeDType: dtypes.BFloat16})
				if err != nil {
					b.Fatal(err)
				}
				m.Ctx = nil
				runtime.GC()
			}
		})
	}
}

// weightTensor is the float32 route to a weight: values rounded to dtype (nearest even),
// as the loader did before it decoded stored bytes in place; the reference of
// TestBF16CheckpointLoadsWithoutConversion.
func weightTensor(values []float32, shape []int, dtype dtypes.DType) (*tensors.Tensor, error) {
	if dtype == dtypes.Float32 {
		return tensors.FromFlatDataAndDimensions(values, shape...), nil
	}
	t := tensors.FromShape(shapes.Make(dtype, shape...))
	err := t.MutableBytes(func(b []byte) { safetensors.PutBF16(b, values) })
	return t, err
}
