package cli

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/grader"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/quant"
	"github.com/acdtcm/acdtcm/internal/qwen"
	"github.com/acdtcm/acdtcm/internal/severity"
)

func TestQuantizeCommand(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "tiny")
	if code, _, errOut := runCLI(t, "", "model", "init", "--preset", "tiny", "--out", src); code != 0 {
		t.Fatalf("model init: %s", errOut)
	}
	cases := []struct {
		method string
		keep   string
		bench  bool
	}{
		{"nf4", "", true},
		{"int8", "none", false},
		{"q8_0", "embeddings,lm_head", false},
		{"q4_0", "vision,model.layers.0.*", false},
	}
	for _, c := range cases {
		t.Run(c.method, func(t *testing.T) {
			out := filepath.Join(root, "q-"+c.method)
			reportPath := filepath.Join(root, c.method+".json")
			args := []string{"quantize", "--method", c.method, "--report", reportPath, "--bench-tokens", "3"}
			if c.keep != "" {
				args = append(args, "--keep", c.keep)
			}
			if !c.bench {
				args = append(args, "--bench=false")
			}
			code, stdout, errOut := runCLI(t, "", append(args, src, out)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			for _, want := range []string{"weights on disk", "worst", c.method} {
				if !strings.Contains(stdout, want) {
					t.Errorf("output lacks %q:\n%s", want, stdout)
				}
			}
			rep := readQuantizeReport(t, reportPath)
			if rep.Convert.BytesAfter >= rep.Convert.BytesBefore || rep.Convert.QuantizedCount == 0 {
				t.Errorf("sizes %d -> %d, %d quantized", rep.Convert.BytesBefore, rep.Convert.BytesAfter, rep.Convert.QuantizedCount)
			}
			if c.bench != (rep.Quantized != nil) {
				t.Errorf("bench=%v but report has quantized stats: %v", c.bench, rep.Quantized != nil)
			}
			if c.bench && (rep.Quantized.WeightBytes >= rep.Original.WeightBytes || rep.ArgmaxAgreement <= 0 || rep.Quantized.PrefillTokPerSec <= 0 || rep.Quantized.GenerateTokens != 3) {
				t.Errorf("implausible bench: %+v %+v agreement %g", rep.Original, rep.Quantized, rep.ArgmaxAgreement)
			}
			qc, err := quant.ReadConfig(out)
			if err != nil || qc == nil || string(qc.Method) != c.method {
				t.Fatalf("quantization_config: %+v, %v", qc, err)
			}
			for _, f := range []string{"tokenizer.json", "preprocessor_config.json", "generation_config.json", "tokenizer_config.json"} {
				if _, err := os.Stat(filepath.Join(out, f)); err != nil {
					t.Errorf("%s not copied: %v", f, err)
				}
			}
			backend, _ := mlbackend.New("go")
			m, err := qwen.Load(out, backend)
			if err != nil {
				t.Fatal(err)
			}
			quantizedEmbed := qwen.IsQuantized(m.Ctx, "model.embed_tokens.weight")
			wantEmbed := c.keep != "" && !strings.Contains(c.keep, "embeddings")
			if quantizedEmbed != wantEmbed {
				t.Errorf("embeddings quantized = %v with --keep %q", quantizedEmbed, c.keep)
			}
			if c.method == "q4_0" && qwen.IsQuantized(m.Ctx, "model.layers.0.mlp.up_proj.weight") {
				t.Error("the keep pattern model.layers.0.* was ignored")
			}
		})
	}
	t.Run("errors", func(t *testing.T) {
		errCases := []struct {
			args []string
			code int
			want string
		}{
			{[]string{"quantize", "--method", "int4", src, filepath.Join(root, "x")}, 2, "unknown quantization method"},
			{[]string{"quantize", "--method", "nf4", "--bench=false", filepath.Join(root, "q-int8"), filepath.Join(root, "y")}, 2, "already quantized"},
			{[]string{"quantize", "--method", "nf4", "--bench=false", src, src}, 2, "is the input directory"},
			{[]string{"quantize", "--method", "nf4", "--bench=false", filepath.Join(root, "missing"), filepath.Join(root, "z")}, 2, "no config.json"},
			{[]string{"quantize", "--method", "nf4", "--keep", "none,vision", "--bench=false", src, filepath.Join(root, "w")}, 2, "cannot be combined"},
		}
		for _, c := range errCases {
			code, _, errOut := runCLI(t, "", c.args...)
			if code != c.code || !strings.Contains(errOut, c.want) {
				t.Errorf("%v: exit %d (want %d), stderr %q (want %q)", c.args, code, c.code, errOut, c.want)
			}
		}
	})
}

// TestQuantizeBenchQuantizedOnly: --bench-original=false measures only the quantized model
// (no logit comparison), and the JSON report is written.
func TestQuantizeBenchQuantizedOnly(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "tiny")
	if code, _, errOut := runCLI(t, "", "model", "init", "--preset", "tiny", "--out", src); code != 0 {
		t.Fatalf("model init: %s", errOut)
	}
	reportPath := filepath.Join(root, "int8.json")
	code, stdout, errOut := runCLI(t, "", "quantize", "--method", "int8", "--bench-original=false", "--bench-tokens", "2",
		"--report", reportPath, src, filepath.Join(root, "q"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "(not measured)") || !strings.Contains(errOut, "benchmarked quantized") {
		t.Errorf("output:\n%s\nstderr:\n%s", stdout, errOut)
	}
	rep := readQuantizeReport(t, reportPath)
	if rep.Original != nil || rep.Quantized == nil || rep.Quantized.GenerateTokens != 2 || rep.ArgmaxAgreement != 0 {
		t.Errorf("report: original %+v quantized %+v agreement %g", rep.Original, rep.Quantized, rep.ArgmaxAgreement)
	}
	// With bf16 compute the kept float tensors are held in bfloat16: fewer bytes in memory.
	bf16Path := filepath.Join(root, "int8-bf16.json")
	if code, _, errOut := runCLI(t, "", "quantize", "--method", "int8", "--bench-original=false", "--bench-tokens", "2",
		"--compute-dtype", "bf16", "--report", bf16Path, src, filepath.Join(root, "q-bf16")); code != 0 {
		t.Fatalf("bf16 bench: exit %d: %s", code, errOut)
	}
	bf := readQuantizeReport(t, bf16Path)
	if rep.ComputeDType != "float32" || bf.ComputeDType != "bfloat16" || bf.Quantized == nil || bf.Quantized.WeightBytes >= rep.Quantized.WeightBytes {
		t.Errorf("compute dtypes %q/%q; weights in memory float32 %d, bf16 %+v", rep.ComputeDType, bf.ComputeDType, rep.Quantized.WeightBytes, bf.Quantized)
	}
	if code, _, errOut := runCLI(t, "", "quantize", "--method", "int8", "--compute-dtype", "fp8", src, filepath.Join(root, "q-bad")); code != 2 || !strings.Contains(errOut, "--compute-dtype") {
		t.Errorf("--compute-dtype fp8: exit %d, %s", code, errOut)
	}
}

// randomGraderCheckpoint writes a randomly initialised small grader checkpoint.
func randomGraderCheckpoint(t *testing.T, path string) {
	t.Helper()
	mc := grader.ModelConfig{InputSize: 32, Patch: 2, PatchOut: 8, Layers: []grader.Layer{{Channels: 16, Stride: 2}}, GradeHidden: 8, Sigma: 1}
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	exec, err := context.NewExec(backend, ctx, func(ctx *context.Context, images *graph.Node) *graph.Node {
		return grader.BuildModel(ctx, mc, images).Logits
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.Exec(tensors.FromShape(shapes.Make(dtypes.Float32, 1, 32, 32, 3))); err != nil {
		t.Fatal(err)
	}
	if err := grader.SaveCheckpoint(path, ctx, mc, nil, nil, true); err != nil {
		t.Fatal(err)
	}
}

func TestQuantizeGraderCommand(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "grader.ckpt")
	randomGraderCheckpoint(t, src)
	out, reportPath := filepath.Join(root, "g-q4_0"), filepath.Join(root, "g.json")
	code, stdout, errOut := runCLI(t, "", "quantize", "--method", "q4_0", "--report", reportPath, src, out)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(stdout, "photos/s") || !strings.Contains(stdout, "/model/conv0/weights") {
		t.Errorf("output lacks the grader bench or tensor table:\n%s", stdout)
	}
	rep := readQuantizeReport(t, reportPath)
	if rep.Grader == nil || rep.Grader.Quantized.PhotosPerSec <= 0 || rep.Grader.GradeAgreement <= 0 {
		t.Fatalf("grader bench missing or empty: %+v", rep.Grader)
	}
	if rep.Convert.BytesAfter >= rep.Convert.BytesBefore {
		t.Errorf("sizes %d -> %d", rep.Convert.BytesBefore, rep.Convert.BytesAfter)
	}
	if _, err := quant.LoadGrader(out, "go"); err != nil {
		t.Fatal(err)
	}
}

// TestTrainLoRAOnQuantizedBase: `acdtcm train --model qwen-lora` accepts an nf4 base (QLoRA):
// the base loads packed and dequantizes in the graph, the adapters train in float32.
func TestTrainLoRAOnQuantizedBase(t *testing.T) {
	dir := t.TempDir()
	model, qmodel := filepath.Join(dir, "tiny"), filepath.Join(dir, "tiny-nf4")
	if code, _, errOut := runCLI(t, "", "model", "init", "--preset", "tiny", "--out", model); code != 0 {
		t.Fatal(errOut)
	}
	if code, _, errOut := runCLI(t, "", "quantize", "--method", "nf4", "--bench=false", model, qmodel); code != 0 {
		t.Fatal(errOut)
	}
	var recs []dataset.Record
	for i := 0; i < 4; i++ {
		img := image.NewRGBA(image.Rect(0, 0, 56, 56))
		for p := 0; p < 56*56; p++ {
			img.Set(p%56, p/56, color.RGBA{uint8(50 * i), uint8(p), 90, 255})
		}
		name := fmt.Sprintf("q%d.png", i)
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, img)
		f.Close()
		split := "train"
		if i == 3 {
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
	code, stdout, errOut := runCLI(t, "", "train", "--config", filepath.Join("..", "..", "configs", "train-qwen-lora.yaml"),
		"--base-model", qmodel, "--data", manifest, "--out", out, "--epochs", "1", "--batch-size", "2", "--grad-accum", "1",
		"--lora-r", "2", "--warmup-steps", "1", "--progress=false")
	if code != 0 {
		t.Fatalf("QLoRA training on the nf4 base: exit %d\n%s\n%s", code, stdout, errOut)
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoint-best", "adapter_model.safetensors")); err != nil {
		t.Errorf("no adapter written: %v", err)
	}
}

// readQuantizeReport reads the JSON report that --report wrote.
func readQuantizeReport(t *testing.T, path string) quantizeReport {
	t.Helper()
	var rep quantizeReport
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rep); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rep
}
