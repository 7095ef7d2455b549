// Package pretrained embeds the pretrained weights that the built-in grader's optional
// MobileNetV2 backbone starts from, so `acdtcm train --backbone mobilenetv2` needs no download.
//
// mobilenetv2-nsfwjs-block5.safetensors holds the layers input_1..block_5_add (55,488 weights
// plus BatchNorm statistics, float32, Keras names and layouts: conv kernels [kh, kw, in, out],
// depthwise kernels [kh, kw, C, 1]) of the Keras MobileNetV2 that the npm package nsfwjs 4.4.0
// ships (MIT, Copyright (c) 2019 Infinite Red, Inc.; see LICENSE-nsfwjs): ImageNet-initialised
// and fine-tuned by its authors to classify photos into 5 classes, stored uint8-quantized.
// scripts/grader-experiments/pretrained-probe/{dump_weights.js,export_backbone.py} made it.
package pretrained

import (
	_ "embed"
	"fmt"

	"github.com/acdtcm/acdtcm/internal/safetensors"
)

//go:embed mobilenetv2-nsfwjs-block5.safetensors
var mobileNetV2Block5 []byte

// MobileNetV2Source names where the MobileNetV2 weights come from, for checkpoints and docs.
const MobileNetV2Source = "nsfwjs@4.4.0 MobileNetV2 (MIT, Infinite Red), layers input_1..block_5_add"

// MobileNetV2 returns the embedded MobileNetV2 weights by Keras name (e.g.
// "block_3_expand/kernel", "block_3_expand_BN/moving_mean").
func MobileNetV2() (*safetensors.File, error) {
	f, err := safetensors.Parse("mobilenetv2-nsfwjs-block5.safetensors", mobileNetV2Block5)
	if err != nil {
		return nil, fmt.Errorf("embedded MobileNetV2 weights: %w", err)
	}
	return f, nil
}
