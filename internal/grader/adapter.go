package grader

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image"
	"os"
	"path/filepath"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/grader/weights"
	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// inferInput is the preprocessed form of one photo for the infer pipeline.
type inferInput struct {
	rows []uint8
	w, h int
	minX int
	minY int
}

// InferModel adapts a loaded grader to infer.Model (diagnose, eval and serve).
type InferModel struct {
	M    *Model
	Name string // reported model name; default "acdtcm-grader"
	// Version is the reported weights version; empty: the built-in weights' version from
	// grader.json, else "custom".
	Version string
	// Quantization is the method of quantized weights (e.g. "nf4"); empty for float32.
	Quantization string
}

// BuiltinVersion is the version of the weights embedded in the binary (grader.json), or ""
// when the binary has none.
func BuiltinVersion() string {
	var wi WeightsInfo
	if json.Unmarshal(weights.Info, &wi) != nil {
		return ""
	}
	return wi.Version
}

// WeightsVersion tells the version of the grader checkpoint file at path: the built-in
// version when the file is a copy of the embedded weights, the version in grader.json
// beside an exported grader.ckpt (both written by Export), else "" (unknown).
func WeightsVersion(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(weights.Grader) > 0 && bytes.Equal(data, weights.Grader) {
		return BuiltinVersion()
	}
	if filepath.Base(path) != "grader.ckpt" {
		return ""
	}
	info, err := os.ReadFile(filepath.Join(filepath.Dir(path), "grader.json"))
	if err != nil {
		return ""
	}
	var wi WeightsInfo
	if json.Unmarshal(info, &wi) != nil {
		return ""
	}
	return wi.Version
}

// Info describes the model; the version and metrics of built-in weights come from grader.json.
func (a *InferModel) Info() infer.ModelInfo {
	name := a.Name
	if name == "" {
		name = "acdtcm-grader"
	}
	backend := "go"
	if a.M.native != nil {
		backend = "go-native" // the native engine (native.go), not GoMLX's graph
	}
	info := infer.ModelInfo{Name: name, Version: a.Version, Backend: backend, Scale: severity.Hayashi, Quantization: a.Quantization, Metrics: a.M.Metrics,
		LesionTypes: []string{dataset.LesionUnspecified}}
	if a.M.Config.TypedCounts {
		info.LesionTypes = dataset.LesionTypes
	}
	if info.Version == "" && a.M.builtin {
		info.Version = BuiltinVersion()
	}
	if info.Version == "" {
		info.Version = "custom"
	}
	return info
}

// Preprocess stretches the photo to the model's input square; safe for concurrent use.
func (a *InferModel) Preprocess(img image.Image) (infer.Input, error) {
	b := img.Bounds()
	if b.Empty() {
		return nil, fmt.Errorf("empty image")
	}
	return &inferInput{rows: a.M.Preprocess(img), w: b.Dx(), h: b.Dy(), minX: b.Min.X, minY: b.Min.Y}, nil
}

// Predict runs one batch; boxes are mapped to pixels of each original image.
func (a *InferModel) Predict(ctx context.Context, batch []infer.Input) ([]infer.Prediction, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	rows := make([][]uint8, len(batch))
	ins := make([]*inferInput, len(batch))
	for i, in := range batch {
		x, ok := in.(*inferInput)
		if !ok {
			return nil, fmt.Errorf("input %d: not produced by this model's Preprocess (%T)", i, in)
		}
		ins[i], rows[i] = x, x.rows
	}
	preds, err := a.M.PredictPreprocessed(rows)
	if err != nil {
		return nil, err
	}
	out := make([]infer.Prediction, len(preds))
	for i, p := range preds {
		in := ins[i]
		o := infer.Prediction{Probabilities: p.Probabilities, LesionCounts: p.LesionCounts, Boxes: map[string][]infer.Box{}}
		for _, bx := range p.Boxes {
			o.Boxes[bx.Type] = append(o.Boxes[bx.Type], infer.Box{
				X0: float64(in.minX) + bx.X0*float64(in.w), X1: float64(in.minX) + bx.X1*float64(in.w),
				Y0: float64(in.minY) + bx.Y0*float64(in.h), Y1: float64(in.minY) + bx.Y1*float64(in.h), Score: bx.Score})
		}
		out[i] = o
	}
	return out, nil
}
