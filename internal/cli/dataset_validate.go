package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/acdtcm/acdtcm/internal/imageio"
	"github.com/acdtcm/acdtcm/internal/imgmatch"
	"github.com/acdtcm/acdtcm/internal/validate"
)

func init() {
	registerDataset(newDatasetValidateCmd)
}

type datasetValidateOptions struct {
	Path           string
	JSON           bool
	Strict         bool
	MaxPixels      int64
	MaxBytes       int64
	PHashThreshold int
	MatchInliers   int
	Workers        int
	MaxShown       int
	NoProgress     bool
	Progress       bool
}

// progressMinImages is the smallest dataset that gets a progress bar on a terminal.
const progressMinImages = 200

func newDatasetValidateCmd(app *App) *cobra.Command {
	opts := &datasetValidateOptions{}
	cmd := &cobra.Command{
		Use:   "validate DIR|MANIFEST",
		Short: "Check a dataset's records and images without modifying anything",
		Long: `Validate reads a manifest (a file, or a directory holding manifest.jsonl) and every image
it names, and reports problems without changing anything:

  manifest        malformed JSON lines (reported with file:line; the run goes on)
  schema          missing or duplicate image_id, images listed twice
  label           severity grade not valid on its scale, unknown lesion type, age outside
                  0..120, gender other than male/female, split other than train/valid/val/test
  image           missing, truncated, unknown-format or undecodable images, and images over
                  --max-bytes or --max-pixels (refused from the header, before decoding)
  size            recorded width/height differ from the image
  box             boxes outside the image, or with x0>=x1 or y0>=y1 (a box overhanging the
                  edge by at most 1 pixel, as 1-based VOC coordinates do, is a warning)
  lesion_count    lesion_count smaller (error) or larger (warning) than the lesions listed
  duplicate       byte-identical images; an error when they span splits
  near_duplicate  perceptual-hash (DCT pHash, mirror images included) groups within
                  --phash-threshold bits; a warning when they span splits. The report also
                  says how many source_id groups fall inside one near-duplicate group and
                  flags groups whose severity grades differ.
  augmented       copies of one photo after crop, rotation, shear, mirror, brightness and
                  noise changes (training augmentations), found by local-feature matching:
                  keypoints with binary descriptors, an index proposing image pairs, and an
                  affine fit that at least --match-inliers keypoints must agree with; linked
                  pairs chain into groups. A warning when a group spans splits.
  source_leak     one source_id in several splits
  type_grade      a warning when the lesion types only mirror the grade (each photo's lesions
                  have one type, a different one per grade, as in ACNE04's Roboflow export):
                  a model cannot learn lesion types from such labels

The text report has a summary table, the findings grouped by check, class balance per split,
lesion statistics and duplicate groups; --json prints the full report.

Exit status: 0 no errors, 1 errors found (or warnings with --strict), 2 the manifest cannot
be read.`,
		Example: `  acdtcm dataset validate data/acne04
  acdtcm dataset validate data/acne04/manifest.jsonl --strict --max-pixels 20000000
  acdtcm dataset validate data/acne04 --json --no-progress > validate-report.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Path = args[0]
			return runDatasetValidate(cmd.Context(), app, opts)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&opts.JSON, "json", false, "print the full report as JSON")
	f.BoolVar(&opts.Strict, "strict", false, "exit 1 on warnings as well as errors")
	f.Int64Var(&opts.MaxPixels, "max-pixels", imageio.DefaultMaxPixels, "largest image accepted, in pixels (width*height from the header)")
	f.Int64Var(&opts.MaxBytes, "max-bytes", imageio.DefaultMaxBytes, "largest image file accepted, in bytes")
	f.IntVar(&opts.PHashThreshold, "phash-threshold", validate.DefaultPHashThreshold, "near-duplicate threshold: Hamming distance of 64-bit perceptual hashes (-1 disables)")
	f.IntVar(&opts.MatchInliers, "match-inliers", imgmatch.DefaultMinInliers, "augmented-copy check: fewest keypoints agreeing with the fitted affine map (-1 disables the check, which costs about as much CPU time as decoding)")
	f.IntVar(&opts.Workers, "workers", 0, "images checked in parallel (0 = number of CPUs)")
	f.IntVar(&opts.MaxShown, "max-shown", 20, "findings listed per check in the text report (0 = all; --json has all)")
	f.BoolVar(&opts.NoProgress, "no-progress", false, "never show the progress bar")
	f.BoolVar(&opts.Progress, "progress", false, "show the progress bar on stderr even when it is not a terminal")
	return cmd
}

func runDatasetValidate(ctx context.Context, app *App, opts *datasetValidateOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if opts.MaxPixels <= 0 || opts.MaxBytes <= 0 {
		return &ExitError{Code: 2, Err: fmt.Errorf("--max-pixels and --max-bytes must be positive (got %d, %d)", opts.MaxPixels, opts.MaxBytes)}
	}
	if opts.MatchInliers == 0 || opts.MatchInliers < -1 {
		return &ExitError{Code: 2, Err: fmt.Errorf("--match-inliers must be positive, or -1 to disable the check (got %d)", opts.MatchInliers)}
	}
	if opts.PHashThreshold > 64 {
		return &ExitError{Code: 2, Err: fmt.Errorf("--phash-threshold %d exceeds the 64 bits of the hash", opts.PHashThreshold)}
	}
	vopts := validate.Options{
		Limits:         imageio.Limits{MaxPixels: opts.MaxPixels, MaxBytes: opts.MaxBytes},
		PHashThreshold: opts.PHashThreshold,
		MatchInliers:   opts.MatchInliers,
		Workers:        opts.Workers,
	}
	var bar *progressbar.ProgressBar
	if show := !opts.NoProgress && (opts.Progress || isTerminal(app.Err)); show {
		vopts.Progress = func(done, total int) {
			if bar == nil && (opts.Progress || total >= progressMinImages) {
				bar = progressbar.NewOptions(total,
					progressbar.OptionSetWriter(app.Err),
					progressbar.OptionSetDescription("validating"),
					progressbar.OptionShowCount(),
					progressbar.OptionShowIts(),
					progressbar.OptionSetItsString("images"),
					progressbar.OptionThrottle(100*time.Millisecond),
					progressbar.OptionClearOnFinish(),
				)
			}
			if bar != nil {
				_ = bar.Set(done)
			}
		}
	}
	start := time.Now()
	rep, err := validate.Run(ctx, opts.Path, vopts)
	if bar != nil {
		_ = bar.Finish()
	}
	if err != nil {
		if errors.Is(err, validate.ErrManifest) {
			return &ExitError{Code: 2, Err: err}
		}
		return err
	}
	app.Logger.Info("dataset validated", "manifest", rep.Manifest, "images", rep.ImagesChecked, "elapsed", time.Since(start).Round(time.Millisecond))
	if opts.JSON {
		enc := json.NewEncoder(app.Out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("write JSON report: %w", err)
		}
	} else if err := validate.WriteText(app.Out, rep, validate.TextOptions{MaxPerCheck: opts.MaxShown}); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if rep.HasErrors(opts.Strict) {
		what := fmt.Sprintf("%d errors", rep.Summary.Errors)
		if opts.Strict {
			what += fmt.Sprintf(", %d warnings (--strict)", rep.Summary.Warnings)
		}
		return &ExitError{Code: 1, Err: fmt.Errorf("dataset %s failed validation: %s", rep.Manifest, what)}
	}
	return nil
}

// isTerminal reports whether w is a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
