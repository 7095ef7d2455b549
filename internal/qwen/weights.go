package qwen

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"unsafe"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/hugepage"
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
// float32 host tensors (frozen variables: not trainable), decoded one at a time from the
// memory-mapped file. Load and LoadWith place the weights on their backend as they read
// them instead (loadWeights): a host tensor is copied to the backend at the first graph run,
// and at 3B that second copy ran a 24 GiB machine out of memory. Missing tensors, wrong
// shapes and truncated files are errors naming the tensor and the file.
//
// A checkpoint written by `acdtcm quantize` (config.json with quantization_config) loads
// its quantized weights in packed form; param dequantizes them inside the graph.
func LoadWeights(ctx *context.Context, dir string, cfg *Config) error {
	return LoadWeightsAs(ctx, dir, cfg, dtypes.Float32)
}

// LoadWeightsAs is LoadWeights with the float weights held as dtype (float32 or bfloat16,
// see LoadOptions.ComputeDType); quantized weights stay packed and dequantize to dtype.
func LoadWeightsAs(ctx *context.Context, dir string, cfg *Config, dtype dtypes.DType) error {
	return loadWeights(ctx, dir, cfg, dtype, nil)
}

// loadWeights is LoadWeightsAs placing every weight on backend as it is read (nil: host
// tensors, moved to a backend at the first graph run). On a backend that shares host memory
// (simplego) a float weight is decoded straight into the backend's buffer, so the process
// never holds a second copy of the model, nor leaves one behind for the garbage collector;
// on an accelerator the host copy of each weight is freed once it is on the device.
func loadWeights(ctx *context.Context, dir string, cfg *Config, dtype dtypes.DType, backend backends.Backend) error {
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
		if done, err := loadQuantized(ctx, ckpt, qc, stored, spec, dtype, backend); err != nil {
			return err
		} else if done {
			releaseStored(ckpt, stored)
			continue
		}
		value, err := checkpointWeight(ckpt, stored, spec.Shape, dtype, backend)
		if err != nil {
			return err
		}
		releaseStored(ckpt, stored)
		scope, name := scopeAndName(spec.Name)
		ctx.InAbsPath(scope).Checked(false).VariableWithValue(name, value).SetTrainable(false)
	}
	return nil
}

// releaseStored drops a copied tensor (and its quantization companions) from resident
// memory, so the checkpoint's mapped pages and the loaded weights are not both counted:
// loading the 3B float32 model peaked at 21.4-22 GB RSS, ~6.9 GB of it mapped file pages.
// A failure only means the pages stay mapped, so it is ignored.
func releaseStored(ckpt *safetensors.Checkpoint, stored string) {
	for _, suffix := range append([]string{""}, quant.Companions...) {
		if _, ok := ckpt.Info(stored + suffix); ok {
			_ = ckpt.Release(stored + suffix)
		}
	}
}

// loadBF16Direct lets a bfloat16 model copy tensors stored as BF16 byte for byte (a
// variable so BenchmarkLoadBF16 can time the float32 round trip it replaced).
var loadBF16Direct = true

// checkpointWeight reads the stored tensor as a weight of dtype (float32, or bfloat16
// rounded to nearest even as torch's .to(torch.bfloat16), exact for bfloat16 checkpoints),
// checking its shape and size, into memory from newWeight.
func checkpointWeight(ckpt *safetensors.Checkpoint, stored string, shape []int, dtype dtypes.DType, backend backends.Backend) (*tensors.Tensor, error) {
	info, ok := ckpt.Info(stored)
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: %s: %w", ckpt.Dir, stored, safetensors.ErrNotFound)
	}
	if !slices.Equal(info.Shape, shape) {
		return nil, fmt.Errorf("checkpoint %s: tensor %s has shape %v, want %v", ckpt.Dir, stored, info.Shape, shape)
	}
	raw, err := ckpt.Bytes(stored)
	if err != nil {
		return nil, err
	}
	if n := info.NumElements(); len(raw) != n*info.DType.Size() {
		return nil, fmt.Errorf("checkpoint %s: tensor %s has %d bytes of data, want %d (%d %s values)", ckpt.Dir, stored, len(raw), n*info.DType.Size(), n, info.DType)
	}
	t, err := newWeight(backend, dtype, shape, func(dst []byte) error {
		return decodeWeight(dst, raw, info.DType, dtype)
	})
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: tensor %s: %w", ckpt.Dir, stored, err)
	}
	return t, nil
}

// decodeWeight converts raw stored values into dst, the bytes of a float32 or bfloat16
// tensor. bfloat16 from other dtypes goes through float32 a block at a time.
func decodeWeight(dst, raw []byte, stored safetensors.DType, dtype dtypes.DType) error {
	switch dtype {
	case dtypes.Float32:
		return safetensors.DecodeFloat32(float32View(dst), raw, stored)
	case dtypes.BFloat16:
		if stored == safetensors.BF16 && loadBF16Direct {
			copy(dst, raw)
			return nil
		}
		const block = 1 << 16
		size := stored.Size()
		if size == 0 {
			return fmt.Errorf("cannot convert %s to bfloat16", stored)
		}
		buf := make([]float32, min(block, len(dst)/2))
		for start := 0; start < len(dst)/2; start += block {
			n := min(block, len(dst)/2-start)
			if err := safetensors.DecodeFloat32(buf[:n], raw[start*size:(start+n)*size], stored); err != nil {
				return err
			}
			safetensors.PutBF16(dst[2*start:2*(start+n)], buf[:n])
		}
		return nil
	}
	return fmt.Errorf("weights in %s are not supported (want float32 or bfloat16)", dtype)
}

// float32View is b (the bytes of a float32 tensor) as float32 values, without a copy.
func float32View(b []byte) []float32 {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(&b[0])), len(b)/4)
}

// newWeight allocates a tensor of dtype and shape and lets fill write its bytes. With a
// backend that shares host memory (simplego) the tensor lives in a buffer of the backend
// from the start; with another backend it is filled on the host, moved to the device and
// its host copy freed; with none it stays a host tensor.
func newWeight(backend backends.Backend, dtype dtypes.DType, shape []int, fill func([]byte) error) (*tensors.Tensor, error) {
	s := shapes.Make(dtype, shape...)
	if backend != nil && backend.HasSharedBuffers() {
		buf, flat, err := backend.NewSharedBuffer(0, s)
		if err != nil {
			return nil, fmt.Errorf("allocate %s: %w", s, err)
		}
		// Huge pages before the first write: loading 3B float32 took 86 s in 4 KiB pages and
		// 38 s advised (hugepage's doc).
		hugepage.Advise(flatBytes(flat))
		if err := fill(flatBytes(flat)); err != nil {
			return nil, err
		}
		return tensors.FromBuffer(backend, buf)
	}
	t := tensors.FromShape(s)
	var fillErr error
	if err := t.MutableBytes(func(b []byte) { fillErr = fill(b) }); err != nil {
		return nil, err
	}
	if fillErr != nil {
		return nil, fillErr
	}
	return t, toBackend(t, backend)
}

// toBackend moves a host tensor onto backend (nil: leaves it on the host) and frees the
// host copy, so a loaded model is held once.
func toBackend(t *tensors.Tensor, backend backends.Backend) error {
	if backend == nil {
		return nil
	}
	if err := t.MaterializeOnDevice(backend, true, 0); err != nil {
		return fmt.Errorf("move %s to backend %s: %w", t.Shape(), backend.Name(), err)
	}
	if !backend.HasSharedBuffers() {
		t.FinalizeLocal()
	}
	return nil
}

// flatBytes is the byte view of a flat Go slice of numbers (a backend buffer's storage).
func flatBytes(flat any) []byte {
	v := reflect.ValueOf(flat)
	if v.Len() == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(v.Index(0).Addr().UnsafePointer()), uintptr(v.Len())*v.Type().Elem().Size())
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
