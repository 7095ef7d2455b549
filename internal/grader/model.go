// Package grader is acdtcm's compact built-in acne grader: a small fully convolutional
// network trained with GoMLX that predicts a per-lesion-type density map (whose sums are
// lesion counts) and, from the counts and pooled features, Hayashi grade probabilities.
//
// The Hayashi grade is defined by lesion counts, so the network is supervised mainly by the
// ~45k lesion boxes of ACNE04 (as Gaussian density targets, see package heatmap) and only
// secondarily by the 991 photo-level grades. All of it runs on the pure-Go simplego backend.
package grader

import (
	"fmt"
	"math"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/context/initializers"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
)

// NumGrades is the number of Hayashi grades predicted.
const NumGrades = 4

// NumTypes is the number of lesion types (dataset.LesionTypes order).
var NumTypes = len(dataset.LesionTypes)

// The density head predicts densityScale x density through a softplus, so that typical cell
// values (0.01..0.2 lesions per cell) sit in the softplus's linear range where Adam's fixed-size
// steps change them quickly; densityBiasInit starts every cell at 0.01 lesions (softplus(0.541)
// = 1), about 8 lesions per type on a 28x28 map, near the ACNE04 mean.
const (
	densityScale    = 100.0
	densityBiasInit = 0.541
)

// modelScope is the context scope holding the model's weights.
const modelScope = "model"

// Layer is one 3x3 convolution + ReLU of the backbone.
type Layer struct {
	Channels int `json:"channels"`
	Stride   int `json:"stride"` // 1 or 2
}

// ModelConfig fixes the architecture; it is stored in every checkpoint.
type ModelConfig struct {
	InputSize   int     `json:"input_size"`   // photos are stretched to InputSize x InputSize
	Patch       int     `json:"patch"`        // space-to-depth stem: Patch x Patch pixels per cell (0 or 1: none)
	PatchOut    int     `json:"patch_out"`    // channels of the stem's 1x1 projection
	Layers      []Layer `json:"layers"`       // 3x3 conv backbone
	Norm        int     `json:"norm_groups"`  // GroupNorm groups after the stem and each conv (0: none)
	HighPass    bool    `json:"highpass"`     // add the local redness and darkness input channels (features.go)
	GradeHidden int     `json:"grade_hidden"` // hidden units of the grade head
	Sigma       float64 `json:"sigma"`        // density target Gaussian sigma, in cells
	// TypedCounts is set when the per-type density channels were trained on lesion-type labels
	// that tell more than the grade (typedLesionLabels), so predictions report counts by type.
	// When clear (ACNE04's export, whose types only mirror the grade, and every checkpoint
	// written before the field existed) predictions report the total count and boxes as
	// dataset.LesionUnspecified. It changes the reporting, not the architecture.
	TypedCounts bool `json:"typed_counts,omitempty"`
	// Backbone is "" for the small network trained from scratch (the patch stem, then Layers)
	// or BackboneMobileNetV2 for the pretrained MobileNetV2 feature extractor, then Layers.
	Backbone string `json:"backbone,omitempty"`
	// FreezeUpto, with a pretrained backbone, names its last unit whose weights stay fixed
	// ("Conv1", "expanded_conv", "block_1" .. "block_5"); "" trains every weight.
	FreezeUpto string `json:"freeze_upto,omitempty"`
}

// DefaultModelConfig is the configuration of the built-in grader.
func DefaultModelConfig() ModelConfig {
	return ModelConfig{
		InputSize:   224,
		Patch:       4,
		PatchOut:    24,
		Layers:      []Layer{{32, 2}, {32, 1}, {32, 1}},
		Norm:        4,
		HighPass:    true,
		GradeHidden: 32,
		Sigma:       1.0,
	}
}

// Grid is the side of the density map.
func (mc ModelConfig) Grid() int {
	g := mc.InputSize / max(1, mc.Patch)
	if mc.Backbone == BackboneMobileNetV2 {
		g = mc.InputSize / 8
	}
	for _, l := range mc.Layers {
		g /= l.Stride
	}
	return g
}

// Validate checks that the configuration describes a buildable model.
func (mc ModelConfig) Validate() error {
	if mc.Norm < 0 || (mc.Norm > 0 && (mc.PatchOut%mc.Norm != 0 || anyIndivisible(mc.Layers, mc.Norm))) {
		return fmt.Errorf("model config: norm_groups %d must divide patch_out and every layer's channels", mc.Norm)
	}
	switch mc.Backbone {
	case "":
		if mc.FreezeUpto != "" {
			return fmt.Errorf("model config: freeze_upto %q needs a pretrained backbone", mc.FreezeUpto)
		}
	case BackboneMobileNetV2:
		if mc.Patch > 1 || mc.HighPass || mc.InputSize%8 != 0 || mc.InputSize < 32 {
			return fmt.Errorf("model config: backbone %s takes RGB input (no patch stem, no highpass) of a size divisible by 8, >= 32; got patch %d, highpass %v, input_size %d",
				mc.Backbone, mc.Patch, mc.HighPass, mc.InputSize)
		}
		if _, err := mobileNetV2Frozen(mc.FreezeUpto); err != nil {
			return err
		}
		if mc.GradeHidden <= 0 {
			return fmt.Errorf("model config: grade_hidden > 0 needed, got %d", mc.GradeHidden)
		}
		return validateLayers(mc.Layers, mc.InputSize/8)
	default:
		return fmt.Errorf("model config: unknown backbone %q (want \"\" or %q)", mc.Backbone, BackboneMobileNetV2)
	}
	if mc.InputSize < 8 || len(mc.Layers) == 0 || mc.GradeHidden <= 0 {
		return fmt.Errorf("model config: input_size >= 8, at least one layer and grade_hidden > 0 needed, got %+v", mc)
	}
	s := mc.InputSize
	if mc.Patch > 1 {
		if s%mc.Patch != 0 || mc.PatchOut <= 0 {
			return fmt.Errorf("model config: input_size %d must be divisible by patch %d and patch_out > 0", s, mc.Patch)
		}
		s /= mc.Patch
	}
	return validateLayers(mc.Layers, s)
}

// validateLayers checks the 3x3 convolutions that run on an s x s feature map.
func validateLayers(layers []Layer, s int) error {
	for i, l := range layers {
		if l.Channels <= 0 || (l.Stride != 1 && l.Stride != 2) {
			return fmt.Errorf("model config: layer %d: channels > 0 and stride 1 or 2 needed, got %+v", i, l)
		}
		if s%l.Stride != 0 {
			return fmt.Errorf("model config: layer %d: size %d not divisible by stride %d", i, s, l.Stride)
		}
		s /= l.Stride
	}
	return nil
}

func anyIndivisible(ls []Layer, g int) bool {
	for _, l := range ls {
		if l.Channels%g != 0 {
			return true
		}
	}
	return false
}

// FLOPs estimates the multiply-adds (x2) of one forward pass.
func (mc ModelConfig) FLOPs() int64 {
	var f int64
	s, cin := mc.InputSize, mc.inputChannels()
	if mc.Backbone == BackboneMobileNetV2 {
		f += mobileNetV2FLOPs(s)
		s, cin = s/8, mobileNetV2Channels()
	} else if mc.Patch > 1 {
		s /= mc.Patch
		f += int64(s*s) * int64(mc.Patch*mc.Patch*cin*mc.PatchOut) * 2
		cin = mc.PatchOut
	}
	for _, l := range mc.Layers {
		s /= l.Stride
		f += int64(s*s) * int64(9*cin*l.Channels) * 2
		cin = l.Channels
	}
	f += int64(s*s) * int64(cin*NumTypes) * 2
	return f
}

// conv3x3 is a trainable 3x3 convolution with "same" zero padding and the given stride on
// NHWC input (mlbackend's im2col Conv2D, which trains on simplego).
func conv3x3(ctx *context.Context, x *Node, cout, stride int) *Node {
	return mlbackend.Conv2DLayer(ctx, x, cout, 3, true, mlbackend.ConvOptions{Stride: stride})
}

// norm applies GroupNorm with the given number of groups (mlbackend.GroupNorm: per-sample
// statistics, so training and inference agree), or nothing when groups is 0.
func norm(ctx *context.Context, x *Node, groups int) *Node {
	if groups <= 0 {
		return x
	}
	return mlbackend.GroupNorm(ctx.In("norm"), x, groups, 1e-5)
}

// addBias adds a bias vector along the last axis of y.
func addBias(y, bias *Node) *Node {
	dims := make([]int, y.Rank())
	for i := range dims {
		dims[i] = 1
	}
	dims[len(dims)-1] = bias.Shape().Dimensions[0]
	return Add(y, Reshape(bias, dims...))
}

// dense is a fully connected layer on [batch, features].
func dense(ctx *context.Context, x *Node, out int, std float64) *Node {
	g := x.Graph()
	in := x.Shape().Dimensions[1]
	if std <= 0 {
		std = math.Sqrt(2 / float64(in))
	}
	wv := ctx.WithInitializer(initializers.RandomNormalFn(ctx, std)).VariableWithShape("weights", shapes.Make(x.DType(), in, out))
	bv := ctx.WithInitializer(initializers.Zero).VariableWithShape("bias", shapes.Make(x.DType(), out))
	return addBias(MatMul(x, wv.ValueGraph(g)), bv.ValueGraph(g))
}

// Outputs are the model's graph outputs for a batch.
type Outputs struct {
	Density *Node // [batch, grid, grid, types], non-negative
	Counts  *Node // [batch, types], the density's spatial sums
	Logits  *Node // [batch, grades]
}

// BuildModel builds the grader on inputs [batch, size, size, channels] made by fillInput.
func BuildModel(ctx *context.Context, mc ModelConfig, images *Node) Outputs {
	return buildModel(ctx, mc, images, 0)
}

// buildModel is BuildModel; with fromUnit > 0 (a pretrained backbone only) its input is not
// photos but the output of the backbone's first fromUnit units (nativeStem.features).
func buildModel(ctx *context.Context, mc ModelConfig, images *Node, fromUnit int) Outputs {
	ctx = ctx.In(modelScope).Checked(false)
	x := images
	if mc.Backbone == BackboneMobileNetV2 {
		x = buildMobileNetV2(ctx.In(BackboneMobileNetV2), mc, x, fromUnit)
	} else if p := mc.Patch; p > 1 {
		// Space-to-depth: [b, s, s, 3] -> [b, s/p, s/p, p*p*3], then a 1x1 projection
		// (a p x p convolution with stride p).
		dims := x.Shape().Dimensions
		b, s := dims[0], dims[1]
		nc := mc.inputChannels()
		x = Reshape(x, b, s/p, p, s/p, p, nc)
		x = TransposeAllAxes(x, 0, 1, 3, 2, 4, 5)
		x = Reshape(x, b, s/p, s/p, p*p*nc)
		sctx := ctx.In("stem")
		fanIn := p * p * nc
		wv := sctx.WithInitializer(initializers.RandomNormalFn(sctx, math.Sqrt(2/float64(fanIn)))).
			VariableWithShape("weights", shapes.Make(x.DType(), fanIn, mc.PatchOut))
		bv := sctx.WithInitializer(initializers.Zero).VariableWithShape("bias", shapes.Make(x.DType(), mc.PatchOut))
		x = addBias(Einsum("bhwk,ko->bhwo", x, wv.ValueGraph(x.Graph())), bv.ValueGraph(x.Graph()))
		x = activations.Relu(norm(sctx, x, mc.Norm))
	}
	for i, l := range mc.Layers {
		lctx := ctx.Inf("conv%d", i)
		x = activations.Relu(norm(lctx, conv3x3(lctx, x, l.Channels, l.Stride), mc.Norm))
	}
	feat := x
	// 1x1 density head. Softplus keeps densities positive and, unlike ReLU, never stops the
	// gradient (a ReLU head collapsed to all-zero densities in the first epoch).
	hctx := ctx.In("density")
	dims := feat.Shape().Dimensions
	c := dims[3]
	g := feat.Graph()
	hw := hctx.WithInitializer(initializers.RandomNormalFn(hctx, 0.01)).VariableWithShape("weights", shapes.Make(feat.DType(), c, NumTypes))
	hb := hctx.WithInitializer(initializers.BroadcastTensorToShape(tensors.FromValue(float32(densityBiasInit)))).
		VariableWithShape("bias", shapes.Make(feat.DType(), NumTypes))
	density := DivScalar(Softplus(addBias(Einsum("bhwc,ct->bhwt", feat, hw.ValueGraph(g)), hb.ValueGraph(g))), densityScale)
	counts := ReduceSum(density, 1, 2)

	// Grade head: log-counts (no gradient back into the counter) + pooled features.
	logCounts := Log1p(StopGradient(counts))
	logTotal := Log1p(ReduceSum(StopGradient(counts), 1))
	pooled := ReduceMean(feat, 1, 2)
	gin := Concatenate([]*Node{logCounts, InsertAxes(logTotal, -1), pooled}, 1)
	h := activations.Relu(dense(ctx.In("grade_hidden"), gin, mc.GradeHidden, 0))
	logits := dense(ctx.In("grade_out"), h, NumGrades, 0.01)
	return Outputs{Density: density, Counts: counts, Logits: logits}
}

// LossWeights weigh the three training losses.
type LossWeights struct {
	Density        float64 `json:"density"`
	Count          float64 `json:"count"`
	Grade          float64 `json:"grade"`
	LabelSmoothing float64 `json:"label_smoothing"`
	// TypeDensity and TypeCount, when set, switch the density and count losses to the
	// total-lesion map and count, with the per-lesion-type terms added at these relative
	// weights. Unset (configurations written before they existed), the losses are per type
	// (plus the total count), as grader v1.0-v1.2 were trained.
	TypeDensity *float64 `json:"type_density,omitempty"`
	TypeCount   *float64 `json:"type_count,omitempty"`
	// Ordinal weighs OrdinalCountLoss, a grade loss on the predicted total count (0: off).
	Ordinal float64 `json:"ordinal,omitempty"`
}

// ordinalScope is the context scope of OrdinalCountLoss's cuts and slope: outside the model
// scope, so exported checkpoints leave them out (the shipped grade comes from the calibration
// fitted after training), while last.ckpt keeps them for --resume.
const ordinalScope = "ordinal_loss"

// ordinalInitSlope is the slope OrdinalCountLoss starts from (its cuts start at hayashiCountCuts).
const ordinalInitSlope = 4.0

// OrdinalCountLoss is a grade loss on the predicted total lesion count: P(grade <= k) =
// sigmoid(slope * (cut_k - log1p(count))), with three increasing cuts (on log1p(count)) and
// the slope learnt in ctx's ordinalScope, started at the Hayashi rule's 5.5 / 20.5 / 50.5
// lesions and slope 4. It returns the mean negative log-likelihood of the grades gtGrade
// [batch] given the counts [batch, NumTypes] (summed over types). Unlike the grade head's
// cross-entropy, its gradient reaches the counter: it rewards counts on the right side of
// the grade boundaries.
func OrdinalCountLoss(ctx *context.Context, counts, gtGrade *Node) *Node {
	g := counts.Graph()
	dt := counts.DType()
	c := ctx.In(ordinalScope).Checked(false) // resumed runs restore the variables first
	first := c.VariableWithValue("first", []float32{float32(math.Log1p(hayashiCountCuts[0]))}).ValueGraph(g)
	gaps := make([]float32, len(hayashiCountCuts)-1)
	for i := range gaps { // softplus^-1 of the gaps between the initial cuts
		gaps[i] = float32(math.Log(math.Expm1(math.Log1p(hayashiCountCuts[i+1]) - math.Log1p(hayashiCountCuts[i]))))
	}
	gapVar := c.VariableWithValue("gaps", gaps).ValueGraph(g)
	logSlope := c.VariableWithValue("log_slope", []float32{float32(math.Log(ordinalInitSlope))}).ValueGraph(g)

	sp := Softplus(gapVar)
	cuts := []*Node{first}
	for i := range gaps {
		cuts = append(cuts, Add(cuts[i], Slice(sp, AxisRange(i, i+1))))
	}
	nc := len(cuts)
	b := counts.Shape().Dimensions[0]
	cutRow := BroadcastToDims(InsertAxes(ConvertDType(Concatenate(cuts, 0), dt), 0), b, nc)
	z := BroadcastToDims(InsertAxes(Log1p(ReduceSum(counts, 1)), -1), b, nc)
	slope := Reshape(ConvertDType(Exp(logSlope), dt))
	cum := Sigmoid(Mul(slope, Sub(cutRow, z)))                              // P(grade <= k), k < nc
	edge := Slice(cum, AxisRange(), AxisRange(0, 1))                        // [b, 1]
	padded := Concatenate([]*Node{ZerosLike(edge), cum, OnesLike(edge)}, 1) // [b, nc+2]
	pick := func(idx *Node) *Node { return ReduceSum(Mul(OneHot(idx, nc+2, dt), padded), 1) }
	p := Sub(pick(AddScalar(gtGrade, 1)), pick(gtGrade))
	return Neg(ReduceAllMean(Log(MaxScalar(p, 1e-6))))
}

// Losses builds the training losses: density (per-image sum of squared errors), count
// (absolute error of log1p counts) and grade (class-weighted, label-smoothed cross-entropy).
// weights are per-sample grade weights [batch]. See LossWeights for how the total-lesion and
// per-type terms are combined.
func Losses(out Outputs, gtDensity, gtCounts, gtGrade, weights *Node, lw LossWeights) (total, dens, count, grade *Node) {
	b := float64(out.Density.Shape().Dimensions[0])
	sse := func(p, t *Node) *Node { return DivScalar(ReduceAllSum(Square(Sub(p, t))), b) }
	perTypeDens := sse(out.Density, gtDensity)
	perType := ReduceSum(Abs(Sub(Log1p(out.Counts), Log1p(gtCounts))), 1)
	tot := Abs(Sub(Log1p(ReduceSum(out.Counts, 1)), Log1p(ReduceSum(gtCounts, 1))))
	if lw.TypeDensity == nil || lw.TypeCount == nil {
		dens = perTypeDens
		count = ReduceAllMean(Add(perType, tot))
	} else {
		totalDens := sse(ReduceSum(out.Density, -1), ReduceSum(gtDensity, -1))
		dens = Add(totalDens, MulScalar(perTypeDens, *lw.TypeDensity))
		count = ReduceAllMean(Add(tot, MulScalar(perType, *lw.TypeCount)))
	}
	onehot := OneHot(gtGrade, NumGrades, out.Logits.DType())
	eps := lw.LabelSmoothing
	target := AddScalar(MulScalar(onehot, 1-eps), eps/NumGrades)
	ce := Neg(ReduceSum(Mul(target, LogSoftmax(out.Logits, -1)), 1))
	grade = Div(ReduceAllSum(Mul(ce, weights)), MaxScalar(ReduceAllSum(weights), 1e-6))
	total = Add(Add(MulScalar(dens, lw.Density), MulScalar(count, lw.Count)), MulScalar(grade, lw.Grade))
	return
}
