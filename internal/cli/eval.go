package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/eval"
	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/remote"
	"github.com/acdtcm/acdtcm/internal/severity"
)

func init() { register(newEvalCmd) }

// MetricsFileName is the metrics file `eval --out DIR` writes.
const MetricsFileName = "metrics.json"

type evalOptions struct {
	Data        string
	Predictions string
	Scale       string
	JSON        bool
	Out         string
	Bootstrap   int
	Seed        uint64
	Level       float64
	Baseline    string
	MaxDrop     float64
	Gate        []string
	NoPlots     bool

	// Predictor, when set, grades the manifest's photos instead of reading Predictions;
	// --model builds one (eval_model.go).
	Predictor eval.Predictor
	BatchSize int
	// Model, Adapter and Backend select a model to run instead of --predictions.
	Model, Adapter, Backend string
	// ComputeDType is a Qwen model's weight and compute dtype (--compute-dtype).
	ComputeDType string
	// Split, when set, evaluates only the manifest records of that split.
	Split string
	// Remote configures --backend openai (an OpenAI-compatible server such as vLLM).
	Remote remote.Flags
}

func newEvalCmd(app *App) *cobra.Command {
	opts := &evalOptions{}
	cmd := &cobra.Command{
		Use:   "eval --data MANIFEST (--predictions PRED.jsonl | --model MODEL)",
		Short: "Score predictions against a labelled manifest, plot, and gate regressions",
		Long: `eval joins predictions (the JSON Lines that "acdtcm diagnose" writes) to a manifest's
ground truth by image_id, falling back to the image path, and reports accuracy, precision,
recall and F1 (per grade, macro, weighted), one-vs-rest AUC-ROC, quadratic-weighted kappa,
grade MAE, expected calibration error (15 bins), sensitivity/specificity/Youden per grade,
lesion-count MAE and bootstrap confidence intervals.

Grades are compared on one scale (--scale, default the ground truth's). When predictions or
truth use another scale they are mapped with the severity cross-walk, and the output says so.
Unmatched, duplicate, errored and unconvertible predictions are counted and listed.

With --baseline, eval is a regression gate: it exits with status 1 when a --gate metric is
worse than the baseline's by more than --max-drop (error metrics such as mae count increases).`,
		Example: `  acdtcm eval --data data/acne04/manifest.jsonl --predictions pred.jsonl --out runs/eval
  acdtcm eval --data data/acne04 --predictions pred.jsonl --json --bootstrap 0
  acdtcm eval --model builtin --data data/acne04 --split valid --out runs/eval-builtin
  acdtcm eval --model models/grader-int8 --data data/acne04 --split valid   # a grader quantized by acdtcm quantize
  acdtcm eval --data data/acne04 --predictions pred.jsonl --baseline runs/eval/metrics.json --max-drop 0.01 --gate accuracy,macro_f1,kappa`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Backend = backendSpec(app, cmd, opts.Backend)
			if opts.Model != "" && opts.Predictor == nil {
				if opts.Predictions != "" {
					return &ExitError{Code: 2, Err: errors.New("give --model or --predictions, not both")}
				}
				p, err := modelPredictor(app, opts)
				if err != nil {
					return &ExitError{Code: 2, Err: err}
				}
				opts.Predictor = p
			}
			return runEval(cmd.Context(), app, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Model, "model", "", "run this model instead of reading --predictions: "+modelFlagKinds)
	f.StringVar(&opts.Adapter, "adapter", "", "with --model DIR: a PEFT LoRA adapter for the Qwen2.5-VL model")
	f.StringVar(&opts.ComputeDType, "compute-dtype", "float32", "with --model DIR: "+computeDTypeUsage)
	f.StringVar(&opts.Split, "split", "", "evaluate only the manifest records of this split (e.g. valid)")
	f.IntVar(&opts.BatchSize, "batch-size", 16, "with --model: photos per model call")
	addBackendFlag(cmd, &opts.Backend)
	remote.AddFlags(f, &opts.Remote)
	f.StringVar(&opts.Data, "data", "", "labelled manifest (file, or dataset directory with manifest.jsonl)")
	f.StringVar(&opts.Predictions, "predictions", "", "predictions JSON Lines written by diagnose (- for stdin)")
	f.StringVar(&opts.Scale, "scale", "", "evaluation scale: hayashi, clinical4 or cn2019 (default: the ground truth's scale)")
	f.BoolVar(&opts.JSON, "json", false, "print the metrics as JSON instead of tables")
	f.StringVar(&opts.Out, "out", "", "directory for metrics.json and the PNG plots")
	f.IntVar(&opts.Bootstrap, "bootstrap", 1000, "bootstrap resamples for confidence intervals (0 disables)")
	f.Uint64Var(&opts.Seed, "seed", 42, "bootstrap random seed")
	f.Float64Var(&opts.Level, "ci-level", 0.95, "confidence level of the bootstrap intervals")
	f.StringVar(&opts.Baseline, "baseline", "", "baseline metrics.json to gate against")
	f.Float64Var(&opts.MaxDrop, "max-drop", 0.01, "largest allowed degradation of a gated metric (absolute)")
	f.StringSliceVar(&opts.Gate, "gate", []string{"accuracy", "macro_f1", "kappa"}, "metrics the regression gate checks")
	f.BoolVar(&opts.NoPlots, "no-plots", false, "with --out, write metrics.json only")
	return cmd
}

func runEval(ctx context.Context, app *App, opts *evalOptions) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if opts.Data == "" {
		return errors.New("--data is required")
	}
	if opts.Predictions == "" && opts.Predictor == nil {
		return errors.New("--predictions is required")
	}
	var scale severity.Scale
	if opts.Scale != "" {
		s, err := severity.ParseScale(opts.Scale)
		if err != nil {
			return fmt.Errorf("--scale: %w", err)
		}
		scale = s
	}
	if opts.Level <= 0 || opts.Level >= 1 {
		return fmt.Errorf("--ci-level must be between 0 and 1, got %g", opts.Level)
	}
	if opts.MaxDrop < 0 {
		return fmt.Errorf("--max-drop must not be negative, got %g", opts.MaxDrop)
	}
	var gate []string
	var baseline map[string]eval.Num
	if opts.Baseline != "" {
		var err error
		if gate, err = eval.ParseGateMetrics(opts.Gate); err != nil {
			return fmt.Errorf("--gate: %w", err)
		}
		if len(gate) == 0 {
			return errors.New("--baseline needs at least one --gate metric")
		}
		if baseline, err = eval.ReadBaseline(opts.Baseline); err != nil {
			return err
		}
	}

	m, err := dataset.ReadManifest(opts.Data)
	if err != nil {
		return err
	}
	if opts.Split != "" {
		kept := m.Records[:0]
		for _, r := range m.Records {
			if r.Split == opts.Split {
				kept = append(kept, r)
			}
		}
		if len(kept) == 0 {
			return fmt.Errorf("manifest %s has no records in split %q", m.Path, opts.Split)
		}
		m.Records = kept
	}
	preds, problems, err := loadPredictions(ctx, app, opts, m)
	if err != nil {
		return err
	}
	rep, err := eval.Evaluate(m, preds, eval.Options{
		Scale:     scale,
		Bootstrap: eval.BootstrapOptions{Resamples: opts.Bootstrap, Seed: opts.Seed, Level: opts.Level},
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		rep.Problems = append(problems, rep.Problems...)
		if len(rep.Problems) > eval.MaxProblems {
			rep.Problems = rep.Problems[:eval.MaxProblems]
		}
		rep.Counts.Unparsable = len(problems)
	}
	if baseline != nil {
		rep.Gate = eval.Gate(baseline, rep.Summary, gate, opts.MaxDrop)
	}

	if opts.Out != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode metrics: %w", err)
		}
		path := filepath.Join(opts.Out, MetricsFileName)
		if err := fsutil.WriteFileAtomic(path, append(b, '\n'), 0o644); err != nil {
			return err
		}
		files := []string{path}
		if !opts.NoPlots {
			plots, err := eval.WritePlots(opts.Out, rep)
			if err != nil {
				return err
			}
			files = append(files, plots...)
		}
		app.Logger.Info("eval outputs written", "files", strings.Join(files, ", "))
	}
	if opts.JSON {
		enc := json.NewEncoder(app.Out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			return fmt.Errorf("write JSON: %w", err)
		}
	} else if err := eval.WriteTables(app.Out, rep); err != nil {
		return err
	}

	if failed := eval.GateFailures(rep.Gate); len(failed) > 0 {
		reasons := make([]string, len(failed))
		for i, f := range failed {
			reasons[i] = f.Reason
		}
		return &ExitError{Code: 1, Err: fmt.Errorf("regression gate failed against %s: %s", opts.Baseline, strings.Join(reasons, "; "))}
	}
	return nil
}

// loadPredictions reads the predictions file (or stdin), or runs opts.Predictor over the
// manifest.
func loadPredictions(ctx context.Context, app *App, opts *evalOptions, m *dataset.Manifest) ([]eval.Prediction, []eval.Problem, error) {
	if opts.Predictor != nil {
		preds, err := eval.Predict(ctx, opts.Predictor, m, opts.BatchSize)
		return preds, nil, err
	}
	var r io.Reader
	name := opts.Predictions
	if name == "-" {
		r, name = app.In, "stdin"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, nil, fmt.Errorf("open predictions: %w", err)
		}
		defer f.Close()
		r = f
	}
	return eval.ReadPredictions(r, name)
}
