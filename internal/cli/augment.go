package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/acdtcm/acdtcm/internal/augment"
	"github.com/acdtcm/acdtcm/internal/dataset"
)

func init() { register(newAugmentCmd) }

// augmentOptions are the flags of `acdtcm augment`.
type augmentOptions struct {
	Manifest        string
	OutDir          string
	Copies          int
	Seed            int64
	Limit           int
	IncludeOriginal bool
	Quality         int
	Workers         int
	NoProgress      bool
	Fill            string
	Params          augment.Params
}

func newAugmentCmd(app *App) *cobra.Command {
	opts := &augmentOptions{Params: augment.DefaultParams()}
	cmd := &cobra.Command{
		Use:   "augment MANIFEST --out DIR",
		Short: "Write randomly transformed copies of a dataset's photos, boxes included",
		Long: `augment writes --copies randomly transformed JPEG copies of every photo of a manifest
(a manifest.jsonl file or a dataset directory) to DIR/images/ and a new DIR/manifest.jsonl.
The source is only read.

Transforms, each applied independently with its probability (-p flags), in this order:
rotation by up to ±--rotation degrees (cropped back to the original size, or on a larger
canvas with --rotation-expand; uncovered corners are --fill), random crop of
--crop-min-scale..--crop-max-scale of the area with a width/height ratio of
--crop-min-aspect..--crop-max-aspect times the image's (scaled back to the original size
unless --crop-resize=false), horizontal flip, vertical flip (off by default: faces),
brightness shift up to ±--brightness of full scale, contrast and saturation factors within
1±--contrast and 1±--saturation.

Lesion boxes follow the geometry: a rotated box becomes the bounding box of its rotated
corners; boxes are clipped to the image and dropped when less than --min-visible of the
transformed box is left inside. lesion_count drops by the boxes dropped; the severity grade
is kept. Copy k of photo X gets image_id X_aug<k>, X's split and X's source_id (X itself
when it had none), so splits grouped by source still hold.

Randomness of every copy comes from (--seed, image id, copy index): the same seed gives
byte-identical output whatever --workers is. Photos that cannot be read are reported and
skipped; the exit status is then 1 (the rest is still written).

Each flag --foo is the config key augment.foo (env ACDTCM_AUGMENT_FOO); configs/augment.yaml
lists them with their defaults.`,
		Example: `  # 3 copies of every photo of an imported dataset
  acdtcm augment data/acne04/manifest.jsonl --out data/acne04-aug

  # 5 copies of the first 100 photos, originals included, stronger rotation, 4 workers
  acdtcm augment data/acne04 --out /tmp/aug --copies 5 --limit 100 --include-original \
      --rotation 25 --rotation-p 0.8 --workers 4 --seed 7`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Manifest = args[0]
			return runAugment(cmd.Context(), app, opts)
		},
	}
	f := cmd.Flags()
	p := &opts.Params
	f.StringVarP(&opts.OutDir, "out", "o", "", "output directory (required); receives images/ and manifest.jsonl")
	f.IntVar(&opts.Copies, "copies", 3, "augmented copies per photo")
	f.Int64Var(&opts.Seed, "seed", 42, "random seed")
	f.IntVar(&opts.Limit, "limit", 0, "augment only the first N photos of the manifest (0: all)")
	f.BoolVar(&opts.IncludeOriginal, "include-original", false, "also copy each original photo (unchanged) into the output")
	f.IntVar(&opts.Quality, "quality", 95, "JPEG quality of the written copies (1-100)")
	f.IntVar(&opts.Workers, "workers", 0, "photos processed in parallel (0: one per CPU)")
	f.BoolVar(&opts.NoProgress, "no-progress", false, "hide the progress bar (it is hidden anyway when stderr is not a terminal)")
	f.Float64Var(&p.Rotation, "rotation", p.Rotation, "largest rotation in degrees (angle uniform in ±rotation)")
	f.Float64Var(&p.RotationP, "rotation-p", p.RotationP, "probability of a rotation")
	f.BoolVar(&p.RotationExpand, "rotation-expand", p.RotationExpand, "keep the whole rotated photo on a larger canvas instead of cropping to the original size")
	f.StringVar(&opts.Fill, "fill", "#000000", "colour of the corners uncovered by a rotation (#rrggbb)")
	f.Float64Var(&p.Brightness, "brightness", p.Brightness, "largest brightness shift as a fraction of full scale")
	f.Float64Var(&p.BrightnessP, "brightness-p", p.BrightnessP, "probability of a brightness change")
	f.Float64Var(&p.Contrast, "contrast", p.Contrast, "largest contrast change (factor in 1±contrast)")
	f.Float64Var(&p.ContrastP, "contrast-p", p.ContrastP, "probability of a contrast change")
	f.Float64Var(&p.Saturation, "saturation", p.Saturation, "largest saturation change (factor in 1±saturation)")
	f.Float64Var(&p.SaturationP, "saturation-p", p.SaturationP, "probability of a saturation change")
	f.Float64Var(&p.CropMinScale, "crop-min-scale", p.CropMinScale, "smallest crop area as a fraction of the image area")
	f.Float64Var(&p.CropMaxScale, "crop-max-scale", p.CropMaxScale, "largest crop area as a fraction of the image area")
	f.Float64Var(&p.CropMinAspect, "crop-min-aspect", p.CropMinAspect, "smallest crop width/height ratio, relative to the image's")
	f.Float64Var(&p.CropMaxAspect, "crop-max-aspect", p.CropMaxAspect, "largest crop width/height ratio, relative to the image's")
	f.Float64Var(&p.CropP, "crop-p", p.CropP, "probability of a random crop")
	f.BoolVar(&p.CropResize, "crop-resize", p.CropResize, "scale a crop back to the photo's size")
	f.Float64Var(&p.FlipP, "flip-p", p.FlipP, "probability of a horizontal flip")
	f.Float64Var(&p.VFlipP, "vflip-p", p.VFlipP, "probability of a vertical flip")
	f.Float64Var(&p.MinVisible, "min-visible", p.MinVisible, "drop a box when less than this fraction of it stays inside the image")
	return cmd
}

// runAugment validates the options, runs the augmentation and prints a summary; skipped
// photos are logged as they happen and make the exit status 1.
func runAugment(ctx context.Context, app *App, opts *augmentOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if opts.OutDir == "" {
		return fmt.Errorf("--out is required")
	}
	fill, err := augment.ParseColor(opts.Fill)
	if err != nil {
		return fmt.Errorf("--fill: %w", err)
	}
	opts.Params.Fill = fill
	m, err := dataset.ReadManifest(opts.Manifest)
	if err != nil {
		return err
	}
	cfg := augment.Config{
		Params:          opts.Params,
		Copies:          opts.Copies,
		Seed:            opts.Seed,
		Limit:           opts.Limit,
		IncludeOriginal: opts.IncludeOriginal,
		Quality:         opts.Quality,
		Workers:         opts.Workers,
		OutDir:          opts.OutDir,
		OnSkip: func(s augment.Skip) {
			app.Logger.Warn("skipping photo", "image_id", s.ImageID, "file", s.File, "error", s.Err)
		},
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	total := len(m.Records)
	if opts.Limit > 0 && opts.Limit < total {
		total = opts.Limit
	}
	bar := newProgressBar(app.Err, total, "augment", opts.NoProgress)
	if bar != nil {
		cfg.Progress = func() { _ = bar.Add(1) }
	}
	sum, err := augment.Run(ctx, m, cfg)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		return err
	}
	rate := 0.0
	if s := sum.Elapsed.Seconds(); s > 0 {
		rate = float64(sum.ImagesWritten) / s
	}
	fmt.Fprintf(app.Out, "augmented %d of %d photos: wrote %d images and %s in %s (%.1f images/s)\n",
		sum.Augmented, sum.Sources, sum.ImagesWritten, sum.Manifest, sum.Elapsed.Round(time.Millisecond), rate)
	fmt.Fprintf(app.Out, "boxes: %d transformed, %d dropped (left the image)\n", sum.BoxesIn, sum.BoxesDropped)
	if n := len(sum.Skipped); n > 0 {
		fmt.Fprintf(app.Out, "skipped %d photos:\n", n)
		for _, s := range sum.Skipped {
			fmt.Fprintf(app.Out, "  %s: %v\n", s.File, s.Err)
		}
		return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d photos could not be augmented", n, sum.Sources)}
	}
	return nil
}

// newProgressBar returns a progress bar on w, or nil when hidden is set or w is not a
// terminal.
func newProgressBar(w io.Writer, total int, desc string, hidden bool) *progressbar.ProgressBar {
	f, ok := w.(*os.File)
	if hidden || !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return progressbar.NewOptions(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("photos"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)
}
