package cli

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/dataset"
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
		"--lora-r", "2", "--warmup-steps", "1", "--progress=false")
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
}
