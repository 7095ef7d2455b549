package grader

import (
	"fmt"
	"slices"
	"strings"
	"sync"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/grader/pretrained"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
)

// BackboneMobileNetV2 selects the pretrained MobileNetV2 feature extractor (ModelConfig.Backbone):
// the Keras MobileNetV2 layers from the input up to block_5_add (stride 8, 32 channels),
// initialised from the weights embedded in package pretrained. ModelConfig.Layers (3x3
// convolutions) then follow it, before the density head.
const BackboneMobileNetV2 = "mobilenetv2"

// mobileNetV2Eps is the BatchNormalization epsilon of Keras's MobileNetV2.
const mobileNetV2Eps = 1e-3

// mobileNetV2Block is one inverted-residual block of MobileNetV2 (Sandler et al., 2018), by its
// Keras name: a 1x1 expansion (absent when expand is 1), a 3x3 depthwise convolution with the
// stride, a 1x1 linear projection to out channels, and a residual add when the shapes allow.
type mobileNetV2Block struct {
	name        string
	expand, out int
	stride      int
}

// mobileNetV2Blocks are the blocks up to block_5 (after the stem Conv1: 3x3, 32, stride 2).
var mobileNetV2Blocks = []mobileNetV2Block{
	{"expanded_conv", 1, 16, 1},
	{"block_1", 6, 24, 2},
	{"block_2", 6, 24, 1},
	{"block_3", 6, 32, 2},
	{"block_4", 6, 32, 1},
	{"block_5", 6, 32, 1},
}

// mobileNetV2Stem is the name of the first convolution; with the block names it is what
// ModelConfig.FreezeUpto may name.
const mobileNetV2Stem = "Conv1"

// mobileNetV2Units lists the stem and block names in network order.
func mobileNetV2Units() []string {
	u := []string{mobileNetV2Stem}
	for _, b := range mobileNetV2Blocks {
		u = append(u, b.name)
	}
	return u
}

// mobileNetV2Frozen reports how many units (mobileNetV2Units order) FreezeUpto keeps frozen.
func mobileNetV2Frozen(upto string) (int, error) {
	if upto == "" {
		return 0, nil
	}
	i := slices.Index(mobileNetV2Units(), upto)
	if i < 0 {
		return 0, fmt.Errorf("model config: freeze_upto %q is not one of %v", upto, mobileNetV2Units())
	}
	return i + 1, nil
}

// mobileNetV2Channels is the backbone's output channel count.
func mobileNetV2Channels() int { return mobileNetV2Blocks[len(mobileNetV2Blocks)-1].out }

// mobileNetV2FLOPs estimates the backbone's multiply-adds (x2) on a size x size photo.
func mobileNetV2FLOPs(size int) int64 {
	s := size / 2
	f := int64(s*s) * 27 * 32 * 2
	cin := 32
	for _, b := range mobileNetV2Blocks {
		mid := cin * b.expand
		if b.expand > 1 {
			f += int64(s*s) * int64(cin*mid) * 2
		}
		s /= b.stride
		f += int64(s*s) * int64(9*mid+mid*b.out) * 2
		cin = b.out
	}
	return f
}

// pretrainedMobileNetV2 reads the embedded weights once.
var pretrainedMobileNetV2 = sync.OnceValues(func() (map[string]*tensors.Tensor, error) {
	f, err := pretrained.MobileNetV2()
	if err != nil {
		return nil, err
	}
	out := map[string]*tensors.Tensor{}
	for _, name := range f.Names() {
		v, info, err := f.Float32(name)
		if err != nil {
			return nil, fmt.Errorf("embedded MobileNetV2 weight %s: %w", name, err)
		}
		out[name] = tensors.FromFlatDataAndDimensions(v, info.Shape...)
	}
	return out, nil
})

// mobileNetV2Builder builds the backbone's graph in one context scope.
type mobileNetV2Builder struct {
	ctx     *context.Context
	weights map[string]*tensors.Tensor
	frozen  int // units (mobileNetV2Units order) whose weights do not train
	unit    int // index of the unit being built
}

// variable returns the backbone weight layer/param (Keras names), created from the embedded
// pretrained value; BatchNorm statistics and the weights of frozen units do not train.
func (m *mobileNetV2Builder) variable(g *Graph, layer, param string) *Node {
	key := layer + "/" + param
	t, ok := m.weights[key]
	if !ok {
		panic(fmt.Sprintf("grader: the embedded MobileNetV2 weights have no %s", key))
	}
	init := func(g *Graph, _ shapes.Shape) *Node { return Const(g, t) }
	v := m.ctx.In(layer).WithInitializer(init).VariableWithShape(param, t.Shape())
	v.SetTrainable(mobileNetV2Trainable(m.unit, m.frozen, param))
	return v.ValueGraph(g)
}

// mobileNetV2Trainable reports whether a backbone weight of the given unit trains: not when the
// unit is among the first frozen ones, and never for BatchNorm's running statistics.
func mobileNetV2Trainable(unit, frozen int, param string) bool {
	return unit >= frozen && param != "moving_mean" && param != "moving_variance"
}

// batchNorm applies the inference form of BatchNormalization (the pretrained running
// statistics, trainable scale and offset) along the last axis.
func (m *mobileNetV2Builder) batchNorm(x *Node, layer string) *Node {
	g := x.Graph()
	c := x.Shape().Dimensions[3]
	gamma, beta := m.variable(g, layer, "gamma"), m.variable(g, layer, "beta")
	mean, variance := m.variable(g, layer, "moving_mean"), m.variable(g, layer, "moving_variance")
	// x*scale + shift: two passes over x instead of three (the [C] vectors are cheap).
	scale := Mul(gamma, Rsqrt(AddScalar(variance, mobileNetV2Eps)))
	shift := Sub(beta, Mul(mean, scale))
	return Add(Mul(x, BroadcastToDims(Reshape(scale, 1, 1, 1, c), x.Shape().Dimensions...)),
		BroadcastToDims(Reshape(shift, 1, 1, 1, c), x.Shape().Dimensions...))
}

// relu6 is min(max(x, 0), 6).
func relu6(x *Node) *Node { return ClipScalar(x, 0, 6) }

// pointwise is a 1x1 convolution without bias (kernel [1, 1, in, out]).
func (m *mobileNetV2Builder) pointwise(x *Node, layer string) *Node {
	k := m.variable(x.Graph(), layer, "kernel")
	d := k.Shape().Dimensions
	return Einsum("bhwc,co->bhwo", x, Reshape(k, d[2], d[3]))
}

// build runs the backbone on x ([batch, s, s, 3], values in 0..1), or with from > 0 on the
// output of its first from units.
func (m *mobileNetV2Builder) build(x *Node, from int) *Node {
	g := x.Graph()
	if from == 0 {
		m.unit = 0
		x = mlbackend.Conv2D(x, m.variable(g, "Conv1", "kernel"), mlbackend.ConvOptions{Stride: 2})
		x = relu6(m.batchNorm(x, "bn_Conv1"))
		x = m.stopIfFrozen(x)
	}
	for i, b := range mobileNetV2Blocks {
		if i+1 < from {
			continue
		}
		m.unit = i + 1
		in := x
		if b.expand > 1 {
			x = relu6(m.batchNorm(m.pointwise(x, b.name+"_expand"), b.name+"_expand_BN"))
		}
		dw := b.name + "_depthwise"
		x = mlbackend.DepthwiseConv2D(x, m.variable(g, dw, "depthwise_kernel"), mlbackend.ConvOptions{Stride: b.stride})
		x = relu6(m.batchNorm(x, dw+"_BN"))
		x = m.batchNorm(m.pointwise(x, b.name+"_project"), b.name+"_project_BN")
		if b.stride == 1 && in.Shape().Dimensions[3] == b.out {
			x = Add(in, x)
		}
		x = m.stopIfFrozen(x)
	}
	return x
}

// stopIfFrozen cuts the gradient after the last frozen unit, so backpropagation never enters
// the frozen part of the network.
func (m *mobileNetV2Builder) stopIfFrozen(x *Node) *Node {
	if m.unit+1 == m.frozen {
		return StopGradient(x)
	}
	return x
}

// buildMobileNetV2 runs the pretrained backbone on the grader's normalised input (fillInput's
// (v/255-0.5)/0.25 RGB; MobileNetV2 was trained on v/255) and returns [batch, s/8, s/8, 32].
// The gradient stops after the frozen units (ModelConfig.FreezeUpto). With from > 0, images
// is instead the output of the first from units (nativeStem), which are skipped.
func buildMobileNetV2(ctx *context.Context, mc ModelConfig, images *Node, from int) *Node {
	weights, err := pretrainedMobileNetV2()
	if err != nil {
		panic(err)
	}
	frozen, err := mobileNetV2Frozen(mc.FreezeUpto)
	if err != nil {
		panic(err)
	}
	m := &mobileNetV2Builder{ctx: ctx, weights: weights, frozen: frozen}
	if from > 0 {
		return m.build(images, from)
	}
	return m.build(AddScalar(MulScalar(images, 0.25), 0.5), 0)
}

// seedMobileNetV2 creates the backbone's variables in ctx (under BuildModel's scope) with the
// embedded pretrained values and their trainability, unless they exist already: a trainer
// that computes the frozen units outside the graph (nativeStem) still saves them in its
// checkpoints, which inference needs.
func seedMobileNetV2(ctx *context.Context, mc ModelConfig) error {
	weights, err := pretrainedMobileNetV2()
	if err != nil {
		return err
	}
	frozen, err := mobileNetV2Frozen(mc.FreezeUpto)
	if err != nil {
		return err
	}
	for key, t := range weights {
		layer, param, _ := strings.Cut(key, "/")
		scope := "/" + modelScope + "/" + BackboneMobileNetV2 + "/" + layer
		if ctx.GetVariableByScopeAndName(scope, param) != nil {
			continue
		}
		unit := unitIndex(layer)
		value, err := t.Clone() // training updates variables in place; the embedded values stay
		if err != nil {
			return fmt.Errorf("copy pretrained %s: %w", key, err)
		}
		v := ctx.InAbsPath(scope).VariableWithValue(param, value)
		v.SetTrainable(mobileNetV2Trainable(unit, frozen, param))
	}
	return nil
}

// FrozenPretrained reports whether the checkpoint variable name (e.g.
// "/model/mobilenetv2/block_1_project/kernel") is a weight of a pretrained unit that the
// configuration keeps fixed (FreezeUpto): the layers trained by nobody but the backbone's
// authors. False for every other name and for a configuration without frozen units.
func (mc ModelConfig) FrozenPretrained(name string) bool {
	if mc.Backbone != BackboneMobileNetV2 {
		return false
	}
	frozen, err := mobileNetV2Frozen(mc.FreezeUpto)
	if err != nil || frozen == 0 {
		return false
	}
	rest, ok := strings.CutPrefix(name, "/"+modelScope+"/"+BackboneMobileNetV2+"/")
	if !ok {
		return false
	}
	layer, _, _ := strings.Cut(rest, "/")
	unit := unitIndex(layer)
	return unit >= 0 && unit < frozen
}

// unitIndex is the position of a Keras layer's unit in mobileNetV2Units, -1 for a layer of
// no unit.
func unitIndex(layer string) int { return slices.Index(mobileNetV2Units(), unitOfLayer(layer)) }

// unitOfLayer maps a Keras layer name to its unit: "Conv1" and "bn_Conv1" to "Conv1",
// "block_3_expand_BN" to "block_3", "expanded_conv_project" to "expanded_conv".
func unitOfLayer(layer string) string {
	if layer == "bn_Conv1" {
		return mobileNetV2Stem
	}
	for _, b := range mobileNetV2Blocks {
		if strings.HasPrefix(layer, b.name+"_") {
			return b.name
		}
	}
	return layer
}
