package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/grader"
	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/quant"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// samplesManifest writes a manifest of the four sample photos (testdata/samples, one per
// Hayashi grade, named by it), all in the valid split.
func samplesManifest(t *testing.T, dir string) (manifest string, photos []string) {
	t.Helper()
	var recs []dataset.Record
	for g, name := range []string{"acne04-levle0_103.jpg", "acne04-levle1_106.jpg", "acne04-levle2_102.jpg", "acne04-levle3_100.jpg"} {
		p, err := filepath.Abs(filepath.Join("..", "..", "testdata", "samples", name))
		if err != nil {
			t.Fatal(err)
		}
		photos = append(photos, p)
		recs = append(recs, dataset.Record{ImageID: name, Image: p, Split: "valid",
			Diagnosis: dataset.Diagnosis{Severity: &severity.Grade{Value: g, Scale: severity.Hayashi}}})
	}
	manifest = filepath.Join(dir, "manifest.jsonl")
	if err := dataset.WriteManifest(manifest, recs); err != nil {
		t.Fatal(err)
	}
	return manifest, photos
}

// TestQuantizedGraderCommands quantizes the built-in grader with --eval-data (the four
// sample photos) and runs eval, diagnose and serve on the quantized directory: the
// directory records the quantized model's own measured metrics and a version naming the
// source and the method, and every command reports them.
func TestQuantizedGraderCommands(t *testing.T) {
	dir := t.TempDir()
	manifest, photos := samplesManifest(t, dir)
	out, reportPath := filepath.Join(dir, "grader-int8"), filepath.Join(dir, "int8.json")
	code, stdout, errOut := runCLI(t, "", "quantize", "--method", "int8", "--eval-data", manifest, "--eval-split", "valid",
		"--report", reportPath, filepath.Join("..", "grader", "weights", "grader.ckpt"), out)
	if code != 0 {
		t.Fatalf("quantize: exit %d\n%s\n%s", code, stdout, errOut)
	}
	if !strings.Contains(stdout, "kept: heads,stem") {
		t.Errorf("the grader's keep list is not reported as heads,stem:\n%s", stdout)
	}
	rep := readQuantizeReport(t, reportPath)
	if rep.Grader == nil || rep.Grader.Quantized.Eval == nil || rep.Grader.Quantized.Eval.N != 4 {
		t.Fatalf("report lacks the quantized model's evaluation: %+v", rep.Grader)
	}
	measured := rep.Grader.Quantized.Eval.Map("valid")
	info, err := quant.ReadGraderInfo(out)
	if err != nil {
		t.Fatal(err)
	}
	wantVersion := grader.BuiltinVersion() + "-int8"
	if info.Version != wantVersion || info.SourceVersion != grader.BuiltinVersion() || info.Metrics["valid_accuracy"] != measured["valid_accuracy"] ||
		info.Metrics["valid_n"] != 4 || !strings.Contains(info.MetricsFrom, "valid split") || info.SourceMetrics["valid_n"] != 283 {
		t.Errorf("config.json: %+v\nwant version %s and the measured metrics %v", info, wantVersion, measured)
	}

	t.Run("eval", func(t *testing.T) {
		code, stdout, errOut := runCLI(t, "", "eval", "--model", out, "--data", manifest, "--split", "valid", "--json", "--bootstrap", "0")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		var doc metricsDoc
		if err := json.Unmarshal([]byte(stdout), &doc); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
		}
		if doc.Counts.Matched != 4 || math.Abs(float64(doc.Summary["accuracy"])-measured["valid_accuracy"]) > 1e-9 {
			t.Errorf("eval: counts %+v accuracy %v, want 4 photos and quantize's measured %v", doc.Counts, doc.Summary["accuracy"], measured["valid_accuracy"])
		}
	})

	t.Run("diagnose", func(t *testing.T) {
		code, stdout, errOut := runCLI(t, "", "diagnose", "--model", out, "--format", "jsonl", photos[0], photos[3])
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		lines := strings.Split(strings.TrimSpace(stdout), "\n")
		for _, l := range lines {
			var r struct {
				ModelVersion  string    `json:"model_version"`
				Probabilities []float64 `json:"probabilities"`
			}
			if err := json.Unmarshal([]byte(l), &r); err != nil || r.ModelVersion != wantVersion || len(r.Probabilities) != 4 {
				t.Errorf("result %s (%v): want model_version %s and 4 probabilities", l, err, wantVersion)
			}
		}
		if len(lines) != 2 {
			t.Errorf("%d results for 2 photos", len(lines))
		}
	})

	t.Run("serve", func(t *testing.T) {
		app := &App{Out: io.Discard, Err: io.Discard, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
		opts := testServeOptions(t)
		opts.Model = out
		addr, stop := startServe(t, app, opts)
		resp, err := http.Get("http://" + addr + "/api/v1/models")
		if err != nil {
			stop()
			t.Fatal(err)
		}
		var env struct {
			Data []infer.ModelInfo `json:"data"`
		}
		err = json.NewDecoder(resp.Body).Decode(&env)
		resp.Body.Close()
		if err := stop(); err != nil {
			t.Errorf("serve: %v", err)
		}
		if err != nil || len(env.Data) != 1 {
			t.Fatalf("models: %+v, %v", env, err)
		}
		m := env.Data[0]
		if m.Quantization != "int8" || m.Version != wantVersion || m.Metrics["valid_accuracy"] != measured["valid_accuracy"] || m.Metrics["valid_n"] != 4 {
			t.Errorf("/api/v1/models: %+v, want int8, version %s and the measured metrics", m, wantVersion)
		}
	})
}

// TestQuantizeGraderAgreementWarning: quantize warns when the quantized grader changes many
// grades (the shipped grader at nf4 with its frozen stem quantized, on the four sample
// photos) and stays quiet with the default keep list.
func TestQuantizeGraderAgreementWarning(t *testing.T) {
	dir := t.TempDir()
	manifest, _ := samplesManifest(t, dir)
	tests := []struct {
		name string
		keep []string
		warn bool
	}{
		{"default keep list", nil, false},
		{"stem quantized", []string{"--keep", "heads"}, true},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"quantize", "--method", "nf4", "--eval-data", manifest, "--eval-split", "valid"}, tc.keep...)
			args = append(args, filepath.Join("..", "grader", "weights", "grader.ckpt"), filepath.Join(dir, fmt.Sprint("q", i)))
			code, stdout, errOut := runCLI(t, "", args...)
			if code != 0 {
				t.Fatalf("exit %d\n%s\n%s", code, stdout, errOut)
			}
			if got := strings.Contains(errOut, "warning:") && strings.Contains(errOut, "--keep heads,stem"); got != tc.warn {
				t.Errorf("warning shown = %v, want %v; stderr:\n%s", got, tc.warn, errOut)
			}
		})
	}
}

// TestModelFlagHelpNamesQuantized: --model of diagnose, eval and serve says that quantized
// directories written by acdtcm quantize are accepted.
func TestModelFlagHelpNamesQuantized(t *testing.T) {
	for _, cmd := range []string{"diagnose", "eval", "serve"} {
		code, stdout, _ := runCLI(t, "", cmd, "--help")
		if code != 0 {
			t.Fatalf("%s --help: exit %d", cmd, code)
		}
		i := strings.Index(stdout, "--model string")
		if i < 0 || !strings.Contains(stdout[i:min(len(stdout), i+300)], "written by acdtcm quantize") {
			t.Errorf("%s --help: --model does not mention quantized directories:\n%s", cmd, stdout)
		}
	}
}
