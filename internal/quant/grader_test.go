package quant

import (
	"encoding/json"
	"image"
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
	"github.com/acdtcm/acdtcm/internal/imageio"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/safetensors"
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

// TestGraderMobileNetV2 quantizes a grader with the pretrained MobileNetV2 backbone: the
// convolution kernels (1x1 [1,1,in,out], depthwise [3,3,C,1], the stem's 3x3) are quantized,
// except, by default, those of the frozen pretrained units (Conv1..block_2), which stay
// float32 bit for bit; BatchNorm vectors stay float32, and the reloaded model (native
// engine, BatchNorm folded into the dequantized kernels) grades like the float32 one.
func TestGraderMobileNetV2(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "grader.ckpt")
	mc := grader.ModelConfig{InputSize: 32, Backbone: grader.BackboneMobileNetV2, FreezeUpto: "block_2", Layers: []grader.Layer{{Channels: 8, Stride: 1}}, Norm: 2, GradeHidden: 8, Sigma: 1}
	writeInitialGrader(t, src, mc)
	ref, err := grader.LoadWithBackend(src, "go")
	if err != nil {
		t.Fatal(err)
	}
	ck, err := grader.ReadCheckpoint(src)
	if err != nil {
		t.Fatal(err)
	}
	rows := photoRows(4, 32, 2)
	want, err := ref.PredictPreprocessed(rows)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		keep       []string
		quantized  int // Conv1, 6 depthwise, 5 expand and 6 project kernels, conv0 and grade_hidden: 20
		stemKernel bool
	}{
		{"default keeps the stem", nil, 20 - 9, false}, // Conv1, expanded_conv's 2, block_1's and block_2's 3 kernels
		{"heads only", []string{KeepHeads}, 20, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(root, strings.ReplaceAll(tc.name, " ", "-"))
			rep, err := ConvertGrader(src, out, ConvertOptions{Method: Int8, Keep: tc.keep})
			if err != nil {
				t.Fatal(err)
			}
			if rep.QuantizedCount != tc.quantized {
				t.Errorf("%d tensors quantized, want %d", rep.QuantizedCount, tc.quantized)
			}
			for _, tr := range rep.Tensors {
				frozen := mc.FrozenPretrained(tr.Name)
				if quantized := tr.Stored == string(Int8); len(tr.Shape) >= 2 && frozen && quantized != tc.stemKernel {
					t.Errorf("frozen %s stored as %s", tr.Name, tr.Stored)
				}
			}
			q, err := LoadGrader(out, "go")
			if err != nil {
				t.Fatal(err)
			}
			kernel := "/model/mobilenetv2/block_1_depthwise/depthwise_kernel"
			orig, _ := ck.Tensor(kernel)
			reloaded, err := DequantizeGrader(out)
			if err != nil {
				t.Fatal(err)
			}
			back, _ := reloaded.Tensor(kernel)
			a, _ := tensors.CopyFlatData[float32](orig)
			b, _ := tensors.CopyFlatData[float32](back)
			if same := slices.Equal(a, b); same == tc.stemKernel {
				t.Errorf("%s reloaded bit-identical = %v, want %v", kernel, same, !tc.stemKernel)
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
		})
	}
}

// TestGraderRowBlocks: no block of a block method spans two output channels. A depthwise
// kernel whose 16 channels differ in magnitude by up to 30x keeps every channel's
// relative error at the method's own level (sharing one scale with a large channel would
// round a small channel to zeros), the flat layout of older files is still read, and it is
// that layout that loses the small channels.
func TestGraderRowBlocks(t *testing.T) {
	dims := []int{3, 3, 16, 1}
	rng := rand.New(rand.NewPCG(3, 4))
	vals := make([]float32, numElements(dims))
	for i := range vals {
		// Channel c (the last non-unit axis) has magnitude 30^(-(c%4)/3): 1 down to 1/30, as
		// in MobileNetV2's expanded_conv_depthwise.
		c := i % 16
		vals[i] = float32(rng.NormFloat64() * math.Pow(30, -float64(c%4)/3))
	}
	channelErr := func(stored, approx []float32) (worst float64) {
		for c := 0; c < 16; c++ { // stored is [16, 9]
			var sig, noise float64
			for j := 0; j < 9; j++ {
				x, d := float64(stored[c*9+j]), float64(stored[c*9+j]-approx[c*9+j])
				sig, noise = sig+x*x, noise+d*d
			}
			worst = math.Max(worst, math.Sqrt(noise/sig))
		}
		return worst
	}
	tests := []struct {
		m         Method
		rowsBound float64 // worst per-channel relative RMS error with row blocks
		flatWorse bool    // whether the flat layout loses small channels
	}{
		{Int8, 0.01, false}, // one scale per row in either layout
		{Q8_0, 0.01, true},
		{NF4, 0.15, true},
		{Q4_0, 0.2, true},
	}
	for _, tc := range tests {
		t.Run(string(tc.m), func(t *testing.T) {
			// NF4's double quantization stores the block scales to 8 bits around their mean,
			// which adds its own error to the smallest channels' scales: left out here, to
			// measure the block layout alone.
			opts := Options{NoDoubleQuant: true}
			q, stored, approx, err := quantizeGraderWeight(tc.m, vals, dims, opts)
			if err != nil {
				t.Fatal(err)
			}
			rowsErr := channelErr(stored, approx)
			if rowsErr > tc.rowsBound {
				t.Errorf("row blocks: worst channel rel RMS %.4f > %g", rowsErr, tc.rowsBound)
			}
			// Both layouts read back through the file encoding.
			flat, err := Quantize(tc.m, stored, []int{16, 9}, opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, layout := range []struct {
				name string
				q    *Tensor
				want []float32
			}{{graderLayoutRows, q, outLast(approx, []int{3, 3, 16})}, {graderLayoutFlat, flat, outLast(flat.Dequantize(), []int{3, 3, 16})}} {
				enc := map[string]safetensors.Tensor{}
				for _, st := range layout.q.Encode("w") {
					enc[st.Name] = st
				}
				lookup := func(name string) (safetensors.TensorInfo, []byte, bool) {
					st, ok := enc[name]
					return safetensors.TensorInfo{DType: st.DType, Shape: st.Shape}, st.Data, ok
				}
				got, err := dequantizeGraderWeight(tc.m, false, layout.name, "w", dims, lookup)
				if err != nil {
					t.Fatalf("%s: %v", layout.name, err)
				}
				if !slices.Equal(got, layout.want) {
					t.Errorf("%s: read back values differ from the quantized ones", layout.name)
				}
			}
			flatErr := channelErr(stored, flat.Dequantize())
			t.Logf("%s: worst channel rel RMS %.4f with row blocks, %.4f flat", tc.m, rowsErr, flatErr)
			if tc.flatWorse && flatErr < 2*rowsErr {
				t.Errorf("flat layout's worst channel error %.4f is not clearly above the row layout's %.4f: the test does not exercise shared blocks", flatErr, rowsErr)
			}
		})
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
		if qc, err := ReadConfig(out); err != nil || !slices.Equal(qc.Keep, DefaultGraderKeep) || len(qc.ModulesNotConverted) != 2 {
			t.Errorf("%s: recorded keep %+v (want %v and the 2 head weights: no frozen stem here), %v", m, qc, DefaultGraderKeep, err)
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
		{nil, []string{KeepHeads, KeepStem}, ""},
		{[]string{KeepStem}, []string{KeepStem}, ""},
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
	mc := grader.ModelConfig{Backbone: grader.BackboneMobileNetV2, FreezeUpto: "block_2"}
	rules := []struct {
		keep []string
		name string
		want bool
	}{
		{[]string{KeepHeads}, "/model/density/weights", true},
		{[]string{KeepHeads}, "/model/grade_out/weights", true},
		{[]string{KeepHeads}, "/model/conv0/weights", false},
		{[]string{KeepHeads}, "/model/mobilenetv2/Conv1/kernel", false},
		{[]string{KeepStem}, "/model/mobilenetv2/Conv1/kernel", true},
		{[]string{KeepStem}, "/model/mobilenetv2/expanded_conv_project/kernel", true},
		{[]string{KeepStem}, "/model/mobilenetv2/block_2_depthwise/depthwise_kernel", true},
		{[]string{KeepStem}, "/model/mobilenetv2/block_3_expand/kernel", false}, // fine-tuned
		{[]string{KeepStem}, "/model/density/weights", false},
	}
	for _, tc := range rules {
		rule, err := NewKeepRule(tc.keep)
		if err != nil {
			t.Fatal(err)
		}
		if got := graderKeep(rule, mc, tc.name, 2); got != tc.want {
			t.Errorf("%v: keep %s = %v, want %v", tc.keep, tc.name, got, tc.want)
		}
	}
	stem, _ := NewKeepRule([]string{KeepStem})
	if graderKeep(stem, grader.ModelConfig{Backbone: grader.BackboneMobileNetV2}, "/model/mobilenetv2/Conv1/kernel", 4) {
		t.Error("stem kept a backbone weight of a model that fine-tunes every unit")
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

// TestBuiltinGrader4Bit quantizes the shipped grader to 4 bits with the default keep list
// (heads and the frozen stem in float32) and grades the four sample photos (one per
// Hayashi grade) as the float32 grader does. With the stem quantized too, the 4-bit grader
// gave every ACNE04 valid photo one of two grades (BENCHMARKS.md, "Quantization").
func TestBuiltinGrader4Bit(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "grader.ckpt")
	if err := os.WriteFile(src, weights.Grader, 0o644); err != nil {
		t.Fatal(err)
	}
	ref, err := grader.LoadWithBackend(src, "go")
	if err != nil {
		t.Fatal(err)
	}
	var images []image.Image
	for _, name := range []string{"acne04-levle0_103.jpg", "acne04-levle1_106.jpg", "acne04-levle2_102.jpg", "acne04-levle3_100.jpg"} {
		img, _, err := imageio.DecodeFile(filepath.Join("..", "..", "testdata", "samples", name), imageio.DefaultLimits())
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, img)
	}
	want, err := ref.Predict(images)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []Method{NF4, Q4_0} {
		out := filepath.Join(root, string(m))
		if _, err := ConvertGrader(src, out, ConvertOptions{Method: m}); err != nil {
			t.Fatal(err)
		}
		q, err := LoadGrader(out, "go")
		if err != nil {
			t.Fatal(err)
		}
		got, err := q.Predict(images)
		if err != nil {
			t.Fatal(err)
		}
		for i := range want {
			if got[i].Grade != want[i].Grade {
				t.Errorf("%s: sample %d graded %d, float32 %d", m, i, got[i].Grade, want[i].Grade)
			}
		}
		d := maxProbabilityDiff(want, got)
		t.Logf("%s: max |Δp| %.4f on the 4 samples", m, d)
		if d > 0.25 || d == 0 {
			t.Errorf("%s: grade probabilities differ by %g (bound 0.25; 0 would mean nothing was quantized)", m, d)
		}
	}
}
