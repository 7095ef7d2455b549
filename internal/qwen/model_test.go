package qwen

import (
	gocontext "context"
	"image"
	"image/color"
	"math"
	"path/filepath"
	"testing"

	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/tokenizer"
)

func tinyModel(t *testing.T) *Model {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tiny")
	if _, err := InitCheckpoint(dir, InitOptions{Preset: PresetTiny, Seed: 7}); err != nil {
		t.Fatal(err)
	}
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

func testImage(w, h int, seed uint8) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, color.RGBA{uint8(x*3) + seed, uint8(y*5) ^ seed, uint8(x * y), 255})
		}
	}
	return img
}

func imagePrompt(img image.Image, question string) Prompt {
	return Prompt{
		Messages: []tokenizer.Message{{Role: "user", Content: []tokenizer.Content{{Image: true}, {Text: question}}}},
		Images:   []image.Image{img},
	}
}

// TestGenerateMatchesFullForward checks the KV-cache decoding path against a full forward
// pass over prompt + generated tokens: same greedy tokens, same first-step logits.
func TestGenerateMatchesFullForward(t *testing.T) {
	m := tinyModel(t)
	// 168x112 px -> grid 8x12 patches -> merged 4x6: several 2x2 windows and a padded window row.
	p := imagePrompt(testImage(168, 112, 3), "Grade?")
	gc := m.Generation
	gc.MaxNewTokens = 5
	gens, err := m.Generate([]Prompt{p}, gc)
	if err != nil {
		t.Fatal(err)
	}
	g := gens[0]
	if len(g.TokenIDs) == 0 {
		t.Fatalf("no tokens generated")
	}
	// Full forward over the prompt followed by the generated tokens (as assistant text).
	logits, ids, err := m.Forward([]Prompt{p})
	if err != nil {
		t.Fatal(err)
	}
	V := m.Config.Text.VocabSize
	S := len(ids[0])
	last := logits[(S-1)*V : S*V]
	maxDiff := 0.0
	for i := range last {
		maxDiff = math.Max(maxDiff, math.Abs(float64(last[i]-g.FirstLogits[i])))
	}
	if maxDiff > 1e-4 {
		t.Errorf("first-step logits differ between cached generation and full forward by %g", maxDiff)
	}
	if argmax(last) != g.TokenIDs[0] {
		t.Errorf("greedy first token %d, full forward argmax %d", g.TokenIDs[0], argmax(last))
	}
}

// TestBatchLeftPaddingInvariance: a prompt's logits do not change when it is batched with a
// longer prompt (left padding, masks and M-RoPE deltas).
func TestBatchLeftPaddingInvariance(t *testing.T) {
	m := tinyModel(t)
	short := imagePrompt(testImage(56, 56, 1), "Hi")
	long := imagePrompt(testImage(112, 84, 9), "A much longer question about the photo")
	gc := m.Generation
	gc.MaxNewTokens = 3
	alone, err := m.Generate([]Prompt{short}, gc)
	if err != nil {
		t.Fatal(err)
	}
	batched, err := m.Generate([]Prompt{long, short}, gc)
	if err != nil {
		t.Fatal(err)
	}
	maxDiff := 0.0
	for i := range alone[0].FirstLogits {
		maxDiff = math.Max(maxDiff, math.Abs(float64(alone[0].FirstLogits[i]-batched[1].FirstLogits[i])))
	}
	if maxDiff > 1e-4 {
		t.Errorf("left-padded logits differ by %g", maxDiff)
	}
	if len(alone[0].TokenIDs) != len(batched[1].TokenIDs) {
		t.Fatalf("tokens alone %v, batched %v", alone[0].TokenIDs, batched[1].TokenIDs)
	}
	for i := range alone[0].TokenIDs {
		if alone[0].TokenIDs[i] != batched[1].TokenIDs[i] {
			t.Errorf("tokens alone %v, batched %v", alone[0].TokenIDs, batched[1].TokenIDs)
			break
		}
	}
}

func argmax(v []float32) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

func TestGraderProbabilities(t *testing.T) {
	m := tinyModel(t)
	g, err := NewGrader(m, "tiny-test", "go")
	if err != nil {
		t.Fatal(err)
	}
	in, err := g.Preprocess(testImage(84, 56, 2))
	if err != nil {
		t.Fatal(err)
	}
	preds, err := g.Predict(gocontext.Background(), []infer.Input{in, in})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range preds {
		sum := 0.0
		for _, v := range p.Probabilities {
			sum += v
		}
		if len(p.Probabilities) != 4 || math.Abs(sum-1) > 1e-9 {
			t.Errorf("probabilities %v", p.Probabilities)
		}
	}
	for i := range preds[0].Probabilities {
		if math.Abs(preds[0].Probabilities[i]-preds[1].Probabilities[i]) > 1e-6 {
			t.Errorf("same photo twice in a batch scored differently: %v vs %v", preds[0].Probabilities, preds[1].Probabilities)
		}
	}
	if _, err := g.Preprocess(testImage(20, 200, 1)); err == nil {
		t.Error("a photo narrower than 28 px should be refused")
	}
}
