package pretrained

import (
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// blockNumber matches the block index of a Keras MobileNetV2 layer name ("block_12_add").
var blockNumber = regexp.MustCompile(`^block_(\d+)_`)

// TestMobileNetV2Layouts checks that the embedded backbone parses and holds the Keras layers
// the grader's MobileNetV2 loader reads, in Keras layouts.
func TestMobileNetV2Layouts(t *testing.T) {
	f, err := MobileNetV2()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		shape []int
	}{
		{"Conv1/kernel", []int{3, 3, 3, 32}},
		{"expanded_conv_depthwise/depthwise_kernel", []int{3, 3, 32, 1}},
		{"expanded_conv_project/kernel", []int{1, 1, 32, 16}},
		{"block_1_expand/kernel", []int{1, 1, 16, 96}},
		{"block_3_depthwise/depthwise_kernel", []int{3, 3, 144, 1}},
		{"block_3_expand/kernel", []int{1, 1, 24, 144}},
		{"block_3_project/kernel", []int{1, 1, 144, 32}},
		{"block_3_project_BN/moving_variance", []int{32}},
		{"block_5_project/kernel", []int{1, 1, 192, 32}},
		{"block_5_project_BN/gamma", []int{32}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info, ok := f.Info(tt.name)
			if !ok {
				t.Fatalf("%s missing from the embedded weights", tt.name)
			}
			if !slices.Equal(info.Shape, tt.shape) {
				t.Errorf("%s: shape %v, want %v", tt.name, info.Shape, tt.shape)
			}
		})
	}
}

// TestMobileNetV2Contents checks what the package doc promises: layers up to block_5 only,
// 55,488 weights plus BatchNorm statistics, all finite, variances non-negative.
func TestMobileNetV2Contents(t *testing.T) {
	f, err := MobileNetV2()
	if err != nil {
		t.Fatal(err)
	}
	weights, stats := 0, 0
	for _, name := range f.Names() {
		if m := blockNumber.FindStringSubmatch(name); m != nil {
			if n, _ := strconv.Atoi(m[1]); n > 5 {
				t.Errorf("%s: beyond block_5_add", name)
			}
		}
		values, info, err := f.Float32(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if strings.Contains(name, "/moving_") {
			stats += info.NumElements()
		} else {
			weights += info.NumElements()
		}
		for i, v := range values {
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("%s[%d] = %v", name, i, v)
			}
			// Non-negative, not positive: nsfwjs stores the weights uint8-quantized, and a few
			// tiny variances (block_2_depthwise_BN channel 93) quantized to 0; BatchNorm's
			// epsilon keeps them finite.
			if strings.HasSuffix(name, "/moving_variance") && v < 0 {
				t.Fatalf("%s[%d] = %v: a variance cannot be negative", name, i, v)
			}
		}
	}
	if weights != 55488 {
		t.Errorf("%d trainable weights, the package doc says 55,488", weights)
	}
	if stats == 0 {
		t.Error("no BatchNorm statistics (moving_mean / moving_variance)")
	}
	if got := f.Metadata["layers"]; got != "input_1..block_5_add" {
		t.Errorf("metadata layers = %q, want input_1..block_5_add", got)
	}
}
