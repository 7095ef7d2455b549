package grader

import (
	"encoding/json"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/grader/weights"
)

var (
	torchFixture = flag.String("torch-fixture", "", "write the PyTorch comparison fixture (weights, input, outputs) to this directory")
	torchCkpt    = flag.String("torch-ckpt", "", "grader checkpoint for -torch-fixture (default: the built-in weights)")
)

// torchBatch is the batch size of the PyTorch comparison.
const torchBatch = 16

func torchCheckpoint(tb testing.TB) *Checkpoint {
	tb.Helper()
	var ck *Checkpoint
	var err error
	if *torchCkpt != "" {
		ck, err = ReadCheckpoint(*torchCkpt)
	} else {
		ck, err = ParseCheckpoint(weights.Grader)
	}
	if err != nil {
		tb.Skipf("skipping: no grader weights to compare (%v)", err)
	}
	return ck
}

// networkInput is a deterministic batch of preprocessed inputs (fillInput of random photos).
func networkInput(mc ModelConfig) []float32 {
	s, nc := mc.InputSize, mc.inputChannels()
	rng := rand.New(rand.NewPCG(1, 2))
	img := make([]float32, torchBatch*s*s*nc)
	row := make([]uint8, s*s*3)
	var scratch featureScratch
	for i := 0; i < torchBatch; i++ {
		for k := range row {
			row[k] = uint8(rng.IntN(256))
		}
		fillInput(img[i*s*s*nc:(i+1)*s*s*nc], row, s, false, 1, mc.HighPass, &scratch)
	}
	return img
}

// TestExportTorchFixture writes what scripts/grader-torch/bench.py needs to run the same
// network with the same weights in PyTorch: every model tensor (float32, raw), the model
// config, a preprocessed input batch and the Go outputs for it. Run with
// `go test ./internal/grader -run TestExportTorchFixture -torch-fixture DIR`.
func TestExportTorchFixture(t *testing.T) {
	if *torchFixture == "" {
		t.Skip("skipping: pass -torch-fixture DIR to export the PyTorch comparison fixture")
	}
	ck := torchCheckpoint(t)
	m, err := fromCheckpoint(ck, "go")
	if err != nil {
		t.Fatal(err)
	}
	mc := m.Config
	dir := *torchFixture
	type entry struct {
		Name  string `json:"name"`
		Shape []int  `json:"shape"`
		File  string `json:"file"`
	}
	var index []entry
	for i, e := range ck.Header.Tensors {
		if !isModelVar(e.Name) {
			continue
		}
		tt, err := ck.Tensor(e.Name)
		if err != nil {
			t.Fatal(err)
		}
		vals := tensors.MustCopyFlatData[float32](tt)
		file := filepath.Join("weights", filepathSafe(i))
		writeF32(t, filepath.Join(dir, file), vals)
		index = append(index, entry{e.Name, e.Shape, file})
	}
	in := networkInput(mc)
	s, nc := mc.InputSize, mc.inputChannels()
	outs, err := m.exec.Exec(tensors.FromFlatDataAndDimensions(in, torchBatch, s, s, nc))
	if err != nil {
		t.Fatal(err)
	}
	writeF32(t, filepath.Join(dir, "input.f32"), in)
	for i, name := range []string{"density.f32", "counts.f32", "probs.f32"} {
		writeF32(t, filepath.Join(dir, name), tensors.MustCopyFlatData[float32](outs[i]))
	}
	meta, _ := json.MarshalIndent(map[string]any{"model": mc, "batch": torchBatch, "tensors": index, "grid": mc.Grid(), "types": NumTypes}, "", " ")
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "fixture.json"), meta, 0o644); err != nil {
		t.Fatal(err)
	}
}

func filepathSafe(i int) string { return "t" + itoa3(i) + ".f32" }

func itoa3(i int) string {
	return string([]byte{byte('0' + i/100%10), byte('0' + i/10%10), byte('0' + i%10)})
}

func writeF32(t *testing.T, path string, vals []float32) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 4*len(vals))
	for i, v := range vals {
		u := math.Float32bits(v)
		b[4*i], b[4*i+1], b[4*i+2], b[4*i+3] = byte(u), byte(u>>8), byte(u>>16), byte(u>>24)
	}
	if err := fsutil.WriteFileAtomic(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkNetworkForward times the network alone (no decoding or preprocessing) on a batch
// of 16 preprocessed photos: the Go side of the PyTorch comparison in BENCHMARKS.md.
func BenchmarkNetworkForward(b *testing.B) {
	ck := torchCheckpoint(b)
	m, err := fromCheckpoint(ck, "go")
	if err != nil {
		b.Fatal(err)
	}
	mc := m.Config
	s, nc := mc.InputSize, mc.inputChannels()
	in := tensors.FromFlatDataAndDimensions(networkInput(mc), torchBatch, s, s, nc)
	if _, err := m.exec.Exec(in); err != nil { // compile outside the timing
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.exec.Exec(in); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(torchBatch)*float64(b.N)/b.Elapsed().Seconds(), "photos/s")
}
