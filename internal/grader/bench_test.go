package grader

import (
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
	samples, px := synthetic(8, mc.InputSize, 3)
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
