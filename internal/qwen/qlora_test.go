package qwen

import (
	"math"
	"path/filepath"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/quant"
	"github.com/acdtcm/acdtcm/internal/safetensors"
)

// writeDequantized writes a float32 checkpoint holding the dequantized weights of the
// quantized checkpoint qdir (same config without quantization_config).
func writeDequantized(t *testing.T, src, qdir, out string) {
	t.Helper()
	qc, err := quant.ReadConfig(qdir)
	if err != nil || qc == nil {
		t.Fatalf("read quantization config: %v", err)
	}
	cfg, err := LoadConfig(qdir)
	if err != nil {
		t.Fatal(err)
	}
	ckpt, err := safetensors.OpenCheckpoint(qdir)
	if err != nil {
		t.Fatal(err)
	}
	defer ckpt.Close()
	var out32 []safetensors.Tensor
	for _, spec := range cfg.ExpectedTensors() {
		vals, err := ReadWeightFloat32(ckpt, qc, spec.Name, spec.Shape)
		if err != nil {
			t.Fatal(err)
		}
		out32 = append(out32, safetensors.F32Tensor(spec.Name, spec.Shape, vals))
	}
	if err := CopySideFiles(src, out); err != nil {
		t.Fatal(err)
	}
	if err := safetensors.WriteFile(filepath.Join(out, "model.safetensors"), out32, nil); err != nil {
		t.Fatal(err)
	}
}

// TestQLoRAGradients: LoRA on a quantized (nf4, vision and LM) base trains: only the
// adapter is trainable, the base weights stay packed, and the loss and the gradients of
// lora_A and lora_B equal those of a float32 model holding the dequantized weights (the
// in-graph dequantization is exact and transparent to autodiff).
func TestQLoRAGradients(t *testing.T) {
	root := t.TempDir()
	src, qdir, ddir := filepath.Join(root, "f32"), filepath.Join(root, "nf4"), filepath.Join(root, "deq")
	if _, err := InitCheckpoint(src, InitOptions{Preset: PresetTiny, Seed: 21}); err != nil {
		t.Fatal(err)
	}
	if _, err := quant.ConvertCheckpoint(src, qdir, quant.ConvertOptions{Method: quant.NF4, Keep: []string{"embeddings"}, Canonical: CanonicalName}); err != nil {
		t.Fatal(err)
	}
	writeDequantized(t, src, qdir, ddir)
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	const module = "model.layers.1.mlp.down_proj"
	lossAndGrads := func(dir string) (loss float64, grads [][]float32, m *Model) {
		m, err := Load(dir, backend)
		if err != nil {
			t.Fatal(err)
		}
		inputs := adaptedTrainInputs(t, m, false)
		scope := "/lora/" + dots(module)
		aVar := m.Ctx.GetVariableByScopeAndName(scope, "lora_A")
		bVar := m.Ctx.GetVariableByScopeAndName(scope, "lora_B")
		exec, err := context.NewExecAny(m.Backend, m.Ctx, func(ctx *context.Context, in []*Node) []*Node {
			loss := LossFromInputs(ctx, m.Config, LossOptions{}, in)
			g := loss.Graph()
			return append([]*Node{loss}, Gradient(loss, aVar.ValueGraph(g), bVar.ValueGraph(g))...)
		})
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Exec(inputs)
		if err != nil {
			t.Fatal(err)
		}
		loss = float64(out[0].Value().(float32))
		for _, o := range out[1:] {
			g, _ := tensors.CopyFlatData[float32](o)
			grads = append(grads, g)
		}
		return loss, grads, m
	}
	qLoss, qGrads, qm := lossAndGrads(qdir)
	dLoss, dGrads, _ := lossAndGrads(ddir)
	if !IsQuantized(qm.Ctx, module+".weight") || !IsQuantized(qm.Ctx, "visual.blocks.0.attn.qkv.weight") {
		t.Fatal("base weights are not held quantized")
	}
	for v := range qm.Ctx.IterVariables() {
		isLoRA := v.Name() == "lora_A" || v.Name() == "lora_B"
		if v.Trainable != isLoRA {
			t.Errorf("variable %s trainable=%v", v.ScopeAndName(), v.Trainable)
		}
	}
	if math.Abs(qLoss-dLoss) > 1e-5*math.Abs(dLoss) {
		t.Errorf("loss on quantized base %g, on dequantized float32 %g", qLoss, dLoss)
	}
	for i, name := range []string{"lora_A", "lora_B"} {
		var num, den float64
		for j := range qGrads[i] {
			d := float64(qGrads[i][j] - dGrads[i][j])
			num += d * d
			den += float64(dGrads[i][j]) * float64(dGrads[i][j])
		}
		if den == 0 {
			t.Fatalf("gradient of %s is zero", name)
		}
		if rel := math.Sqrt(num / den); rel > 1e-4 {
			t.Errorf("gradient of %s differs by %.2g (relative) between the quantized and the dequantized base", name, rel)
		}
	}
	t.Logf("loss %.6f (quantized base) vs %.6f (dequantized float32)", qLoss, dLoss)
}
