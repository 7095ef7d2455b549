package cli

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/acdtcm/acdtcm/internal/grader"
)

// writeTinyACNE04 writes a VOC export with n sources x 2 versions in train and n in valid:
// 32x32 photos with one bright spot per lesion box, grade = number of lesions / 2.
func writeTinyACNE04(t *testing.T, dir string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		k := i % 7
		grade := min(3, k/2)
		for _, f := range []string{"train/levle%d_%d_jpg.rf.a", "train/levle%d_%d_jpg.rf.b", "valid/levle%d_%d_jpg.rf.c"} {
			name := fmt.Sprintf(f, grade, 100+i)
			img := image.NewRGBA(image.Rect(0, 0, 32, 32))
			for p := range img.Pix {
				img.Pix[p] = 70
			}
			var xml strings.Builder
			xml.WriteString("<annotation><size><width>32</width><height>32</height></size>")
			for j := 0; j < k; j++ {
				x, y := 3+(j*7+i)%26, 3+(j*11+2*i)%26
				img.Set(x, y, color.RGBA{250, 60, 60, 255})
				xml.WriteString(fmt.Sprintf("<object><name>papules</name><bndbox><xmin>%d</xmin><xmax>%d</xmax><ymin>%d</ymin><ymax>%d</ymax></bndbox></object>", x-1, x+2, y-1, y+2))
			}
			xml.WriteString("</annotation>")
			p := filepath.Join(dir, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := jpeg.Encode(&buf, img, nil); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p+".jpg", buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p+".xml", []byte(xml.String()), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func TestTrainCommandErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"unknown kind", []string{"train", "--model", "nope", "--data", "x"}, 2, "unknown model kind"},
		{"no data", []string{"train", "--data", ""}, 2, "--data is required"},
		{"bad layers", []string{"train", "--data", "x", "--layers", "8-2"}, 2, "not channels/stride"},
		{"missing dataset", []string{"train", "--data", "/nonexistent/acne"}, 2, "nonexistent"},
		{"type loss weight alone", []string{"train", "--data", "x", "--loss-type-density", "0.1"}, 2, "go together"},
		{"negative type loss weight", []string{"train", "--data", "x", "--loss-type-density", "0.1", "--loss-type-count", "-1"}, 2, "must be >= 0"},
		{"unknown backbone", []string{"train", "--data", "x", "--backbone", "resnet50"}, 2, `unknown backbone "resnet50"`},
		{"backbone with a patch stem", []string{"train", "--data", "x", "--backbone", "mobilenetv2", "--patch", "4"}, 2, "takes RGB input"},
		{"bad freeze point", []string{"train", "--data", "x", "--backbone", "mobilenetv2", "--freeze-upto", "block_7"}, 2, `freeze_upto "block_7"`},
		{"freeze without backbone", []string{"train", "--data", "x", "--freeze-upto", "block_2"}, 2, "needs a pretrained backbone"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Execute(tc.args, strings.NewReader(""), &out, &errb)
			if code != tc.code || !strings.Contains(errb.String(), tc.msg) {
				t.Fatalf("exit %d, stderr %q; want %d and %q", code, errb.String(), tc.code, tc.msg)
			}
		})
	}
}

func TestTrainCommandEndToEnd(t *testing.T) {
	data, out := t.TempDir(), t.TempDir()
	writeTinyACNE04(t, data, 14)
	cfg := filepath.Join(t.TempDir(), "train.yaml")
	yaml := "train:\n  data: " + data + "\n  out: " + out + "\n  cache-dir: " + filepath.Join(out, "cache") +
		"\n  input-size: 32\n  patch: 2\n  patch-out: 4\n  layers: 8/2,8/1\n  grade-hidden: 8\n  epochs: 3\n  batch-size: 4\n  holdout-frac: 0.2\n  warmup-steps: 0\n" +
		"  loss-type-density: 0.1\n  loss-type-count: 0.05\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(out, "export")
	var stdout, stderr bytes.Buffer
	code := Execute([]string{"--config", cfg, "train", "--progress=false", "--export-dir", export}, strings.NewReader(""), &stdout, &stderr)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "trained 3 epochs") || !strings.Contains(stdout.String(), "valid (14 photos)") {
		t.Errorf("stdout %q", stdout.String())
	}
	// The total-lesion losses chosen in the config file are recorded with the run.
	if cfgJSON, err := os.ReadFile(filepath.Join(out, "config.json")); err != nil || !strings.Contains(string(cfgJSON), `"type_density": 0.1`) {
		t.Errorf("config.json lacks the config file's loss-type-density: %s (%v)", cfgJSON, err)
	}
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	lines := 0
	for sc := bufio.NewScanner(f); sc.Scan(); {
		lines++
	}
	if lines != 3 {
		t.Errorf("metrics.jsonl has %d lines, want 3", lines)
	}
	for _, p := range []string{"best.ckpt", "last.ckpt", "curves.svg", "eval-valid.json", "export/grader.ckpt", "export/grader.json"} {
		if _, err := os.Stat(filepath.Join(out, p)); err != nil {
			t.Errorf("missing output: %v", err)
		}
	}
	m, err := grader.Load(filepath.Join(export, "grader.ckpt"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := m.Metrics["valid_accuracy"]; !ok {
		t.Errorf("exported weights lack valid metrics: %v", m.Metrics)
	}
	// Every box of the tiny dataset is a papule: the types tell nothing, so the weights
	// report untyped counts, and the log says why.
	if m.Config.TypedCounts || !strings.Contains(stderr.String(), "lesion types: every lesion has the same type (papule in grade 0/grade 1/grade 2/grade 3)") {
		t.Errorf("typed counts %v; stderr %s", m.Config.TypedCounts, stderr.String())
	}
	// Resuming a finished run trains nothing more and reports the same epochs.
	stdout.Reset()
	code = Execute([]string{"--config", cfg, "train", "--progress=false", "--resume"}, strings.NewReader(""), &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "trained 3 epochs") {
		t.Fatalf("resume: exit %d, stdout %q, stderr %s", code, stdout.String(), stderr.String())
	}
	// The exported weights carry the count -> grade calibration fitted after training, and
	// --calibrate-only refits it on the best weights without training.
	if m.Calibration == nil || m.Calibration.N == 0 || !(m.Calibration.Slope > 0) {
		t.Fatalf("exported weights lack a calibration: %+v (stderr %s)", m.Calibration, stderr.String())
	}
	stdout.Reset()
	code = Execute([]string{"--config", cfg, "train", "--progress=false", "--calibrate-only", "--export-dir", export, "--weights-version", "9.9.9"}, strings.NewReader(""), &stdout, &stderr)
	if code != 0 || !strings.Contains(stdout.String(), "calibrated "+filepath.Join(out, "best.ckpt")) {
		t.Fatalf("calibrate-only: exit %d, stdout %q, stderr %s", code, stdout.String(), stderr.String())
	}
	info, err := os.ReadFile(filepath.Join(export, "grader.json"))
	if err != nil || !strings.Contains(string(info), `"version": "9.9.9+`) {
		t.Errorf("grader.json after --weights-version 9.9.9: %s (%v)", info, err)
	}
	// --init-from fine-tunes the exported weights in a new run at another input size.
	fineOut := t.TempDir()
	stdout.Reset()
	stderr.Reset()
	code = Execute([]string{"--config", cfg, "train", "--progress=false", "--out", fineOut, "--init-from", filepath.Join(export, "grader.ckpt"),
		"--input-size", "48", "--epochs", "1"}, strings.NewReader(""), &stdout, &stderr)
	if code != 0 || !strings.Contains(stderr.String(), "initialised from "+filepath.Join(export, "grader.ckpt")+" (trained at 32 px; this run: 48 px)") {
		t.Fatalf("init-from: exit %d, stdout %q, stderr %s", code, stdout.String(), stderr.String())
	}
	if _, err := grader.Load(filepath.Join(fineOut, "best.ckpt")); err != nil {
		t.Errorf("fine-tuned weights: %v", err)
	}
	// ... and from a quantized grader directory, dequantized first.
	qdir := filepath.Join(t.TempDir(), "int8")
	if code := Execute([]string{"quantize", "--method", "int8", filepath.Join(export, "grader.ckpt"), qdir}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("quantize: exit %d: %s", code, stderr.String())
	}
	stderr.Reset()
	code = Execute([]string{"--config", cfg, "train", "--progress=false", "--out", t.TempDir(), "--init-from", qdir, "--epochs", "1"}, strings.NewReader(""), &stdout, &stderr)
	if code != 0 || !strings.Contains(stderr.String(), "initialised from "+qdir+" (trained at 32 px") {
		t.Fatalf("init-from a quantized grader: exit %d, stderr %s", code, stderr.String())
	}
}

// A refit (--holdout-frac 0) trains on every train source for the fixed epochs, keeps the
// last epoch (or the --average-last average), and still calibrates and scores valid.
func TestTrainCommandRefit(t *testing.T) {
	data := t.TempDir()
	writeTinyACNE04(t, data, 14)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"last epoch", nil, "trained 2 epochs in"},
		{"averaged, exported as make train-grader does", []string{"--average-last", "2", "--resume", "--weights-version", "9.8.7"}, "kept the average of epochs 1-2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			export := filepath.Join(out, "export")
			tc.args = append(tc.args, "--export-dir", export)
			args := append([]string{"train", "--progress=false", "--data", data, "--out", out, "--cache-dir", filepath.Join(out, "cache"), "--input-size", "32", "--patch", "2", "--patch-out", "4",
				"--layers", "8/2,8/1", "--grade-hidden", "8", "--epochs", "2", "--batch-size", "4", "--warmup-steps", "0",
				"--holdout-frac", "0", "--patience", "1", "--calibrate"}, tc.args...)
			var stdout, stderr bytes.Buffer
			if code := Execute(args, strings.NewReader(""), &stdout, &stderr); code != 0 {
				t.Fatalf("exit %d: %s", code, stderr.String())
			}
			if s := stdout.String(); !strings.Contains(s, tc.want) || !strings.Contains(s, "on all 14 train sources (no holdout)") || !strings.Contains(s, "valid (14 photos)") {
				t.Errorf("stdout %q, want %q and the refit's summary", s, tc.want)
			}
			m, err := grader.Load(filepath.Join(out, "best.ckpt"))
			if err != nil {
				t.Fatal(err)
			}
			if m.Calibration == nil || !strings.Contains(m.Calibration.FittedOn, "no holdout") {
				t.Errorf("calibration %+v, want one fitted on all train photos", m.Calibration)
			}
			if !strings.Contains(stderr.String(), "no holdout to score it on") {
				t.Errorf("stderr lacks the calibration line: %s", stderr.String())
			}
			exported, err := grader.Load(filepath.Join(export, "grader.ckpt"))
			if err != nil {
				t.Fatalf("the refit's export: %v", err)
			}
			if exported.Calibration == nil || !strings.Contains(exported.Calibration.FittedOn, "no holdout") {
				t.Errorf("exported calibration %+v, want the refit's", exported.Calibration)
			}
			meta, err := os.ReadFile(filepath.Join(export, "grader.json"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.name != "last epoch" && !strings.Contains(string(meta), `"version": "9.8.7+`) {
				t.Errorf("grader.json lacks the asked version: %s", meta)
			}
		})
	}
	// The tiny export files every photo in train and in valid under one source id: with
	// --link-copies the trainer drops train photos sharing a group with a valid photo, here
	// all of them, and refuses to train.
	// It records the links it found in the out directory, and --copy-links applies that file
	// without matching the photos again.
	linkOut := t.TempDir()
	linksFile := filepath.Join(linkOut, grader.CopyLinksFile)
	for _, tc := range []struct {
		flags   []string
		linksBy string // how the log says the links were found
	}{
		{[]string{"--link-copies"}, "recorded in " + linksFile},
		{[]string{"--copy-links", linksFile}, "read from " + linksFile},
	} {
		var stdout, stderr bytes.Buffer
		code := Execute(append([]string{"train", "--progress=false", "--data", data, "--out", linkOut}, tc.flags...), strings.NewReader(""), &stdout, &stderr)
		for _, want := range []string{tc.linksBy, "28 train photos dropped as copies of valid photos", `every "train" photo is a copy of a "valid" photo`} {
			if code == 0 || !strings.Contains(stderr.String(), want) {
				t.Errorf("%v on copies: exit %d, stderr lacks %q: %s", tc.flags, code, want, stderr.String())
			}
		}
	}
}

// --loss-ordinal adds the ordinal grade loss on the count: its cuts and slope train, live in
// last.ckpt (so --resume continues them) and stay out of the exported weights.
func TestTrainCommandOrdinalLoss(t *testing.T) {
	data, out := t.TempDir(), t.TempDir()
	writeTinyACNE04(t, data, 14)
	args := func(epochs string, extra ...string) []string {
		return append([]string{"train", "--progress=false", "--data", data, "--out", out, "--cache-dir", filepath.Join(out, "cache"),
			"--input-size", "32", "--patch", "2", "--patch-out", "4", "--layers", "8/2,8/1", "--grade-hidden", "8",
			"--epochs", epochs, "--batch-size", "4", "--warmup-steps", "0", "--holdout-frac", "0.2", "--patience", "0",
			"--loss-ordinal", "1"}, extra...)
	}
	ordinalTensors := func(path string) map[string][]float32 {
		t.Helper()
		ck, err := grader.ReadCheckpoint(path)
		if err != nil {
			t.Fatal(err)
		}
		got := map[string][]float32{}
		for _, e := range ck.Header.Tensors {
			if strings.HasPrefix(e.Name, "/ordinal_loss/") {
				v, err := ck.Tensor(e.Name)
				if err != nil {
					t.Fatal(err)
				}
				got[e.Name] = tensors.MustCopyFlatData[float32](v)
			}
		}
		return got
	}
	var stdout, stderr bytes.Buffer
	if code := Execute(args("2", "--skip-eval"), strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// --skip-eval leaves the valid split unscored: no valid line, no eval-valid.json.
	if strings.Contains(stdout.String(), "valid (") || !strings.Contains(stderr.String(), "valid (14 photos): not scored (skip-eval)") {
		t.Errorf("--skip-eval: stdout %q, stderr %s", stdout.String(), stderr.String())
	}
	if _, err := os.Stat(filepath.Join(out, "eval-valid.json")); !os.IsNotExist(err) {
		t.Errorf("--skip-eval wrote eval-valid.json (%v)", err)
	}
	first := ordinalTensors(filepath.Join(out, "last.ckpt"))
	if len(first) != 3 {
		t.Fatalf("last.ckpt ordinal tensors %v, want first, gaps and log_slope", first)
	}
	if cut := first["/ordinal_loss/first"]; len(cut) != 1 || cut[0] == float32(math.Log1p(5.5)) {
		t.Errorf("first cut %v: not trained from log1p(5.5)", cut)
	}
	if got := ordinalTensors(filepath.Join(out, "best.ckpt")); len(got) != 0 {
		t.Errorf("best.ckpt carries the training-only ordinal tensors %v", got)
	}
	metrics, err := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSpace(string(metrics)), "\n") {
		var em grader.EpochMetrics
		if err := json.Unmarshal([]byte(line), &em); err != nil {
			t.Fatalf("metrics.jsonl line %d: %v", i+1, err)
		}
		if !(em.TrainOrdinal > 0) || em.TrainLoss < em.TrainOrdinal {
			t.Errorf("epoch %d: train_ordinal_loss %v, want > 0 and inside the total %v", em.Epoch, em.TrainOrdinal, em.TrainLoss)
		}
	}
	if !strings.Contains(stderr.String(), " ordinal ") {
		t.Errorf("the epoch log does not report the ordinal term: %s", stderr.String())
	}
	stdout.Reset()
	stderr.Reset()
	if code := Execute(args("3", "--resume"), strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("resume: exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "resumed from") {
		t.Errorf("the second run did not resume: %s", stderr.String())
	}
	if again := ordinalTensors(filepath.Join(out, "last.ckpt")); slices.Equal(again["/ordinal_loss/first"], first["/ordinal_loss/first"]) {
		t.Errorf("the resumed epoch left the first cut at %v", again["/ordinal_loss/first"])
	}
	code := Execute(args("1", "--loss-ordinal", "-1"), strings.NewReader(""), &stdout, &stderr)
	if code != 2 || !strings.Contains(stderr.String(), "--loss-ordinal -1") {
		t.Errorf("negative weight: exit %d, stderr %s", code, stderr.String())
	}
}
