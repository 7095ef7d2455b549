package grader

import (
	"image"
	"path/filepath"
	"testing"
)

// BenchmarkTrainStepDefault times one training step of the built-in architecture, batch 16.
func BenchmarkTrainStepDefault(b *testing.B) {
	mc := DefaultModelConfig()
	samples, px := synthetic(20, mc.InputSize, 3)
	c := DefaultTrainConfig()
	c.Model, c.OutDir, c.HoldoutFrac, c.BatchSize = mc, b.TempDir(), 0, 16
	tr, err := NewTrainer(c, testBackend(b), samples, px)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := tr.Step(); err != nil { // compile
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tr.State.StepInEpoch = 0
		if _, err := tr.Step(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPredictDefault times inference of the built-in architecture, batch 16.
func BenchmarkPredictDefault(b *testing.B) {
	mc := DefaultModelConfig()
	samples, px := synthetic(16, mc.InputSize, 3)
	c := DefaultTrainConfig()
	c.Model, c.OutDir, c.HoldoutFrac, c.BatchSize = mc, b.TempDir(), 0, 16
	tr, err := NewTrainer(c, testBackend(b), samples, px)
	if err != nil {
		b.Fatal(err)
	}
	if err := tr.Context().InitializeVariables(tr.backend, nil); err != nil {
		b.Fatal(err)
	}
	rows := px.Data[:16]
	if _, err := predictRows(tr.EvalExec(), mc, rows); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := predictRows(tr.EvalExec(), mc, rows); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPredictImages times Model.Predict end to end from decoded 640x640 photos (resize,
// normalise, forward, peaks) with the built-in architecture, batch 16: divide by 16 for the
// per-photo cost.
func BenchmarkPredictImages(b *testing.B) {
	mc := DefaultModelConfig()
	samples, px := synthetic(16, mc.InputSize, 3)
	c := DefaultTrainConfig()
	c.Model, c.OutDir, c.HoldoutFrac, c.BatchSize = mc, b.TempDir(), 0, 16
	tr, err := NewTrainer(c, testBackend(b), samples, px)
	if err != nil {
		b.Fatal(err)
	}
	if err := tr.Context().InitializeVariables(tr.backend, nil); err != nil {
		b.Fatal(err)
	}
	if _, err := predictRows(tr.EvalExec(), mc, px.Data[:1]); err != nil { // create the variables
		b.Fatal(err)
	}
	path := filepath.Join(c.OutDir, "w.ckpt")
	if err := SaveCheckpoint(path, tr.Context(), mc, nil, nil, true); err != nil {
		b.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		b.Fatal(err)
	}
	imgs := make([]image.Image, 16)
	for i := range imgs {
		img := image.NewRGBA(image.Rect(0, 0, 640, 640))
		for p := range img.Pix {
			img.Pix[p] = uint8(p*7 + i)
		}
		imgs[i] = img
	}
	if _, err := m.Predict(imgs); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := m.Predict(imgs); err != nil {
			b.Fatal(err)
		}
	}
}
