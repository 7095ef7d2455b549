package grader

import (
	"context"
	"encoding/json"
	"fmt"
	"image"

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
	info := infer.ModelInfo{Name: name, Version: "custom", Backend: backend, Scale: severity.Hayashi, Metrics: a.M.Metrics}
	var wi WeightsInfo
	if a.M.builtin && json.Unmarshal(weights.Info, &wi) == nil && wi.Version != "" {
		info.Version = wi.Version
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
