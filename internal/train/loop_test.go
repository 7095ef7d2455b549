package train

import (
	gocontext "context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/qwen"
)

func mustBackend(t *testing.T) backends.Backend {
	t.Helper()
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	return backend
}

func newTrainer(t *testing.T, c LoRAConfig) (*LoRATrainer, error) {
	t.Helper()
	return NewLoRATrainer(c, mustBackend(t))
}

// TestLoRAEarlyStopping: with learning rate 0 the validation loss never improves after the
// first epoch, so a run stops after 1 + patience epochs, keeping epoch 0 as best.
func TestLoRAEarlyStopping(t *testing.T) {
	dir := t.TempDir()
	model, manifest := fixture(t, dir)
	for _, tc := range []struct{ patience, epochs, wantEvals int }{
		{1, 5, 2},
		{2, 5, 3},
		{0, 2, 2}, // patience 0: no early stopping
	} {
		t.Run(fmt.Sprintf("patience %d", tc.patience), func(t *testing.T) {
			c := testConfig(model, manifest, filepath.Join(dir, fmt.Sprintf("p%d", tc.patience)))
			c.LR, c.Metric, c.Patience, c.Epochs = 0, "val_loss", tc.patience, tc.epochs
			c.BatchSize, c.GradAccum, c.MaxEvalSamples, c.SaveSteps = 1, 1, 1, 0
			tr, err := newTrainer(t, c)
			if err != nil {
				t.Fatal(err)
			}
			tr.Train = tr.Train[:1] // one step per epoch
			if err := tr.Run(gocontext.Background(), nil); err != nil {
				t.Fatal(err)
			}
			_, evals := readMetrics(t, c.Out)
			if len(evals) != tc.wantEvals || tr.State.Epoch != tc.wantEvals || !tr.State.Done {
				t.Errorf("%d evaluations, state %+v; want %d epochs then done", len(evals), tr.State, tc.wantEvals)
			}
			if tr.State.BestEpoch != 0 || tr.State.BadEpochs != tc.wantEvals-1 {
				t.Errorf("best epoch %d after %d bad epochs, want 0 after %d", tr.State.BestEpoch, tr.State.BadEpochs, tc.wantEvals-1)
			}
			if _, err := os.Stat(filepath.Join(c.Out, "checkpoint-best", "trainer_state.json")); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestLoRATargetSelection covers regex targets (PEFT's full match of the module name) and
// vision-tower targets, which switch the trainer to the tower inside the training graph.
func TestLoRATargetSelection(t *testing.T) {
	dir := t.TempDir()
	model, manifest := fixture(t, dir)
	// An adapter (as PEFT writes for a plain target list) that also adapts the vision MLPs.
	visionAdapter := filepath.Join(dir, "vision-adapter")
	m, err := qwen.Load(model, mustBackend(t))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := lora.NewConfig(2, 4, 0, lora.DefaultTargets, false)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.AttachLoRA(cfg, 1); err != nil {
		t.Fatal(err)
	}
	if err := lora.Save(m.Ctx, cfg, visionAdapter, lora.NamingNew); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name        string
		regex       string
		adapter     string
		lmOnly      bool
		wantModules []string // nil: not checked
		wantCount   int      // adapted modules (with wantModules nil)
		wantVision  int
		wantErr     string
	}{
		{name: "layer 0 q and v", regex: `model\.layers\.0\.self_attn\.(q|v)_proj`, lmOnly: true,
			wantModules: []string{"model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.v_proj"}},
		{name: "new transformers spelling", regex: `model\.language_model\.layers\.1\.mlp\.down_proj`, lmOnly: true,
			wantModules: []string{"model.layers.1.mlp.down_proj"}},
		{name: "a suffix is not a full match", regex: `q_proj`, lmOnly: true, wantErr: "match no linear layer"},
		{name: "invalid regex", regex: `(q_proj`, lmOnly: true, wantErr: "target_modules regex"},
		{name: "vision regex", regex: `visual\.blocks\.0\.mlp\.gate_proj`, lmOnly: true,
			wantModules: []string{"visual.blocks.0.mlp.gate_proj"}, wantVision: 1},
		{name: "default targets", lmOnly: true, wantCount: 14},
		{name: "plain list without --lora-lm-only", lmOnly: false, wantCount: 20, wantVision: 6},
		{name: "adapter with vision modules", adapter: visionAdapter, lmOnly: true, wantCount: 20, wantVision: 6},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(model, manifest, filepath.Join(dir, "out"))
			c.TargetRegex, c.LanguageModelOnly, c.Adapter = tc.regex, tc.lmOnly, tc.adapter
			tr, err := newTrainer(t, c)
			if expectError(t, err, tc.wantErr) {
				return
			}
			if tc.wantModules != nil && fmt.Sprint(tr.modules) != fmt.Sprint(tc.wantModules) {
				t.Errorf("adapted %v, want %v", tr.modules, tc.wantModules)
			}
			if tc.wantModules == nil && len(tr.modules) != tc.wantCount {
				t.Errorf("adapted %d modules, want %d: %v", len(tr.modules), tc.wantCount, tr.modules)
			}
			if tr.VisionModules() != tc.wantVision {
				t.Errorf("%d vision modules adapted, want %d (mode: %s)", tr.VisionModules(), tc.wantVision, tr.Mode())
			}
			if want := fmt.Sprintf("%q", tc.regex); tc.regex != "" && string(tr.LoRA.TargetModules) != want {
				t.Errorf("target_modules %s, want %s", tr.LoRA.TargetModules, want)
			}
		})
	}
}
