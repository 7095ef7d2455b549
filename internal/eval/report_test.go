package eval

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

var update = flag.Bool("update", false, "rewrite golden files")

func tinyReport(t *testing.T, opts Options) *Report {
	t.Helper()
	m, err := dataset.ReadManifest(filepath.Join("testdata", "tiny"))
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join("testdata", "tiny", "predictions.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	preds, probs, err := ReadPredictions(f, "predictions.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(probs) != 1 || probs[0].Line != 15 {
		t.Fatalf("want the invalid line 15 reported, got %+v", probs)
	}
	rep, err := Evaluate(m, preds, opts)
	if err != nil {
		t.Fatal(err)
	}
	rep.Counts.Unparsable = len(probs)
	return rep
}

func TestEvaluateJoinsAndCounts(t *testing.T) {
	rep := tinyReport(t, Options{})
	want := Counts{Records: 13, NoTruth: 1, Predictions: 14, Unparsable: 1, Matched: 11, MatchedByPath: 1,
		Unmatched: 1, Duplicates: 1, Errored: 1, MissingPred: 1, WithLesionPair: 9}
	if rep.Counts != want {
		t.Errorf("counts = %+v\nwant     %+v", rep.Counts, want)
	}
	if rep.Comparison.Scale != severity.Hayashi || rep.Comparison.Mode != Mapped {
		t.Errorf("comparison = %+v, want mapped onto hayashi", rep.Comparison)
	}
	if len(rep.Comparison.Conversions) != 1 || rep.Comparison.Conversions[0] != (Conversion{Side: "prediction", From: severity.Clinical4, To: severity.Hayashi, Count: 1}) {
		t.Errorf("conversions = %+v", rep.Comparison.Conversions)
	}
	// The joined set, written out by hand from the fixture: img10's clinical4 "severe" (3)
	// maps to hayashi 2, and its probabilities [0 .1 .2 .7] to [.1 .2 .7 0].
	wantTrue := []int{0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3}
	wantPred := []int{0, 0, 1, 1, 2, 1, 2, 3, 2, 3, 2}
	if !slices.Equal(rep.Data.True, wantTrue) || !slices.Equal(rep.Data.Pred, wantPred) {
		t.Fatalf("joined true %v pred %v, want %v %v", rep.Data.True, rep.Data.Pred, wantTrue, wantPred)
	}
	last := rep.Data.Probs[10]
	for i, v := range []float64{0.1, 0.2, 0.7, 0} {
		if math.Abs(last[i]-v) > 1e-12 {
			t.Errorf("converted probabilities = %v", last)
			break
		}
	}
	if got := float64(rep.Summary["accuracy"]); math.Abs(got-7.0/11) > 1e-12 {
		t.Errorf("accuracy = %v, want 7/11", got)
	}
	// Lesion counts: |3-2|+|6-4|+|9-5|+|10-8|+|22-15|+|18-19|+|30-25|+|55-40|+|70-60| = 47 over 9.
	if got := float64(rep.Summary["lesion_count_mae"]); math.Abs(got-47.0/9) > 1e-9 {
		t.Errorf("lesion_count_mae = %v, want 47/9", got)
	}
	reasons := make([]string, len(rep.Problems))
	for i, p := range rep.Problems {
		reasons[i] = p.Reason
	}
	joined := strings.Join(reasons, "\n")
	for _, want := range []string{"no manifest record", "duplicate prediction", "prediction error: decode"} {
		if !strings.Contains(joined, want) {
			t.Errorf("problems lack %q:\n%s", want, joined)
		}
	}
}

func TestEvaluateScaleHandling(t *testing.T) {
	rec := func(id string, g int, s severity.Scale) dataset.Record {
		return dataset.Record{ImageID: id, Image: id + ".jpg", Diagnosis: dataset.Diagnosis{Severity: &severity.Grade{Value: g, Scale: s}}}
	}
	pred := func(id string, g int, s severity.Scale, p ...float64) Prediction {
		return Prediction{DiagnosisResult: result.DiagnosisResult{ImageID: id, Severity: severity.Grade{Value: g, Scale: s}, Probabilities: p}}
	}
	m := &dataset.Manifest{Path: "m.jsonl", Dir: ".", Records: []dataset.Record{
		rec("a", 0, severity.Hayashi), rec("b", 1, severity.Hayashi), rec("c", 2, severity.Hayashi), rec("d", 3, severity.Hayashi),
	}}
	t.Run("like with like", func(t *testing.T) {
		rep, err := Evaluate(m, []Prediction{pred("a", 0, severity.Hayashi), pred("b", 1, severity.Hayashi), pred("c", 2, severity.Hayashi), pred("d", 2, severity.Hayashi)}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Comparison.Mode != LikeWithLike || !strings.Contains(rep.Comparison.Describe(), "like-with-like") {
			t.Errorf("comparison = %+v", rep.Comparison)
		}
		if rep.Data.Probs != nil || rep.Summary["macro_auc"].Defined() {
			t.Error("AUC computed without probabilities")
		}
	})
	t.Run("truth mapped to clinical4", func(t *testing.T) {
		rep, err := Evaluate(m, []Prediction{pred("a", 1, severity.Clinical4), pred("b", 2, severity.Clinical4), pred("c", 3, severity.Clinical4), pred("d", 3, severity.Clinical4)},
			Options{Scale: severity.Clinical4})
		if err != nil {
			t.Fatal(err)
		}
		// hayashi 0,1,2,3 → clinical4 1,2,3,3: all four agree.
		if rep.Comparison.Mode != Mapped || rep.Summary["accuracy"] != 1 || rep.Metrics.K != 4 {
			t.Errorf("mode %s accuracy %v k %d", rep.Comparison.Mode, rep.Summary["accuracy"], rep.Metrics.K)
		}
	})
	t.Run("no equivalent grade is skipped and reported", func(t *testing.T) {
		// clinical4 0 "normal" has no hayashi equivalent.
		rep, err := Evaluate(m, []Prediction{pred("a", 0, severity.Clinical4, 0.7, 0.3, 0, 0), pred("b", 2, severity.Clinical4, 0, 0.1, 0.8, 0.1),
			pred("c", 3, severity.Clinical4, 0, 0, 0.2, 0.8), pred("d", 3, severity.Clinical4, 0, 0, 0, 1)}, Options{Scale: severity.Hayashi})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Counts.Unconvertible != 1 || rep.Counts.Matched != 3 || rep.Comparison.Conversions[0].Unconvertible != 1 {
			t.Errorf("counts %+v conversions %+v", rep.Counts, rep.Comparison.Conversions)
		}
		if !strings.Contains(strings.Join(rep.Comparison.Notes, " "), "no hayashi equivalent") {
			t.Errorf("notes do not say what was skipped: %v", rep.Comparison.Notes)
		}
	})
	t.Run("nothing matched is an error", func(t *testing.T) {
		if _, err := Evaluate(m, []Prediction{pred("zzz", 0, severity.Hayashi)}, Options{}); err == nil {
			t.Error("want an error when nothing matches")
		}
	})
}

func TestWriteTablesGolden(t *testing.T) {
	rep := tinyReport(t, Options{Bootstrap: BootstrapOptions{Resamples: 200, Seed: 42, Level: 0.95}})
	base := map[string]Num{"accuracy": 0.70, "macro_f1": 0.64, "kappa": 0.80, "mae": 0.30}
	rep.Gate = Gate(base, rep.Summary, []string{"accuracy", "macro_f1", "kappa", "mae"}, 0.05)
	var buf bytes.Buffer
	if err := WriteTables(&buf, rep); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "tables.golden")
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run Golden -update)", err)
	}
	if !bytes.Equal(buf.Bytes(), want) {
		t.Errorf("table output differs from %s (rerun with -update after checking):\n%s", golden, buf.String())
	}
}

func TestWritePlots(t *testing.T) {
	rep := tinyReport(t, Options{})
	dir := t.TempDir()
	files, err := WritePlots(dir, rep)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{ConfusionPlot, ROCPlot, ReliabilityPlot}
	if len(files) != len(want) {
		t.Fatalf("wrote %v, want %v", files, want)
	}
	for i, f := range files {
		if filepath.Base(f) != want[i] {
			t.Errorf("file %d = %s, want %s", i, f, want[i])
		}
		r, err := os.Open(f)
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(r)
		r.Close()
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if b := img.Bounds(); b.Dx() < 300 || b.Dy() < 300 {
			t.Errorf("%s is only %v", f, b)
		}
	}
	// Without probabilities only the confusion matrix can be drawn.
	rep.Data.Probs = nil
	files, err = WritePlots(t.TempDir(), rep)
	if err != nil || len(files) != 1 {
		t.Errorf("without probabilities wrote %v (%v), want only the confusion matrix", files, err)
	}
}

func TestPredictBatchesAndErrors(t *testing.T) {
	m, err := dataset.ReadManifest(filepath.Join("testdata", "tiny"))
	if err != nil {
		t.Fatal(err)
	}
	var batches []int
	p := PredictorFunc(func(_ context.Context, imgs []Image) ([]result.DiagnosisResult, error) {
		batches = append(batches, len(imgs))
		if len(batches) == 2 {
			return nil, errors.New("backend unavailable")
		}
		out := make([]result.DiagnosisResult, len(imgs))
		for i, img := range imgs {
			if !strings.HasSuffix(img.Path, img.ID+".jpg") {
				t.Errorf("image %s resolved to %s", img.ID, img.Path)
			}
			out[i] = result.DiagnosisResult{Severity: severity.Grade{Value: 1, Scale: severity.Hayashi}}
		}
		return out, nil
	})
	preds, err := Predict(context.Background(), p, m, 5)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(batches, []int{5, 5, 2}) || len(preds) != 12 {
		t.Fatalf("batches %v, %d predictions (12 graded records)", batches, len(preds))
	}
	for i, pr := range preds {
		failed := i >= 5 && i < 10
		if (pr.Error != "") != failed || pr.ImageID != m.Records[i].ImageID {
			t.Errorf("prediction %d: id %q error %q", i, pr.ImageID, pr.Error)
		}
	}
	rep, err := Evaluate(m, preds, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Counts.Errored != 5 || rep.Counts.Matched != 7 {
		t.Errorf("counts = %+v", rep.Counts)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Predict(ctx, p, m, 5); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled run returned %v", err)
	}
}

// TestEvaluateRetriedPredictions checks the rule for several predictions of one photo: an
// errored one followed by a success (diagnose --resume --retry-failed) counts as the success;
// anything else is a duplicate and the first prediction is used.
func TestEvaluateRetriedPredictions(t *testing.T) {
	m, err := dataset.ReadManifest(filepath.Join("testdata", "tiny"))
	if err != nil {
		t.Fatal(err)
	}
	ok := func(grade int) Prediction {
		return Prediction{DiagnosisResult: result.DiagnosisResult{ImageID: "img01", Severity: severity.Grade{Value: grade, Scale: severity.Hayashi}}}
	}
	failed := Prediction{DiagnosisResult: result.DiagnosisResult{ImageID: "img01", Error: "decode: truncated"}}
	tests := []struct {
		name                string
		preds               []Prediction
		retried, duplicates int
		errored             int
		wantPred            int // -1: no usable prediction
	}{
		{"error then success", []Prediction{failed, ok(2)}, 1, 0, 0, 2},
		{"success then error", []Prediction{ok(1), failed}, 0, 1, 0, 1},
		{"success twice: first used", []Prediction{ok(1), ok(3)}, 0, 1, 0, 1},
		{"error twice: no usable prediction", []Prediction{failed, failed}, 0, 1, 1, -1},
		{"error, success, success", []Prediction{failed, ok(2), ok(3)}, 1, 1, 0, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Evaluate(m, tc.preds, Options{})
			if tc.wantPred < 0 { // nothing usable: a clear error that still counts what it saw
				if err == nil || !strings.Contains(err.Error(), "1 errored") {
					t.Fatalf("err = %v, want the no-usable-prediction error counting 1 errored", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c := rep.Counts
			if c.Retried != tc.retried || c.Duplicates != tc.duplicates || c.Errored != tc.errored {
				t.Errorf("retried %d duplicates %d errored %d, want %d %d %d", c.Retried, c.Duplicates, c.Errored, tc.retried, tc.duplicates, tc.errored)
			}
			if len(rep.Data.Pred) != 1 || rep.Data.Pred[0] != tc.wantPred {
				t.Errorf("joined predictions %v, want [%d]", rep.Data.Pred, tc.wantPred)
			}
		})
	}
}
