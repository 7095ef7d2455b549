package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/acdtcm/acdtcm/internal/grader"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/quant"
)

func init() { register(newTrainCmd) }

// trainOptions are the flags of `acdtcm train` (config keys train.<flag>).
type trainOptions struct {
	Model     string // trainer kind: "grader" (built-in CNN); more kinds plug into trainers
	ExportDir string
	Progress  bool
	Layers    string
	// lossTypeDensity and lossTypeCount hold --loss-type-density/--loss-type-count; they
	// apply only when set (see grader.LossWeights).
	lossTypeDensity, lossTypeCount float64
	grader.TrainConfig
	// isSet reports whether a flag was given on the command line, in the environment or in
	// a config file (so trainer kinds can apply their own defaults to shared flags).
	isSet func(flag string) bool
}

// trainFlagHooks let other trainer kinds add their own flags to `acdtcm train`.
var trainFlagHooks []func(f *pflag.FlagSet)

// trainers maps a model kind (the config's train.model) to its training function, so other
// trainers (e.g. a Qwen LoRA fine-tune) plug in by adding an entry from their own init.
var trainers = map[string]func(ctx context.Context, app *App, opts *trainOptions) error{
	"grader": runTrainGrader,
}

func newTrainCmd(app *App) *cobra.Command {
	opts := &trainOptions{TrainConfig: grader.DefaultTrainConfig()}
	d := opts.TrainConfig
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Train a model (the built-in acne grader by default) with validation, early stopping and resumable checkpoints",
		Long: `Train a model described by a config file (keys under "train:"). The "grader" kind trains the
compact built-in acne grader with GoMLX: a small convolutional network whose per-lesion-type
density map gives lesion counts and whose grade head gives Hayashi grade probabilities.

Each epoch it validates on a holdout carved from the train split by source photo (no
leakage between augmented copies), writes last.ckpt (and best.ckpt on improvement)
atomically, metrics.jsonl and curves.svg to --out, and stops early after --patience epochs
without improvement. --resume continues exactly from last.ckpt (weights, optimizer state,
data order and augmentation). After training, the best weights are scored on --eval-split
(never used for selection; --skip-eval leaves it unseen) and optionally exported for
go:embed with --export-dir.`,
		Example: `  acdtcm train --config configs/train-grader.yaml
  acdtcm train --config configs/train-grader.yaml --resume
  acdtcm train --config configs/train-grader.yaml --epochs 1 --max-steps 20 --out /tmp/try`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			opts.isSet = func(name string) bool {
				f := cmd.Flags().Lookup(name)
				return f != nil && (f.Changed || app.Config.IsSet(configKey(cmd, f)))
			}
			return runTrain(ctx, app, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Model, "model", "grader", "model kind to train: grader (built-in CNN) or qwen-lora (LoRA fine-tuning of Qwen2.5-VL)")
	f.StringVar(&opts.Data, "data", "", "dataset manifest (or ACNE04 VOC export directory)")
	f.StringVar(&opts.OutDir, "out", d.OutDir, "output directory: checkpoints, metrics.jsonl, curves.svg")
	f.StringVar(&opts.CacheDir, "cache-dir", d.CacheDir, "resized-pixel cache directory (empty: no cache)")
	f.StringVar(&opts.ExportDir, "export-dir", "", "after training, export the best weights (grader.ckpt, grader.json) here")
	f.BoolVar(&opts.Progress, "progress", true, "show a progress bar on stderr")
	f.IntVar(&opts.Epochs, "epochs", d.Epochs, "maximum number of epochs")
	f.IntVar(&opts.BatchSize, "batch-size", d.BatchSize, "photos per step")
	f.Float64Var(&opts.LR, "lr", d.LR, "peak learning rate (Adam)")
	f.Float64Var(&opts.MinLRFrac, "min-lr-frac", d.MinLRFrac, "final learning rate as a fraction of --lr (cosine decay)")
	f.IntVar(&opts.WarmupSteps, "warmup-steps", d.WarmupSteps, "linear warm-up steps")
	f.Float64Var(&opts.WeightDecay, "weight-decay", d.WeightDecay, "decoupled weight decay")
	f.Float64Var(&opts.HoldoutFrac, "holdout-frac", d.HoldoutFrac, "share of train source photos held out for model selection (0: a refit on all of them for --epochs, no early stopping, keeping the last epoch or the --average-last average)")
	f.Uint64Var(&opts.Seed, "seed", d.Seed, "random seed (initialisation, split, data order, augmentation)")
	f.IntVar(&opts.Patience, "patience", d.Patience, "early stopping: epochs without holdout improvement (0: off)")
	f.StringVar(&opts.Metric, "metric", d.Metric, "holdout selection metric: accuracy, macro_f1, quadratic_kappa, count_spearman (rank correlation of lesion counts)")
	f.IntVar(&opts.CkptEvery, "checkpoint-every", d.CkptEvery, "also write last.ckpt every N steps (0: at epoch ends only)")
	f.BoolVar(&opts.Resume, "resume", false, "resume from <out>/last.ckpt when it exists")
	mlbackend.AddFlag(f, &opts.Backend)
	f.Float64Var(&opts.FlipProb, "flip-prob", d.FlipProb, "horizontal flip probability")
	f.Float64Var(&opts.Brightness, "brightness", d.Brightness, "brightness jitter amplitude (0.15: x0.85..1.15)")
	f.Float64Var(&opts.ScaleJitter, "scale-jitter", d.ScaleJitter, "random zoom-in crop of up to 1+J, resized back, lesion boxes following (0: off)")
	f.Float64Var(&opts.ColorJitter, "color-jitter", d.ColorJitter, "per-channel colour gain amplitude (0.1: x0.9..1.1 per channel; 0: off)")
	f.Float64Var(&opts.ClassWeightP, "class-weight-power", d.ClassWeightP, "grade loss weight = class frequency^-p")
	f.IntVar(&opts.MaxSteps, "max-steps", 0, "stop after this many steps in total (0: no limit)")
	f.IntVar(&opts.Workers, "workers", 0, "image decoding workers (0: GOMAXPROCS)")
	f.BoolVar(&opts.Calibrate, "calibrate", d.Calibrate, "after training, fit the ordinal count-to-grade calibration on the training photos (grades then come from the predicted lesion count)")
	f.BoolVar(&opts.CalibrateOnly, "calibrate-only", false, "do not train: calibrate <out>/best.ckpt, then evaluate (and export with --export-dir)")
	f.BoolVar(&opts.FlipTTA, "tta-flip", d.FlipTTA, "calibrate on lesion counts averaged over each photo and its mirror image; inference then runs both too")
	f.StringVar(&opts.WeightsVersion, "weights-version", "1.0.0", "semantic version recorded in exported weights (grader.json; the build date is appended)")
	f.BoolVar(&opts.LinkCopies, "link-copies", d.LinkCopies, "before splitting, find photos filed under two source ids by local-feature matching (as dataset validate's augmented check does): keep each such group on one side of the holdout and drop train photos that are copies of eval-split photos (~1 min for ACNE04)")
	f.StringVar(&opts.CopyLinks, "copy-links", d.CopyLinks, "apply the copy links recorded in this file (copy-links.json, written into --out by an earlier --link-copies run) instead of matching photos: the same split on resized copies of the photos, where fewer copies match; implies --link-copies")
	f.IntVar(&opts.AverageLast, "average-last", d.AverageLast, "keep snapshots of the last K epochs; after training, average their weights (SWA) and use the average when it beats the best epoch on the holdout, or always when there is none (0: off)")
	f.StringVar(&opts.InitFrom, "init-from", "", "start from these weights instead of a random initialisation: a grader checkpoint, a quantized grader directory (acdtcm quantize output, dequantized) or \"builtin\" (same architecture; the input size may differ); ignored when --resume finds last.ckpt")
	f.BoolVar(&opts.AllVersions, "all-versions", d.AllVersions, "each epoch uses every train photo (all augmented versions) instead of one version per source photo")
	f.StringVar(&opts.TrainSplit, "train-split", d.TrainSplit, "split to train on (and carve the holdout from)")
	f.StringVar(&opts.EvalSplit, "eval-split", d.EvalSplit, "split scored after training with the best weights (not used for selection)")
	f.BoolVar(&opts.SkipEval, "skip-eval", d.SkipEval, "do not score --eval-split after training: it stays unseen until the run passes a rule decided on the holdout; then score it with --calibrate-only or acdtcm eval")
	f.IntVar(&opts.TrainConfig.Model.InputSize, "input-size", d.Model.InputSize, "photos are stretched to this square size")
	f.IntVar(&opts.TrainConfig.Model.Patch, "patch", d.Model.Patch, "space-to-depth stem patch size")
	f.IntVar(&opts.TrainConfig.Model.PatchOut, "patch-out", d.Model.PatchOut, "stem output channels")
	f.StringVar(&opts.Layers, "layers", formatLayers(d.Model.Layers), "3x3 conv layers as channels/stride, comma-separated")
	f.IntVar(&opts.TrainConfig.Model.Norm, "norm-groups", d.Model.Norm, "GroupNorm groups after each conv (0: no normalisation)")
	f.BoolVar(&opts.TrainConfig.Model.HighPass, "highpass", d.Model.HighPass, "add local redness/darkness high-pass input channels")
	f.StringVar(&opts.TrainConfig.Model.Backbone, "backbone", d.Model.Backbone, "feature extractor: \"\" (the small network from scratch: --patch stem, then --layers) or \"mobilenetv2\" (pretrained MobileNetV2 up to block_5, embedded; needs --patch 0 --highpass=false; --layers follow it)")
	f.StringVar(&opts.TrainConfig.Model.FreezeUpto, "freeze-upto", d.Model.FreezeUpto, "with --backbone: the last pretrained unit kept frozen (Conv1, expanded_conv, block_1 .. block_5; \"\": train all)")
	f.IntVar(&opts.TrainConfig.Model.GradeHidden, "grade-hidden", d.Model.GradeHidden, "hidden units of the grade head")
	f.Float64Var(&opts.TrainConfig.Model.Sigma, "sigma", d.Model.Sigma, "density target Gaussian sigma (cells)")
	f.Float64Var(&opts.Loss.Density, "loss-density", d.Loss.Density, "weight of the density loss")
	f.Float64Var(&opts.Loss.Count, "loss-count", d.Loss.Count, "weight of the log-count loss")
	f.Float64Var(&opts.Loss.Grade, "loss-grade", d.Loss.Grade, "weight of the grade cross-entropy")
	f.Float64Var(&opts.Loss.LabelSmoothing, "label-smoothing", d.Loss.LabelSmoothing, "grade label smoothing")
	f.Float64Var(&opts.Loss.Ordinal, "loss-ordinal", d.Loss.Ordinal, "weight of an ordinal grade loss on the predicted total count (learnt cuts and slope from the Hayashi rule's 5.5/20.5/50.5 lesions; its gradient reaches the counter; 0: off)")
	f.Float64Var(&opts.lossTypeDensity, "loss-type-density", 1, "when set (with --loss-type-count): the density loss is on the total-lesion map, plus the per-type maps at this relative weight; unset: per-type maps only (grader v1.0-v1.2)")
	f.Float64Var(&opts.lossTypeCount, "loss-type-count", 1, "when set (with --loss-type-density): the count loss is on the total count, plus the per-type counts at this relative weight; unset: per-type counts + total (grader v1.0-v1.2)")
	for _, hook := range trainFlagHooks {
		hook(f)
	}
	return cmd
}

func formatLayers(ls []grader.Layer) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%d/%d", l.Channels, l.Stride)
	}
	return strings.Join(parts, ",")
}

func parseLayers(s string) ([]grader.Layer, error) {
	var out []grader.Layer
	for _, p := range strings.Split(s, ",") {
		p = strings.TrimSpace(p)
		if p == "" {
			continue
		}
		c, st, ok := strings.Cut(p, "/")
		ch, err1 := strconv.Atoi(c)
		sv, err2 := strconv.Atoi(st)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("--layers: %q is not channels/stride", p)
		}
		out = append(out, grader.Layer{Channels: ch, Stride: sv})
	}
	return out, nil
}

func runTrain(ctx context.Context, app *App, opts *trainOptions) error {
	fn, ok := trainers[opts.Model]
	if !ok {
		kinds := make([]string, 0, len(trainers))
		for k := range trainers {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		return &ExitError{Code: 2, Err: fmt.Errorf("--model %q: unknown model kind (known: %s)", opts.Model, strings.Join(kinds, ", "))}
	}
	return fn(ctx, app, opts)
}

func runTrainGrader(ctx context.Context, app *App, opts *trainOptions) error {
	if opts.Data == "" {
		return &ExitError{Code: 2, Err: fmt.Errorf("--data is required (a manifest or the ACNE04 export directory)")}
	}
	layers, err := parseLayers(opts.Layers)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	cfg := opts.TrainConfig
	cfg.Model.Layers = layers
	if cfg.Loss.Ordinal < 0 {
		return &ExitError{Code: 2, Err: fmt.Errorf("--loss-ordinal %g: the weight must be >= 0", cfg.Loss.Ordinal)}
	}
	td, tc := opts.isSet("loss-type-density"), opts.isSet("loss-type-count")
	if td != tc {
		return &ExitError{Code: 2, Err: fmt.Errorf("--loss-type-density and --loss-type-count go together (total-lesion losses plus per-type terms at these weights)")}
	}
	if td {
		if opts.lossTypeDensity < 0 || opts.lossTypeCount < 0 {
			return &ExitError{Code: 2, Err: fmt.Errorf("--loss-type-density %g / --loss-type-count %g: weights must be >= 0", opts.lossTypeDensity, opts.lossTypeCount)}
		}
		cfg.Loss.TypeDensity, cfg.Loss.TypeCount = &opts.lossTypeDensity, &opts.lossTypeCount
	}
	if cfg.Model.Backbone != "" { // a pretrained backbone takes plain RGB unless told otherwise
		if !opts.isSet("patch") {
			cfg.Model.Patch = 0
		}
		if !opts.isSet("highpass") {
			cfg.Model.HighPass = false
		}
	}
	if err := cfg.Model.Validate(); err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	log := func(format string, args ...any) {
		if opts.Progress {
			fmt.Fprint(app.Err, "\r\033[K")
		}
		app.Logger.Info(fmt.Sprintf(format, args...))
	}
	if cfg.InitFrom != "" && quant.IsGraderDir(cfg.InitFrom) {
		if cfg.InitWeights, err = quant.DequantizeGrader(cfg.InitFrom); err != nil {
			return fmt.Errorf("--init-from %s: %w", cfg.InitFrom, err)
		}
	}
	var progress grader.Progress
	if opts.Progress {
		progress = progressBar(app.Err)
	}
	rep, err := grader.RunTraining(ctx, cfg, opts.ExportDir, log, progress)
	if opts.Progress {
		fmt.Fprint(app.Err, "\r\033[K")
	}
	if err != nil {
		return err
	}
	if cfg.CalibrateOnly {
		fmt.Fprintf(app.Out, "calibrated %s (best weights of epoch %d) on the %d train sources\n", filepath.Join(cfg.OutDir, "best.ckpt"), rep.BestEpoch, rep.TrainSources)
	} else {
		took := time.Duration(rep.TrainSeconds * float64(time.Second)).Round(time.Second)
		a := rep.AveragedEpochs
		switch {
		case rep.HoldoutSources > 0:
			fmt.Fprintf(app.Out, "trained %d epochs in %s; best holdout %s %.4f at epoch %d (%d train / %d holdout sources)\n",
				rep.Epochs, took, cfg.Metric, rep.Holdout, rep.BestEpoch, rep.TrainSources, rep.HoldoutSources)
			if len(a) == 2 {
				fmt.Fprintf(app.Out, "best weights: the average of epochs %d-%d, which beat every single epoch on the holdout\n", a[0], a[1])
			}
		case len(a) == 2:
			fmt.Fprintf(app.Out, "trained %d epochs in %s on all %d train sources (no holdout); kept the average of epochs %d-%d\n", rep.Epochs, took, rep.TrainSources, a[0], a[1])
		default:
			fmt.Fprintf(app.Out, "trained %d epochs in %s on all %d train sources (no holdout); kept the weights of epoch %d\n", rep.Epochs, took, rep.TrainSources, rep.BestEpoch)
		}
	}
	if rep.Eval != nil {
		fmt.Fprintf(app.Out, "%s (%d photos): accuracy %.4f, macro-F1 %.4f, quadratic kappa %.4f, macro AUC %.4f, count MAE %.2f\n",
			rep.EvalSplit, rep.Eval.N, rep.Eval.Accuracy, rep.Eval.MacroF1, rep.Eval.Kappa, rep.Eval.MacroAUC, rep.Eval.CountMAE)
	}
	return nil
}

// progressBar renders "epoch 3/30 [=====>    ] 12/56 loss 0.8123 acc 0.7100 ETA 4m10s" on w.
func progressBar(w io.Writer) grader.Progress {
	var last time.Time
	return func(epoch, epochs, step, steps int, loss, metric float64, eta time.Duration) {
		if time.Since(last) < 200*time.Millisecond && step != steps {
			return
		}
		last = time.Now()
		const width = 24
		done := width * step / max(1, steps)
		bar := strings.Repeat("=", done) + strings.Repeat(" ", width-done)
		m := "-"
		if metric == metric { // not NaN
			m = fmt.Sprintf("%.4f", metric)
		}
		fmt.Fprintf(w, "\r\033[Kepoch %d/%d [%s] %d/%d loss %.4f holdout %s ETA %s", epoch, epochs, bar, step, steps, loss, m, eta.Round(time.Second))
	}
}
