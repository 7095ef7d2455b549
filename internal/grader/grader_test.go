package grader

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/backends"

	"github.com/acdtcm/acdtcm/internal/grader/heatmap"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
)

// tinyModel is small enough for unit tests on 2 cores.
func tinyModel() ModelConfig {
	return ModelConfig{InputSize: 32, Layers: []Layer{{4, 2}, {8, 2}, {8, 1}}, Norm: 2, HighPass: true, GradeHidden: 8, Sigma: 1}
}

// synthetic makes n photos of size s: dark skin with k bright spots, grade from the spot
// count, boxes around the spots. Each source has two "versions" (the second brighter).
func synthetic(n, s int, seed uint64) ([]Sample, *Pixels) {
	r := rand.New(rand.NewPCG(seed, 7))
	var samples []Sample
	px := &Pixels{Size: s}
	for i := 0; i < n; i++ {
		k := r.IntN(8)
		grade := min(3, k/2)
		var boxes []heatmap.Box
		img := make([]uint8, s*s*3)
		for p := range img {
			img[p] = 60
		}
		for j := 0; j < k; j++ {
			cx, cy := 2+r.IntN(s-4), 2+r.IntN(s-4)
			for y := cy - 1; y <= cy+1; y++ {
				for x := cx - 1; x <= cx+1; x++ {
					img[(y*s+x)*3] = 230
				}
			}
			boxes = append(boxes, heatmap.Box{Type: j % 4, X0: float64(cx-1) / float64(s), X1: float64(cx+2) / float64(s), Y0: float64(cy-1) / float64(s), Y1: float64(cy+2) / float64(s)})
		}
		for v := 0; v < 2; v++ {
			row := append([]uint8(nil), img...)
			if v == 1 {
				for p := range row {
					row[p] = uint8(min(255, int(row[p])+10))
				}
			}
			samples = append(samples, Sample{ID: filepath.Join("s", string(rune('a'+v)), itoa(i)), Source: itoa(i), Split: "train", Grade: grade, Boxes: boxes})
			px.Data = append(px.Data, row)
		}
	}
	return samples, px
}

func itoa(i int) string { return string(rune('A'+i/26)) + string(rune('a'+i%26)) }

func testBackend(t testing.TB) backends.Backend {
	t.Helper()
	b, err := mlbackend.New("go")
	if err != nil {
		t.Fatalf("backend: %v", err)
	}
	return b
}

func tinyConfig(dir string) TrainConfig {
	c := DefaultTrainConfig()
	c.Model = tinyModel()
	c.OutDir = dir
	c.BatchSize = 4
	c.Epochs = 3
	c.WarmupSteps = 0
	c.LR = 5e-3
	c.HoldoutFrac = 0.2
	return c
}

func TestForwardShapes(t *testing.T) {
	samples, px := synthetic(12, 32, 1)
	tr, err := NewTrainer(tinyConfig(t.TempDir()), testBackend(t), samples, px)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Context().InitializeVariables(tr.backend, nil); err != nil {
		t.Fatal(err)
	}
	rows := [][]uint8{px.Data[0], px.Data[1], px.Data[2]}
	preds, err := predictRows(tr.EvalExec(), tr.Cfg.Model, nil, rows, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(preds) != 3 {
		t.Fatalf("got %d predictions, want 3", len(preds))
	}
	for i, p := range preds {
		if len(p.Probabilities) != NumGrades || len(p.LesionCounts) != 1 { // untyped: the total only
			t.Fatalf("prediction %d: %d probabilities, %d counts", i, len(p.Probabilities), len(p.LesionCounts))
		}
		var sum float64
		for _, v := range p.Probabilities {
			sum += v
		}
		if math.Abs(sum-1) > 1e-4 {
			t.Errorf("prediction %d: probabilities sum to %v", i, sum)
		}
		for k, c := range p.LesionCounts {
			if c < 0 || math.IsNaN(c) {
				t.Errorf("prediction %d: count %s = %v", i, k, c)
			}
		}
	}
}

func TestLossDecreases(t *testing.T) {
	// Fit one fixed batch (no augmentation): every loss must fall clearly.
	samples, px := synthetic(24, 32, 2)
	c := tinyConfig(t.TempDir())
	c.HoldoutFrac, c.FlipProb, c.Brightness, c.BatchSize = 0, 0, 0, 8
	c.Epochs = 100 // keep the cosine schedule near its peak for these steps
	c.LR = 0.02
	tr, err := NewTrainer(c, testBackend(t), samples, px)
	if err != nil {
		t.Fatal(err)
	}
	const steps = 40
	var first, last LossTerms
	for i := 0; i < steps; i++ {
		tr.State.Epoch, tr.State.StepInEpoch = 0, 0
		l, err := tr.Step()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = l
		}
		last = l
	}
	names := []string{"total", "density", "count", "grade"}
	for k, name := range names {
		t.Logf("%s %.4f -> %.4f", name, first[k], last[k])
		if !(last[k] < 0.8*first[k]) {
			t.Errorf("%s loss %.4f after %d steps on one batch, not below 0.8x the first %.4f", name, last[k], steps, first[k])
		}
	}
}
