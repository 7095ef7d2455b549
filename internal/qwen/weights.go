package qwen

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/quant"
	"github.com/acdtcm/acdtcm/internal/safetensors"
)

// CanonicalName maps a checkpoint tensor name to acdtcm's canonical spelling, the legacy
// layout Qwen shipped (`model.*` for the language model, `visual.*` for the vision tower).
// Newer transformers save `model.language_model.*` and `model.visual.*`; both load.
func CanonicalName(name string) string {
	switch {
	case strings.HasPrefix(name, "model.language_model."):
		return "model." + strings.TrimPrefix(name, "model.language_model.")
	case strings.HasPrefix(name, "model.visual."):
		return strings.TrimPrefix(name, "model.")
	}
	return name
}

// TensorSpec is one expected weight: its canonical name and shape.
type TensorSpec struct {
	Name  string
	Shape []int
}

// ExpectedTensors lists every weight the model needs for cfg, in a stable order. With tied
// embeddings there is no lm_head.weight (the embedding matrix is reused).
func (c *Config) ExpectedTensors() []TensorSpec {
	t, v := c.Text, c.Vision
	var specs []TensorSpec
	add := func(name string, shape ...int) { specs = append(specs, TensorSpec{name, shape}) }
	H, I, D := t.HiddenSize, t.IntermediateSize, t.HeadDim()
	add("model.embed_tokens.weight", t.VocabSize, H)
	for l := 0; l < t.NumHiddenLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		add(p+"input_layernorm.weight", H)
		add(p+"self_attn.q_proj.weight", t.NumAttentionHeads*D, H)
		add(p+"self_attn.q_proj.bias", t.NumAttentionHeads*D)
		add(p+"self_attn.k_proj.weight", t.NumKeyValueHeads*D, H)
		add(p+"self_attn.k_proj.bias", t.NumKeyValueHeads*D)
		add(p+"self_attn.v_proj.weight", t.NumKeyValueHeads*D, H)
		add(p+"self_attn.v_proj.bias", t.NumKeyValueHeads*D)
		add(p+"self_attn.o_proj.weight", H, t.NumAttentionHeads*D)
		add(p+"post_attention_layernorm.weight", H)
		add(p+"mlp.gate_proj.weight", I, H)
		add(p+"mlp.up_proj.weight", I, H)
		add(p+"mlp.down_proj.weight", H, I)
	}
	add("model.norm.weight", H)
	if !t.TieWordEmbeddings {
		add("lm_head.weight", t.VocabSize, H)
	}
	C, VI := v.HiddenSize, v.IntermediateSize
	add("visual.patch_embed.proj.weight", C, v.InChannels, v.TemporalPatchSize, v.PatchSize, v.PatchSize)
	for b := 0; b < v.Depth; b++ {
		p := fmt.Sprintf("visual.blocks.%d.", b)
		add(p+"norm1.weight", C)
		add(p+"norm2.weight", C)
		add(p+"attn.qkv.weight", 3*C, C)
		add(p+"attn.qkv.bias", 3*C)
		add(p+"attn.proj.weight", C, C)
		add(p+"attn.proj.bias", C)
		add(p+"mlp.gate_proj.weight", VI, C)
		add(p+"mlp.gate_proj.bias", VI)
		add(p+"mlp.up_proj.weight", VI, C)
		add(p+"mlp.up_proj.bias", VI)
		add(p+"mlp.down_proj.weight", C, VI)
		add(p+"mlp.down_proj.bias", C)
	}
	M := C * v.SpatialMergeSize * v.SpatialMergeSize
	add("visual.merger.ln_q.weight", C)
	add("visual.merger.mlp.0.weight", M, M)
	add("visual.merger.mlp.0.bias", M)
	add("visual.merger.mlp.2.weight", v.OutHiddenSize, M)
	add("visual.merger.mlp.2.bias", v.OutHiddenSize)
	return specs
}

// NumParameters counts the elements of every expected tensor.
func (c *Config) NumParameters() (text, vision int64) {
	for _, s := range c.ExpectedTensors() {
		n := int64(1)
		for _, d := range s.Shape {
			n *= int64(d)
		}
		if strings.HasPrefix(s.Name, "visual.") {
			vision += n
		} else {
			text += n
		}
	}
	return
}

// scopeAndName splits a canonical tensor name into a GoMLX variable scope and name:
// "model.layers.0.mlp.up_proj.weight" -> "/model/layers/0/mlp/up_proj", "weight".
func scopeAndName(name string) (string, string) {
	i := strings.LastIndex(name, ".")
	return "/" + strings.ReplaceAll(name[:i], ".", "/"), name[i+1:]
}

// LoadWeights reads every expected tensor of cfg from the checkpoint directory into ctx as
// float32 variables (frozen: not trainable). Tensors are converted one at a time from the
// memory-mapped file, so the float32 copy in ctx is the only full copy held. Missing
// tensors, wrong shapes and truncated files are errors naming the tensor and the file.
//
// A checkpoint written by `acdtcm quantize` (config.json with quantization_config) loads
// its quantized weights in packed form; param dequantizes them inside the graph.
func LoadWeights(ctx *context.Context, dir string, cfg *Config) error {
	return LoadWeightsAs(ctx, dir, cfg, dtypes.Float32)
}

// LoadWeightsAs is LoadWeights with the float weights held as dtype (float32 or bfloat16,
// see LoadOptions.ComputeDType); quantized weights stay packed and dequantize to dtype.
func LoadWeightsAs(ctx *context.Context, dir string, cfg *Config, dtype dtypes.DType) error {
	dtype, err := LoadOptions{ComputeDType: dtype}.computeDType()
	if err != nil {
		return err
	}
	qc, err := quant.ReadConfig(dir)
	if err != nil {
		return err
	}
	ckpt, err := safetensors.OpenCheckpoint(dir)
	if err != nil {
		return err
	}
	defer ckpt.Close()
	if err := checkQuantizedFiles(dir, qc, ckpt); err != nil {
		return err
	}
	byCanonical := map[string]string{}
	for _, n := range ckpt.Names() {
		byCanonical[CanonicalName(n)] = n
	}
	for _, spec := range cfg.ExpectedTensors() {
		stored, ok := byCanonical[spec.Name]
		if !ok {
			return fmt.Errorf("checkpoint %s lacks tensor %s (also looked for its model.language_model./model.visual. spelling)", dir, spec.Name)
		}
		if done, err := loadQuantized(ctx, ckpt, qc, stored, spec, dtype); err != nil {
			return err
		} else if done {
			continue
		}
		value, err := storedBF16Tensor(ckpt, stored, spec.Shape, dtype)
		if err != nil {
			return err
		}
		if value == nil {
			values, err := ckpt.Float32(stored, spec.Shape)
			if err != nil {
				return err
			}
			if value, err = weightTensor(values, spec.Shape, dtype); err != nil {
				return err
			}
		}
		scope, name := scopeAndName(spec.Name)
		ctx.InAbsPath(scope).Checked(false).VariableWithValue(name, value).SetTrainable(false)
	}
	return nil
}

// loadBF16Direct enables storedBF16Tensor (a variable so BenchmarkLoadBF16 can time the
// float32 round trip it replaced).
var loadBF16Direct = true

// storedBF16Tensor copies a tensor stored as BF16 straight into a bfloat16 tensor when the
// model computes in bfloat16 (released checkpoints: no float32 round trip, a quarter of the
// memory traffic); nil when the stored or wanted dtype differs.
func storedBF16Tensor(ckpt *safetensors.Checkpoint, stored string, shape []int, dtype dtypes.DType) (*tensors.Tensor, error) {
	info, ok := ckpt.Info(stored)
	if !loadBF16Direct || dtype != dtypes.BFloat16 || !ok || info.DType != safetensors.BF16 {
		return nil, nil
	}
	if !slices.Equal(info.Shape, shape) {
		return nil, fmt.Errorf("checkpoint %s: tensor %s has shape %v, want %v", ckpt.Dir, stored, info.Shape, shape)
	}
	raw, err := ckpt.Bytes(stored)
	if err != nil {
		return nil, err
	}
	if len(raw) != 2*info.NumElements() {
		return nil, fmt.Errorf("checkpoint %s: tensor %s has %d bytes of data, want %d", ckpt.Dir, stored, len(raw), 2*info.NumElements())
	}
	t := tensors.FromShape(shapes.Make(dtypes.BFloat16, shape...))
	if err := t.MutableBytes(func(b []byte) { copy(b, raw) }); err != nil {
		return nil, fmt.Errorf("checkpoint %s: tensor %s: %w", ckpt.Dir, stored, err)
	}
	return t, nil
}

// param returns the graph node of a loaded weight.
func param(ctx *context.Context, g *graph.Graph, name string) *graph.Node {
	scope, short := scopeAndName(name)
	v := ctx.GetVariableByScopeAndName(scope, short)
	if v == nil {
		panic(fmt.Sprintf("qwen: weight %s is not loaded", name))
	}
	if !v.Shape().DType.IsFloat() {
		return dequantizeParam(ctx, g, scope, short, v)
	}
	return v.ValueGraph(g)
}

// LinearModules lists every linear layer of the model (canonical module names with input
// and output sizes): the places a LoRA adapter can attach.
func (c *Config) LinearModules() []lora.Module {
	var out []lora.Module
	for _, s := range c.ExpectedTensors() {
		module, ok := strings.CutSuffix(s.Name, ".weight")
		if !ok || len(s.Shape) != 2 || module == "model.embed_tokens" || module == "lm_head" {
			continue
		}
		out = append(out, lora.Module{Name: module, In: s.Shape[1], Out: s.Shape[0]})
	}
	return out
}
