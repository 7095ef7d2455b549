package qwen

import (
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/tokenizer"
)

// referenceFixture is what scripts/qwen-reference/parity.py (and, with an adapter,
// scripts/peft-reference/peft_exchange.py) record from Hugging Face transformers for one image
// + question prompt on the tiny seed-7 checkpoint.
type referenceFixture struct {
	Question       string      `json:"question"`
	Image          string      `json:"image"`
	InputIDs       []int       `json:"input_ids"`
	GridTHW        [3]int      `json:"image_grid_thw"`
	VisionFeatures [][]float32 `json:"vision_features"`
	LastLogits     []float32   `json:"last_logits"`
	GreedyIDs      []int       `json:"greedy_ids"`
	// AdaptedModules are the modules PEFT put LoRA layers on (peft_exchange.py only).
	AdaptedModules []string `json:"adapted_modules"`
}

// readReference reads a reference fixture; ok is false when the file does not exist.
func readReference(t *testing.T, path string) (fx referenceFixture, ok bool) {
	t.Helper()
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return fx, false
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &fx); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return fx, true
}

// tinySeed7 builds the deterministic checkpoint the reference scripts were run on
// (acdtcm model init --preset tiny --seed 7) and loads it with the pure-Go backend.
func tinySeed7(t *testing.T) *Model {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny")
	if _, err := InitCheckpoint(dir, InitOptions{Preset: PresetTiny, Seed: 7}); err != nil {
		t.Fatal(err)
	}
	return loadPureGo(t, dir)
}

// loadPureGo loads the checkpoint in dir with the pure-Go backend.
func loadPureGo(t *testing.T, dir string) *Model {
	t.Helper()
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	m, err := Load(dir, backend)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// checkAgainstReference runs the fixture's prompt through m and compares prompt ids, merged
// vision features and last-position logits (each to 1e-4 + scaleTol·max|reference|, float32)
// and the greedy continuation with what transformers recorded, logging the largest
// differences. scaleTol allows for float32 rounding growing with the values' magnitude in
// wide models (0 for the tiny checkpoint).
func checkAgainstReference(t *testing.T, m *Model, fx referenceFixture, scaleTol float64) {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", fx.Image))
	if err != nil {
		t.Fatal(err)
	}
	img, err := png.Decode(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	p := Prompt{Messages: []tokenizer.Message{{Role: "user", Content: []tokenizer.Content{{Image: true}, {Text: fx.Question}}}}, Images: []image.Image{img}}
	ids, images, err := m.Encode(p)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids, fx.InputIDs) || images[0].Grid != fx.GridTHW {
		t.Fatalf("prompt ids/grid differ from transformers:\n got %v %v\nwant %v %v", ids, images[0].Grid, fx.InputIDs, fx.GridTHW)
	}
	feat, err := m.VisionFeatures(images)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := tensorsFloat32(feat)
	H := len(fx.VisionFeatures[0])
	var featDiff maxDiff
	bound := 1e-4 + scaleTol*maxAbs(slices.Concat(fx.VisionFeatures...))
	for r, row := range fx.VisionFeatures {
		for c, want := range row {
			featDiff.add(got[r*H+c], want)
			if d := math.Abs(float64(got[r*H+c] - want)); d > bound {
				t.Fatalf("vision feature [%d,%d] = %v, transformers %v", r, c, got[r*H+c], want)
			}
		}
	}
	t.Logf("vision features %dx%d: %v", len(fx.VisionFeatures), H, featDiff)
	gc := m.Generation
	gc.MaxNewTokens = len(fx.GreedyIDs)
	gens, err := m.Generate([]Prompt{p}, gc)
	if err != nil {
		t.Fatal(err)
	}
	var logitDiff maxDiff
	bound = 1e-4 + scaleTol*maxAbs(fx.LastLogits)
	for i, want := range fx.LastLogits {
		logitDiff.add(gens[0].FirstLogits[i], want)
		if d := math.Abs(float64(gens[0].FirstLogits[i] - want)); d > bound {
			t.Fatalf("last-position logit %d = %v, transformers %v", i, gens[0].FirstLogits[i], want)
		}
	}
	t.Logf("last-position logits (%d): %v", len(fx.LastLogits), logitDiff)
	if !slices.Equal(gens[0].TokenIDs, trimStops(fx.GreedyIDs, gc.StopTokens)) {
		t.Errorf("greedy continuation %v, transformers %v", gens[0].TokenIDs, fx.GreedyIDs)
	}
}

// TestParityWithTransformers compares with the fixture written by
// scripts/qwen-reference/parity.py (Hugging Face transformers on the same deterministic tiny
// checkpoint). Without the fixture the test skips and says so.
func TestParityWithTransformers(t *testing.T) {
	fx, ok := readReference(t, filepath.Join("testdata", "parity", "tiny-seed7.json"))
	if !ok {
		t.Skip("skipping: no transformers parity fixture (run scripts/qwen-reference/parity.py where transformers is installed; scripts/pyshim/README.md)")
	}
	checkAgainstReference(t, tinySeed7(t), fx, 0)
}

// TestParityWithTransformersExternal compares any checkpoint with a record parity.py wrote
// for it (ACDTCM_PARITY_MODEL, ACDTCM_PARITY_FIXTURE): scripts/qwen-reference/
// parity-3b-shapes.sh runs it on the 3B widths. Skipped unless both are set.
func TestParityWithTransformersExternal(t *testing.T) {
	dir, path := os.Getenv("ACDTCM_PARITY_MODEL"), os.Getenv("ACDTCM_PARITY_FIXTURE")
	if dir == "" || path == "" {
		t.Skip("skipping: set ACDTCM_PARITY_MODEL and ACDTCM_PARITY_FIXTURE (scripts/qwen-reference/parity-3b-shapes.sh)")
	}
	fx, ok := readReference(t, path)
	if !ok {
		t.Fatalf("%s does not exist", path)
	}
	checkAgainstReference(t, loadPureGo(t, dir), fx, 3e-5)
}

func maxAbs(xs []float32) float64 {
	m := 0.0
	for _, x := range xs {
		m = max(m, math.Abs(float64(x)))
	}
	return m
}

// maxDiff tracks the largest absolute difference and the largest relative one
// (|got-want| / max(|want|, 1e-3)) over a comparison.
type maxDiff struct{ abs, rel float64 }

func (m *maxDiff) add(got, want float32) {
	d := math.Abs(float64(got - want))
	m.abs = max(m.abs, d)
	m.rel = max(m.rel, d/max(math.Abs(float64(want)), 1e-3))
}

func (m maxDiff) String() string {
	return fmt.Sprintf("max |Δ| %.3g, max rel %.3g", m.abs, m.rel)
}

func trimStops(ids, stops []int) []int {
	for i, id := range ids {
		if slices.Contains(stops, id) {
			return ids[:i]
		}
	}
	return ids
}
