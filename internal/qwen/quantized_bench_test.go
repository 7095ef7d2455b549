package qwen

import (
	"path/filepath"
	"testing"

	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/quant"
	"github.com/acdtcm/acdtcm/internal/tokenizer"
)

// BenchmarkGenerateQuantized decodes 16 tokens after a short text prompt with the small
// preset (bf16 on disk, float32 in memory) and its int8/nf4/q4_0 copies (everything but
// rank-1 tensors quantized). tok/s counts generated tokens; the prompt is ~20 tokens.
func BenchmarkGenerateQuantized(b *testing.B) {
	root := b.TempDir()
	src := filepath.Join(root, "bf16")
	if _, err := InitCheckpoint(src, InitOptions{Preset: PresetSmall, Seed: 1, BF16: true}); err != nil {
		b.Fatal(err)
	}
	backend, err := mlbackend.New("go")
	if err != nil {
		b.Fatal(err)
	}
	prompt := Prompt{Messages: []tokenizer.Message{tokenizer.TextMessage("user", "Grade my acne.")}}
	for _, m := range []string{"bf16", "int8", "nf4", "q4_0"} {
		b.Run(m, func(b *testing.B) {
			dir := src
			if m != "bf16" {
				dir = filepath.Join(root, m)
				if _, err := quant.ConvertCheckpoint(src, dir, quant.ConvertOptions{Method: quant.Method(m), Keep: []string{"none"}, Canonical: CanonicalName}); err != nil {
					b.Fatal(err)
				}
			}
			model, err := Load(dir, backend)
			if err != nil {
				b.Fatal(err)
			}
			gc := model.Generation
			gc.StopTokens, gc.MaxNewTokens = nil, 16
			if _, err := model.Generate([]Prompt{prompt}, gc); err != nil { // compile
				b.Fatal(err)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := model.Generate([]Prompt{prompt}, gc); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(16*b.N)/b.Elapsed().Seconds(), "tok/s")
		})
	}
}
