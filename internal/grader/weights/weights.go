// Package weights embeds the built-in grader's trained weights (grader.ckpt, written by
// `acdtcm train --config configs/train-grader.yaml` and copied here) and their metrics
// (grader.json). The model was trained on ACNE04 photos, which are free for academic use
// only; other use needs the ACNE04 authors' permission.
package weights

import _ "embed"

// Grader is the checkpoint of the built-in grader (model variables only).
//
//go:embed grader.ckpt
var Grader []byte

// Info is the JSON description of the built-in weights: version, training command and
// validation metrics.
//
//go:embed grader.json
var Info []byte
