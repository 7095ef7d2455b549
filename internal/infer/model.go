// Package infer runs a grading model over many photos: it expands inputs (files, folders,
// globs, a list on stdin), decodes and preprocesses in parallel, batches model calls,
// applies the knowledge base and streams results in input order, skipping and reporting
// photos that cannot be read. Memory is bounded by the batch size, not the number of photos.
package infer

import (
	"context"
	"fmt"
	"image"

	"github.com/acdtcm/acdtcm/internal/severity"
)

// ModelInfo describes a loaded model for results, logs and the /models API.
type ModelInfo struct {
	Name         string             `json:"name"`
	Version      string             `json:"version"`
	Backend      string             `json:"backend"`
	Scale        severity.Scale     `json:"scale"`
	Quantization string             `json:"quantization,omitempty"`
	Metrics      map[string]float64 `json:"metrics,omitempty"`
	// LesionTypes lists the lesion types the model's counts come in: dataset.LesionTypes, or
	// [dataset.LesionUnspecified] for a model that counts without telling types; empty when
	// the model reports no counts.
	LesionTypes []string `json:"lesion_types,omitempty"`
}

// Prediction is a model's raw output for one photo.
type Prediction struct {
	// Probabilities has one entry per grade of ModelInfo.Scale.
	Probabilities []float64
	// LesionCounts maps lesion type (dataset.LesionTypes, or dataset.LesionUnspecified for
	// untyped counts) to its estimated count; may be nil.
	LesionCounts map[string]float64
	// Boxes maps lesion type to boxes in pixels of the original image; may be nil.
	Boxes map[string][]Box
}

// Box is a detected lesion box in pixels of the original image.
type Box struct {
	X0, Y0, X1, Y1, Score float64
}

// Input is a preprocessed photo, ready for the model. Its concrete type belongs to the model.
type Input any

// Model is a grading model usable by diagnose, eval and serve.
type Model interface {
	// Info describes the model.
	Info() ModelInfo
	// Preprocess converts a decoded photo into model input. It must be safe for concurrent use.
	Preprocess(img image.Image) (Input, error)
	// Predict runs the model on a batch of inputs, returning one prediction per input.
	Predict(ctx context.Context, batch []Input) ([]Prediction, error)
}

// ItemPredictor is an optional extension of Model for models whose photos succeed or fail
// one by one (a remote inference server answers each photo in its own request): errs[i],
// when not nil, fails photo i only and preds[i] is then ignored. Both slices have one entry
// per input. Run uses it when a model implements it, so one failed photo does not fail its
// whole batch.
type ItemPredictor interface {
	PredictItems(ctx context.Context, batch []Input) (preds []Prediction, errs []error)
}

// PredictItems runs m on batch and returns one prediction and one error per input: through
// ItemPredictor when m implements it, else through Predict, whose error (or a wrong number
// of predictions) then fails every input of the batch.
func PredictItems(ctx context.Context, m Model, batch []Input) ([]Prediction, []error) {
	if ip, ok := m.(ItemPredictor); ok {
		preds, errs := ip.PredictItems(ctx, batch)
		if len(preds) == len(batch) && len(errs) == len(batch) {
			return preds, errs
		}
		return failAll(batch, fmt.Errorf("model returned %d predictions and %d errors for %d photos", len(preds), len(errs), len(batch)))
	}
	preds, err := m.Predict(ctx, batch)
	if err == nil && len(preds) != len(batch) {
		err = fmt.Errorf("model returned %d predictions for %d photos", len(preds), len(batch))
	}
	if err != nil {
		return failAll(batch, err)
	}
	return preds, make([]error, len(batch))
}

func failAll(batch []Input, err error) ([]Prediction, []error) {
	errs := make([]error, len(batch))
	for i := range errs {
		errs[i] = err
	}
	return make([]Prediction, len(batch)), errs
}
