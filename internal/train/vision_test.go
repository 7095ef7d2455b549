package train

import (
	gocontext "context"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/qwen"
)

// TestLoRAVisionTargetsTrain: with adapters on the vision tower (--lora-lm-only=false) a run
// of 2 steps trains them (their B matrices leave zero) and changes the vision features of a
// photo, as Model.VisionFeatures (inference) computes them with the adapter attached; the
// default language-model-only run adapts nothing in the tower and leaves its features
// unchanged bit for bit.
func TestLoRAVisionTargetsTrain(t *testing.T) {
	dir := t.TempDir()
	model, manifest := fixture(t, dir)
	for _, tc := range []struct {
		name       string
		lmOnly     bool
		wantVision int
	}{
		{"language model only", true, 0},
		{"vision tower targeted", false, 6},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(model, manifest, filepath.Join(dir, tc.name))
			c.LanguageModelOnly, c.MaxSteps, c.EvalData = tc.lmOnly, 2, ""
			tr, err := newTrainer(t, c)
			if err != nil {
				t.Fatal(err)
			}
			t.Log(tr.Mode())
			if tr.VisionModules() != tc.wantVision {
				t.Fatalf("%d vision modules adapted, want %d", tr.VisionModules(), tc.wantVision)
			}
			photo := tr.Train[0].Images[0]
			before := photoFeatures(t, tr, photo)
			if err := tr.Run(gocontext.Background(), nil); err != nil {
				t.Fatal(err)
			}
			if tr.State.Step != 2 {
				t.Fatalf("ran %d steps, want 2", tr.State.Step)
			}
			var vision []string
			for _, mod := range lora.Adapted(tr.Model.Ctx) {
				if !strings.HasPrefix(mod, "visual.") {
					continue
				}
				vision = append(vision, mod)
				_, b, _, _, _, err := lora.Weights(tr.Model.Ctx, mod)
				if err != nil {
					t.Fatal(err)
				}
				if !slices.ContainsFunc(b, func(x float32) bool { return x != 0 }) {
					t.Errorf("%s: lora_B still zero after 2 steps", mod)
				}
			}
			if len(vision) != tc.wantVision {
				t.Errorf("%d vision modules carry adapters, want %d: %v", len(vision), tc.wantVision, vision)
			}
			after := photoFeatures(t, tr, photo)
			var maxDiff float64
			for i := range before {
				maxDiff = max(maxDiff, float64(abs32(after[i]-before[i])))
			}
			t.Logf("vision features of %s: max change %.3g after 2 steps", filepath.Base(photo), maxDiff)
			if changed := maxDiff > 0; changed != (tc.wantVision > 0) {
				t.Errorf("vision features changed by up to %.3g; want a change only when the tower is adapted", maxDiff)
			}
		})
	}
}

// photoFeatures are the vision features of a photo, computed as inference does.
func photoFeatures(t *testing.T, tr *LoRATrainer, path string) []float32 {
	t.Helper()
	im, err := tr.processed(path)
	if err != nil {
		t.Fatal(err)
	}
	ft, err := tr.Model.VisionFeatures([]qwen.ProcessedImage{im})
	if err != nil {
		t.Fatal(err)
	}
	f, err := tensors.CopyFlatData[float32](ft)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func abs32(x float32) float32 {
	if x < 0 {
		return -x
	}
	return x
}
