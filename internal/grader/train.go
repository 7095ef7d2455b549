package grader

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
	"runtime"
	"sort"
	"time"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/grader/heatmap"
)

// TrainConfig is everything `acdtcm train` needs for the grader (model kind "grader").
type TrainConfig struct {
	Data           string      `json:"data"`      // manifest (or ACNE04 VOC export directory)
	OutDir         string      `json:"out_dir"`   // checkpoints, metrics.jsonl, curves.svg
	CacheDir       string      `json:"cache_dir"` // resized-pixel cache; empty = none
	Model          ModelConfig `json:"model"`
	Loss           LossWeights `json:"loss"`
	Epochs         int         `json:"epochs"`
	BatchSize      int         `json:"batch_size"`
	LR             float64     `json:"lr"`
	MinLRFrac      float64     `json:"min_lr_frac"` // cosine decay to LR*MinLRFrac at the last epoch
	WarmupSteps    int         `json:"warmup_steps"`
	WeightDecay    float64     `json:"weight_decay"`
	HoldoutFrac    float64     `json:"holdout_frac"` // share of train sources held out for model selection (0: none, a refit; see Run)
	Seed           uint64      `json:"seed"`
	Patience       int         `json:"patience"` // early stopping: epochs without improvement
	Metric         string      `json:"metric"`   // selection metric on the holdout: accuracy, macro_f1, quadratic_kappa
	CkptEvery      int         `json:"checkpoint_every"`
	Resume         bool        `json:"resume"`
	Backend        string      `json:"backend"`
	FlipProb       float64     `json:"flip_prob"`
	Brightness     float64     `json:"brightness"`             // multiplicative jitter amplitude
	ScaleJitter    float64     `json:"scale_jitter,omitempty"` // random zoom-in crop up to 1+ScaleJitter, boxes following (0: off)
	ColorJitter    float64     `json:"color_jitter,omitempty"` // per-channel gain amplitude (0: off)
	ClassWeightP   float64     `json:"class_weight_power"`     // grade weight = (freq)^-p
	MaxSteps       int         `json:"max_steps"`              // stop after this many steps in total (0 = no limit)
	Workers        int         `json:"workers"`                // image decoding workers
	AllVersions    bool        `json:"all_versions"`           // each epoch uses every photo (all augmented versions), not one version per source
	Calibrate      bool        `json:"calibrate"`              // after training, fit the count -> grade Calibration on the training photos
	CalibrateOnly  bool        `json:"calibrate_only"`         // skip training: (re)calibrate OutDir/best.ckpt, then evaluate and export
	FlipTTA        bool        `json:"flip_tta"`               // calibrate (and then predict) on counts averaged with the mirrored photo
	WeightsVersion string      `json:"weights_version"`        // semantic version of exported weights (grader.json)
	AverageLast    int         `json:"average_last"`           // keep snapshots of the last K epochs and try their weight average (0: off)
	LinkCopies     bool        `json:"link_copies,omitempty"`  // link sources whose photos are copies (LinkCopies) before splitting; drop train copies of eval photos
	CopyLinks      string      `json:"copy_links,omitempty"`   // apply the links recorded in this file (CopyLinksFile of an earlier run) instead of matching photos; implies LinkCopies
	InitFrom       string      `json:"init_from,omitempty"`    // start from these weights (a checkpoint path or "builtin") instead of a random initialisation
	InitWeights    *Checkpoint `json:"-"`                      // the InitFrom weights already decoded by the caller (e.g. a dequantized grader directory); nil: read InitFrom
	TrainSplit     string      `json:"train_split"`
	EvalSplit      string      `json:"eval_split"`          // reported after training with the best weights; never used for selection
	SkipEval       bool        `json:"skip_eval,omitempty"` // do not score EvalSplit after training (it still feeds LinkCopies)
}

// DefaultTrainConfig returns the defaults of configs/train-grader.yaml.
func DefaultTrainConfig() TrainConfig {
	return TrainConfig{
		OutDir: "runs/grader", CacheDir: "runs/cache", Model: DefaultModelConfig(),
		Loss:   LossWeights{Density: 10, Count: 1, Grade: 1, LabelSmoothing: 0.1},
		Epochs: 30, BatchSize: 16, LR: 2e-3, MinLRFrac: 0.05, WarmupSteps: 50, WeightDecay: 1e-4,
		HoldoutFrac: 0.1, Seed: 1, Patience: 8, Metric: "accuracy", CkptEvery: 0, Backend: "go",
		FlipProb: 0.5, Brightness: 0.15, ClassWeightP: 0.5, TrainSplit: "train", EvalSplit: "valid", Calibrate: true,
	}
}

// EpochMetrics is one line of metrics.jsonl.
type EpochMetrics struct {
	Epoch      int     `json:"epoch"`
	Step       int     `json:"step"`
	LR         float64 `json:"lr"`
	TrainLoss  float64 `json:"train_loss"`
	TrainDens  float64 `json:"train_density_loss"`
	TrainCount float64 `json:"train_count_loss"`
	TrainGrade float64 `json:"train_grade_loss"`
	// TrainOrdinal is the unweighted OrdinalCountLoss (absent when the loss is off).
	TrainOrdinal float64      `json:"train_ordinal_loss,omitempty"`
	Holdout      GradeMetrics `json:"holdout"`
	Seconds      float64      `json:"seconds"`
	Best         bool         `json:"best"`
}

// TrainState is saved in every training checkpoint for exact resume.
type TrainState struct {
	Epoch       int            `json:"epoch"`         // current epoch (0-based)
	StepInEpoch int            `json:"step_in_epoch"` // steps of Epoch already done
	GlobalStep  int            `json:"global_step"`
	Best        float64        `json:"best"`
	BestEpoch   int            `json:"best_epoch"`
	BadEpochs   int            `json:"bad_epochs"`
	History     []EpochMetrics `json:"history"`
	EpochLoss   LossTerms      `json:"epoch_loss"` // running sums of the current epoch
	Elapsed     float64        `json:"elapsed_seconds"`
	Config      TrainConfig    `json:"config"`
}

// Trainer trains the grader. Create with NewTrainer; Step and Run drive it.
type Trainer struct {
	Cfg     TrainConfig
	backend backends.Backend
	ctx     *context.Context
	step    *context.Exec
	eval    *context.Exec
	// With a pretrained backbone whose first units are frozen, stem computes those units on
	// the native engine and the step and evalFeatures graphs start after them (stemUnits).
	stem         *nativeStem
	stemUnits    int
	evalFeatures *context.Exec
	train        []Sample
	pix          *Pixels
	pixIdx       map[string]int // sample ID -> pixel row
	sources      [][]int        // per train source, indices into train
	hold         []Sample
	classW       [NumGrades]float64
	State        TrainState
	Log          func(format string, args ...any)
}

// NewTrainer prepares a trainer from already loaded samples (trainSamples are split into
// train and holdout by source) and their pixels.
func NewTrainer(cfg TrainConfig, backend backends.Backend, trainSamples []Sample, pix *Pixels) (*Trainer, error) {
	if err := cfg.Model.Validate(); err != nil {
		return nil, err
	}
	if cfg.BatchSize <= 0 || cfg.Epochs <= 0 {
		return nil, fmt.Errorf("train: batch_size and epochs must be positive")
	}
	if len(pix.Data) != len(trainSamples) || pix.Size != cfg.Model.InputSize {
		return nil, fmt.Errorf("train: %d pixel rows of size %d for %d samples of size %d", len(pix.Data), pix.Size, len(trainSamples), cfg.Model.InputSize)
	}
	t := &Trainer{Cfg: cfg, backend: backend, pix: pix, pixIdx: map[string]int{}, Log: func(string, ...any) {}}
	for i, s := range trainSamples {
		t.pixIdx[s.ID] = i
	}
	tr, hold := trainSamples, []Sample(nil)
	if cfg.HoldoutFrac > 0 {
		tr, hold = SplitBySource(trainSamples, cfg.HoldoutFrac, cfg.Seed)
	}
	t.train = tr
	// One holdout photo per source (the first version by ID): no duplicates in the metric.
	seen := map[string]bool{}
	sort.SliceStable(hold, func(a, b int) bool { return hold[a].ID < hold[b].ID })
	for _, s := range hold {
		if !seen[s.Source] {
			seen[s.Source] = true
			t.hold = append(t.hold, s)
		}
	}
	bySrc := map[string][]int{}
	var keys []string
	for i, s := range tr {
		if _, ok := bySrc[s.Source]; !ok {
			keys = append(keys, s.Source)
		}
		bySrc[s.Source] = append(bySrc[s.Source], i)
	}
	sort.Strings(keys)
	var freq [NumGrades]float64
	for _, k := range keys {
		t.sources = append(t.sources, bySrc[k])
		freq[tr[bySrc[k][0]].Grade]++
	}
	if len(t.sources) < cfg.BatchSize {
		return nil, fmt.Errorf("train: %d training sources, fewer than one batch of %d", len(t.sources), cfg.BatchSize)
	}
	var wsum float64
	for g := range freq {
		if freq[g] > 0 {
			t.classW[g] = math.Pow(freq[g]/float64(len(keys)), -cfg.ClassWeightP)
		}
		wsum += t.classW[g] * freq[g]
	}
	for g := range t.classW { // normalise: mean weight over sources = 1
		t.classW[g] *= float64(len(keys)) / wsum
	}
	t.ctx = context.New()
	if err := t.ctx.SetRNGStateFromSeed(int64(cfg.Seed)); err != nil {
		return nil, fmt.Errorf("seed: %w", err)
	}
	opt := optimizers.Adam().LearningRate(cfg.LR).WeightDecay(cfg.WeightDecay).Done()
	mc, lw := cfg.Model, cfg.Loss
	var err error
	if mc.Backbone == BackboneMobileNetV2 {
		if err := seedMobileNetV2(t.ctx, mc); err != nil {
			return nil, err
		}
		if t.stemUnits, err = mobileNetV2Frozen(mc.FreezeUpto); err != nil {
			return nil, err
		}
		if t.stemUnits > 0 {
			if t.stem, err = newNativeStem(mc.InputSize, t.stemUnits, runtime.GOMAXPROCS(0)); err != nil {
				return nil, err
			}
			t.evalFeatures, err = context.NewExec(backend, t.ctx.Reuse(), func(ctx *context.Context, x *Node) []*Node {
				out := buildModel(ctx, mc, x, t.stemUnits)
				return []*Node{out.Density, out.Counts, Softmax(out.Logits, -1)}
			})
			if err != nil {
				return nil, fmt.Errorf("inference graph: %w", err)
			}
		}
	}
	t.step, err = context.NewExec(backend, t.ctx, func(ctx *context.Context, in []*Node) []*Node {
		out := buildModel(ctx, mc, in[0], t.stemUnits)
		total, d, c, g := Losses(out, in[1], in[2], in[3], in[4], lw)
		o := ScalarZero(total.Graph(), total.DType())
		if lw.Ordinal > 0 {
			o = OrdinalCountLoss(ctx, out.Counts, in[3])
			total = Add(total, MulScalar(o, lw.Ordinal))
		}
		opt.UpdateGraph(ctx, total.Graph(), total)
		return []*Node{total, d, c, g, o}
	})
	if err != nil {
		return nil, fmt.Errorf("train step: %w", err)
	}
	t.eval, err = newPredictExec(backend, t.ctx, mc)
	if err != nil {
		return nil, err
	}
	t.State = TrainState{Best: -2, BestEpoch: -1, Config: cfg} // every metric is >= -1
	return t, nil
}

// StepsPerEpoch is the number of full batches per epoch (one version of each train source,
// or every train photo with AllVersions).
func (t *Trainer) StepsPerEpoch() int {
	if t.Cfg.AllVersions {
		return len(t.train) / t.Cfg.BatchSize
	}
	return len(t.sources) / t.Cfg.BatchSize
}

// NumTrain reports the number of training sources (source photos, each with its versions).
func (t *Trainer) NumTrain() int { return len(t.sources) }

// NumHoldout reports the number of holdout photos (0 for a refit).
func (t *Trainer) NumHoldout() int { return len(t.hold) }

// noHoldout reports a refit: holdout_frac 0, every train source trains for the fixed number
// of epochs (no early stopping), and each epoch's weights (or, with AverageLast, the average
// of the last epochs) replace the best ones.
func (t *Trainer) noHoldout() bool { return len(t.hold) == 0 }

// epochOrder is the deterministic sample order of an epoch: one random version per source
// (or every photo with AllVersions), shuffled; it depends only on the seed and the epoch.
func (t *Trainer) epochOrder(epoch int) []int {
	r := rand.New(rand.NewPCG(t.Cfg.Seed, uint64(epoch)+1))
	if t.Cfg.AllVersions {
		order := make([]int, len(t.train))
		for i := range order {
			order[i] = i
		}
		r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
		return order
	}
	order := make([]int, len(t.sources))
	for i, vs := range t.sources {
		order[i] = vs[r.IntN(len(vs))]
	}
	r.Shuffle(len(order), func(a, b int) { order[a], order[b] = order[b], order[a] })
	return order
}

// batchTensors builds the step inputs for samples idx of train with augmentation drawn from
// a generator seeded by (seed, global step), so a resumed run sees identical batches.
func (t *Trainer) batchTensors(idx []int, globalStep int) []*tensors.Tensor {
	mc := t.Cfg.Model
	s, grid, nt := mc.InputSize, mc.Grid(), NumTypes
	b := len(idx)
	nc := mc.inputChannels()
	img := make([]float32, b*s*s*nc)
	dens := make([]float32, b*grid*grid*nt)
	counts := make([]float32, b*nt)
	grades := make([]int32, b)
	weights := make([]float32, b)
	r := rand.New(rand.NewPCG(t.Cfg.Seed^0x9e3779b97f4a7c15, uint64(globalStep)))
	var scratch featureScratch
	var augmented []uint8
	if t.Cfg.ScaleJitter > 0 || t.Cfg.ColorJitter > 0 {
		augmented = make([]uint8, s*s*3)
	}
	for bi, i := range idx {
		smp := &t.train[i]
		flip := r.Float64() < t.Cfg.FlipProb
		gain := float32(1 + (2*r.Float64()-1)*t.Cfg.Brightness)
		row, boxes := t.pix.Data[t.pixIdx[smp.ID]], smp.Boxes
		if t.Cfg.ScaleJitter > 0 { // drawn after flip and gain: runs without it are unchanged
			win := drawCrop(r, t.Cfg.ScaleJitter)
			cropResize(row, s, win, augmented)
			row, boxes = augmented, cropBoxes(boxes, win)
		}
		if t.Cfg.ColorJitter > 0 {
			if t.Cfg.ScaleJitter <= 0 {
				copy(augmented, row)
				row = augmented
			}
			applyGains(row, colourGains(r, t.Cfg.ColorJitter))
		}
		fillInput(img[bi*s*s*nc:(bi+1)*s*s*nc], row, s, flip, gain, mc.HighPass, &scratch)
		if flip {
			flipped := make([]heatmap.Box, len(boxes))
			for k, bx := range boxes {
				flipped[k] = heatmap.Box{Type: bx.Type, X0: 1 - bx.X1, X1: 1 - bx.X0, Y0: bx.Y0, Y1: bx.Y1}
			}
			boxes = flipped
		}
		copy(dens[bi*grid*grid*nt:], heatmap.Target(boxes, grid, nt, mc.Sigma))
		for _, bx := range boxes {
			counts[bi*nt+bx.Type]++
		}
		grades[bi] = int32(smp.Grade)
		weights[bi] = float32(t.classW[smp.Grade])
	}
	return []*tensors.Tensor{
		t.networkInput(img, b),
		tensors.FromFlatDataAndDimensions(dens, b, grid, grid, nt),
		tensors.FromFlatDataAndDimensions(counts, b, nt),
		tensors.FromFlatDataAndDimensions(grades, b),
		tensors.FromFlatDataAndDimensions(weights, b),
	}
}

// lrAt is the learning rate of a global step: linear warm-up, then cosine decay over all epochs.
func (t *Trainer) lrAt(step int) float64 {
	c := t.Cfg
	if c.WarmupSteps > 0 && step < c.WarmupSteps {
		return c.LR * float64(step+1) / float64(c.WarmupSteps)
	}
	total := c.Epochs * t.StepsPerEpoch()
	p := math.Min(1, float64(step)/float64(max(1, total)))
	return c.LR * (c.MinLRFrac + (1-c.MinLRFrac)*0.5*(1+math.Cos(math.Pi*p)))
}

// LossTerms holds one step's losses (or an epoch's running sums): the weighted total, then
// the unweighted density, count, grade and ordinal terms (ordinal 0 when it is off).
type LossTerms [5]float64

// Step runs one training step (the next batch of the current epoch) and returns its losses.
func (t *Trainer) Step() (LossTerms, error) {
	st := &t.State
	order := t.epochOrder(st.Epoch)
	b := t.Cfg.BatchSize
	idx := order[st.StepInEpoch*b : (st.StepInEpoch+1)*b]
	lrVar := optimizers.LearningRateVar(t.ctx, dtypes.Float32, t.Cfg.LR)
	if err := lrVar.SetValue(tensors.FromValue(float32(t.lrAt(st.GlobalStep)))); err != nil {
		return LossTerms{}, fmt.Errorf("set learning rate: %w", err)
	}
	args := t.batchTensors(idx, st.GlobalStep)
	in := make([]any, len(args))
	for i, a := range args {
		in[i] = a
	}
	outs, err := t.step.Exec(in...)
	if err != nil {
		return LossTerms{}, fmt.Errorf("train step %d: %w", st.GlobalStep, err)
	}
	var l LossTerms
	for i := range l {
		l[i] = float64(tensors.ToScalar[float32](outs[i]))
		st.EpochLoss[i] += l[i]
	}
	if math.IsNaN(l[0]) || math.IsInf(l[0], 0) {
		return l, fmt.Errorf("train step %d: loss is %v", st.GlobalStep, l[0])
	}
	st.StepInEpoch++
	st.GlobalStep++
	return l, nil
}

// SaveCheckpoint writes the full training state (weights, optimizer, progress) atomically.
func (t *Trainer) SaveCheckpoint(path string) error {
	return SaveCheckpoint(path, t.ctx, t.Cfg.Model, t.State, nil, false)
}

// LoadCheckpoint restores a checkpoint written by SaveCheckpoint (exact resume).
func (t *Trainer) LoadCheckpoint(path string) error {
	ck, err := ReadCheckpoint(path)
	if err != nil {
		return err
	}
	var st TrainState
	if err := json.Unmarshal(ck.Header.State, &st); err != nil {
		return fmt.Errorf("checkpoint %s: training state: %w", path, err)
	}
	if fmt.Sprint(ck.Header.Model) != fmt.Sprint(t.Cfg.Model) {
		return fmt.Errorf("checkpoint %s: model config %+v differs from the configured %+v", path, ck.Header.Model, t.Cfg.Model)
	}
	if err := ck.Restore(t.ctx); err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	st.Config = t.Cfg
	t.State = st
	return nil
}

// InitFromCheckpoint loads the model weights of ck (a fresh run's starting point: the
// optimizer state, schedule and history start anew). The architecture must match the
// configured one; the input size and the density target sigma may differ, since the network
// is fully convolutional (e.g. fine-tuning the 224 px built-in weights at 320 px).
func (t *Trainer) InitFromCheckpoint(ck *Checkpoint, name string) error {
	if t.State.GlobalStep > 0 {
		return fmt.Errorf("init from %s: the trainer has already taken %d steps", name, t.State.GlobalStep)
	}
	have, want := ck.Header.Model, t.Cfg.Model
	have.InputSize, have.Sigma, have.TypedCounts = want.InputSize, want.Sigma, want.TypedCounts
	if fmt.Sprint(have) != fmt.Sprint(want) {
		return fmt.Errorf("init from %s: its architecture %+v differs from the configured %+v (only input size and sigma may differ)", name, ck.Header.Model, t.Cfg.Model)
	}
	n := 0
	for _, e := range ck.Header.Tensors {
		if !isModelVar(e.Name) {
			continue // optimizer moments and step counters of a last.ckpt: a fresh run starts its own
		}
		tt, err := ck.Tensor(e.Name)
		if err != nil {
			return fmt.Errorf("init from %s: %w", name, err)
		}
		scope, vname := splitScopeName(e.Name)
		if v := t.ctx.GetVariableByScopeAndName(scope, vname); v != nil {
			if !v.Shape().Equal(tt.Shape()) {
				return fmt.Errorf("init from %s: variable %s: checkpoint shape %s, model shape %s", name, e.Name, tt.Shape(), v.Shape())
			}
			if err := v.SetValue(tt); err != nil {
				return fmt.Errorf("init from %s: variable %s: %w", name, e.Name, err)
			}
		} else {
			t.ctx.InAbsPath(scope).VariableWithValue(vname, tt)
		}
		n++
	}
	if n == 0 {
		return fmt.Errorf("init from %s: no model weights in it", name)
	}
	return nil
}

// Evaluate predicts samples (pixels looked up by sample ID in pix) in batches with predict
// (e.g. Model.PredictPreprocessed) and scores them.
func Evaluate(predict func(rows [][]uint8) ([]Prediction, error), samples []Sample, pix *Pixels, pixIdx map[string]int, batch int) (GradeMetrics, []Prediction, error) {
	preds := make([]Prediction, 0, len(samples))
	for start := 0; start < len(samples); start += batch {
		end := min(len(samples), start+batch)
		rows := make([][]uint8, 0, end-start)
		for _, s := range samples[start:end] {
			rows = append(rows, pix.Data[pixIdx[s.ID]])
		}
		p, err := predict(rows)
		if err != nil {
			return GradeMetrics{}, nil, err
		}
		preds = append(preds, p...)
	}
	probs := make([][]float64, len(samples))
	truth := make([]int, len(samples))
	pc, tc := make([]float64, len(samples)), make([]float64, len(samples))
	for i, p := range preds {
		probs[i], truth[i] = p.Probabilities, samples[i].Grade
		for _, c := range p.LesionCounts {
			pc[i] += c
		}
		tc[i] = float64(len(samples[i].Boxes))
	}
	return ComputeMetrics(probs, truth, pc, tc), preds, nil
}

func selectionValue(m GradeMetrics, metric string) float64 {
	switch metric {
	case "macro_f1":
		return m.MacroF1
	case "quadratic_kappa", "kappa":
		return m.Kappa
	case "count_spearman":
		return m.CountSpearman
	}
	return m.Accuracy
}

// Progress receives training progress for display.
type Progress func(epoch, epochs, step, steps int, loss, metric float64, eta time.Duration)

// Run trains until Epochs, early stopping, MaxSteps or ctx cancellation, writing
// last.ckpt / best.ckpt (atomically), metrics.jsonl and curves.svg to OutDir.
func (t *Trainer) Run(ctx gocontext.Context, progress Progress) error {
	c := t.Cfg
	st := &t.State
	spe := t.StepsPerEpoch()
	lastPath, bestPath := filepath.Join(c.OutDir, "last.ckpt"), filepath.Join(c.OutDir, "best.ckpt")
	runStart := time.Now()
	elapsed0 := st.Elapsed
	stepsThisRun := 0
	lastMetric := math.NaN()
	if n := len(st.History); n > 0 && !t.noHoldout() {
		lastMetric = selectionValue(st.History[n-1].Holdout, c.Metric)
	}
	for st.Epoch < c.Epochs {
		epochStart := time.Now()
		for st.StepInEpoch < spe {
			if err := ctx.Err(); err != nil {
				st.Elapsed = elapsed0 + time.Since(runStart).Seconds()
				if serr := t.SaveCheckpoint(lastPath); serr != nil {
					return errors.Join(err, serr)
				}
				return err
			}
			if c.MaxSteps > 0 && st.GlobalStep >= c.MaxSteps {
				st.Elapsed = elapsed0 + time.Since(runStart).Seconds()
				return t.SaveCheckpoint(lastPath)
			}
			l, err := t.Step()
			if err != nil {
				return err
			}
			stepsThisRun++
			if progress != nil {
				per := time.Since(runStart) / time.Duration(stepsThisRun)
				left := (c.Epochs-st.Epoch-1)*spe + (spe - st.StepInEpoch)
				progress(st.Epoch+1, c.Epochs, st.StepInEpoch, spe, l[0], lastMetric, per*time.Duration(left))
			}
			if c.CkptEvery > 0 && st.GlobalStep%c.CkptEvery == 0 && st.StepInEpoch < spe {
				st.Elapsed = elapsed0 + time.Since(runStart).Seconds()
				if err := t.SaveCheckpoint(lastPath); err != nil {
					return err
				}
			}
		}
		m, _, err := Evaluate(t.predictHead, t.hold, t.pix, t.pixIdx, c.BatchSize) // no holdout: N = 0
		if err != nil {
			return fmt.Errorf("holdout evaluation: %w", err)
		}
		em := EpochMetrics{Epoch: st.Epoch + 1, Step: st.GlobalStep, LR: t.lrAt(st.GlobalStep - 1), Holdout: m, Seconds: time.Since(epochStart).Seconds()}
		em.TrainLoss, em.TrainDens, em.TrainCount, em.TrainGrade = st.EpochLoss[0]/float64(spe), st.EpochLoss[1]/float64(spe), st.EpochLoss[2]/float64(spe), st.EpochLoss[3]/float64(spe)
		em.TrainOrdinal = st.EpochLoss[4] / float64(spe)
		v := selectionValue(m, c.Metric)
		improved := v > st.Best
		if t.noHoldout() { // a refit: nothing to select on, the newest epoch is the one kept
			v, improved = st.Best, true
		} else {
			lastMetric = v
		}
		em.Best = improved
		st.History = append(st.History, em)
		st.Epoch++
		st.StepInEpoch = 0
		st.EpochLoss = LossTerms{}
		if improved {
			st.Best, st.BestEpoch, st.BadEpochs = v, em.Epoch, 0
		} else {
			st.BadEpochs++
		}
		st.Elapsed = elapsed0 + time.Since(runStart).Seconds()
		terms := fmt.Sprintf("density %.4f count %.4f grade %.4f", em.TrainDens, em.TrainCount, em.TrainGrade)
		if c.Loss.Ordinal > 0 {
			terms += fmt.Sprintf(" ordinal %.4f", em.TrainOrdinal)
		}
		if t.noHoldout() {
			t.Log("epoch %d/%d: train loss %.4f (%s), no holdout, %.0fs",
				em.Epoch, c.Epochs, em.TrainLoss, terms, em.Seconds)
		} else {
			t.Log("epoch %d/%d: train loss %.4f (%s), holdout %s %.4f acc %.4f kappa %.4f count MAE %.2f, %.0fs",
				em.Epoch, c.Epochs, em.TrainLoss, terms, c.Metric, v, m.Accuracy, m.Kappa, m.CountMAE, em.Seconds)
		}
		if improved {
			if err := SaveCheckpoint(bestPath, t.ctx, c.Model, t.State, metricsMap("holdout", m), true); err != nil {
				return err
			}
		}
		if c.AverageLast > 0 { // before last.ckpt: a run killed in between redoes this epoch
			if err := SaveCheckpoint(snapshotPath(c.OutDir, em.Epoch), t.ctx, c.Model, t.State, metricsMap("holdout", m), true); err != nil {
				return fmt.Errorf("epoch snapshot: %w", err)
			}
			if err := pruneSnapshots(c.OutDir, em.Epoch-c.AverageLast+1); err != nil {
				return err
			}
		}
		if err := t.SaveCheckpoint(lastPath); err != nil {
			return err
		}
		if err := t.writeMetrics(); err != nil {
			return err
		}
		if c.Patience > 0 && st.BadEpochs >= c.Patience { // never without a holdout: every epoch is kept
			t.Log("early stopping: no holdout improvement for %d epochs (best %.4f at epoch %d)", st.BadEpochs, st.Best, st.BestEpoch)
			break
		}
	}
	return nil
}

func metricsMap(prefix string, m GradeMetrics) map[string]float64 {
	return map[string]float64{
		prefix + "_n": float64(m.N), prefix + "_accuracy": m.Accuracy, prefix + "_macro_f1": m.MacroF1,
		prefix + "_quadratic_kappa": m.Kappa, prefix + "_macro_auc": m.MacroAUC, prefix + "_count_mae": m.CountMAE,
		prefix + "_count_spearman": m.CountSpearman,
	}
}

// writeMetrics rewrites metrics.jsonl and curves.svg atomically from the history.
func (t *Trainer) writeMetrics() error {
	dir := t.Cfg.OutDir
	err := fsutil.WriteAtomic(filepath.Join(dir, "metrics.jsonl"), 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		for _, h := range t.State.History {
			if err := enc.Encode(h); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, "curves.svg"), CurvesSVG(t.State.History, t.Cfg.Metric), 0o644)
}

// networkInput is the step graph's input for b photos' fillInput values img: the values
// themselves, or their frozen backbone features when the trainer has a native stem.
func (t *Trainer) networkInput(img []float32, b int) *tensors.Tensor {
	s, nc := t.Cfg.Model.InputSize, t.Cfg.Model.inputChannels()
	if t.stem == nil {
		return tensors.FromFlatDataAndDimensions(img, b, s, s, nc)
	}
	feats := make([]float32, b*t.stem.featureLen())
	t.stem.features(img, feats, b)
	return tensors.FromFlatDataAndDimensions(feats, append([]int{b}, t.stem.outDims...)...)
}

// predictHead runs the trainer's current weights (GoMLX graph, grade head, no calibration).
func (t *Trainer) predictHead(rows [][]uint8) ([]Prediction, error) {
	mc := t.Cfg.Model
	if t.stem == nil {
		return predictRows(t.eval, mc, nil, rows, false)
	}
	img, err := fillInputs(mc, rows, false)
	if err != nil {
		return nil, err
	}
	return runPredictExec(t.evalFeatures, mc, nil, len(rows), t.networkInput(img, len(rows)))
}

// Context returns the GoMLX context holding the trainer's variables.
func (t *Trainer) Context() *context.Context { return t.ctx }

// EvalExec returns the trainer's inference executable.
func (t *Trainer) EvalExec() *context.Exec { return t.eval }

// exists reports whether path exists.
func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}
