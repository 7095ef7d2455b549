package cli

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/safetensors"
	"github.com/acdtcm/acdtcm/internal/severity"
)

func TestTrainQwenLoRACommand(t *testing.T) {
	dir := t.TempDir()
	model := filepath.Join(dir, "tiny")
	if _, errs, code := runArgs(t, "model", "init", "--preset", "tiny", "--out", model); code != 0 {
		t.Fatal(errs)
	}
	var recs []dataset.Record
	for i := 0; i < 6; i++ {
		img := image.NewRGBA(image.Rect(0, 0, 56, 56))
		for p := 0; p < 56*56; p++ {
			img.Set(p%56, p/56, color.RGBA{uint8(40 * i), uint8(p), 90, 255})
		}
		name := fmt.Sprintf("p%d.png", i)
		f, _ := os.Create(filepath.Join(dir, name))
		png.Encode(f, img)
		f.Close()
		split := "train"
		if i >= 4 {
			split = "valid"
		}
		recs = append(recs, dataset.Record{ImageID: name, Image: name, Split: split,
			Diagnosis: dataset.Diagnosis{Severity: &severity.Grade{Value: i % 4, Scale: severity.Hayashi}}})
	}
	manifest := filepath.Join(dir, "manifest.jsonl")
	if err := dataset.WriteManifest(manifest, recs); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "run")
	stdout, stderr, code := runArgs(t, "train", "--config", filepath.Join("..", "..", "configs", "train-qwen-lora.yaml"),
		"--base-model", model, "--data", manifest, "--out", out, "--epochs", "1", "--batch-size", "2", "--grad-accum", "1",
		"--lora-r", "2", "--warmup-steps", "1", "--progress=false", "--peft-names", "legacy")
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "LoRA training done: 2 steps") || !strings.Contains(stderr, "epoch 1: val_loss") {
		t.Errorf("unexpected output:\n%s\n%s", stdout, stderr)
	}
	for _, f := range []string{"checkpoint-best/adapter_model.safetensors", "checkpoint-last/trainer_state.json", "metrics.jsonl", "loss.png"} {
		if _, err := os.Stat(filepath.Join(out, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}
	if _, stderr, code := runArgs(t, "train", "--model", "qwen-lora", "--data", manifest); code != 2 || !strings.Contains(stderr, "--base-model") {
		t.Errorf("missing --base-model: exit %d, %s", code, stderr)
	}
	if _, stderr, code := runArgs(t, "train", "--model", "qwen-lora", "--base-model", model, "--data", manifest, "--peft-names", "4.50"); code != 2 || !strings.Contains(stderr, "--peft-names") {
		t.Errorf("bad --peft-names: exit %d, %s", code, stderr)
	}

	// --peft-names legacy saved transformers < 4.52 keys; export converts both ways.
	best := filepath.Join(out, "checkpoint-best")
	checkSpelling := func(dir string, legacy bool) {
		t.Helper()
		f, err := safetensors.Open(filepath.Join(dir, lora.WeightsName))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		for _, k := range f.Names() {
			if isNew := strings.HasPrefix(k, "base_model.model.model.language_model."); isNew == legacy {
				t.Errorf("%s: key %s, want legacy=%v spelling", dir, k, legacy)
			}
		}
	}
	checkSpelling(best, true)
	asNew, asLegacy := filepath.Join(dir, "export-new"), filepath.Join(dir, "export-legacy")
	if stdout, stderr, code := runArgs(t, "export", "--adapter", best, "--out", asNew, "--peft-names", "new"); code != 0 || !strings.Contains(stdout, "new PEFT names") {
		t.Fatalf("export --peft-names new: exit %d %s %s", code, stdout, stderr)
	}
	checkSpelling(asNew, false)
	if stdout, stderr, code := runArgs(t, "export", "--adapter", asNew, "--out", asLegacy, "--peft-names", "legacy"); code != 0 {
		t.Fatalf("export --peft-names legacy: exit %d %s %s", code, stdout, stderr)
	}
	for _, name := range []string{lora.WeightsName, lora.ConfigName} {
		got, _ := os.ReadFile(filepath.Join(asLegacy, name))
		want, _ := os.ReadFile(filepath.Join(best, name))
		if !bytes.Equal(got, want) {
			t.Errorf("new -> legacy export of the legacy checkpoint: %s differs", name)
		}
	}
	if _, stderr, code := runArgs(t, "export", "--merge", "--model", model, "--adapter", best, "--out", filepath.Join(dir, "m"), "--peft-names", "legacy"); code != 2 || !strings.Contains(stderr, "--peft-names") {
		t.Errorf("--merge with --peft-names: exit %d, %s", code, stderr)
	}
}
