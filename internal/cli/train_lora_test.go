package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/models"
	"github.com/acdtcm/acdtcm/internal/qwen"
	"github.com/acdtcm/acdtcm/internal/remote"
	"github.com/acdtcm/acdtcm/internal/safetensors"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// loraFixture writes a tiny random Qwen2.5-VL checkpoint and a manifest of 6 generated
// 56×56 photos (4 train, 2 valid).
func loraFixture(t *testing.T, dir string) (model, manifest string) {
	t.Helper()
	model = filepath.Join(dir, "tiny")
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
	manifest = filepath.Join(dir, "manifest.jsonl")
	if err := dataset.WriteManifest(manifest, recs); err != nil {
		t.Fatal(err)
	}
	return model, manifest
}

func TestTrainQwenLoRACommand(t *testing.T) {
	dir := t.TempDir()
	model, manifest := loraFixture(t, dir)
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

// TestLoRAImageSizesFollowTheAdapter: --min-pixels/--max-pixels given to training are saved
// with the adapter, used when diagnose/eval/serve load it (models.Open), kept by export and
// written into the merged checkpoint's preprocessor_config.json. The run also uses
// --lora-target-regex and --progress=false.
func TestLoRAImageSizesFollowTheAdapter(t *testing.T) {
	const minPixels, maxPixels = 6272, 25088 // the tiny base has 3136 and 50176
	dir := t.TempDir()
	model, manifest := loraFixture(t, dir)
	out := filepath.Join(dir, "run")
	regex := `model\.layers\.0\.self_attn\.(q|v)_proj`
	args := []string{"train", "--model", "qwen-lora", "--base-model", model, "--data", manifest, "--out", out,
		"--epochs", "1", "--batch-size", "2", "--grad-accum", "1", "--lora-r", "2", "--warmup-steps", "1", "--max-eval-samples", "1",
		"--progress=false", "--min-pixels", fmt.Sprint(minPixels), "--max-pixels", fmt.Sprint(maxPixels)}
	stdout, stderr, code := runArgs(t, append(args, "--lora-target-regex", regex)...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if strings.ContainsAny(stdout+stderr, "\r\033") {
		t.Errorf("--progress=false output has terminal control characters:\n%q\n%q", stdout, stderr)
	}
	best := filepath.Join(out, "checkpoint-best")
	cfg, err := lora.LoadConfig(best)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := json.Marshal(regex); string(cfg.TargetModules) != string(want) {
		t.Errorf("target_modules %s, want %s", cfg.TargetModules, want)
	}
	if _, stderr, code := runArgs(t, append(args, "--lora-target-regex", "(q_proj")...); code != 2 || !strings.Contains(stderr, "--lora-target-regex") {
		t.Errorf("bad --lora-target-regex: exit %d, %s", code, stderr)
	}

	checkFile := func(dir string) {
		t.Helper()
		p, err := qwen.LoadProcessorConfig(filepath.Join(dir, qwen.ProcessorFile))
		if err != nil {
			t.Fatal(err)
		}
		if p.MinPixels != minPixels || p.MaxPixels != maxPixels {
			t.Errorf("%s: min/max pixels %d/%d, want %d/%d", dir, p.MinPixels, p.MaxPixels, minPixels, maxPixels)
		}
	}
	checkFile(best)
	for _, tc := range []struct {
		name             string
		opts             models.Options
		wantMin, wantMax int
	}{
		{"base alone", models.Options{Model: model}, 3136, 50176},
		{"with the adapter", models.Options{Model: model, Adapter: best}, minPixels, maxPixels},
		{"explicit sizes win", models.Options{Model: model, Adapter: best, MinPixels: 3136}, 3136, maxPixels},
		{"--image-*-pixels flags win", models.Options{Model: model, Adapter: best, Remote: remote.Flags{MaxPixels: 40000}}, minPixels, 40000},
	} {
		tc.opts.Backend = "go"
		m, err := models.Open(tc.opts)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		p := m.(*qwen.Grader).Model.Processor
		if p.MinPixels != tc.wantMin || p.MaxPixels != tc.wantMax {
			t.Errorf("%s: processor min/max pixels %d/%d, want %d/%d", tc.name, p.MinPixels, p.MaxPixels, tc.wantMin, tc.wantMax)
		}
	}

	merged := filepath.Join(dir, "merged")
	stdout, stderr, code = runArgs(t, "export", "--merge", "--model", model, "--adapter", best, "--out", merged)
	if code != 0 || !strings.Contains(stdout, "merged 2 adapted layers of "+best+" with "+model+" into "+merged) {
		t.Fatalf("export --merge: exit %d\n%s\n%s", code, stdout, stderr)
	}
	checkFile(merged)
	var doc map[string]any
	data, _ := os.ReadFile(filepath.Join(merged, qwen.ProcessorFile))
	if err := json.Unmarshal(data, &doc); err != nil || doc["image_processor_type"] != "Qwen2VLImageProcessor" {
		t.Errorf("merged preprocessor_config.json lost the base's keys: %s", data)
	}
	copied := filepath.Join(dir, "copy")
	if stdout, stderr, code := runArgs(t, "export", "--adapter", best, "--out", copied, "--peft-names", "legacy"); code != 0 {
		t.Fatalf("export: exit %d\n%s\n%s", code, stdout, stderr)
	}
	checkFile(copied)
}

// TestComputeDTypeBF16: --compute-dtype bf16 trains a LoRA adapter on a bf16 base and
// diagnoses with it; an unknown dtype is refused with its name.
func TestComputeDTypeBF16(t *testing.T) {
	dir := t.TempDir()
	model, manifest := loraFixture(t, dir)
	out := filepath.Join(dir, "run")
	stdout, stderr, code := runArgs(t, "train", "--model", "qwen-lora", "--base-model", model, "--data", manifest, "--out", out,
		"--epochs", "1", "--batch-size", "2", "--grad-accum", "1", "--lora-r", "2", "--warmup-steps", "1", "--progress=false",
		"--compute-dtype", "bf16")
	if code != 0 || !strings.Contains(stdout, "LoRA training done: 2 steps") {
		t.Fatalf("bf16 training: exit %d\n%s\n%s", code, stdout, stderr)
	}
	photo := filepath.Join(dir, "p0.png")
	adapter := filepath.Join(out, "checkpoint-best")
	stdout, stderr, code = runArgs(t, "diagnose", "--model", model, "--adapter", adapter, "--compute-dtype", "bf16", "--format", "jsonl", photo)
	if code != 0 || !strings.Contains(stdout, `"severity":{"value"`) {
		t.Fatalf("bf16 diagnose: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, args := range [][]string{
		{"diagnose", "--model", model, "--compute-dtype", "fp8", photo},
		{"train", "--model", "qwen-lora", "--base-model", model, "--data", manifest, "--out", filepath.Join(dir, "x"), "--compute-dtype", "fp8", "--progress=false"},
	} {
		if _, stderr, code := runArgs(t, args...); code == 0 || !strings.Contains(stderr, `"fp8"`) {
			t.Errorf("%s --compute-dtype fp8: exit %d, stderr %s", args[0], code, stderr)
		}
	}
}

// TestTrainQwenLoRAVisionAdapter: `train --adapter` of PEFT's exchange adapter, whose plain
// target list also matched the vision tower (MLPs, qkv and attn.proj), trains it with the
// tower inside the training graph, so the vision adapters change too.
func TestTrainQwenLoRAVisionAdapter(t *testing.T) {
	dir := t.TempDir()
	model, manifest := loraFixture(t, dir)
	adapter := filepath.Join("..", "qwen", "testdata", "peft", "peft-adapter")
	out := filepath.Join(dir, "run")
	stdout, stderr, code := runArgs(t, "train", "--model", "qwen-lora", "--base-model", model, "--data", manifest, "--adapter", adapter,
		"--out", out, "--epochs", "1", "--batch-size", "2", "--grad-accum", "1", "--warmup-steps", "1", "--lr", "1e-3",
		"--max-eval-samples", "1", "--progress=false", "--peft-names", "legacy")
	if code != 0 || !strings.Contains(stdout, "LoRA training done: 2 steps") {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "vision tower in the training graph: 10 vision modules adapted") {
		t.Errorf("the log does not say the vision tower is trained:\n%s", stderr)
	}
	// The fixture uses the legacy spelling too, so keys match.
	key := "base_model.model.visual.blocks.1.mlp.down_proj.lora_B.weight"
	before, after := readAdapterTensor(t, adapter, key), readAdapterTensor(t, filepath.Join(out, "checkpoint-last"), key)
	var maxDiff float64
	for i := range before {
		maxDiff = max(maxDiff, math.Abs(float64(after[i]-before[i])))
	}
	t.Logf("%s: max change %.3g after 2 steps", key, maxDiff)
	if maxDiff == 0 {
		t.Errorf("%s unchanged by training", key)
	}
}

// readAdapterTensor reads one tensor of an adapter's adapter_model.safetensors.
func readAdapterTensor(t *testing.T, dir, key string) []float32 {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(dir, lora.WeightsName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	v, _, err := f.Float32(key)
	if err != nil {
		t.Fatalf("%s: %v", dir, err)
	}
	return v
}

// TestImagePixelFlagsReachLocalModels: --image-min-pixels/--image-max-pixels apply to a local
// Qwen model too, and limits that contradict each other are refused.
func TestImagePixelFlagsReachLocalModels(t *testing.T) {
	dir := t.TempDir()
	model, _ := loraFixture(t, dir)
	photo := filepath.Join(dir, "p0.png")
	if _, stderr, code := runArgs(t, "diagnose", "--model", model, "--image-max-pixels", "40000", "--format", "jsonl", photo); code != 0 {
		t.Fatalf("diagnose with --image-max-pixels: exit %d, %s", code, stderr)
	}
	if _, stderr, code := runArgs(t, "diagnose", "--model", model, "--image-min-pixels", "90000", "--image-max-pixels", "40000", photo); code == 0 || !strings.Contains(stderr, "image size limits") {
		t.Errorf("min > max: exit %d, stderr %s", code, stderr)
	}
}
