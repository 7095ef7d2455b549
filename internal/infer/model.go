// Package infer runs a grading model over many photos: it expands inputs (files, folders,
// globs, a list on stdin), decodes and preprocesses in parallel, batches model calls,
// applies the knowledge base and streams results in input order, skipping and reporting
// photos that cannot be read. Memory is bounded by the batch size, not the number of photos.
package infer

import (
	"context"
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
}

// Prediction is a model's raw output for one photo.
type Prediction struct {
	// Probabilities has one entry per grade of ModelInfo.Scale.
	Probabilities []float64
	// LesionCounts maps lesion type (dataset.LesionTypes) to its estimated count; may be nil.
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
