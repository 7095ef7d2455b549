package qwen

import (
	"fmt"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph-building code reads best unqualified
)

// Mixed precision. With ComputeDType bfloat16 the model runs as transformers does with
// torch_dtype=bfloat16: every frozen base weight (linear weights and biases, embeddings,
// norm scales) is a bfloat16 variable, so activations (the residual stream, the KV cache)
// are bfloat16 and every matmul and elementwise op of the base runs in bfloat16. The
// numerically sensitive steps upcast to float32 and round the result back once:
// RMSNorm's statistics (as Qwen2RMSNorm), the attention softmax (softmax(dtype=float32)),
// the rotary embedding, and the logits, which leave the model in float32 for the
// log-softmax, the losses and the host. LoRA adapters stay float32 and compute in float32
// (PEFT casts the layer input to lora_A's dtype and the sum back to the base output's
// dtype), so gradients reach float32 parameters and the optimizer state stays float32.
//
// The graph code does not read a global setting: activations follow the dtype of the
// weights they come from (the embedding table, the patch-embedding kernel), so the same
// code also runs in float64 for gradient checks.

// LoadOptions configure LoadWith.
type LoadOptions struct {
	// ComputeDType is the dtype of the frozen base weights and of the model's compute:
	// dtypes.Float32 (the default; the zero value means it) or dtypes.BFloat16 (half the
	// weight memory; for the GPU). See ParseComputeDType.
	ComputeDType dtypes.DType
}

// computeDType is the effective compute dtype of opts.
func (o LoadOptions) computeDType() (dtypes.DType, error) {
	switch o.ComputeDType {
	case dtypes.InvalidDType, dtypes.Float32:
		return dtypes.Float32, nil
	case dtypes.BFloat16:
		return dtypes.BFloat16, nil
	}
	return dtypes.InvalidDType, fmt.Errorf("compute dtype %s is not supported (want float32 or bfloat16)", o.ComputeDType)
}

// ParseComputeDType reads a compute dtype name: "float32" (also "fp32", "f32", "") or
// "bfloat16" (also "bf16").
func ParseComputeDType(s string) (dtypes.DType, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "float32", "fp32", "f32":
		return dtypes.Float32, nil
	case "bfloat16", "bf16":
		return dtypes.BFloat16, nil
	}
	return dtypes.InvalidDType, fmt.Errorf("unknown compute dtype %q (want float32 or bfloat16)", s)
}

// accumDType is the dtype of the precision-sensitive steps for activations of dtype dt:
// float32 for half-precision activations, dt itself otherwise.
func accumDType(dt dtypes.DType) dtypes.DType {
	if dt == dtypes.BFloat16 || dt == dtypes.Float16 {
		return dtypes.Float32
	}
	return dt
}

// upcast converts half-precision x to float32; other dtypes pass unchanged.
func upcast(x *Node) *Node { return ConvertDType(x, accumDType(x.DType())) }

// inAccum runs fn on x upcast to accumDType and converts its result back to x's dtype.
func inAccum(x *Node, fn func(*Node) *Node) *Node {
	return ConvertDType(fn(upcast(x)), x.DType())
}
