package eval

import (
	"context"
	"fmt"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/result"
)

// Image is one photo to grade: its manifest id and its resolved path.
type Image struct {
	ID   string
	Path string
}

// Predictor grades photos. It is how `acdtcm eval --model` plugs a model in (the built-in
// grader, Qwen2.5-VL, a remote server): it returns one result per image, in order; a photo
// that cannot be graded gets a result with Error set rather than failing the batch.
type Predictor interface {
	Predict(ctx context.Context, images []Image) ([]result.DiagnosisResult, error)
}

// PredictorFunc adapts a function to Predictor.
type PredictorFunc func(ctx context.Context, images []Image) ([]result.DiagnosisResult, error)

// Predict calls f.
func (f PredictorFunc) Predict(ctx context.Context, images []Image) ([]result.DiagnosisResult, error) {
	return f(ctx, images)
}

// Predict runs p over every graded record of m in batches of batchSize and returns the
// predictions ready for Evaluate; each result's ImageID is set to the record's id so the
// join cannot miss. A failing batch becomes errored predictions (reported by Evaluate);
// only a cancelled context stops the run.
func Predict(ctx context.Context, p Predictor, m *dataset.Manifest, batchSize int) ([]Prediction, error) {
	if batchSize <= 0 {
		batchSize = 16
	}
	var images []Image
	for i := range m.Records {
		r := &m.Records[i]
		if r.Diagnosis.Severity == nil {
			continue
		}
		images = append(images, Image{ID: r.ImageID, Path: m.ImagePath(r)})
	}
	out := make([]Prediction, 0, len(images))
	for start := 0; start < len(images); start += batchSize {
		if err := ctx.Err(); err != nil {
			return out, fmt.Errorf("predict %s: %w", m.Path, err)
		}
		batch := images[start:min(start+batchSize, len(images))]
		res, err := p.Predict(ctx, batch)
		if err == nil && len(res) != len(batch) {
			err = fmt.Errorf("predictor returned %d results for %d images", len(res), len(batch))
		}
		for i, img := range batch {
			var r result.DiagnosisResult
			if err != nil {
				if ctx.Err() != nil {
					return out, fmt.Errorf("predict %s: %w", m.Path, ctx.Err())
				}
				r = result.DiagnosisResult{Error: err.Error()}
			} else {
				r = res[i]
			}
			r.ImageID, r.Image = img.ID, img.Path
			out = append(out, Prediction{DiagnosisResult: r})
		}
	}
	return out, nil
}
