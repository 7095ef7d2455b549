package qwen

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/quant"
	"github.com/acdtcm/acdtcm/internal/safetensors"
)

// logitStats compares quantized logits q with the float32 reference f over all positions:
// the max absolute difference divided by the reference's standard deviation, and the share
// of positions whose argmax agrees, plus the RMS difference over the same standard deviation.
func logitStats(f, q []float32, vocab int) (maxRel, rmsRel, agree float64) {
	var mean, sq float64
	for _, v := range f {
		mean += float64(v)
	}
	mean /= float64(len(f))
	for _, v := range f {
		sq += (float64(v) - mean) * (float64(v) - mean)
	}
	std := math.Sqrt(sq / float64(len(f)))
	maxDiff, sqDiff := 0.0, 0.0
	for i := range f {
		d := float64(f[i] - q[i])
		maxDiff = math.Max(maxDiff, math.Abs(d))
		sqDiff += d * d
	}
	same := 0
	for p := 0; p < len(f)/vocab; p++ {
		if argmax(f[p*vocab:(p+1)*vocab]) == argmax(q[p*vocab:(p+1)*vocab]) {
			same++
		}
	}
	return maxDiff / std, math.Sqrt(sqDiff/float64(len(f))) / std, float64(same) / float64(len(f)/vocab)
}

// TestQuantizedTinyLogits quantizes a random tiny checkpoint with every method and compares
// the full-forward logits (image prompt, all positions) with the float32 model's. The
// bounds are the measured values (see the log) with headroom; random weights are harder
// than trained ones (no structure for the argmax to rely on).
func TestQuantizedTinyLogits(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "f32")
	if _, err := InitCheckpoint(src, InitOptions{Preset: PresetTiny, Seed: 11}); err != nil {
		t.Fatal(err)
	}
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	ref, err := Load(src, backend)
	if err != nil {
		t.Fatal(err)
	}
	prompt := imagePrompt(testImage(84, 56, 5), "Grade this photo?")
	want, _, err := ref.Forward([]Prompt{prompt})
	if err != nil {
		t.Fatal(err)
	}
	V := ref.Config.Text.VocabSize
	cases := []struct {
		m        quant.Method
		keep     []string
		maxRel   float64 // max |Δlogit| / std(logits)
		rmsRel   float64 // RMS Δlogit / std(logits)
		minAgree float64 // share of positions with the same argmax
	}{
		{quant.Int8, nil, 0.07, 0.02, 0.95},
		{quant.Q8_0, nil, 0.07, 0.02, 0.95},
		{quant.Q4_0, nil, 0.9, 0.3, 0.6},
		{quant.NF4, nil, 1.2, 0.3, 0.6},
		{quant.Int8, []string{"none"}, 0.09, 0.03, 0.95},
		{quant.NF4, []string{"none"}, 1.6, 0.4, 0.55},
	}
	for _, c := range cases {
		name := string(c.m)
		if c.keep != nil {
			name += "-" + strings.Join(c.keep, ",")
		}
		t.Run(name, func(t *testing.T) {
			dst := filepath.Join(root, name)
			rep, err := quant.ConvertCheckpoint(src, dst, quant.ConvertOptions{Method: c.m, Keep: c.keep, Canonical: CanonicalName})
			if err != nil {
				t.Fatal(err)
			}
			m, err := Load(dst, backend)
			if err != nil {
				t.Fatal(err)
			}
			if !IsQuantized(m.Ctx, "model.layers.0.mlp.up_proj.weight") || IsQuantized(m.Ctx, "model.norm.weight") {
				t.Fatal("up_proj should be quantized and model.norm kept")
			}
			if got := IsQuantized(m.Ctx, "visual.blocks.0.attn.qkv.weight"); got != (c.keep != nil) {
				t.Errorf("vision qkv quantized = %v with keep %v", got, c.keep)
			}
			got, _, err := m.Forward([]Prompt{prompt})
			if err != nil {
				t.Fatal(err)
			}
			rel, rms, agree := logitStats(want, got, V)
			t.Logf("%s: %d tensors quantized, weights %d -> %d bytes, weight rel RMS %.4f; logits max|Δ|/std %.4f, RMS Δ/std %.4f, argmax agreement %.3f over %d positions",
				name, rep.QuantizedCount, rep.BytesBefore, rep.BytesAfter, rep.OverallRelRMS, rel, rms, agree, len(want)/V)
			if rel > c.maxRel || rms > c.rmsRel || agree < c.minAgree {
				t.Errorf("logits too far from float32: max|Δ|/std %.4f (bound %.2f), RMS Δ/std %.4f (bound %.2f), agreement %.3f (bound %.2f)", rel, c.maxRel, rms, c.rmsRel, agree, c.minAgree)
			}
		})
	}
}

// TestQuantizedFileErrors: corrupt or mismatched quantized checkpoints fail to load with
// an error naming the problem.
func TestQuantizedFileErrors(t *testing.T) {
	root := t.TempDir()
	src := filepath.Join(root, "f32")
	if _, err := InitCheckpoint(src, InitOptions{Preset: PresetTiny, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	convert := func(name string, m quant.Method) string {
		dst := filepath.Join(root, name)
		if _, err := quant.ConvertCheckpoint(src, dst, quant.ConvertOptions{Method: m, Canonical: CanonicalName}); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	nf4 := convert("nf4", quant.NF4)
	q40 := convert("q4_0", quant.Q4_0)
	int8 := convert("int8", quant.Int8)
	copyFile := func(from, to string) {
		data, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name  string
		setup func(dir string)
		want  string
	}{
		{"weights of another method", func(dir string) {
			copyFile(filepath.Join(q40, "model.safetensors"), filepath.Join(dir, "model.safetensors"))
		}, "quantized as"},
		{"config without quantization_config", func(dir string) {
			copyFile(filepath.Join(src, "config.json"), filepath.Join(dir, "config.json"))
		}, "no quantization_config"},
		{"quantized config over float weights", func(dir string) {
			copyFile(filepath.Join(src, "model.safetensors"), filepath.Join(dir, "model.safetensors"))
		}, "not written by acdtcm quantize"},
		{"truncated weights", func(dir string) {
			p := filepath.Join(dir, "model.safetensors")
			data, _ := os.ReadFile(p)
			os.WriteFile(p, data[:len(data)-100], 0o644)
		}, "truncated"},
		{"unknown method", func(dir string) {
			p := filepath.Join(dir, "config.json")
			data, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(data), `"method": "nf4"`, `"method": "int3"`, 1)), 0o644)
		}, "unknown quantization method"},
		{"scale missing", func(dir string) {
			p := filepath.Join(dir, "model.safetensors")
			f, err := safetensors.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			var keep []safetensors.Tensor
			for _, n := range f.Names() {
				if n == "model.layers.1.mlp.up_proj.weight"+quant.SuffixScaleAbsmax {
					continue
				}
				raw, info, _ := f.Bytes(n)
				keep = append(keep, safetensors.Tensor{Name: n, DType: info.DType, Shape: info.Shape, Data: append([]byte(nil), raw...)})
			}
			md := f.Metadata
			f.Close()
			if err := safetensors.WriteFile(p, keep, md); err != nil {
				t.Fatal(err)
			}
		}, "qscale_absmax is missing"},
		{"packed data of the wrong size", func(dir string) {
			copyFile(filepath.Join(int8, "model.safetensors"), filepath.Join(dir, "model.safetensors"))
			p := filepath.Join(dir, "config.json")
			data, _ := os.ReadFile(p)
			s := strings.Replace(string(data), `"method": "nf4"`, `"method": "int8"`, 1)
			s = strings.Replace(s, `"bits": 4`, `"bits": 8`, 1)
			s = strings.Replace(s, `"block_size": 64`, `"block_size": 0`, 1)
			s = strings.Replace(s, `"double_quant": true`, `"double_quant": false`, 1)
			os.WriteFile(p, []byte(s), 0o644)
			// metadata says int8 too, so only the model config mismatch is left: shrink the model
			p = filepath.Join(dir, "config.json")
			data, _ = os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(data), `"intermediate_size": 128`, `"intermediate_size": 96`, 1)), 0o644)
		}, "does not match"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(root, "case-"+strings.ReplaceAll(c.name, " ", "-"))
			os.MkdirAll(dir, 0o755)
			for _, n := range []string{"config.json", "model.safetensors", "tokenizer.json", "preprocessor_config.json", "generation_config.json"} {
				copyFile(filepath.Join(nf4, n), filepath.Join(dir, n))
			}
			c.setup(dir)
			_, err := Load(dir, backend)
			if err == nil {
				t.Fatalf("loading succeeded, want an error containing %q", c.want)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}
}

// TestQuantizedLayout3B computes (does not measure) the weights of a Qwen2.5-VL-3B-shaped
// checkpoint as acdtcm holds them in memory for each method, with the default keep list
// (embeddings, norms, lm_head, vision tower in float32) and with only rank-1 tensors kept,
// from the real 3B config.json. The numbers are logged for BENCHMARKS.md; the test checks
// NF4's quantized tensors cost QLoRA's 4.127 bits per weight.
func TestQuantizedLayout3B(t *testing.T) {
	cfg, err := LoadConfig(filepath.Join("testdata", "configs", "original-3b.json"))
	if err != nil {
		t.Fatal(err)
	}
	text, vision := cfg.NumParameters()
	t.Logf("3B: %d parameters (text %d, vision %d); bf16 on disk %.2f GiB, float32 in memory %.2f GiB",
		text+vision, text, vision, float64(2*(text+vision))/(1<<30), float64(4*(text+vision))/(1<<30))
	for _, keep := range [][]string{quant.DefaultKeep, {"none"}} {
		rule, err := quant.NewKeepRule(keep)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range quant.Methods {
			var mem, qElems, qMem int64
			for _, s := range cfg.ExpectedTensors() {
				n := int64(1)
				for _, d := range s.Shape {
					n *= int64(d)
				}
				if rule.Keep(s.Name, len(s.Shape)) {
					mem += 4 * n // loaded as float32
					continue
				}
				_, b := quant.LayoutBytes(m, s.Shape, quant.Options{})
				mem += b
				qElems += n
				qMem += b
			}
			bits := 8 * float64(qMem) / float64(qElems)
			t.Logf("keep %-32s %-5s: in memory %.2f GiB (quantized tensors %.3f bits/weight)", strings.Join(keep, ","), m, float64(mem)/(1<<30), bits)
			if m == quant.NF4 && math.Abs(bits-4.127) > 0.002 {
				t.Errorf("nf4 costs %.4f bits per weight, QLoRA's layout 4.127", bits)
			}
		}
	}
}
