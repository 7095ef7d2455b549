package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/eval"
	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

var (
	tinyManifest    = filepath.Join("..", "eval", "testdata", "tiny")
	tinyPredictions = filepath.Join("..", "eval", "testdata", "tiny", "predictions.jsonl")
)

func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Execute(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

type metricsDoc struct {
	Comparison struct {
		Mode  string `json:"mode"`
		Scale string `json:"scale"`
	} `json:"comparison"`
	Counts  eval.Counts              `json:"counts"`
	Summary map[string]eval.Num      `json:"summary"`
	CI      map[string]eval.Interval `json:"ci"`
	Gate    []eval.GateCheck         `json:"gate"`
}

func TestEvalEndToEnd(t *testing.T) {
	dir := t.TempDir()
	code, stdout, stderr := runCLI(t, "", "eval", "--data", tinyManifest, "--predictions", tinyPredictions, "--out", dir, "--bootstrap", "100", "--seed", "7")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	for _, want := range []string{"Evaluated 11 of 13 records on the hayashi scale", "mapped onto hayashi via severity.Convert: prediction clinical4→hayashi ×1",
		"│ accuracy ", "Confusion matrix", "line 13 other99: no manifest record"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table output lacks %q:\n%s", want, stdout)
		}
	}
	for _, f := range []string{MetricsFileName, eval.ConfusionPlot, eval.ROCPlot, eval.ReliabilityPlot} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, MetricsFileName))
	if err != nil {
		t.Fatal(err)
	}
	var doc metricsDoc
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("metrics.json: %v", err)
	}
	if doc.Comparison.Mode != eval.Mapped || doc.Comparison.Scale != "hayashi" || doc.Counts.Matched != 11 || doc.Counts.Unparsable != 1 {
		t.Errorf("metrics.json comparison %+v counts %+v", doc.Comparison, doc.Counts)
	}
	if acc := float64(doc.Summary["accuracy"]); math.Abs(acc-7.0/11) > 1e-12 {
		t.Errorf("accuracy = %v, want 7/11", acc)
	}
	if iv := doc.CI["accuracy"]; iv.Valid != 100 || !(iv.Lower <= doc.Summary["accuracy"] && doc.Summary["accuracy"] <= iv.Upper) {
		t.Errorf("accuracy CI = %+v", iv)
	}

	t.Run("json", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "", "eval", "--data", tinyManifest, "--predictions", tinyPredictions, "--json", "--bootstrap", "0")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr)
		}
		var d metricsDoc
		if err := json.Unmarshal([]byte(stdout), &d); err != nil {
			t.Fatalf("stdout is not JSON: %v\n%s", err, stdout)
		}
		if d.Summary["accuracy"] != doc.Summary["accuracy"] || d.CI != nil {
			t.Errorf("json summary %v ci %v", d.Summary, d.CI)
		}
	})

	t.Run("stdin", func(t *testing.T) {
		preds, err := os.ReadFile(tinyPredictions)
		if err != nil {
			t.Fatal(err)
		}
		code, stdout, _ := runCLI(t, string(preds), "eval", "--data", tinyManifest, "--predictions", "-", "--bootstrap", "0")
		if code != 0 || !strings.Contains(stdout, "Evaluated 11 of 13") {
			t.Errorf("exit %d:\n%s", code, stdout)
		}
	})

	t.Run("gate passes against itself", func(t *testing.T) {
		code, stdout, stderr := runCLI(t, "", "eval", "--data", tinyManifest, "--predictions", tinyPredictions, "--bootstrap", "0",
			"--baseline", filepath.Join(dir, MetricsFileName), "--gate", "accuracy,macro_f1,kappa,mae")
		if code != 0 || !strings.Contains(stdout, "Regression gate") || strings.Contains(stdout, "FAIL") {
			t.Errorf("exit %d stderr %q:\n%s", code, stderr, stdout)
		}
	})

	t.Run("gate fails on a drop and names the metric", func(t *testing.T) {
		better := filepath.Join(t.TempDir(), "baseline.json")
		if err := os.WriteFile(better, []byte(`{"summary":{"accuracy":0.9,"macro_f1":0.6,"kappa":0.83}}`), 0o644); err != nil {
			t.Fatal(err)
		}
		code, stdout, stderr := runCLI(t, "", "eval", "--data", tinyManifest, "--predictions", tinyPredictions, "--bootstrap", "0",
			"--baseline", better, "--max-drop", "0.01")
		if code != 1 {
			t.Fatalf("exit %d, want 1; stderr %s", code, stderr)
		}
		if !strings.Contains(stderr, "regression gate failed") || !strings.Contains(stderr, "accuracy dropped by 0.2636 (0.9000 → 0.6364)") {
			t.Errorf("stderr does not name the regression:\n%s", stderr)
		}
		if strings.Contains(stderr, "macro_f1 dropped") || strings.Contains(stderr, "kappa dropped") {
			t.Errorf("metrics within the allowance reported as failed:\n%s", stderr)
		}
		if !strings.Contains(stdout, "FAIL") {
			t.Errorf("gate table lacks FAIL:\n%s", stdout)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		for _, args := range [][]string{
			{"eval", "--predictions", tinyPredictions},
			{"eval", "--data", tinyManifest},
			{"eval", "--data", tinyManifest, "--predictions", tinyPredictions, "--scale", "bogus"},
			{"eval", "--data", tinyManifest, "--predictions", "/nonexistent/pred.jsonl"},
			{"eval", "--data", tinyManifest, "--predictions", tinyPredictions, "--baseline", filepath.Join(dir, MetricsFileName), "--gate", "acuracy"},
		} {
			if code, _, stderr := runCLI(t, "", args...); code != 2 || !strings.Contains(stderr, "error:") {
				t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
			}
		}
	})
}

// TestEvalWithPredictor runs the predictor path that `eval --model` will use.
func TestEvalWithPredictor(t *testing.T) {
	var out bytes.Buffer
	app := &App{In: strings.NewReader(""), Out: &out, Err: io.Discard, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	// A predictor that reads the grade off the image id: img00-img02 → 0, … always right on
	// this fixture except for img11 (truth 1, predicted 3).
	grades := map[string]int{"img00": 0, "img01": 0, "img02": 0, "img03": 1, "img04": 1, "img05": 1, "img06": 2, "img07": 2, "img08": 2, "img09": 3, "img10": 3, "img11": 3}
	opts := &evalOptions{Data: tinyManifest, JSON: true, Level: 0.95, Predictor: eval.PredictorFunc(func(_ context.Context, imgs []eval.Image) ([]result.DiagnosisResult, error) {
		res := make([]result.DiagnosisResult, len(imgs))
		for i, img := range imgs {
			res[i].Severity = severity.Grade{Value: grades[img.ID], Scale: severity.Hayashi}
		}
		return res, nil
	}), BatchSize: 4}
	if err := runEval(context.Background(), app, opts); err != nil {
		t.Fatal(err)
	}
	var d metricsDoc
	if err := json.Unmarshal(out.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	if d.Counts.Matched != 12 || math.Abs(float64(d.Summary["accuracy"])-11.0/12) > 1e-12 || d.Comparison.Mode != eval.LikeWithLike {
		t.Errorf("counts %+v accuracy %v mode %s", d.Counts, d.Summary["accuracy"], d.Comparison.Mode)
	}
}
