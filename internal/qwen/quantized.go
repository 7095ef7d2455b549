package qwen

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/quant"
	"github.com/acdtcm/acdtcm/internal/safetensors"
)

// Quantized checkpoints (written by `acdtcm quantize`) keep each quantized weight W as its
// packed values plus companion scale tensors (see package quant). LoadWeights stores the
// packed values as a frozen integer variable named like the weight, the scales as frozen
// float32/uint8 variables beside it ("<name>_qscale", ...), and param rebuilds the weight
// inside the graph (in float32, then converted to the compute dtype), so every consumer
// (generation, grading, LoRA training) works unchanged while memory holds only the packed
// form.

// quantParamKey is the context parameter (set in the weight's scope) describing a
// quantized weight.
func quantParamKey(short string) string { return "quant." + short }

// quantInfo is the value of quantParamKey.
type quantInfo struct {
	Method quant.Method
	Shape  []int
	Parts  []string // part names present besides the data
	// DType is the compute dtype the dequantized weight is converted to (zero: float32).
	DType dtypes.DType
}

// checkQuantizedFiles compares every weights file's metadata with the quantization_config,
// or, without one, refuses files that carry quantized tensors.
func checkQuantizedFiles(dir string, qc *quant.Config, ckpt *safetensors.Checkpoint) error {
	if qc == nil {
		for _, n := range ckpt.Names() {
			for _, s := range quant.Companions {
				if strings.HasSuffix(n, s) {
					return fmt.Errorf("checkpoint %s holds quantized tensors (%s) but its config.json has no quantization_config: config.json does not belong to these weights", dir, n)
				}
			}
		}
		return nil
	}
	paths, _ := filepath.Glob(filepath.Join(dir, "*.safetensors"))
	for _, p := range paths {
		f, err := safetensors.Open(p)
		if err != nil {
			return err
		}
		err = qc.CheckMetadata(p, f.Metadata)
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// loadQuantized decodes the quantized weight stored as stored (canonical name spec.Name)
// and creates its frozen variables, on backend when given; the graph dequantizes it to
// dtype. It reports false when the weight is not quantized.
func loadQuantized(ctx *context.Context, ckpt *safetensors.Checkpoint, qc *quant.Config, stored string, spec TensorSpec, dtype dtypes.DType, backend backends.Backend) (bool, error) {
	if qc == nil {
		return false, nil
	}
	hasCompanion := false
	for _, s := range quant.Companions {
		if _, ok := ckpt.Info(stored + s); ok {
			hasCompanion = true
		}
	}
	if !hasCompanion {
		return false, nil
	}
	lookup := func(name string) (safetensors.TensorInfo, []byte, bool) {
		info, ok := ckpt.Info(name)
		if !ok {
			return info, nil, false
		}
		raw, err := ckpt.Bytes(name)
		return info, raw, err == nil
	}
	q, err := quant.Decode(qc.Method, stored, spec.Shape, qc.DoubleQuant, lookup)
	if err != nil {
		return true, fmt.Errorf("checkpoint %s: %w", ckpt.Dir, err)
	}
	scope, short := scopeAndName(spec.Name)
	c := ctx.InAbsPath(scope).Checked(false)
	info := quantInfo{Method: q.Method, Shape: spec.Shape, DType: dtype}
	for part, t := range q.GraphTensors() {
		name := short
		if part != quant.PartData {
			name = short + "_" + part
			info.Parts = append(info.Parts, part)
		}
		if err := toBackend(t, backend); err != nil {
			return true, fmt.Errorf("checkpoint %s: %s: %w", ckpt.Dir, name, err)
		}
		c.VariableWithValue(name, t).SetTrainable(false)
	}
	c.SetParam(quantParamKey(short), info)
	return true, nil
}

// dequantizeParam rebuilds a quantized weight in the graph g.
func dequantizeParam(ctx *context.Context, g *graph.Graph, scope, short string, data *context.Variable) *graph.Node {
	c := ctx.InAbsPath(scope)
	raw, found := c.GetParam(quantParamKey(short))
	info, ok := raw.(quantInfo)
	if !found || !ok {
		panic(fmt.Sprintf("qwen: weight %s/%s is stored as %s without quantization information", scope, short, data.Shape().DType))
	}
	parts := map[string]*graph.Node{quant.PartData: data.ValueGraph(g)}
	for _, p := range info.Parts {
		v := ctx.GetVariableByScopeAndName(scope, short+"_"+p)
		if v == nil {
			panic(fmt.Sprintf("qwen: quantized weight %s/%s lacks its %s variable", scope, short, p))
		}
		parts[p] = v.ValueGraph(g)
	}
	w := quant.DequantizeGraph(info.Method, info.Shape, quant.InputsFromParts(parts))
	if info.DType != dtypes.InvalidDType {
		w = graph.ConvertDType(w, info.DType)
	}
	return w
}

// IsQuantized tells whether a loaded weight (canonical name) is held in quantized form.
func IsQuantized(ctx *context.Context, name string) bool {
	scope, short := scopeAndName(name)
	v := ctx.GetVariableByScopeAndName(scope, short)
	return v != nil && !v.Shape().DType.IsFloat()
}

// ReadWeightFloat32 returns the float32 values of the stored tensor (canonical shape
// shape) of an open checkpoint, dequantizing it when qc (the checkpoint's
// quantization_config, nil when not quantized) says it is packed. Tools that rewrite
// weights on the CPU (merging LoRA adapters into a quantized base, exporting) use it.
func ReadWeightFloat32(ckpt *safetensors.Checkpoint, qc *quant.Config, stored string, shape []int) ([]float32, error) {
	if qc != nil {
		for _, s := range quant.Companions {
			if _, ok := ckpt.Info(stored + s); !ok {
				continue
			}
			q, err := quant.Decode(qc.Method, stored, shape, qc.DoubleQuant, func(name string) (safetensors.TensorInfo, []byte, bool) {
				info, ok := ckpt.Info(name)
				if !ok {
					return info, nil, false
				}
				raw, err := ckpt.Bytes(name)
				return info, raw, err == nil
			})
			if err != nil {
				return nil, fmt.Errorf("checkpoint %s: %w", ckpt.Dir, err)
			}
			return q.Dequantize(), nil
		}
	}
	return ckpt.Float32(stored, shape)
}
