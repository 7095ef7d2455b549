package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/train"
)

// loraFlags are the qwen-lora trainer's own flags (config keys train.<flag>).
var loraFlags = train.DefaultLoRAConfig()

func init() {
	trainers["qwen-lora"] = runTrainQwenLoRA
	trainFlagHooks = append(trainFlagHooks, func(f *pflag.FlagSet) {
		d := train.DefaultLoRAConfig()
		f.StringVar(&loraFlags.Model, "base-model", "", "qwen-lora: base Qwen2.5-VL checkpoint directory (Hugging Face layout)")
		f.StringVar(&loraFlags.Adapter, "adapter", "", "qwen-lora: start from this PEFT adapter instead of a fresh one (vision-tower modules it adapts are trained too, the tower then running every step)")
		f.StringVar(&loraFlags.EvalData, "eval-data", "", "qwen-lora: validation manifest or messages file (default: --data with --eval-split)")
		f.IntVar(&loraFlags.R, "lora-r", d.R, "qwen-lora: LoRA rank")
		f.Float64Var(&loraFlags.Alpha, "lora-alpha", d.Alpha, "qwen-lora: LoRA alpha (scale = alpha/r)")
		f.Float64Var(&loraFlags.Dropout, "lora-dropout", d.Dropout, "qwen-lora: dropout on the LoRA branch")
		f.StringSliceVar(&loraFlags.Targets, "lora-targets", d.Targets, "qwen-lora: target module names")
		f.StringVar(&loraFlags.TargetRegex, "lora-target-regex", "", "qwen-lora: adapt the modules whose full name this regex matches (PEFT's target_modules string; replaces --lora-targets and --lora-lm-only); "+visionTraining)
		f.BoolVar(&loraFlags.LanguageModelOnly, "lora-lm-only", d.LanguageModelOnly, "qwen-lora: adapt the language model only, the vision tower frozen (default); false lets --lora-targets match vision-tower modules too (the default targets then hit its MLPs, as PEFT's plain target list does): "+visionTraining)
		f.BoolVar(&loraFlags.RSLoRA, "rslora", d.RSLoRA, "qwen-lora: rank-stabilised scale alpha/sqrt(r)")
		f.IntVar(&loraFlags.GradAccum, "grad-accum", d.GradAccum, "qwen-lora: gradient accumulation steps")
		f.Float64Var(&loraFlags.ClipNorm, "clip-norm", d.ClipNorm, "qwen-lora: global gradient-norm clipping (0: off)")
		f.Float64Var(&loraFlags.Beta1, "beta1", d.Beta1, "qwen-lora: AdamW beta1")
		f.Float64Var(&loraFlags.Beta2, "beta2", d.Beta2, "qwen-lora: AdamW beta2")
		f.Float64Var(&loraFlags.Eps, "adam-eps", d.Eps, "qwen-lora: AdamW epsilon")
		f.StringVar(&loraFlags.Schedule, "schedule", d.Schedule, "qwen-lora: learning-rate decay after warm-up: cosine, linear or constant")
		f.Float64SliceVar(&loraFlags.ClassWeights, "class-weights", d.ClassWeights, "qwen-lora: grade-loss class weights (grades 0..3)")
		f.Float64Var(&loraFlags.GradeLossWeight, "grade-loss", d.GradeLossWeight, "qwen-lora: weight of the grade-token classification loss (0: off)")
		f.IntVar(&loraFlags.MinPixels, "min-pixels", 0, "qwen-lora: image min_pixels (default: --adapter's, else the base's); "+savedPixels)
		f.IntVar(&loraFlags.MaxPixels, "max-pixels", 0, "qwen-lora: image max_pixels (default: --adapter's, else the base's); "+savedPixels)
		f.IntVar(&loraFlags.SaveSteps, "save-steps", d.SaveSteps, "qwen-lora: write checkpoint-last every N optimizer steps")
		f.IntVar(&loraFlags.MaxEvalSamples, "max-eval-samples", 0, "qwen-lora: score at most N validation samples per epoch (0: all)")
		f.StringVar(&loraFlags.ComputeDType, "compute-dtype", d.ComputeDType, "qwen-lora: "+computeDTypeUsage)
		f.StringVar(&loraFlags.PeftNames, "peft-names", d.PeftNames, "qwen-lora: saved "+lora.NamingUsage+"; PEFT silently ignores keys of the other spelling")
	})
}

// computeDTypeUsage describes --compute-dtype (train, diagnose, eval, serve).
const computeDTypeUsage = "Qwen2.5-VL base weights and compute in float32 or bf16 (half the weight memory, for the GPU; norms, softmax, RoPE, logits and LoRA adapters stay float32)"

// visionTraining tells what adapting the vision tower costs (--lora-lm-only, --lora-target-regex).
const visionTraining = "adapted vision-tower modules (visual.*) are trained, with the tower inside the training graph: slower, as the tower runs every step instead of once per photo"

// savedPixels tells where --min-pixels and --max-pixels go.
const savedPixels = "saved as preprocessor_config.json in the checkpoints, so diagnose, eval and serve with --adapter and export --merge use it too"

// runTrainQwenLoRA fine-tunes Qwen2.5-VL with LoRA. Shared flags (data, out, epochs,
// batch size, lr, ...) take the LoRA defaults of the design unless given.
func runTrainQwenLoRA(ctx context.Context, app *App, opts *trainOptions) error {
	c := loraFlags
	d := train.DefaultLoRAConfig()
	pick := func(flag string, given, def float64) float64 {
		if opts.isSet != nil && opts.isSet(flag) {
			return given
		}
		return def
	}
	pickInt := func(flag string, given, def int) int { return int(pick(flag, float64(given), float64(def))) }
	c.Data, c.Out, c.Seed, c.Resume, c.MaxSteps = opts.Data, opts.OutDir, opts.Seed, opts.Resume, opts.MaxSteps
	c.TrainSplit, c.EvalSplit = opts.TrainSplit, opts.EvalSplit
	c.Epochs = pickInt("epochs", opts.Epochs, d.Epochs)
	c.BatchSize = pickInt("batch-size", opts.BatchSize, d.BatchSize)
	c.WarmupSteps = pickInt("warmup-steps", opts.WarmupSteps, d.WarmupSteps)
	c.Patience = pickInt("patience", opts.Patience, d.Patience)
	c.LR = pick("lr", opts.LR, d.LR)
	c.WeightDecay = pick("weight-decay", opts.WeightDecay, d.WeightDecay)
	c.LabelSmoothing = pick("label-smoothing", opts.Loss.LabelSmoothing, d.LabelSmoothing)
	if opts.isSet != nil && opts.isSet("metric") {
		c.Metric = opts.Metric
	}
	if opts.isSet != nil && opts.isSet("out") {
		c.Out = opts.OutDir
	} else {
		c.Out = "runs/qwen-lora"
	}
	if c.Model == "" || c.Data == "" {
		return &ExitError{Code: 2, Err: fmt.Errorf("qwen-lora needs --base-model and --data")}
	}
	if c.EvalData == "" {
		c.EvalData = c.Data
	}
	if _, err := lora.ParseNaming(c.PeftNames); err != nil {
		return &ExitError{Code: 2, Err: fmt.Errorf("--peft-names: %w", err)}
	}
	if c.TargetRegex != "" {
		if _, err := lora.NewRegexConfig(c.R, c.Alpha, c.Dropout, c.TargetRegex); err != nil {
			return &ExitError{Code: 2, Err: fmt.Errorf("--lora-target-regex: %w", err)}
		}
	}
	backend, err := mlbackend.New(opts.Backend)
	if err != nil {
		return err
	}
	tr, err := train.NewLoRATrainer(c, backend)
	if err != nil {
		return err
	}
	fmt.Fprintf(app.Err, "LoRA r=%d alpha=%g on %d modules; %d train / %d validation samples; %d steps per epoch\n",
		c.R, c.Alpha, len(tr.Params())/2, len(tr.Train), len(tr.Eval), tr.StepsPerEpoch())
	fmt.Fprintf(app.Err, "%s\n", tr.Mode())
	var last time.Time
	clearBar := "" // erases the progress bar before a log line
	if opts.Progress {
		clearBar = "\r\033[K"
	}
	progress := func(ev train.Event) {
		if ev.Eval != nil {
			fmt.Fprintf(app.Err, "%sepoch %d: val_loss %.4f accuracy %.4f macro_f1 %.4f\n", clearBar, ev.Epoch+1, ev.Eval["val_loss"], ev.Eval["accuracy"], ev.Eval["macro_f1"])
			return
		}
		if !opts.Progress || (time.Since(last) < 200*time.Millisecond && ev.Step != ev.Steps) {
			return
		}
		last = time.Now()
		fmt.Fprintf(app.Err, "\r\033[Kepoch %d/%d step %d/%d loss %.4f lr %.2e %.0f tok/s ETA %s",
			ev.Epoch+1, ev.Epochs, ev.Step, ev.Steps, ev.Loss, ev.LR, ev.TokensPerSecond, ev.ETA.Round(time.Second))
	}
	if err := tr.Run(ctx, progress); err != nil {
		return err
	}
	if opts.Progress {
		fmt.Fprint(app.Err, clearBar)
	}
	fmt.Fprintf(app.Out, "LoRA training done: %d steps; adapters in %s/checkpoint-best and checkpoint-last\n", tr.State.Step, c.Out)
	return nil
}
