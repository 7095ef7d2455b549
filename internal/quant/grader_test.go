package quant

import (
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/grader"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
)

// randomGrader writes a randomly initialised grader checkpoint (with patch stem) to path.
func randomGrader(t *testing.T, path string) grader.ModelConfig {
	t.Helper()
	mc := grader.ModelConfig{InputSize: 32, Patch: 2, PatchOut: 8, Layers: []grader.Layer{{Channels: 16, Stride: 2}, {Channels: 16, Stride: 1}}, GradeHidden: 8, Sigma: 1}
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	if err := ctx.SetRNGStateFromSeed(42); err != nil { // deterministic weights: no flaky bounds
		t.Fatal(err)
	}
	exec, err := context.NewExec(backend, ctx, func(ctx *context.Context, images *Node) *Node {
		return grader.BuildModel(ctx, mc, images).Logits
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.Exec(tensors.FromShape(shapesOf(1, 32, 32, 3))); err != nil {
		t.Fatal(err)
	}
	if err := grader.SaveCheckpoint(path, ctx, mc, nil, map[string]float64{"valid_accuracy": 0.5}, true); err != nil {
		t.Fatal(err)
	}
	return mc
}

func photoRows(n, size int, seed uint64) [][]uint8 {
	rng := rand.New(rand.NewPCG(seed, 5))
	rows := make([][]uint8, n)
	for i := range rows {
		rows[i] = make([]uint8, size*size*3)
		for j := range rows[i] {
			rows[i][j] = uint8(rng.IntN(256))
		}
	}
	return rows
}

// TestGraderRoundTrip quantizes a grader with every method and checks the reloaded model's
// grade probabilities against the float32 model's, and that the quantized tensors are the
// convolution and dense weights (heads kept with the default keep list).
func TestGraderRoundTrip(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "grader.ckpt")
	randomGrader(t, src)
	ck, err := grader.ReadCheckpoint(src) // a calibrated grader: the calibration must survive quantization
	if err != nil {
		t.Fatal(err)
	}
	cal := &grader.Calibration{Slope: 3, Cuts: [3]float64{2, 6, 9}, FittedOn: "test", N: 10}
	ck.Header.Calibration = cal
	if err := ck.Save(src); err != nil {
		t.Fatal(err)
	}
	ref, err := grader.LoadWithBackend(src, "go")
	if err != nil {
		t.Fatal(err)
	}
	rows := photoRows(6, 32, 1)
	want, err := ref.PredictPreprocessed(rows)
	if err != nil {
		t.Fatal(err)
	}
	bounds := map[Method]float64{Int8: 0.01, Q8_0: 0.01, Q4_0: 0.08, NF4: 0.08}
	for _, m := range Methods {
		out := filepath.Join(root, string(m))
		rep, err := ConvertGrader(src, out, ConvertOptions{Method: m})
		if err != nil {
			t.Fatal(err)
		}
		if rep.QuantizedCount != 4 || rep.KeptCount == 0 { // stem, conv0, conv1, grade_hidden
			t.Errorf("%s: %d quantized, %d kept", m, rep.QuantizedCount, rep.KeptCount)
		}
		if !IsGraderDir(out) {
			t.Fatalf("%s: not recognised as a grader directory", m)
		}
		q, err := LoadGrader(out, "go")
		if err != nil {
			t.Fatal(err)
		}
		if q.Calibration == nil || *q.Calibration != *cal {
			t.Errorf("%s: calibration %+v after quantization, want %+v", m, q.Calibration, cal)
		}
		got, err := q.PredictPreprocessed(rows)
		if err != nil {
			t.Fatal(err)
		}
		maxDiff := 0.0
		for i := range want {
			for k := range want[i].Probabilities {
				maxDiff = math.Max(maxDiff, math.Abs(want[i].Probabilities[k]-got[i].Probabilities[k]))
			}
		}
		t.Logf("%s: weights rel RMS %.4f, max |Δp| %.4f", m, rep.OverallRelRMS, maxDiff)
		if maxDiff > bounds[m] || maxDiff == 0 {
			t.Errorf("%s: grade probabilities differ by %g (bound %g; 0 would mean nothing was quantized)", m, maxDiff, bounds[m])
		}
	}
	// A quantized grader directory with its shapes metadata removed is refused.
	bad := filepath.Join(root, "bad")
	os.MkdirAll(bad, 0o755)
	cfg, _ := os.ReadFile(filepath.Join(root, "int8", "config.json"))
	os.WriteFile(filepath.Join(bad, "config.json"), []byte(strings.Replace(string(cfg), `"method": "int8"`, `"method": "q8_0"`, 1)), 0o644)
	w, _ := os.ReadFile(filepath.Join(root, "int8", WeightsFile))
	os.WriteFile(filepath.Join(bad, WeightsFile), w, 0o644)
	if _, err := LoadGrader(bad, "go"); err == nil || !strings.Contains(err.Error(), "block_size") {
		t.Errorf("mismatched grader config accepted or unclear: %v", err)
	}
}

func shapesOf(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float32, dims...) }
