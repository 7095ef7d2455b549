package qwen

import (
	"bytes"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/tokenizer"
)

func defaultLoRA(t *testing.T, lmOnly bool) *lora.Config {
	t.Helper()
	cfg, err := lora.NewConfig(4, 8, 0, lora.DefaultTargets, lmOnly)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// attachLoRA attaches fresh adapters to m and returns their names, failing the test on error.
func attachLoRA(t *testing.T, m *Model, cfg *lora.Config, seed uint64) []string {
	t.Helper()
	names, err := m.AttachLoRA(cfg, seed)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// randomizeB gives every lora_B random values so the adapter changes the output.
func randomizeB(t *testing.T, ctx *context.Context, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	for _, m := range lora.Adapted(ctx) {
		v := ctx.GetVariableByScopeAndName("/lora/"+dots(m), "lora_B")
		shape := v.Shape()
		vals := make([]float32, shape.Size())
		for i := range vals {
			vals[i] = 0.2 * float32(rng.NormFloat64())
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(vals, shape.Dimensions...)); err != nil {
			t.Fatal(err)
		}
	}
}

func dots(m string) string {
	out := []byte(m)
	for i, c := range out {
		if c == '.' {
			out[i] = '/'
		}
	}
	return string(out)
}

func maxAbsDiff(a, b []float32) float64 {
	d := 0.0
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i]-b[i])))
	}
	return d
}

func TestLoRATargetsAndZeroInit(t *testing.T) {
	m := tinyModel(t)
	p := imagePrompt(testImage(112, 56, 4), "Grade?")
	base, _, err := m.Forward([]Prompt{p})
	if err != nil {
		t.Fatal(err)
	}
	names := attachLoRA(t, m, defaultLoRA(t, true), 1)
	// LM only: 7 projections x 2 layers, none in the vision tower.
	if len(names) != 14 {
		t.Fatalf("adapted %d modules: %v", len(names), names)
	}
	for _, n := range names {
		if n[:6] == "visual" {
			t.Errorf("vision module %s adapted with the LM-only default", n)
		}
	}
	withZeroB, _, err := m.Forward([]Prompt{p})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(base, withZeroB); d != 0 {
		t.Errorf("B = 0 adapter changed logits by %g", d)
	}
	randomizeB(t, m.Ctx, 2)
	changed, _, _ := m.Forward([]Prompt{p})
	if d := maxAbsDiff(base, changed); d < 1e-3 {
		t.Errorf("random B changed logits by only %g", d)
	}
}

// TestLoRASaveLoadMerge: adapter saved (PEFT format, both namings) and loaded gives the same
// logits; the merged checkpoint gives the adapter model's logits within 1e-4.
func TestLoRASaveLoadMerge(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tiny")
	if _, err := InitCheckpoint(dir, InitOptions{Preset: PresetTiny, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	backend, _ := mlbackend.New("go")
	load := func() *Model {
		m, err := Load(dir, backend)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := load()
	cfg := defaultLoRA(t, false) // plain suffix list: also adapts the vision MLPs, as PEFT would
	names := attachLoRA(t, m, cfg, 3)
	if len(names) != 14+3*2 {
		t.Fatalf("suffix targets adapted %d modules, want 20 (LM 14 + vision MLP 6)", len(names))
	}
	randomizeB(t, m.Ctx, 4)
	p := imagePrompt(testImage(112, 84, 6), "Describe")
	want, _, err := m.Forward([]Prompt{p})
	if err != nil {
		t.Fatal(err)
	}
	for _, naming := range []lora.Naming{lora.NamingNew, lora.NamingLegacy} {
		adir := filepath.Join(t.TempDir(), "adapter")
		if err := lora.Save(m.Ctx, cfg, adir, naming); err != nil {
			t.Fatal(err)
		}
		m2 := load()
		if _, got, err := m2.LoadAdapter(adir); err != nil || len(got) != len(names) {
			t.Fatalf("load adapter: %v (%d modules)", err, len(got))
		}
		got, _, err := m2.Forward([]Prompt{p})
		if err != nil {
			t.Fatal(err)
		}
		if d := maxAbsDiff(want, got); d > 1e-6 {
			t.Errorf("naming %d: reloaded adapter logits differ by %g", naming, d)
		}
	}
	merged := filepath.Join(t.TempDir(), "merged")
	if err := ExportMerged(dir, merged, m.Ctx, ExportOptions{ShardBytes: 200 << 10}); err != nil {
		t.Fatal(err)
	}
	mm, err := Load(merged, backend)
	if err != nil {
		t.Fatal(err)
	}
	got, _, err := mm.Forward([]Prompt{p})
	if err != nil {
		t.Fatal(err)
	}
	if d := maxAbsDiff(want, got); d > 1e-4 {
		t.Errorf("merged-model logits differ from adapter-model logits by %g", d)
	} else {
		t.Logf("merged vs adapter max |logit diff| = %.3g", d)
	}

	// The adapter loaded against the base's config alone (no base weights, as export --merge
	// does) merges into the same bytes, shard for shard.
	adir := filepath.Join(t.TempDir(), "adapter")
	if err := lora.Save(m.Ctx, cfg, adir, lora.NamingNew); err != nil {
		t.Fatal(err)
	}
	onBase, err := LoadAdapterOnBase(dir, adir)
	if err != nil || len(onBase.Modules) != len(names) {
		t.Fatalf("LoadAdapterOnBase: %v (%d modules, want %d)", err, len(onBase.Modules), len(names))
	}
	merged2 := filepath.Join(t.TempDir(), "merged")
	if err := ExportMerged(dir, merged2, onBase.Ctx, ExportOptions{ShardBytes: 200 << 10}); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(merged, "*.safetensors*"))
	if len(files) < 3 {
		t.Fatalf("want a sharded export (index + 2 or more shards), got %v", files)
	}
	for _, f := range files {
		a, errA := os.ReadFile(f)
		b, errB := os.ReadFile(filepath.Join(merged2, filepath.Base(f)))
		if errA != nil || errB != nil || !bytes.Equal(a, b) {
			t.Errorf("%s differs between the model's and the config-only adapter's merge (%v, %v)", filepath.Base(f), errA, errB)
		}
	}

	// An adapter whose matrices do not fit the base's layers is refused, naming it.
	small := filepath.Join(t.TempDir(), "small")
	if _, err := InitCheckpoint(small, InitOptions{Preset: PresetSmall, Seed: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadAdapterOnBase(small, adir); err == nil || !strings.Contains(err.Error(), adir) || !strings.Contains(err.Error(), "shape") {
		t.Errorf("adapter on a base of other widths: %v", err)
	}
}

// adaptedTrainInputs attaches LoRA adapters to m (language model only, or also the vision
// MLPs; seed 5, lora_B randomised with seed 6 so that every gradient is non-zero) and
// returns the graph inputs of one training sample with an image.
func adaptedTrainInputs(t *testing.T, m *Model, lmOnly bool) []*tensors.Tensor {
	t.Helper()
	attachLoRA(t, m, defaultLoRA(t, lmOnly), 5)
	randomizeB(t, m.Ctx, 6)
	img, err := m.Processor.ProcessImage(testImage(56, 84, 8))
	if err != nil {
		t.Fatal(err)
	}
	msgs := []tokenizer.Message{
		{Role: "user", Content: []tokenizer.Content{{Image: true}, {Text: "Grade?"}}},
		tokenizer.TextMessage("assistant", "2 moderate"),
	}
	batch, err := m.NewTrainBatch([]TrainSample{{Messages: msgs, Images: []ProcessedImage{img}, Grade: 2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	inputs, err := m.BatchTensors(batch)
	if err != nil {
		t.Fatal(err)
	}
	return inputs
}

// castVariables converts every float variable of ctx to float64, so gradients can be checked
// against finite differences without float32 rounding noise.
func castVariables(t *testing.T, ctx *context.Context) {
	for v := range ctx.IterVariables() {
		val := v.MustValue()
		if val.DType().String() != "Float32" {
			continue
		}
		f32, _ := tensors.CopyFlatData[float32](val)
		f64 := make([]float64, len(f32))
		for i, x := range f32 {
			f64[i] = float64(x)
		}
		if err := v.SetValue(tensors.FromFlatDataAndDimensions(f64, val.Shape().Dimensions...)); err != nil {
			t.Fatal(err)
		}
	}
}

// TestLoRAGradientsMatchFiniteDifferences checks d(loss)/d(lora_A, lora_B) from GoMLX's
// autodiff against central finite differences, in float64, on the tiny model with an image.
func TestLoRAGradientsMatchFiniteDifferences(t *testing.T) {
	m := tinyModel(t)
	inputs := adaptedTrainInputs(t, m, true)
	castVariables(t, m.Ctx)
	const module = "model.layers.1.self_attn.v_proj"
	scope := "/lora/" + dots(module)
	aVar := m.Ctx.GetVariableByScopeAndName(scope, "lora_A")
	bVar := m.Ctx.GetVariableByScopeAndName(scope, "lora_B")
	args := make([]any, len(inputs))
	for i, in := range inputs {
		args[i] = in
	}
	lossAndGrads, err := context.NewExecAny(m.Backend, m.Ctx, func(ctx *context.Context, in []*Node) []*Node {
		loss := LossFromInputs(ctx, m.Config, LossOptions{}, in)
		g := loss.Graph()
		grads := Gradient(loss, aVar.ValueGraph(g), bVar.ValueGraph(g))
		return append([]*Node{loss}, grads...)
	})
	if err != nil {
		t.Fatal(err)
	}
	lossOnly, err := context.NewExecAny(m.Backend, m.Ctx, func(ctx *context.Context, in []*Node) *Node {
		return LossFromInputs(ctx, m.Config, LossOptions{}, in)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := lossAndGrads.Exec(inputs)
	if err != nil {
		t.Fatal(err)
	}
	evalLoss := func() float64 {
		o, err := lossOnly.Exec(inputs)
		if err != nil {
			t.Fatal(err)
		}
		return o[0].Value().(float64)
	}
	for vi, v := range []*context.Variable{aVar, bVar} {
		grad, _ := tensors.CopyFlatData[float64](out[1+vi])
		orig := v.MustValue()
		vals, _ := tensors.CopyFlatData[float64](orig)
		dims := orig.Shape().Dimensions
		for _, i := range []int{0, 3, len(vals) / 2, len(vals) - 1} {
			const eps = 1e-5
			set := func(x float64) {
				c := append([]float64(nil), vals...)
				c[i] = x
				setValue(t, v, tensors.FromFlatDataAndDimensions(c, dims...))
			}
			set(vals[i] + eps)
			up := evalLoss()
			set(vals[i] - eps)
			down := evalLoss()
			set(vals[i])
			fd := (up - down) / (2 * eps)
			if diff := math.Abs(fd - grad[i]); diff > 1e-6*math.Max(1, math.Abs(fd)) {
				t.Errorf("%s[%d]: autodiff %.10g, finite difference %.10g", v.Name(), i, grad[i], fd)
			}
		}
	}
}

// setValue sets a variable's value, failing the test on error.
func setValue(t testing.TB, v *context.Variable, value *tensors.Tensor) {
	t.Helper()
	if err := v.SetValue(value); err != nil {
		t.Fatalf("set %s: %v", v.ScopeAndName(), err)
	}
}
