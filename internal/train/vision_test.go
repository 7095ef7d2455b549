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
			before := inferenceFeatures(t, tr, photo)
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
			after := inferenceFeatures(t, tr, photo)
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

// inferenceFeatures are the vision features of a photo, computed as inference does.
func inferenceFeatures(t *testing.T, tr *LoRATrainer, path string) []float32 {
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

// TestLoRAImageCaches: the caches bound memory without changing training. With the vision
// tower in the graph, a pixel cache of 0 bytes (every photo decoded again on each use) gives
// the same losses, bit for bit, as the default cache, which holds the photos; with the tower
// frozen (features cached), no pixels are kept at all, only each photo's features and layout.
func TestLoRAImageCaches(t *testing.T) {
	dir := t.TempDir()
	model, manifest := fixture(t, dir)
	tests := []struct {
		name       string
		lmOnly     bool
		budget     int64
		wantCached bool
	}{
		{"vision in graph, default pixel cache", false, defaultPixelCacheBytes, true},
		{"vision in graph, no pixel cache", false, 0, false},
		{"features cached", true, defaultPixelCacheBytes, false},
	}
	var visionLosses [][]float64
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(model, manifest, filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-")))
			c.LanguageModelOnly, c.MaxSteps, c.EvalData = tc.lmOnly, 2, ""
			tr, err := newTrainer(t, c)
			if err != nil {
				t.Fatal(err)
			}
			tr.pixelCacheBytes = tc.budget
			if err := tr.Run(gocontext.Background(), nil); err != nil {
				t.Fatal(err)
			}
			if cached := len(tr.images) > 0; cached != tc.wantCached {
				t.Errorf("%d photos in the pixel cache (%d bytes), want cached=%v", len(tr.images), tr.imageBytes, tc.wantCached)
			}
			if tr.imageBytes > tc.budget {
				t.Errorf("pixel cache holds %d bytes, over its %d-byte budget", tr.imageBytes, tc.budget)
			}
			if tc.lmOnly {
				if len(tr.features) == 0 {
					t.Fatal("no features cached with the vision tower frozen")
				}
				for path, f := range tr.features {
					if f.layout.PixelValues != nil || len(f.values) == 0 || f.layout.Patches() == 0 {
						t.Errorf("%s: cached %d pixels, %d feature values, %d patches; want features and layout only", path, len(f.layout.PixelValues), len(f.values), f.layout.Patches())
					}
				}
				return
			}
			steps, _ := readMetrics(t, c.Out)
			var losses []float64
			for _, s := range steps {
				losses = append(losses, s.Loss)
			}
			t.Logf("step losses %v", losses)
			visionLosses = append(visionLosses, losses)
		})
	}
	if len(visionLosses) == 2 && !slices.Equal(visionLosses[0], visionLosses[1]) {
		t.Errorf("losses with the pixel cache %v, without %v: the cache changed training", visionLosses[0], visionLosses[1])
	}
}
