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

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/lora"
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
// (grade_loss_weight 0) and with the trainer's default grade-token loss added.
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
	// The trainer runs the vision tower outside its graph (NewLoRATrainer refuses vision
	// targets): the vision adapters stay applied to the features, frozen, and the language
	// model's are the trained parameters. checkWholeModelGradients covers the vision ones.
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
	for _, loss := range losses {
		cfg := DefaultLoRAConfig()
		cfg.Seed, cfg.BatchSize, cfg.GradAccum = 1, 1, 1
		loss.cfg(&cfg)
		tr := &LoRATrainer{Cfg: cfg, Model: m, LoRA: adapter, modules: textModules, images: map[string]qwen.ProcessedImage{}, features: map[string][]float32{}}
		if err := tr.prepare(); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(tr.gradeID, fx.GradeTokenIDs) {
			t.Fatalf("grade tokens %v, transformers' tokenizer %v", tr.gradeID, fx.GradeTokenIDs)
		}
		got, grads, b, err := tr.gradients([]Sample{sample}, 0)
		if err != nil {
			t.Fatal(err)
		}
		checkPEFTBatch(t, b, fx, loss.name == "lm_grade")
		want := fx.Losses[loss.name]
		if d := math.Abs(got - want); d > 1e-4 {
			t.Errorf("%s loss %.7f, PEFT %.7f (diff %.2g)", loss.name, got, want, d)
		}
		compared := map[string]bool{}
		var worst gradDiff
		for i, p := range tr.Params() {
			mod := strings.ReplaceAll(strings.TrimPrefix(p.Scope(), "/lora/"), "/", ".")
			key, ref := fx.gradient(loss.name, mod, p.Name())
			if ref == nil {
				t.Fatalf("%s: PEFT recorded no gradient for %s %s", loss.name, mod, p.Name())
			}
			compared[key] = true
			if len(ref) != len(grads[i]) {
				t.Fatalf("%s: %s has %d values, PEFT's %d", loss.name, key, len(grads[i]), len(ref))
			}
			d := diffGradients(key, grads[i], ref)
			if d.maxAbs > 1e-4 {
				t.Errorf("%s: %s differs from PEFT by up to %.2g (relative %.2g; norms %.6g vs %.6g)", loss.name, key, d.maxAbs, d.rel, d.norm, d.refNorm)
			}
			worst = worst.max(d)
		}
		if n, nv := fx.gradientsByLoss[loss.name], fx.visionByLoss[loss.name]; len(compared) != n-nv {
			t.Errorf("%s: compared %d of PEFT's %d gradients (%d of the vision tower)", loss.name, len(compared), n, nv)
		}
		t.Logf("%s: trainer loss %.7f vs PEFT %.7f (diff %.2g); %d language-model LoRA gradients: max abs diff %.2g (%s), max relative %.2g (max |diff| / max |grad| of a tensor), max ‖diff‖/‖grad‖ %.2g",
			loss.name, got, want, math.Abs(got-want), len(compared), worst.maxAbs, worst.key, worst.rel, worst.normRel)
		checkWholeModelGradients(t, tr, sample, fx, loss.name)
	}
}

// checkWholeModelGradients covers the vision-tower adapters, which the trainer does not train
// (it runs the tower outside its graph): the same loss with the tower inside the graph
// (qwen.VisionForward feeding qwen.LossFromInputs in place of the precomputed features),
// differentiated for every adapter, against all of PEFT's gradients.
func checkWholeModelGradients(t *testing.T, tr *LoRATrainer, sample Sample, fx *peftGradFixture, loss string) {
	t.Helper()
	m := tr.Model
	_, text, err := tr.batch([]Sample{sample})
	if err != nil {
		t.Fatal(err)
	}
	im := tr.images[sample.Images[0]]
	tab, err := qwen.NewVisionTables(m.Config, [][3]int{im.Grid})
	if err != nil {
		t.Fatal(err)
	}
	N, hd := tab.Patches, tab.HeadDim
	vision := []*tensors.Tensor{
		tensors.FromFlatDataAndDimensions(im.PixelValues, N, im.PatchDim),
		tensors.FromFlatDataAndDimensions(tab.WindowIndex, tab.Units, 1), tensors.FromFlatDataAndDimensions(tab.InverseIndex, tab.Units, 1),
		tensors.FromFlatDataAndDimensions(tab.Cos, N, hd), tensors.FromFlatDataAndDimensions(tab.Sin, N, hd),
		tensors.FromFlatDataAndDimensions(tab.WindowMask, N, N), tensors.FromFlatDataAndDimensions(tab.FullMask, N, N),
	}
	var vars []*context.Variable
	var modules []string
	for _, mod := range lora.Adapted(m.Ctx) {
		for _, name := range []string{"lora_A", "lora_B"} {
			vars = append(vars, m.Ctx.GetVariableByScopeAndName("/lora/"+strings.ReplaceAll(mod, ".", "/"), name))
			modules = append(modules, mod)
		}
	}
	exec, err := context.NewExecAny(m.Backend, m.Ctx, func(ctx *context.Context, in []*graph.Node) []*graph.Node {
		g := in[0].Graph()
		ctx.SetTraining(g, true)
		feat := qwen.VisionForward(ctx, m.Config, qwen.VisionInputs{Pixels: in[0], WindowIndex: in[1], InverseIndex: in[2], Cos: in[3], Sin: in[4], WindowMask: in[5], FullMask: in[6]})
		textIn := slices.Clone(in[len(vision):])
		textIn[1] = feat
		l := qwen.LossFromInputs(ctx, m.Config, tr.opts, textIn)
		nodes := make([]*graph.Node, len(vars))
		for i, v := range vars {
			nodes[i] = v.ValueGraph(g)
		}
		return append([]*graph.Node{l}, graph.Gradient(l, nodes...)...)
	})
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Exec(append(vision, text...))
	if err != nil {
		t.Fatal(err)
	}
	var worst, worstVision gradDiff
	for i, v := range vars {
		key, ref := fx.gradient(loss, modules[i], v.Name())
		got, err := tensors.CopyFlatData[float32](out[1+i])
		if err != nil {
			t.Fatal(err)
		}
		if ref == nil || len(ref) != len(got) {
			t.Fatalf("%s: no PEFT gradient of the shape of %s %s", loss, modules[i], v.Name())
		}
		d := diffGradients(key, got, ref)
		if d.maxAbs > 1e-4 {
			t.Errorf("%s, vision tower in the graph: %s differs from PEFT by up to %.2g (relative %.2g)", loss, key, d.maxAbs, d.rel)
		}
		worst = worst.max(d)
		if strings.HasPrefix(modules[i], "visual.") {
			worstVision = worstVision.max(d)
		}
	}
	if len(vars) != fx.gradientsByLoss[loss] {
		t.Errorf("%s: %d adapter tensors, PEFT has %d gradients", loss, len(vars), fx.gradientsByLoss[loss])
	}
	t.Logf("%s, vision tower in the graph: loss %.7f; all %d LoRA gradients: max abs diff %.2g (%s), max relative %.2g, max ‖diff‖/‖grad‖ %.2g; the %d vision ones: max abs %.2g, max relative %.2g",
		loss, toFloat(out[0]), len(vars), worst.maxAbs, worst.key, worst.rel, worst.normRel, fx.visionByLoss[loss], worstVision.maxAbs, worstVision.rel)
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
