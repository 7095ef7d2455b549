package quant

import (
	"encoding/json"
	"maps"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/grader"
	"github.com/acdtcm/acdtcm/internal/grader/weights"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
)

// randomGrader writes a randomly initialised grader checkpoint (with patch stem) to path.
func randomGrader(t *testing.T, path string) grader.ModelConfig {
	t.Helper()
	mc := grader.ModelConfig{InputSize: 32, Patch: 2, PatchOut: 8, Layers: []grader.Layer{{Channels: 16, Stride: 2}, {Channels: 16, Stride: 1}}, GradeHidden: 8, Sigma: 1}
	writeInitialGrader(t, path, mc)
	return mc
}

// writeInitialGrader writes a grader of configuration mc with its initial weights (seeded
// random, a pretrained backbone's embedded values) to path.
func writeInitialGrader(t *testing.T, path string, mc grader.ModelConfig) {
	t.Helper()
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
	if _, err := exec.Exec(tensors.FromShape(shapesOf(1, mc.InputSize, mc.InputSize, 3))); err != nil {
		t.Fatal(err)
	}
	if err := grader.SaveCheckpoint(path, ctx, mc, nil, map[string]float64{"valid_accuracy": 0.5}, true); err != nil {
		t.Fatal(err)
	}
}

// TestGraderMobileNetV2 quantizes a grader with the pretrained MobileNetV2 backbone: every
// convolution kernel (1x1 [1,1,in,out], depthwise [3,3,C,1], the stem's 3x3) is quantized,
// BatchNorm vectors stay float32, and the reloaded model (native engine, BatchNorm folded
// into the dequantized kernels) grades like the float32 one.
func TestGraderMobileNetV2(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "grader.ckpt")
	mc := grader.ModelConfig{InputSize: 32, Backbone: grader.BackboneMobileNetV2, FreezeUpto: "block_2", Layers: []grader.Layer{{Channels: 8, Stride: 1}}, Norm: 2, GradeHidden: 8, Sigma: 1}
	writeInitialGrader(t, src, mc)
	ref, err := grader.LoadWithBackend(src, "go")
	if err != nil {
		t.Fatal(err)
	}
	rows := photoRows(4, 32, 2)
	want, err := ref.PredictPreprocessed(rows)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "int8")
	rep, err := ConvertGrader(src, out, ConvertOptions{Method: Int8})
	if err != nil {
		t.Fatal(err)
	}
	// Conv1, 6 depthwise, 5 expand and 6 project kernels, conv0 and grade_hidden.
	if rep.QuantizedCount != 1+6+5+6+2 {
		t.Errorf("%d tensors quantized, want 20", rep.QuantizedCount)
	}
	q, err := LoadGrader(out, "go")
	if err != nil {
		t.Fatal(err)
	}
	got, err := q.PredictPreprocessed(rows)
	if err != nil {
		t.Fatal(err)
	}
	maxDiff := maxProbabilityDiff(want, got)
	t.Logf("int8: weights rel RMS %.4f, max |Δp| %.4f", rep.OverallRelRMS, maxDiff)
	if maxDiff > 0.02 || maxDiff == 0 {
		t.Errorf("grade probabilities differ by %g after int8 (bound 0.02; 0 would mean nothing was quantized)", maxDiff)
	}
}

// maxProbabilityDiff is the largest |difference| between two prediction sets' grade probabilities.
func maxProbabilityDiff(want, got []grader.Prediction) float64 {
	d := 0.0
	for i := range want {
		for k := range want[i].Probabilities {
			d = math.Max(d, math.Abs(want[i].Probabilities[k]-got[i].Probabilities[k]))
		}
	}
	return d
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
		if qc, err := ReadConfig(out); err != nil || len(qc.Keep) != 1 || qc.Keep[0] != KeepHeads || len(qc.ModulesNotConverted) != 2 {
			t.Errorf("%s: recorded keep %+v (want [heads] and the 2 head weights), %v", m, qc, err)
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
		maxDiff := maxProbabilityDiff(want, got)
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

// TestGraderKeepList: a grader's keep list is recorded in its own terms.
func TestGraderKeepList(t *testing.T) {
	tests := []struct {
		keep    []string
		want    []string
		wantErr string
	}{
		{nil, []string{KeepHeads}, ""},
		{[]string{KeepLMHead}, []string{KeepHeads}, ""},
		{[]string{KeepHeads, KeepLMHead, "/model/conv0/*"}, []string{KeepHeads, "/model/conv0/*"}, ""},
		{[]string{KeepNone}, []string{KeepNone}, ""},
		{[]string{KeepEmbeddings, KeepLMHead}, nil, "applies to Qwen2.5-VL"},
		{[]string{KeepVision}, nil, "applies to Qwen2.5-VL"},
	}
	for _, tc := range tests {
		got, err := graderKeepList(tc.keep)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: error %v, want %q", tc.keep, err, tc.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%v: %v, %v; want %v", tc.keep, got, err, tc.want)
		}
	}
	rule, err := NewKeepRule([]string{KeepHeads})
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]bool{"/model/density/weights": true, "/model/grade_out/weights": true, "/model/conv0/weights": false} {
		if got := graderKeep(rule, name, 2); got != want {
			t.Errorf("heads: keep %s = %v, want %v", name, got, want)
		}
	}
}

// TestGraderMetadata: a quantized grader records its source's version and its method as
// its version, never presents the source's metrics as its own, and reports the metrics
// measured on it once SetGraderMetrics stored them. A directory written before versions
// were recorded (source metrics under "metrics") is read the same way.
func TestGraderMetadata(t *testing.T) {
	root := t.TempDir()
	random := filepath.Join(root, "random.ckpt")
	randomGrader(t, random) // metrics {"valid_accuracy": 0.5}
	builtin := filepath.Join(root, "builtin.ckpt")
	if err := os.WriteFile(builtin, weights.Grader, 0o644); err != nil {
		t.Fatal(err)
	}
	builtinVersion := grader.BuiltinVersion()
	tests := []struct {
		src           string
		m             Method
		wantVersion   string
		wantSrcMetric string
	}{
		{random, Int8, "custom-int8", "valid_accuracy"},
		{builtin, NF4, builtinVersion + "-nf4", "valid_quadratic_kappa"},
	}
	for _, tc := range tests {
		out := filepath.Join(root, filepath.Base(tc.src)+"-"+string(tc.m))
		if _, err := ConvertGrader(tc.src, out, ConvertOptions{Method: tc.m}); err != nil {
			t.Fatal(err)
		}
		raw, _ := os.ReadFile(filepath.Join(out, "config.json"))
		var doc map[string]any
		if err := json.Unmarshal(raw, &doc); err != nil {
			t.Fatal(err)
		}
		if _, has := doc["metrics"]; has {
			t.Errorf("%s: config.json presents metrics that were not measured on the quantized model:\n%s", out, raw)
		}
		info, err := ReadGraderInfo(out)
		if err != nil {
			t.Fatal(err)
		}
		if info.Version != tc.wantVersion || info.Method != tc.m || info.Metrics != nil || info.SourceMetrics[tc.wantSrcMetric] <= 0 {
			t.Errorf("%s: info %+v, want version %q and source metric %s", out, info, tc.wantVersion, tc.wantSrcMetric)
		}
		im, err := OpenGrader(out, "go")
		if err != nil {
			t.Fatal(err)
		}
		if mi := im.Info(); mi.Version != tc.wantVersion || mi.Quantization != string(tc.m) || len(mi.Metrics) != 0 {
			t.Errorf("%s: model info %+v", out, mi)
		}
		measured := map[string]float64{"valid_accuracy": 0.25, "valid_n": 4}
		if err := SetGraderMetrics(out, measured, "valid split of test (4 photos)"); err != nil {
			t.Fatal(err)
		}
		if info, err = ReadGraderInfo(out); err != nil || !maps.Equal(info.Metrics, measured) || info.MetricsFrom == "" || info.SourceMetrics[tc.wantSrcMetric] <= 0 {
			t.Errorf("%s: after SetGraderMetrics: %+v, %v", out, info, err)
		}
		if im, err = OpenGrader(out, "go"); err != nil || !maps.Equal(im.Info().Metrics, measured) || im.Info().Version != tc.wantVersion {
			t.Errorf("%s: loaded model reports %+v, %v; want the measured metrics", out, im.Info(), err)
		}
	}
	if builtinVersion == "" {
		t.Error("no built-in version")
	}

	// An old directory: no version, the float32 metrics under "metrics".
	old := filepath.Join(root, "random.ckpt-int8")
	raw, _ := os.ReadFile(filepath.Join(old, "config.json"))
	var doc map[string]any
	json.Unmarshal(raw, &doc)
	for _, k := range []string{"version", "source_version", "metrics_from", "source_metrics"} {
		delete(doc, k)
	}
	doc["metrics"] = map[string]float64{"valid_accuracy": 0.5}
	raw, _ = json.Marshal(doc)
	if err := os.WriteFile(filepath.Join(old, "config.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	info, err := ReadGraderInfo(old)
	if err != nil || info.Version != "custom-int8" || info.Metrics != nil || info.SourceMetrics["valid_accuracy"] != 0.5 {
		t.Errorf("old directory: %+v, %v", info, err)
	}
	if q, err := LoadGrader(old, "go"); err != nil || len(q.Metrics) != 0 {
		t.Errorf("old directory loads with metrics %v (%v); want none", q.Metrics, err)
	}
}

func shapesOf(dims ...int) shapes.Shape { return shapes.Make(dtypes.Float32, dims...) }

// TestChannelDims: the output-channel axis quantization uses; a depthwise kernel's trailing
// axis of size 1 is dropped so that its C channels get their own scales.
func TestChannelDims(t *testing.T) {
	for _, tc := range []struct{ in, want []int }{
		{[]int{3, 3, 192, 1}, []int{3, 3, 192}},
		{[]int{1, 1, 32, 192}, []int{1, 1, 32, 192}},
		{[]int{64, 4}, []int{64, 4}},
		{[]int{8, 1}, []int{8, 1}}, // rank 2 stays: [features, 1] has one output channel
	} {
		if got := channelDims(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("channelDims(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}
