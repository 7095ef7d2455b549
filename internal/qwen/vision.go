package qwen

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph-building code reads best unqualified
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// VisionInputs are the vision tower's inputs for a batch of images. Everything index-like
// is computed on the host by NewVisionLayout.
type VisionInputs struct {
	Pixels *Node // [N, C*T*P*P] processor output, images concatenated
	// WindowIndex [N/U, 1] gathers merge units into window order; InverseIndex undoes it.
	WindowIndex, InverseIndex *Node
	// Cos and Sin [N, headDim] are the 2-D rotary tables, already in window order.
	Cos, Sin *Node
	// WindowMask and FullMask [N, N] allow attention within a window / within a frame.
	WindowMask, FullMask *Node
}

// VisionForward runs the vision tower and returns merged image features [N/U, out_hidden]
// in merged-raster order per frame, images concatenated.
func VisionForward(ctx *context.Context, cfg *Config, in VisionInputs) *Node {
	v := cfg.Vision
	g := in.Pixels.Graph()
	N := in.Pixels.Shape().Dimensions[0]
	C := v.HiddenSize
	U := v.SpatialMergeSize * v.SpatialMergeSize
	// Patch embedding: the Conv3d with kernel = stride is a matmul with the flattened kernel.
	w := Reshape(param(ctx, g, "visual.patch_embed.proj.weight"), C, -1)
	x := DotGeneral(ConvertDType(in.Pixels, w.DType()), []int{1}, nil, w, []int{1}, nil) // [N, C]
	// The rotary tables are float32 for bfloat16 weights: the rotation runs in float32.
	rot := accumDType(w.DType())
	cos, sin := ConvertDType(in.Cos, rot), ConvertDType(in.Sin, rot)
	x = Reshape(Gather(Reshape(x, N/U, U*C), in.WindowIndex), N, C)
	full := map[int]bool{}
	for _, b := range v.FullAttBlockIndexes {
		full[b] = true
	}
	for b := 0; b < v.Depth; b++ {
		p := fmt.Sprintf("visual.blocks.%d.", b)
		mask := in.WindowMask
		if full[b] {
			mask = in.FullMask
		}
		h := RMSNorm(ctx, x, p+"norm1.weight", 1e-6)
		x = Add(x, visionAttention(ctx, cfg, h, p+"attn", cos, sin, mask))
		h = RMSNorm(ctx, x, p+"norm2.weight", 1e-6)
		gate := Linear(ctx, h, p+"mlp.gate_proj", true)
		up := Linear(ctx, h, p+"mlp.up_proj", true)
		x = Add(x, Linear(ctx, Mul(Mul(gate, Sigmoid(gate)), up), p+"mlp.down_proj", true))
	}
	x = RMSNorm(ctx, x, "visual.merger.ln_q.weight", 1e-6)
	x = Reshape(x, N/U, U*C)
	x = GELU(Linear(ctx, x, "visual.merger.mlp.0", true))
	x = Linear(ctx, x, "visual.merger.mlp.2", true)
	return Gather(x, in.InverseIndex)
}

func visionAttention(ctx *context.Context, cfg *Config, x *Node, module string, cos, sin, mask *Node) *Node {
	v := cfg.Vision
	N := x.Shape().Dimensions[0]
	nh, hd := v.NumHeads, v.HiddenSize/v.NumHeads
	qkv := Reshape(Linear(ctx, x, module+".qkv", true), N, 3, nh, hd)
	q := Squeeze(SliceAxis(qkv, 1, AxisElem(0)), 1) // [N, nh, hd]
	k := Squeeze(SliceAxis(qkv, 1, AxisElem(1)), 1)
	val := Squeeze(SliceAxis(qkv, 1, AxisElem(2)), 1)
	c, s := ExpandAxes(cos, 1), ExpandAxes(sin, 1) // [N, 1, hd]
	q = applyRotary(q, c, s)
	k = applyRotary(k, c, s)
	scores := MulScalar(Einsum("qhd,khd->hqk", q, k), 1/math.Sqrt(float64(hd)))
	probs := maskedSoftmax(scores, BroadcastToShape(ExpandAxes(mask, 0), scores.Shape()))
	out := Reshape(Einsum("hqk,khd->qhd", probs, val), N, nh*hd)
	return Linear(ctx, out, module+".proj", true)
}
