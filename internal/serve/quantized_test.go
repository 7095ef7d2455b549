package serve

import (
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/acdtcm/acdtcm/internal/grader"
	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/models"
	"github.com/acdtcm/acdtcm/internal/quant"
	"github.com/acdtcm/acdtcm/internal/qwen"
)

// builtinCheckpoint is the built-in grader's checkpoint file, quantized by these tests.
var builtinCheckpoint = filepath.Join("..", "grader", "weights", "grader.ckpt")

// TestModelsEndpointQuantization: GET /api/v1/models names the quantization method of a
// quantized model (a quantized copy of the built-in grader, a quantized tiny Qwen2.5-VL),
// none for float32 weights, and reports a quantized grader's own version and no metrics
// when none were measured on it (never the float32 source's).
func TestModelsEndpointQuantization(t *testing.T) {
	root := t.TempDir()
	graderDir := filepath.Join(root, "grader-nf4")
	if _, err := quant.ConvertGrader(builtinCheckpoint, graderDir, quant.ConvertOptions{Method: quant.NF4}); err != nil {
		t.Fatal(err)
	}
	tiny, qwenDir := filepath.Join(root, "tiny"), filepath.Join(root, "tiny-q4_0")
	if _, err := qwen.InitCheckpoint(tiny, qwen.InitOptions{Preset: qwen.PresetTiny, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	if _, err := quant.ConvertCheckpoint(tiny, qwenDir, quant.ConvertOptions{Method: quant.Q4_0, Canonical: qwen.CanonicalName}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		model        string
		quantization string
		version      string
		metrics      bool
	}{
		{models.Builtin, "", grader.BuiltinVersion(), true},
		{graderDir, "nf4", grader.BuiltinVersion() + "-nf4", false},
		{tiny, "", "tiny", false},
		{qwenDir, "q4_0", "tiny-q4_0", false},
	}
	for _, tc := range tests {
		t.Run(filepath.Base(tc.model), func(t *testing.T) {
			m, err := models.Open(models.Options{Model: tc.model, Backend: "go"})
			if err != nil {
				t.Fatal(err)
			}
			h := newHarness(t, harnessOpts{real: m})
			resp, body := h.get("/api/v1/models", "")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			var env struct {
				Data []infer.ModelInfo `json:"data"`
			}
			if err := json.Unmarshal(body, &env); err != nil || len(env.Data) != 1 {
				t.Fatalf("body %s: %v", body, err)
			}
			got := env.Data[0]
			if got.Quantization != tc.quantization || got.Version != tc.version || (len(got.Metrics) > 0) != tc.metrics {
				t.Errorf("model %+v, want quantization %q, version %q, metrics %v", got, tc.quantization, tc.version, tc.metrics)
			}
		})
	}
}
