package train

import (
	gocontext "context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph-building code reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/eval"
	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/imageio"
	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/qwen"
	"github.com/acdtcm/acdtcm/internal/safetensors"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// LoRAConfig configures a LoRA fine-tuning run (configs/train-qwen-lora.yaml).
type LoRAConfig struct {
	Model, Adapter      string
	Data, TrainSplit    string
	EvalData, EvalSplit string
	Out                 string
	Seed                uint64
	R                   int
	Alpha, Dropout      float64
	Targets             []string
	LanguageModelOnly   bool
	// TargetRegex, when set, replaces Targets and LanguageModelOnly: it is written as PEFT's
	// target_modules string, which adapts the modules whose full name it matches.
	TargetRegex           string
	RSLoRA                bool
	LR, Beta1, Beta2, Eps float64
	WeightDecay           float64
	WarmupSteps           int
	Schedule              string // cosine, linear or constant (after warmup)
	BatchSize, GradAccum  int
	Epochs, MaxSteps      int
	LabelSmoothing        float64
	ClassWeights          []float64
	GradeLossWeight       float64
	ClipNorm              float64
	// MinPixels and MaxPixels override the image size limits when positive (else those
	// saved with Adapter, else the base's); checkpoints record the limits used.
	MinPixels, MaxPixels int
	SaveSteps, Patience  int
	Metric               string // validation metric for best/early stopping: accuracy, macro_f1, kappa, val_loss
	Resume               bool
	MaxEvalSamples       int
	// PeftNames is the module spelling of saved adapter keys (lora.ParseNaming): "new" for
	// transformers >= 4.52, "legacy" for older ones, where PEFT ignores new-named keys.
	PeftNames string
	// ComputeDType is the base model's weight and compute dtype (qwen.ParseComputeDType):
	// "float32" (default) or "bf16" (half the weight memory, for the GPU); the adapter, its
	// gradients, the optimizer state and the loss stay float32.
	ComputeDType string
}

// DefaultLoRAConfig holds the design's defaults.
func DefaultLoRAConfig() LoRAConfig {
	return LoRAConfig{R: 64, Alpha: 16, Dropout: 0.1, Targets: lora.DefaultTargets, LanguageModelOnly: true,
		LR: 2e-5, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, WarmupSteps: 500, Schedule: "cosine",
		BatchSize: 8, GradAccum: 4, Epochs: 10, LabelSmoothing: 0.1, ClassWeights: []float64{1, 2, 3, 4},
		GradeLossWeight: 1, ClipNorm: 1, SaveSteps: 50, Patience: 3, Metric: "macro_f1", Resume: true, TrainSplit: "train", EvalSplit: "valid",
		PeftNames: lora.NamingNew.String(), ComputeDType: "float32"}
}

// State is the resumable position of a run.
type State struct {
	Step        int                `json:"step"`
	Epoch       int                `json:"epoch"`
	StepInEpoch int                `json:"step_in_epoch"`
	HasBest     bool               `json:"has_best"`
	Best        float64            `json:"best"`
	BestEpoch   int                `json:"best_epoch"`
	BadEpochs   int                `json:"bad_epochs"`
	Done        bool               `json:"done"`
	LastEval    map[string]float64 `json:"last_eval,omitempty"`
}

// Event reports progress to the caller (progress bar, logs).
type Event struct {
	Epoch, Epochs, Step, Steps int
	Loss, LR, GradNorm         float64
	TokensPerSecond            float64
	ETA                        time.Duration
	Eval                       map[string]float64 // set at the end of an epoch
}

// LoRATrainer runs LoRA fine-tuning.
type LoRATrainer struct {
	Cfg     LoRAConfig
	Model   *qwen.Model
	LoRA    *lora.Config
	Train   []Sample
	Eval    []Sample
	State   State
	modules []string
	params  []*context.Variable
	// m and v are AdamW's first and second moments of params, and acc the gradients summed
	// over micro-batches (only with GradAccum > 1): variables, so they stay on the device.
	m, v, acc []*context.Variable
	// images caches processed photos (patch pixels) for the vision-in-graph mode, up to
	// pixelCacheBytes of pixels; photos beyond it are decoded again on each use (processing
	// is deterministic, so training is the same either way).
	images          map[string]qwen.ProcessedImage
	imageBytes      int64
	pixelCacheBytes int64
	// features caches each photo's vision features when no adapter is on the vision tower
	// (the default): the tower is frozen, so they never change. Only the features and the
	// image's layout are kept, not its pixels.
	features map[string]photoFeatures
	// vision counts the adapted vision-tower modules; when there are any, the tower runs
	// inside the training graph (pixels in, no feature cache) so their adapters learn.
	vision int
	// trainStep runs one micro-batch: loss, gradients and, with GradAccum 1, the AdamW update
	// (otherwise the gradients are added into acc and applyStep updates from them).
	trainStep, applyStep *context.Exec
	grads                *context.Exec // loss and gradients only (gradients(); built on first use)
	lossFn               *context.Exec
	gradeID              []int
	opts                 qwen.LossOptions
	naming               lora.Naming // key spelling of saved adapters
}

// NewLoRATrainer loads the base model, attaches (or loads) the adapter and the data.
func NewLoRATrainer(cfg LoRAConfig, backend backends.Backend) (*LoRATrainer, error) {
	if cfg.BatchSize <= 0 || cfg.GradAccum <= 0 || cfg.Epochs <= 0 {
		return nil, fmt.Errorf("batch size, gradient accumulation and epochs must be positive")
	}
	if cfg.Out == "" {
		return nil, fmt.Errorf("an output directory is required")
	}
	naming, err := lora.ParseNaming(cfg.PeftNames)
	if err != nil {
		return nil, err
	}
	dtype, err := qwen.ParseComputeDType(cfg.ComputeDType)
	if err != nil {
		return nil, err
	}
	m, err := qwen.LoadWith(cfg.Model, backend, qwen.LoadOptions{ComputeDType: dtype})
	if err != nil {
		return nil, err
	}
	t := &LoRATrainer{Cfg: cfg, Model: m, naming: naming, images: map[string]qwen.ProcessedImage{}, pixelCacheBytes: defaultPixelCacheBytes, features: map[string]photoFeatures{}}
	if cfg.Adapter != "" {
		if t.LoRA, t.modules, err = m.LoadAdapterWithProcessor(cfg.Adapter); err != nil {
			return nil, err
		}
	} else {
		if t.LoRA, err = newLoRAConfig(cfg); err != nil {
			return nil, err
		}
		if t.modules, err = m.AttachLoRA(t.LoRA, cfg.Seed); err != nil {
			return nil, err
		}
	}
	if err := m.Processor.OverrideLimits(cfg.MinPixels, cfg.MaxPixels); err != nil {
		return nil, fmt.Errorf("image size limits: %w", err)
	}
	if len(t.modules) == 0 {
		return nil, fmt.Errorf("the LoRA targets %s match no linear layer of %s", t.LoRA.TargetModules, cfg.Model)
	}
	if t.Train, err = LoadSamples(cfg.Data, cfg.TrainSplit); err != nil {
		return nil, err
	}
	if cfg.EvalData != "" {
		if t.Eval, err = LoadSamples(cfg.EvalData, cfg.EvalSplit); err != nil {
			return nil, err
		}
		if cfg.MaxEvalSamples > 0 && len(t.Eval) > cfg.MaxEvalSamples {
			t.Eval = t.Eval[:cfg.MaxEvalSamples]
		}
	}
	if err := t.prepare(); err != nil {
		return nil, err
	}
	return t, nil
}

// newLoRAConfig is the fresh adapter's PEFT config: targets by name or by regex.
func newLoRAConfig(cfg LoRAConfig) (*lora.Config, error) {
	var c *lora.Config
	var err error
	if cfg.TargetRegex != "" {
		c, err = lora.NewRegexConfig(cfg.R, cfg.Alpha, cfg.Dropout, cfg.TargetRegex)
	} else {
		c, err = lora.NewConfig(cfg.R, cfg.Alpha, cfg.Dropout, cfg.Targets, cfg.LanguageModelOnly)
	}
	if err != nil {
		return nil, fmt.Errorf("LoRA config: %w", err)
	}
	c.UseRSLoRA = cfg.RSLoRA
	c.BaseModel = cfg.Model
	return c, nil
}

// prepare makes the A and B matrices of t.modules the trained parameters (with zero AdamW
// moments), sets the loss options from the config and builds the training and evaluation
// graphs, with the vision tower inside them when some of t.modules are on it.
func (t *LoRATrainer) prepare() error {
	sc := func(mod string) string { return "/lora/" + strings.ReplaceAll(mod, ".", "/") }
	t.vision = 0
	for _, mod := range t.modules {
		if strings.HasPrefix(mod, "visual.") {
			t.vision++
		}
		for _, name := range []string{"lora_A", "lora_B"} {
			v := t.Model.Ctx.GetVariableByScopeAndName(sc(mod), name)
			if v == nil {
				return fmt.Errorf("module %s has no %s", mod, name)
			}
			t.params = append(t.params, v)
			scope := "/optimizer" + sc(mod) + "/" + name
			m, err := t.zeroState(scope, "exp_avg", v)
			if err != nil {
				return err
			}
			sq, err := t.zeroState(scope, "exp_avg_sq", v)
			if err != nil {
				return err
			}
			t.m, t.v = append(t.m, m), append(t.v, sq)
			if t.Cfg.GradAccum > 1 {
				sum, err := t.zeroState(scope, "grad_sum", v)
				if err != nil {
					return err
				}
				t.acc = append(t.acc, sum)
			}
		}
	}
	var err error
	if t.gradeID, err = t.Model.GradeTokenIDs(severity.Hayashi); err != nil {
		return err
	}
	c := t.Cfg
	t.opts = qwen.LossOptions{GradeLossWeight: c.GradeLossWeight, LabelSmoothing: c.LabelSmoothing, ClassWeights: c.ClassWeights, GradeTokenIDs: t.gradeID}
	return t.buildExecs()
}

// zeroState returns the optimizer variable name in scope for parameter p, set to zeros (also
// when an earlier trainer on the same model left values in it).
func (t *LoRATrainer) zeroState(scope, name string, p *context.Variable) (*context.Variable, error) {
	sv := t.Model.Ctx.InAbsPath(scope).Checked(false).VariableWithValue(name, tensors.FromShape(p.Shape())).SetTrainable(false)
	if err := sv.SetValue(tensors.FromShape(p.Shape())); err != nil {
		return nil, fmt.Errorf("optimizer state %s/%s: %w", scope, name, err)
	}
	return sv, nil
}

// VisionModules is the number of adapted vision-tower modules: 0 (the default, language model
// only) trains with the tower frozen outside the graph and its features computed once per
// photo; otherwise the tower runs inside the training graph every step.
func (t *LoRATrainer) VisionModules() int { return t.vision }

// Mode describes how the run trains, for the log.
func (t *LoRATrainer) Mode() string {
	if t.vision == 0 {
		return "language model only: the vision tower is frozen, its features computed once per photo"
	}
	return fmt.Sprintf("vision tower in the training graph: %d vision modules adapted (slower: the tower runs every step)", t.vision)
}

// lossFrom is the training loss of batch()'s graph inputs: with precomputed vision features
// (language model only) or with the vision tower inside the graph.
func (t *LoRATrainer) lossFrom(ctx *context.Context, in []*Node) *Node {
	if t.vision > 0 {
		return qwen.LossWithVisionFromInputs(ctx, t.Model.Config, t.opts, in)
	}
	return qwen.LossFromInputs(ctx, t.Model.Config, t.opts, in)
}

// lossAndGradients builds the training loss of batch()'s inputs and its gradient with
// respect to every trained parameter (in params order).
func (t *LoRATrainer) lossAndGradients(ctx *context.Context, in []*Node) (*Node, []*Node) {
	g := in[0].Graph()
	ctx.SetTraining(g, true)
	loss := t.lossFrom(ctx, in)
	nodes := make([]*Node, len(t.params))
	for i, p := range t.params {
		nodes[i] = p.ValueGraph(g)
	}
	return loss, Gradient(loss, nodes...)
}

// applyAdamW sets the graph's new values of the parameters and their moments from grads
// (see adamwGraph) and returns the gradient norm before clipping.
func (t *LoRATrainer) applyAdamW(grads []*Node, hyper *Node) *Node {
	g := hyper.Graph()
	values := func(vars []*context.Variable) []*Node {
		nodes := make([]*Node, len(vars))
		for i, v := range vars {
			nodes[i] = v.ValueGraph(g)
		}
		return nodes
	}
	params, m, v, norm := adamwGraph(t.Cfg, values(t.params), grads, values(t.m), values(t.v), hyper)
	for i := range t.params {
		t.params[i].SetValueGraph(params[i])
		t.m[i].SetValueGraph(m[i])
		t.v[i].SetValueGraph(v[i])
	}
	return norm
}

func (t *LoRATrainer) buildExecs() error {
	var err error
	if t.Cfg.GradAccum == 1 {
		// One program per step: the batch's inputs, then adamwHyper's vector.
		t.trainStep, err = context.NewExecAny(t.Model.Backend, t.Model.Ctx, func(ctx *context.Context, in []*Node) []*Node {
			loss, grads := t.lossAndGradients(ctx, in[:len(in)-1])
			return []*Node{loss, t.applyAdamW(grads, in[len(in)-1])}
		})
	} else {
		scale := 1 / float64(t.Cfg.GradAccum)
		t.trainStep, err = context.NewExecAny(t.Model.Backend, t.Model.Ctx, func(ctx *context.Context, in []*Node) []*Node {
			loss, grads := t.lossAndGradients(ctx, in)
			for i, a := range t.acc {
				a.SetValueGraph(Add(a.ValueGraph(loss.Graph()), MulScalar(grads[i], scale)))
			}
			return []*Node{loss}
		})
		if err == nil {
			t.applyStep, err = context.NewExecAny(t.Model.Backend, t.Model.Ctx, func(ctx *context.Context, in []*Node) []*Node {
				g := in[0].Graph()
				sums := make([]*Node, len(t.acc))
				for i, a := range t.acc {
					sums[i] = a.ValueGraph(g)
					a.SetValueGraph(ZerosLike(sums[i]))
				}
				return []*Node{t.applyAdamW(sums, in[0])}
			})
		}
	}
	if err != nil {
		return fmt.Errorf("build training graph: %w", err)
	}
	t.lossFn, err = context.NewExecAny(t.Model.Backend, t.Model.Ctx, t.lossFrom)
	if err != nil {
		return fmt.Errorf("build evaluation graph: %w", err)
	}
	return nil
}

// StepsPerEpoch is the number of optimizer steps in one pass over the training samples.
func (t *LoRATrainer) StepsPerEpoch() int {
	return max(1, len(t.Train)/(t.Cfg.BatchSize*t.Cfg.GradAccum))
}

// TotalSteps is the number of optimizer steps of the whole run.
func (t *LoRATrainer) TotalSteps() int {
	total := t.Cfg.Epochs * t.StepsPerEpoch()
	if t.Cfg.MaxSteps > 0 && t.Cfg.MaxSteps < total {
		total = t.Cfg.MaxSteps
	}
	return total
}

// LearningRate follows transformers' schedules: linear warmup from 0, then cosine (or
// linear) decay to 0, or constant.
func (t *LoRATrainer) LearningRate(step int) float64 {
	c := t.Cfg
	total := t.Cfg.Epochs * t.StepsPerEpoch()
	if step < c.WarmupSteps {
		return c.LR * float64(step) / float64(max(1, c.WarmupSteps))
	}
	progress := float64(step-c.WarmupSteps) / float64(max(1, total-c.WarmupSteps))
	switch c.Schedule {
	case "constant":
		return c.LR
	case "linear":
		return c.LR * math.Max(0, 1-progress)
	default:
		return c.LR * math.Max(0, 0.5*(1+math.Cos(math.Pi*progress)))
	}
}

// epochOrder is the seeded shuffle of the training samples for an epoch.
func (t *LoRATrainer) epochOrder(epoch int) []int {
	rng := rand.New(rand.NewPCG(t.Cfg.Seed, uint64(epoch)+1))
	return rng.Perm(len(t.Train))
}

// defaultPixelCacheBytes bounds the processed-pixel cache of the vision-in-graph mode: a
// 640×640 ACNE04 photo is 2,116 patches of 1,176 floats (10 MB), so caching all 2,973 train
// photos would take ~30 GB (a 1-megapixel photo: 5,120 patches, 24 MB).
const defaultPixelCacheBytes = 4 << 30

// photoFeatures is a photo's cached vision features with its layout (grid and patch size,
// no pixels), which is all a training batch needs of the photo once its features exist.
type photoFeatures struct {
	layout qwen.ProcessedImage
	values []float32
}

// decodeProcessed decodes a photo and preprocesses it for the vision tower.
func (t *LoRATrainer) decodeProcessed(path string) (qwen.ProcessedImage, error) {
	img, _, err := imageio.DecodeFile(path, imageio.DefaultLimits())
	if err != nil {
		return qwen.ProcessedImage{}, err
	}
	p, err := t.Model.Processor.ProcessImage(img)
	if err != nil {
		return p, fmt.Errorf("%s: %w", path, err)
	}
	return p, nil
}

// processed is decodeProcessed through the pixel cache: it caches a photo while the cache
// stays within pixelCacheBytes.
func (t *LoRATrainer) processed(path string) (qwen.ProcessedImage, error) {
	if p, ok := t.images[path]; ok {
		return p, nil
	}
	p, err := t.decodeProcessed(path)
	if err != nil {
		return p, err
	}
	if size := int64(len(p.PixelValues)) * 4; t.imageBytes+size <= t.pixelCacheBytes {
		t.images[path] = p
		t.imageBytes += size
	}
	return p, nil
}

// cachedFeatures returns a photo's vision features, computing them (and decoding the photo)
// on first use.
func (t *LoRATrainer) cachedFeatures(path string) (photoFeatures, error) {
	if f, ok := t.features[path]; ok {
		return f, nil
	}
	im, err := t.decodeProcessed(path)
	if err != nil {
		return photoFeatures{}, err
	}
	ft, err := t.Model.VisionFeatures([]qwen.ProcessedImage{im})
	if err != nil {
		return photoFeatures{}, fmt.Errorf("%s: %w", path, err)
	}
	values, err := tensors.CopyFlatData[float32](ft)
	if err != nil {
		return photoFeatures{}, err
	}
	im.PixelValues = nil
	f := photoFeatures{layout: im, values: values}
	t.features[path] = f
	return f, nil
}

// batch builds the graph inputs of samples for lossFrom: with each photo's vision features
// from the cache (computed on first use), or, with the vision tower adapted, its pixels.
func (t *LoRATrainer) batch(samples []Sample) (*qwen.TrainBatch, []*tensors.Tensor, error) {
	ts := make([]qwen.TrainSample, len(samples))
	var feat []float32
	for i, s := range samples {
		ts[i] = qwen.TrainSample{Messages: s.Messages, Grade: s.Grade}
		for _, p := range s.Images {
			var img qwen.ProcessedImage
			if t.vision > 0 {
				var err error
				if img, err = t.processed(p); err != nil {
					return nil, nil, fmt.Errorf("sample %s: %w", s.ID, err)
				}
			} else {
				f, err := t.cachedFeatures(p)
				if err != nil {
					return nil, nil, fmt.Errorf("sample %s: %w", s.ID, err)
				}
				img = f.layout
				feat = append(feat, f.values...)
			}
			ts[i].Images = append(ts[i].Images, img)
		}
	}
	var gradeIDs []int
	if t.opts.GradeLossWeight > 0 {
		gradeIDs = t.gradeID
	}
	b, err := t.Model.NewTrainBatch(ts, gradeIDs)
	if err != nil {
		return nil, nil, err
	}
	if t.vision > 0 {
		in, err := t.Model.VisionBatchTensors(b)
		return b, in, err
	}
	var ft *tensors.Tensor
	if len(feat) > 0 {
		H := t.Model.Config.Text.HiddenSize
		ft = tensors.FromFlatDataAndDimensions(feat, len(feat)/H, H)
	}
	return b, t.Model.BatchTensorsWith(b, ft), nil
}

// step runs one optimizer step (GradAccum micro-batches) and returns loss, grad norm and
// tokens processed. Gradients, moments and parameters stay on the backend's device.
func (t *LoRATrainer) step(order []int) (loss, gradNorm float64, tokens int, err error) {
	c := t.Cfg
	hyper := adamwHyper(c, t.LearningRate(t.State.Step), t.State.Step+1)
	for micro := 0; micro < c.GradAccum; micro++ {
		start := (t.State.StepInEpoch*c.GradAccum + micro) * c.BatchSize
		samples := make([]Sample, c.BatchSize)
		for i := range samples {
			samples[i] = t.Train[order[(start+i)%len(order)]]
		}
		b, in, err := t.microBatch(samples, t.State.Step*c.GradAccum+micro)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("training step %d: %w", t.State.Step, err)
		}
		if c.GradAccum == 1 {
			in = append(in, hyper)
		}
		out, err := t.trainStep.Exec(in)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("training step %d: %w", t.State.Step, err)
		}
		loss += toFloat(out[0]) / float64(c.GradAccum)
		tokens += b.B * b.S
		if c.GradAccum == 1 {
			gradNorm = toFloat(out[1])
		}
	}
	if c.GradAccum > 1 {
		out, err := t.applyStep.Exec(hyper)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("training step %d: optimizer: %w", t.State.Step, err)
		}
		gradNorm = toFloat(out[0])
	}
	t.State.Step++
	t.State.StepInEpoch++
	return loss, gradNorm, tokens, nil
}

// microBatch builds the graph inputs of one micro-batch and seeds the dropout masks from
// (seed, micro): micro numbers the micro-batch since the start of the run, so resuming
// replays them exactly.
func (t *LoRATrainer) microBatch(samples []Sample, micro int) (*qwen.TrainBatch, []*tensors.Tensor, error) {
	b, in, err := t.batch(samples)
	if err != nil {
		return nil, nil, err
	}
	if err := t.Model.Ctx.SetRNGStateFromSeed(int64(t.Cfg.Seed)*1_000_003 + int64(micro)); err != nil {
		return nil, nil, err
	}
	return b, in, nil
}

// gradients runs the training graph on one micro-batch without updating anything: its loss,
// the gradient of each parameter (in params order) copied to the host, and the batch (for
// checks against PEFT; training itself uses trainStep).
func (t *LoRATrainer) gradients(samples []Sample, micro int) (loss float64, grads [][]float32, b *qwen.TrainBatch, err error) {
	if t.grads == nil {
		t.grads, err = context.NewExecAny(t.Model.Backend, t.Model.Ctx, func(ctx *context.Context, in []*Node) []*Node {
			loss, grads := t.lossAndGradients(ctx, in)
			return append([]*Node{loss}, grads...)
		})
		if err != nil {
			return 0, nil, nil, fmt.Errorf("build gradient graph: %w", err)
		}
	}
	b, in, err := t.microBatch(samples, micro)
	if err != nil {
		return 0, nil, nil, err
	}
	out, err := t.grads.Exec(in)
	if err != nil {
		return 0, nil, nil, err
	}
	grads = make([][]float32, len(t.params))
	for i := range t.params {
		if grads[i], err = tensors.CopyFlatData[float32](out[1+i]); err != nil {
			return 0, nil, nil, err
		}
	}
	return toFloat(out[0]), grads, b, nil
}

func toFloat(t *tensors.Tensor) float64 {
	switch v := t.Value().(type) {
	case float32:
		return float64(v)
	case float64:
		return v
	}
	return math.NaN()
}

// Evaluate scores the eval samples: validation loss and grade metrics from the first
// answer token's grade probabilities (the same scoring diagnose uses).
func (t *LoRATrainer) Evaluate() (map[string]float64, error) {
	out := map[string]float64{}
	if len(t.Eval) == 0 {
		return out, nil
	}
	var lossSum float64
	var n int
	data := eval.Data{K: 4}
	for start := 0; start < len(t.Eval); start += t.Cfg.BatchSize {
		end := min(start+t.Cfg.BatchSize, len(t.Eval))
		samples := t.Eval[start:end]
		_, in, err := t.batch(samples)
		if err != nil {
			return nil, err
		}
		o, err := t.lossFn.Exec(in)
		if err != nil {
			return nil, err
		}
		lossSum += toFloat(o[0]) * float64(len(samples))
		n += len(samples)
		prompts := make([]qwen.Prompt, 0, len(samples))
		var truth []int
		for _, s := range samples {
			if s.Grade < 0 {
				continue
			}
			p := qwen.Prompt{}
			for _, msg := range s.Messages {
				if msg.Role != "assistant" {
					p.Messages = append(p.Messages, msg)
				}
			}
			for _, path := range s.Images {
				img, _, err := imageio.DecodeFile(path, imageio.DefaultLimits())
				if err != nil {
					return nil, err
				}
				p.Images = append(p.Images, img)
			}
			prompts = append(prompts, p)
			truth = append(truth, s.Grade)
		}
		if len(prompts) == 0 {
			continue
		}
		gc := t.Model.Generation
		gc.MaxNewTokens = 1
		gens, err := t.Model.Generate(prompts, gc)
		if err != nil {
			return nil, err
		}
		for i, g := range gens {
			probs := qwen.GradeProbabilities(g.FirstLogits, t.gradeID)
			best := 0
			for k := range probs {
				if probs[k] > probs[best] {
					best = k
				}
			}
			data.True, data.Pred, data.Probs = append(data.True, truth[i]), append(data.Pred, best), append(data.Probs, probs)
		}
	}
	out["val_loss"] = lossSum / float64(max(n, 1))
	if len(data.True) > 0 {
		m, err := eval.Compute(data)
		if err != nil {
			return nil, err
		}
		for k, v := range m.Summary() {
			if v.Defined() {
				out[k] = float64(v)
			}
		}
	}
	return out, nil
}

// selection turns eval metrics into a higher-is-better score for the configured metric.
func (t *LoRATrainer) selection(m map[string]float64) (float64, bool) {
	v, ok := m[t.Cfg.Metric]
	if !ok {
		return 0, false
	}
	if t.Cfg.Metric == "val_loss" || eval.LowerIsBetter(t.Cfg.Metric) {
		return -v, true
	}
	return v, true
}

// Run trains until the epochs (or MaxSteps) are done or early stopping triggers, resuming
// from checkpoint-last when Resume is set. progress may be nil.
func (t *LoRATrainer) Run(ctx gocontext.Context, progress func(Event)) error {
	c := t.Cfg
	if err := os.MkdirAll(c.Out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", c.Out, err)
	}
	if c.Resume {
		if err := t.resume(); err != nil {
			return err
		}
	}
	if err := t.trimMetrics(); err != nil {
		return err
	}
	total, perEpoch := t.TotalSteps(), t.StepsPerEpoch()
	started, startStep := time.Now(), t.State.Step
	for !t.State.Done && t.State.Epoch < c.Epochs {
		order := t.epochOrder(t.State.Epoch)
		for t.State.StepInEpoch < perEpoch {
			if c.MaxSteps > 0 && t.State.Step >= c.MaxSteps {
				// A step budget pauses the run; a later run with a larger budget resumes it.
				return t.saveCheckpoint("checkpoint-last")
			}
			if err := ctx.Err(); err != nil {
				return errors.Join(err, t.saveCheckpoint("checkpoint-last"))
			}
			stepStart := time.Now()
			lr := t.LearningRate(t.State.Step)
			loss, norm, tokens, err := t.step(order)
			if err != nil {
				return err
			}
			secs := time.Since(stepStart).Seconds()
			tps := float64(tokens) / secs
			if err := t.appendMetrics(map[string]any{"type": "step", "step": t.State.Step, "epoch": t.State.Epoch, "loss": loss, "lr": lr, "grad_norm": norm,
				"tokens": tokens, "step_seconds": secs, "tokens_per_s": tps}); err != nil {
				return err
			}
			if progress != nil {
				done := t.State.Step - startStep
				eta := time.Duration(float64(time.Since(started)) / float64(max(done, 1)) * float64(total-t.State.Step))
				progress(Event{Epoch: t.State.Epoch, Epochs: c.Epochs, Step: t.State.Step, Steps: total, Loss: loss, LR: lr, GradNorm: norm, TokensPerSecond: tps, ETA: eta})
			}
			if c.SaveSteps > 0 && t.State.Step%c.SaveSteps == 0 {
				if err := t.saveCheckpoint("checkpoint-last"); err != nil {
					return err
				}
			}
		}
		if err := t.endEpoch(progress); err != nil {
			return err
		}
	}
	t.State.Done = true
	if err := t.saveCheckpoint("checkpoint-last"); err != nil {
		return err
	}
	return WriteLossPlot(filepath.Join(c.Out, "metrics.jsonl"), filepath.Join(c.Out, "loss.png"))
}

func (t *LoRATrainer) endEpoch(progress func(Event)) error {
	metrics, err := t.Evaluate()
	if err != nil {
		return fmt.Errorf("validation after epoch %d: %w", t.State.Epoch, err)
	}
	t.State.LastEval = metrics
	rec := map[string]any{"type": "eval", "epoch": t.State.Epoch, "step": t.State.Step}
	for k, v := range metrics {
		rec[k] = v
	}
	if err := t.appendMetrics(rec); err != nil {
		return err
	}
	if progress != nil {
		progress(Event{Epoch: t.State.Epoch, Epochs: t.Cfg.Epochs, Step: t.State.Step, Steps: t.TotalSteps(), Eval: metrics})
	}
	if score, ok := t.selection(metrics); ok {
		if !t.State.HasBest || score > t.State.Best {
			t.State.HasBest, t.State.Best, t.State.BestEpoch, t.State.BadEpochs = true, score, t.State.Epoch, 0
			if err := t.saveCheckpoint("checkpoint-best"); err != nil {
				return err
			}
		} else {
			t.State.BadEpochs++
			if t.Cfg.Patience > 0 && t.State.BadEpochs >= t.Cfg.Patience {
				t.State.Done = true
			}
		}
	}
	t.State.Epoch++
	t.State.StepInEpoch = 0
	return t.saveCheckpoint("checkpoint-last")
}

// saveCheckpoint writes adapter (with its image sizes in preprocessor_config.json), optimizer
// state and trainer state into a fresh directory and swaps it into place, so a crash leaves
// either the old or the new checkpoint.
func (t *LoRATrainer) saveCheckpoint(name string) error {
	final := filepath.Join(t.Cfg.Out, name)
	tmp, err := os.MkdirTemp(t.Cfg.Out, "."+name+".tmp-")
	if err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := os.Chmod(tmp, 0o755); err != nil { // MkdirTemp makes it private
		return fmt.Errorf("checkpoint: %w", err)
	}
	if err := lora.Save(t.Model.Ctx, t.LoRA, tmp, t.naming); err != nil {
		return err
	}
	if err := qwen.WriteProcessorConfig(tmp, t.Model.Dir, t.Model.Processor); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	var ts []safetensors.Tensor
	for i, p := range t.params {
		dims := p.Shape().Dimensions
		key := strings.TrimPrefix(p.Scope(), "/") + "/" + p.Name()
		m, err := tensors.CopyFlatData[float32](t.m[i].MustValue())
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		v, err := tensors.CopyFlatData[float32](t.v[i].MustValue())
		if err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
		ts = append(ts, safetensors.F32Tensor(key+"/exp_avg", dims, m), safetensors.F32Tensor(key+"/exp_avg_sq", dims, v))
	}
	if err := safetensors.WriteFile(filepath.Join(tmp, "optimizer.safetensors"), ts, nil); err != nil {
		return err
	}
	state, err := json.MarshalIndent(t.State, "", "  ")
	if err != nil {
		return fmt.Errorf("checkpoint: encode trainer state: %w", err)
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(tmp, "trainer_state.json"), state, 0o644); err != nil {
		return err
	}
	old := final + ".old"
	os.RemoveAll(old)
	if _, err := os.Stat(final); err == nil {
		if err := os.Rename(final, old); err != nil {
			return fmt.Errorf("checkpoint: %w", err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fmt.Errorf("checkpoint: %w", err)
	}
	return os.RemoveAll(old)
}

// resume restores checkpoint-last (or its .old twin left by a crash mid-swap).
func (t *LoRATrainer) resume() error {
	dir := filepath.Join(t.Cfg.Out, "checkpoint-last")
	if _, err := os.Stat(dir); err != nil {
		if _, err2 := os.Stat(dir + ".old"); err2 != nil {
			return nil // fresh run
		}
		dir += ".old"
	}
	data, err := os.ReadFile(filepath.Join(dir, "trainer_state.json"))
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	var st State
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("resume %s: %w", dir, err)
	}
	if _, _, err := lora.Load(t.Model.Ctx, dir, t.Model.Config.LinearModules()); err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	opt, err := safetensors.Open(filepath.Join(dir, "optimizer.safetensors"))
	if err != nil {
		return fmt.Errorf("resume: %w", err)
	}
	defer opt.Close()
	for i, p := range t.params {
		key := strings.TrimPrefix(p.Scope(), "/") + "/" + p.Name()
		m, _, err := opt.Float32(key + "/exp_avg")
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		v, _, err := opt.Float32(key + "/exp_avg_sq")
		if err != nil {
			return fmt.Errorf("resume: %w", err)
		}
		if len(m) != p.Shape().Size() || len(v) != p.Shape().Size() {
			return fmt.Errorf("resume: %s: optimizer state for %s has %d/%d values, want %d", dir, key, len(m), len(v), p.Shape().Size())
		}
		dims := p.Shape().Dimensions
		if err := t.m[i].SetValue(tensors.FromFlatDataAndDimensions(m, dims...)); err != nil {
			return fmt.Errorf("resume %s: %w", key, err)
		}
		if err := t.v[i].SetValue(tensors.FromFlatDataAndDimensions(v, dims...)); err != nil {
			return fmt.Errorf("resume %s: %w", key, err)
		}
	}
	t.State = st
	return nil
}

// appendMetrics adds one JSON line to metrics.jsonl.
func (t *LoRATrainer) appendMetrics(rec map[string]any) error {
	f, err := os.OpenFile(filepath.Join(t.Cfg.Out, "metrics.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	defer f.Close()
	line, _ := json.Marshal(rec)
	_, err = f.Write(append(line, '\n'))
	return err
}

// trimMetrics drops lines written after the checkpoint being resumed (a killed run may
// have logged steps it never saved), so the curve has each step exactly once.
func (t *LoRATrainer) trimMetrics() error {
	path := filepath.Join(t.Cfg.Out, "metrics.jsonl")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	var kept []string
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		var rec struct {
			Type  string `json:"type"`
			Step  int    `json:"step"`
			Epoch int    `json:"epoch"`
		}
		if json.Unmarshal([]byte(line), &rec) != nil {
			continue // a line cut by the kill
		}
		if rec.Step > t.State.Step || (rec.Type == "eval" && rec.Epoch >= t.State.Epoch) {
			continue
		}
		kept = append(kept, line)
	}
	return fsutil.WriteAtomic(path, 0o644, func(w io.Writer) error {
		for _, l := range kept {
			if _, err := io.WriteString(w, l+"\n"); err != nil {
				return err
			}
		}
		return nil
	})
}

// Params are the trainable LoRA variables (A and B of each adapted module).
func (t *LoRATrainer) Params() []*context.Variable { return t.params }
