package grader

import (
	"flag"
	"image"
	"path/filepath"
	"testing"

	"github.com/acdtcm/acdtcm/internal/mlbackend"
)

var benchBackend = flag.String("bench-backend", mlbackend.DefaultSpec, "backend spec of BenchmarkTrainStep (e.g. go:parallelism=2,ops_sequential, the default until 2026-11-29)")

// BenchmarkTrainStep times one training step, batch 16, of v1.3.0's network from scratch
// ("scratch", DefaultModelConfig) and of the shipped MobileNetV2 configuration ("mobilenetv2":
// the frozen stem on the native engine, block_3 onwards in GoMLX), on -bench-backend.
func BenchmarkTrainStep(b *testing.B) {
	backend, err := mlbackend.New(*benchBackend)
	if err != nil {
		b.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		mc   ModelConfig
	}{
		{"scratch", DefaultModelConfig()},
		{"mobilenetv2", ModelConfig{InputSize: 224, Backbone: BackboneMobileNetV2, FreezeUpto: "block_2", Layers: []Layer{{64, 1}}, Norm: 4, GradeHidden: 32, Sigma: 1}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			samples, px := synthetic(20, tc.mc.InputSize, 3)
			c := DefaultTrainConfig()
			c.Model, c.OutDir, c.HoldoutFrac, c.BatchSize = tc.mc, b.TempDir(), 0, 16
			tr, err := NewTrainer(c, backend, samples, px)
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
		})
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
	if _, err := predictRows(tr.EvalExec(), mc, nil, rows, false); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := predictRows(tr.EvalExec(), mc, nil, rows, false); err != nil {
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
	if _, err := predictRows(tr.EvalExec(), mc, nil, px.Data[:1], false); err != nil { // create the variables
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

// BenchmarkNetworkForwardNative is BenchmarkNetworkForward on the native engine (native.go):
// the same network, weights and preprocessed batch of 16. Sub-benchmarks: "asm" uses the
// AVX2/FMA micro-kernels (when the CPU has them), "go" the portable Go kernels.
func BenchmarkNetworkForwardNative(b *testing.B) {
	ck := torchCheckpoint(b)
	net, err := newNativeNet(ck)
	if err != nil {
		b.Fatal(err)
	}
	mc := net.mc
	s, nc, g := mc.InputSize, mc.inputChannels(), mc.Grid()
	in := networkInput(mc)
	dens, counts, probs := make([]float32, torchBatch*g*g*NumTypes), make([]float32, torchBatch*NumTypes), make([]float32, torchBatch*NumGrades)
	input := func(_ *nativeWorker, i int) []float32 { return in[i*s*s*nc : (i+1)*s*s*nc] }
	for _, asm := range []bool{true, false} {
		name := map[bool]string{true: "asm", false: "go"}[asm]
		b.Run(name, func(b *testing.B) {
			if asm && !nativeAsm {
				b.Skip("no AVX2/FMA assembly kernels on this CPU or build")
			}
			saved := nativeAsm
			nativeAsm = asm
			defer func() { nativeAsm = saved }()
			if err := net.run(torchBatch, input, dens, counts, probs); err != nil { // allocate the workers
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := net.run(torchBatch, input, dens, counts, probs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(torchBatch)*float64(b.N)/b.Elapsed().Seconds(), "photos/s")
		})
	}
}
