package grader

import (
	"encoding/json"
	"math"
	"os"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// TestMobileNetV2MatchesKerasTopology runs the backbone on two fixed photos and compares it
// with the same weights evaluated layer by layer from nsfwjs's own Keras topology in PyTorch
// (float64; scripts/grader-torch/mobilenetv2_fixture.py wrote the fixture).
func TestMobileNetV2MatchesKerasTopology(t *testing.T) {
	raw, err := os.ReadFile("testdata/mobilenetv2-block5.json")
	if err != nil {
		t.Fatal(err)
	}
	var fx struct {
		InputShape  []int     `json:"input_shape"`
		Input       []uint8   `json:"input"`
		OutputShape []int     `json:"output_shape"`
		Output      []float64 `json:"output"`
	}
	if err := json.Unmarshal(raw, &fx); err != nil {
		t.Fatal(err)
	}
	b, s := fx.InputShape[0], fx.InputShape[1]
	in := make([]float32, len(fx.Input))
	for i, v := range fx.Input { // fillInput's normalisation, which the backbone undoes
		in[i] = (float32(v)/255 - 0.5) / 0.25
	}
	mc := ModelConfig{InputSize: s, Backbone: BackboneMobileNetV2, FreezeUpto: "block_2"}
	ctx := context.New()
	exec, err := context.NewExec(testBackend(t), ctx, func(ctx *context.Context, x *Node) *Node {
		return buildMobileNetV2(ctx.In(modelScope).In(BackboneMobileNetV2), mc, x, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(tensors.FromFlatDataAndDimensions(in, b, s, s, 3))
	if err != nil {
		t.Fatal(err)
	}
	if got := out[0].Shape().Dimensions; !equalDims(got, fx.OutputShape) {
		t.Fatalf("output shape %v, want %v", got, fx.OutputShape)
	}
	var worst float64
	for i, g := range tensors.MustCopyFlatData[float32](out[0]) {
		worst = max(worst, math.Abs(float64(g)-fx.Output[i]))
	}
	if worst > 2e-4 {
		t.Fatalf("max |Go - Keras topology| = %g, want <= 2e-4", worst)
	}
	t.Logf("max |Go - Keras topology| = %.2g over %d values", worst, len(fx.Output))

	// Frozen units and every BatchNorm statistic are not trainable; the rest is.
	for _, tc := range []struct {
		scope, name string
		trainable   bool
	}{
		{"Conv1", "kernel", false},
		{"block_2_project_BN", "gamma", false},
		{"block_3_expand", "kernel", true},
		{"block_3_depthwise", "depthwise_kernel", true},
		{"block_5_project_BN", "beta", true},
		{"block_5_project_BN", "moving_mean", false},
		{"block_4_expand_BN", "moving_variance", false},
	} {
		v := ctx.GetVariableByScopeAndName("/"+modelScope+"/"+BackboneMobileNetV2+"/"+tc.scope, tc.name)
		if v == nil {
			t.Fatalf("no variable %s/%s", tc.scope, tc.name)
		}
		if v.Trainable != tc.trainable {
			t.Errorf("%s/%s trainable = %v, want %v", tc.scope, tc.name, v.Trainable, tc.trainable)
		}
	}
}

func TestMobileNetV2ConfigValidation(t *testing.T) {
	ok := ModelConfig{InputSize: 224, Backbone: BackboneMobileNetV2, FreezeUpto: "block_2", Layers: []Layer{{64, 1}}, Norm: 4, GradeHidden: 32}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	if g := ok.Grid(); g != 28 {
		t.Errorf("Grid() = %d, want 28", g)
	}
	cases := []struct {
		name   string
		change func(*ModelConfig)
		want   string
	}{
		{"unknown backbone", func(mc *ModelConfig) { mc.Backbone = "resnet50" }, `unknown backbone "resnet50"`},
		{"bad freeze point", func(mc *ModelConfig) { mc.FreezeUpto = "block_9" }, `freeze_upto "block_9" is not one of`},
		{"freeze without backbone", func(mc *ModelConfig) { mc.Backbone, mc.Patch, mc.PatchOut = "", 4, 32 }, "needs a pretrained backbone"},
		{"highpass input", func(mc *ModelConfig) { mc.HighPass = true }, "takes RGB input"},
		{"patch stem", func(mc *ModelConfig) { mc.Patch = 4 }, "takes RGB input"},
		{"size not divisible by 8", func(mc *ModelConfig) { mc.InputSize = 220 }, "divisible by 8"},
		{"layer stride", func(mc *ModelConfig) { mc.Layers = []Layer{{64, 3}} }, "stride 1 or 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mc := ok
			mc.Layers = append([]Layer(nil), ok.Layers...)
			tc.change(&mc)
			err := mc.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestFrozenPretrained: the variables of the units FreezeUpto names, and only those.
func TestFrozenPretrained(t *testing.T) {
	frozen2 := ModelConfig{Backbone: BackboneMobileNetV2, FreezeUpto: "block_2"}
	tests := []struct {
		mc   ModelConfig
		name string
		want bool
	}{
		{frozen2, "/model/mobilenetv2/Conv1/kernel", true},
		{frozen2, "/model/mobilenetv2/bn_Conv1/gamma", true},
		{frozen2, "/model/mobilenetv2/expanded_conv_depthwise/depthwise_kernel", true},
		{frozen2, "/model/mobilenetv2/block_2_project/kernel", true},
		{frozen2, "/model/mobilenetv2/block_3_expand/kernel", false},
		{frozen2, "/model/conv0/weights", false},
		{frozen2, "/model/density/weights", false},
		{ModelConfig{Backbone: BackboneMobileNetV2, FreezeUpto: "Conv1"}, "/model/mobilenetv2/expanded_conv_project/kernel", false},
		{ModelConfig{Backbone: BackboneMobileNetV2}, "/model/mobilenetv2/Conv1/kernel", false},
		{DefaultModelConfig(), "/model/mobilenetv2/Conv1/kernel", false},
	}
	for _, tc := range tests {
		if got := tc.mc.FrozenPretrained(tc.name); got != tc.want {
			t.Errorf("freeze_upto %q: FrozenPretrained(%s) = %v, want %v", tc.mc.FreezeUpto, tc.name, got, tc.want)
		}
	}
}
