package cli

import (
	"context"
	"image"

	"github.com/acdtcm/acdtcm/internal/eval"
	"github.com/acdtcm/acdtcm/internal/imageio"
	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/models"
	"github.com/acdtcm/acdtcm/internal/result"
)

// modelPredictor opens --model and adapts it to eval.Predictor through the same batched
// pipeline diagnose uses (safe decoding, parallel preprocessing, per-photo errors).
func modelPredictor(app *App, opts *evalOptions) (eval.Predictor, error) {
	model, err := models.Open(models.Options{Model: opts.Model, Adapter: opts.Adapter, Backend: opts.Backend, ComputeDType: opts.ComputeDType, Remote: opts.Remote})
	if err != nil {
		return nil, err
	}
	info := model.Info()
	app.Logger.Info("evaluating model", "name", info.Name, "version", info.Version, "backend", info.Backend)
	decode := func(path string) (image.Image, error) {
		img, _, err := imageio.DecodeFile(path, imageio.DefaultLimits())
		return img, err
	}
	return eval.PredictorFunc(func(ctx context.Context, images []eval.Image) ([]result.DiagnosisResult, error) {
		items := make(chan infer.Item, len(images))
		for _, im := range images {
			items <- infer.Item{Path: im.Path}
		}
		close(items)
		var out []result.DiagnosisResult
		_, err := infer.Run(ctx, model, items, infer.Options{BatchSize: len(images), Decode: decode},
			func(r *result.DiagnosisResult) error {
				out = append(out, *r)
				return nil
			})
		return out, err
	}), nil
}
