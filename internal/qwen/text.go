package qwen

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph-building code reads best unqualified
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// KVCache is the key/value cache of every decoder layer, laid out [L, B, nKV, T, D] with a
// fixed capacity T. New entries are written with a one-hot matrix instead of
// DynamicUpdateSlice (which simplego lacks), so the same graph runs on both backends.
type KVCache struct {
	K, V *Node // [L, B, nKV, T, D]
	// Write is [S, T]: row s is one-hot at the cache slot of the s-th new token.
	Write *Node
}

// TextInputs are the language model's inputs for one forward pass.
type TextInputs struct {
	IDs *Node // [B, S] int32
	// ImageFeatures [M, H] replace the embeddings where IsImage is set, row ImageSource[b,s].
	ImageFeatures *Node // may be nil
	ImageSource   *Node // [B, S] int32
	IsImage       *Node // [B, S] bool
	Cos, Sin      *Node // [B, S, D] M-RoPE tables
	// Mask [B, S, K] says which keys each query sees (K = S without cache, T with cache).
	Mask  *Node
	Cache *KVCache // nil: attend within the S new tokens only
}

// TextOutputs are the decoder's results.
type TextOutputs struct {
	Hidden *Node // [B, S, H] after the final norm
	K, V   *Node // updated caches, when a cache was given
}

// Embed looks up token embeddings and splices image features in.
func Embed(ctx *context.Context, cfg *Config, in TextInputs) *Node {
	g := in.IDs.Graph()
	table := param(ctx, g, "model.embed_tokens.weight")
	x := Gather(table, ExpandAxes(in.IDs, -1)) // [B, S, H]
	if in.ImageFeatures != nil {
		img := ConvertDType(Gather(in.ImageFeatures, ExpandAxes(in.ImageSource, -1)), x.DType())
		x = Where(BroadcastToShape(ExpandAxes(in.IsImage, -1), x.Shape()), img, x)
	}
	return x
}

// TextForward runs the decoder layers on embeddings x [B, S, H].
func TextForward(ctx *context.Context, cfg *Config, x *Node, in TextInputs) TextOutputs {
	t := cfg.Text
	var out TextOutputs
	var ks, vs []*Node
	rot := accumDType(x.DType())                    // rotary runs in float32 for bfloat16 x
	cos := ConvertDType(ExpandAxes(in.Cos, 2), rot) // [B, S, 1, D]
	sin := ConvertDType(ExpandAxes(in.Sin, 2), rot)
	for l := 0; l < t.NumHiddenLayers; l++ {
		p := fmt.Sprintf("model.layers.%d.", l)
		h := RMSNorm(ctx, x, p+"input_layernorm.weight", t.RMSNormEps)
		attn, k, v := selfAttention(ctx, cfg, h, p+"self_attn", cos, sin, in, l)
		if in.Cache != nil {
			ks, vs = append(ks, k), append(vs, v)
		}
		x = Add(x, attn)
		h = RMSNorm(ctx, x, p+"post_attention_layernorm.weight", t.RMSNormEps)
		gate := Linear(ctx, h, p+"mlp.gate_proj", false)
		up := Linear(ctx, h, p+"mlp.up_proj", false)
		x = Add(x, Linear(ctx, Mul(Mul(gate, Sigmoid(gate)), up), p+"mlp.down_proj", false))
	}
	out.Hidden = RMSNorm(ctx, x, "model.norm.weight", t.RMSNormEps)
	if in.Cache != nil {
		out.K, out.V = Stack(ks, 0), Stack(vs, 0)
	}
	return out
}

// Logits projects hidden states [..., H] onto the vocabulary (tied to the embeddings when
// the config says so). The projection runs in the compute dtype; bfloat16 logits are
// returned as float32 (for the log-softmax, the losses and the host).
func Logits(ctx *context.Context, cfg *Config, hidden *Node) *Node {
	name := "lm_head.weight"
	if cfg.Text.TieWordEmbeddings {
		name = "model.embed_tokens.weight"
	}
	w := param(ctx, hidden.Graph(), name)
	return upcast(DotGeneral(hidden, []int{hidden.Rank() - 1}, nil, w, []int{1}, nil))
}

// selfAttention is grouped-query attention with q/k/v biases and M-RoPE. With a cache it
// writes the new keys/values into the layer's slots and attends over the whole cache,
// returning the updated layer cache [B, nKV, T, D].
func selfAttention(ctx *context.Context, cfg *Config, x *Node, module string, cos, sin *Node, in TextInputs, layer int) (out, kOut, vOut *Node) {
	t := cfg.Text
	B, S := x.Shape().Dimensions[0], x.Shape().Dimensions[1]
	D, nH, nKV := t.HeadDim(), t.NumAttentionHeads, t.NumKeyValueHeads
	q := Reshape(Linear(ctx, x, module+".q_proj", true), B, S, nH, D)
	k := Reshape(Linear(ctx, x, module+".k_proj", true), B, S, nKV, D)
	v := Reshape(Linear(ctx, x, module+".v_proj", true), B, S, nKV, D)
	q = applyRotary(q, cos, sin)
	k = applyRotary(k, cos, sin)
	k = TransposeAllDims(k, 0, 2, 1, 3) // [B, nKV, S, D]
	v = TransposeAllDims(v, 0, 2, 1, 3)
	if c := in.Cache; c != nil {
		layerK := Squeeze(SliceAxis(c.K, 0, AxisElem(layer)), 0) // [B, nKV, T, D]
		layerV := Squeeze(SliceAxis(c.V, 0, AxisElem(layer)), 0)
		write := ConvertDType(c.Write, k.DType())
		keep := OneMinus(ReduceSum(write, 0))                     // [T]: 0 where written
		keep = Reshape(keep, 1, 1, keep.Shape().Dimensions[0], 1) // [1, 1, T, 1]
		scatterK := Einsum("st,bksd->bktd", write, k)
		scatterV := Einsum("st,bksd->bktd", write, v)
		layerK, layerV = ConvertDType(layerK, k.DType()), ConvertDType(layerV, v.DType())
		k = Add(Mul(layerK, keep), scatterK)
		v = Add(Mul(layerV, keep), scatterV)
		kOut, vOut = k, v
	}
	groups := nH / nKV
	qg := Reshape(q, B, S, nKV, groups, D)
	scores := Einsum("bskgd,bktd->bkgst", qg, k) // [B, nKV, g, S, K]
	scores = MulScalar(scores, 1/math.Sqrt(float64(D)))
	mask := ExpandAxes(ExpandAxes(in.Mask, 1), 1) // [B, 1, 1, S, K]
	probs := maskedSoftmax(scores, BroadcastToShape(mask, scores.Shape()))
	ctxv := Einsum("bkgst,bktd->bskgd", probs, v) // [B, S, nKV, g, D]
	out = Linear(ctx, Reshape(ctxv, B, S, nH*D), module+".o_proj", false)
	return out, kOut, vOut
}
