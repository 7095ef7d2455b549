package train

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/qwen"
	"github.com/acdtcm/acdtcm/internal/safetensors"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// PEFT's gradients for the two exchange adapters (issue #6), written by
// scripts/peft-reference/peft_gradients.py next to the adapters in internal/qwen/testdata/peft.
var peftDir = filepath.Join("..", "qwen", "testdata", "peft")

// peftGradFixture is NAME-grad.json: the training sample, PEFT's losses and the grade-loss
// settings; the gradients are in NAME-grad.safetensors, keyed "<loss>/<adapter key>".
type peftGradFixture struct {
	Image           string             `json:"image"`
	System          string             `json:"system"`
	Question        string             `json:"question"`
	Answer          string             `json:"answer"`
	Grade           int                `json:"grade"`
	LesionCounts    map[string]int     `json:"lesion_counts"`
	Syndrome        string             `json:"syndrome"`
	InputIDs        []int32            `json:"input_ids"`
	Labels          []int32            `json:"labels"`
	GradeTokenIDs   []int              `json:"grade_token_ids"`
	GradePosition   int32              `json:"grade_position"`
	GradeLossWeight float64            `json:"grade_loss_weight"`
	LabelSmoothing  float64            `json:"label_smoothing"`
	ClassWeights    []float64          `json:"class_weights"`
	Losses          map[string]float64 `json:"losses"`
	Versions        map[string]string  `json:"versions"`
	gradients       map[string][]float32
	gradientsByLoss map[string]int
	visionByLoss    map[string]int
}

// TestLoRAGradientsMatchPEFT: for one graded training sample on the tiny seed-7 checkpoint,
// the trainer's loss and LoRA gradients (LoRATrainer.gradients, the function every training
// step runs) equal PEFT's loss.backward() on transformers' Qwen2.5-VL, for an adapter acdtcm
// saved and one PEFT made (rsLoRA, rank and alpha patterns), with the language-model loss only
// (grade_loss_weight 0) and with the trainer's default grade-token loss added. Both adapters
// also adapt the vision tower, so the trainer runs both ways: training the language model's
// adapters only (the vision ones applied to the cached features, frozen), and training every
// adapter with the vision tower inside the graph, the step NewLoRATrainer builds for them.
func TestLoRAGradientsMatchPEFT(t *testing.T) {
	for _, name := range []string{"acdtcm-adapter", "peft-adapter"} {
		t.Run(name, func(t *testing.T) { checkPEFTGradients(t, name) })
	}
}

func checkPEFTGradients(t *testing.T, name string) {
	fx := readPEFTGradFixture(t, name)
	answer := qwen.GradingAnswer(fx.Grade, severity.Hayashi, fx.LesionCounts, fx.Syndrome)
	if fx.System != qwen.GradingSystemPrompt || fx.Question != qwen.GradingQuestion || fx.Answer != answer {
		t.Fatalf("the fixture's sample is not what the trainer builds any more (qwen.GradingMessages/GradingAnswer changed): rerun scripts/peft-reference/peft_gradients.py with the new texts")
	}
	sample := Sample{ID: name, Messages: qwen.GradingMessages(answer), Images: []string{filepath.Join("..", "..", fx.Image)}, Grade: fx.Grade}

	m := tinySeed7(t)
	adapter, modules, err := m.LoadAdapter(filepath.Join(peftDir, name))
	if err != nil {
		t.Fatal(err)
	}
	var textModules []string
	for _, mod := range modules {
		if !strings.HasPrefix(mod, "visual.") {
			textModules = append(textModules, mod)
		}
	}
	losses := []struct {
		name string
		cfg  func(*LoRAConfig)
	}{
		{"lm", func(c *LoRAConfig) { c.GradeLossWeight = 0 }},
		{"lm_grade", func(c *LoRAConfig) {
			c.GradeLossWeight, c.LabelSmoothing, c.ClassWeights = fx.GradeLossWeight, fx.LabelSmoothing, fx.ClassWeights
		}},
	}
	modes := []struct {
		name    string
		modules []string
	}{
		{"language model only", textModules},
		{"vision tower in the graph", modules},
	}
	for _, loss := range losses {
		for _, mode := range modes {
			cfg := DefaultLoRAConfig()
			cfg.Seed, cfg.BatchSize, cfg.GradAccum = 1, 1, 1
			loss.cfg(&cfg)
			tr := &LoRATrainer{Cfg: cfg, Model: m, LoRA: adapter, modules: mode.modules, images: map[string]qwen.ProcessedImage{}, pixelCacheBytes: defaultPixelCacheBytes, features: map[string]photoFeatures{}}
			if err := tr.prepare(); err != nil {
				t.Fatal(err)
			}
			if want := len(mode.modules) - len(textModules); tr.VisionModules() != want {
				t.Fatalf("%s: trainer adapts %d vision modules, want %d", mode.name, tr.VisionModules(), want)
			}
			if !slices.Equal(tr.gradeID, fx.GradeTokenIDs) {
				t.Fatalf("grade tokens %v, transformers' tokenizer %v", tr.gradeID, fx.GradeTokenIDs)
			}
			checkTrainerGradients(t, tr, sample, fx, loss.name, mode.name)
		}
	}
}

// checkTrainerGradients compares the trainer's loss and the gradient of each of its parameters
// on sample with PEFT's, and checks that it compared all of PEFT's gradients (less the vision
// tower's when it trains the language model only).
func checkTrainerGradients(t *testing.T, tr *LoRATrainer, sample Sample, fx *peftGradFixture, loss, mode string) {
	t.Helper()
	got, grads, b, err := tr.gradients([]Sample{sample}, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkPEFTBatch(t, b, fx, loss == "lm_grade")
	want := fx.Losses[loss]
	if d := math.Abs(got - want); d > 1e-4 {
		t.Errorf("%s, %s: loss %.7f, PEFT %.7f (diff %.2g)", loss, mode, got, want, d)
	}
	compared := map[string]bool{}
	var worst, worstVision gradDiff
	vision := 0
	for i, p := range tr.Params() {
		mod := strings.ReplaceAll(strings.TrimPrefix(p.Scope(), "/lora/"), "/", ".")
		key, ref := fx.gradient(loss, mod, p.Name())
		if ref == nil {
			t.Fatalf("%s: PEFT recorded no gradient for %s %s", loss, mod, p.Name())
		}
		compared[key] = true
		if len(ref) != len(grads[i]) {
			t.Fatalf("%s: %s has %d values, PEFT's %d", loss, key, len(grads[i]), len(ref))
		}
		d := diffGradients(key, grads[i], ref)
		if d.maxAbs > 1e-4 {
			t.Errorf("%s, %s: %s differs from PEFT by up to %.2g (relative %.2g; norms %.6g vs %.6g)", loss, mode, key, d.maxAbs, d.rel, d.norm, d.refNorm)
		}
		worst = worst.max(d)
		if strings.HasPrefix(mod, "visual.") {
			worstVision = worstVision.max(d)
			vision++
		}
	}
	n, nv := fx.gradientsByLoss[loss], fx.visionByLoss[loss]
	if wantVision := min(tr.VisionModules(), 1) * nv; len(compared) != n-nv+wantVision || vision != wantVision {
		t.Errorf("%s, %s: compared %d of PEFT's %d gradients (%d of the vision tower's %d)", loss, mode, len(compared), n, vision, nv)
	}
	t.Logf("%s, %s: trainer loss %.7f vs PEFT %.7f (diff %.2g); %d LoRA gradients: max abs diff %.2g (%s), max relative %.2g (max |diff| / max |grad| of a tensor), max ‖diff‖/‖grad‖ %.2g; the %d vision ones: max abs %.2g, max relative %.2g",
		loss, mode, got, want, math.Abs(got-want), len(compared), worst.maxAbs, worst.key, worst.rel, worst.normRel, vision, worstVision.maxAbs, worstVision.rel)
}

// checkPEFTBatch checks that the trainer's batch is transformers' sequence with PEFT's labels:
// the same ids, next-token targets exactly at the supervised labels, and (with the grade loss)
// the same grade position.
func checkPEFTBatch(t *testing.T, b *qwen.TrainBatch, fx *peftGradFixture, grade bool) {
	t.Helper()
	if b.B != 1 || !slices.Equal(b.IDs, fx.InputIDs) {
		t.Fatalf("batch ids differ from transformers':\n got %v\nwant %v", b.IDs, fx.InputIDs)
	}
	for s := range b.S {
		label := int32(qwen.IgnoreIndex)
		if s+1 < b.S {
			label = fx.Labels[s+1]
		}
		if supervised := label != qwen.IgnoreIndex; supervised != (b.Weights[s] == 1) || (supervised && b.Targets[s] != label) {
			t.Fatalf("position %d: target %d weight %g, transformers' shifted label %d", s, b.Targets[s], b.Weights[s], label)
		}
	}
	if grade && (len(b.GradePos) != 1 || b.GradePos[0] != fx.GradePosition || b.GradeLabel[0] != int32(fx.Grade)) {
		t.Fatalf("grade position/label %v %v, PEFT's %d %d", b.GradePos, b.GradeLabel, fx.GradePosition, fx.Grade)
	}
}

func readPEFTGradFixture(t *testing.T, name string) *peftGradFixture {
	t.Helper()
	path := filepath.Join(peftDir, name+"-grad.json")
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		t.Skipf("skipping: no PEFT gradient reference %s (run scripts/peft-reference/peft_gradients.py where transformers and PEFT are installed; scripts/pyshim/README.md)", path)
	}
	if err != nil {
		t.Fatal(err)
	}
	fx := &peftGradFixture{gradients: map[string][]float32{}, gradientsByLoss: map[string]int{}, visionByLoss: map[string]int{}}
	if err := json.Unmarshal(data, fx); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	f, err := safetensors.Open(filepath.Join(peftDir, name+"-grad.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, key := range f.Names() {
		g, _, err := f.Float32(key)
		if err != nil {
			t.Fatal(err)
		}
		fx.gradients[key] = g
		loss, adapterKey, _ := strings.Cut(key, "/")
		fx.gradientsByLoss[loss]++
		if strings.HasPrefix(adapterKey, "base_model.model.visual.") || strings.HasPrefix(adapterKey, "base_model.model.model.visual.") {
			fx.visionByLoss[loss]++
		}
	}
	t.Logf("PEFT reference: %v", fx.Versions)
	return fx
}

// gradient returns PEFT's gradient of a module's lora_A or lora_B for a loss, and its key.
// acdtcm names modules as transformers < 4.52 did (model.layers.*, visual.*); the adapter
// key may also use the names of transformers >= 4.52 (model.language_model.*, model.visual.*),
// as PEFT spells them there.
func (fx *peftGradFixture) gradient(loss, module, matrix string) (string, []float32) {
	spellings := []string{module}
	if rest, ok := strings.CutPrefix(module, "model."); ok {
		spellings = append(spellings, "model.language_model."+rest)
	} else if strings.HasPrefix(module, "visual.") {
		spellings = append(spellings, "model."+module)
	}
	for _, s := range spellings {
		key := fmt.Sprintf("%s/base_model.model.%s.%s.weight", loss, s, matrix)
		if g, ok := fx.gradients[key]; ok {
			return key, g
		}
	}
	return "", nil
}

// gradDiff measures one tensor against PEFT's: the largest absolute difference, that relative
// to PEFT's largest |value|, and the difference's norm relative to PEFT's norm.
type gradDiff struct {
	key                   string
	maxAbs, rel, normRel  float64
	norm, refNorm, refMax float64
}

func diffGradients(key string, got, want []float32) gradDiff {
	d := gradDiff{key: key}
	var diffSq, gotSq, wantSq float64
	for i := range got {
		e := math.Abs(float64(got[i]) - float64(want[i]))
		d.maxAbs = max(d.maxAbs, e)
		d.refMax = max(d.refMax, math.Abs(float64(want[i])))
		diffSq += e * e
		gotSq += float64(got[i]) * float64(got[i])
		wantSq += float64(want[i]) * float64(want[i])
	}
	d.norm, d.refNorm = math.Sqrt(gotSq), math.Sqrt(wantSq)
	if d.refMax > 0 {
		d.rel = d.maxAbs / d.refMax
	}
	if d.refNorm > 0 {
		d.normRel = math.Sqrt(diffSq) / d.refNorm
	}
	return d
}

// max keeps the largest of each measure (and the key of the largest absolute difference).
func (d gradDiff) max(o gradDiff) gradDiff {
	if o.maxAbs > d.maxAbs {
		d.maxAbs, d.key = o.maxAbs, o.key
	}
	d.rel, d.normRel = max(d.rel, o.rel), max(d.normRel, o.normRel)
	return d
}

// tinySeed7 loads the checkpoint the reference scripts ran on (acdtcm model init --preset
// tiny --seed 7) with the pure-Go backend.
func tinySeed7(t *testing.T) *qwen.Model {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny")
	if _, err := qwen.InitCheckpoint(dir, qwen.InitOptions{Preset: qwen.PresetTiny, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	m, err := qwen.Load(dir, backend)
	if err != nil {
		t.Fatal(err)
	}
	return m
}
