// Package models opens the grading model a command asks for: the built-in grader embedded
// in the binary, a grader checkpoint file, a quantized grader directory written by acdtcm
// quantize, or a Qwen2.5-VL checkpoint directory, quantized or not (optionally with a PEFT
// LoRA adapter), or a model on an OpenAI-compatible server such as vLLM
// (Backend "openai", see package remote). Every model is returned as an infer.Model, so diagnose, eval
// and serve treat them alike.
package models

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/acdtcm/acdtcm/internal/grader"
	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/quant"
	"github.com/acdtcm/acdtcm/internal/qwen"
	"github.com/acdtcm/acdtcm/internal/remote"
)

// Builtin names the grader embedded in the binary.
const Builtin = "builtin"

// Options select the model.
type Options struct {
	// Model is "builtin" (or empty), a grader checkpoint file, a quantized grader directory,
	// or a Qwen2.5-VL directory (quantized or not).
	Model string
	// Adapter is a PEFT LoRA adapter directory for a Qwen2.5-VL model.
	Adapter string
	// Backend is the GoMLX backend spec (mlbackend.New), e.g. "go" or "xla:cuda".
	Backend string
	// MinPixels and MaxPixels override a Qwen model's image size limits when positive
	// (else Remote's, the --image-min/max-pixels flags, when positive); otherwise those saved
	// with Adapter by acdtcm train apply, else the checkpoint's.
	MinPixels, MaxPixels int
	// ComputeDType is a Qwen model's weight and compute dtype (qwen.ParseComputeDType):
	// empty or "float32", or "bf16".
	ComputeDType string
	// Endpoint is the OpenAI-compatible API base URL (e.g. http://vllm:8000/v1) used when
	// Backend is "openai"; Model is then the name the server serves the model under.
	Endpoint string
	// APIKeyEnv names the environment variable holding that server's API key
	// (default OPENAI_API_KEY).
	APIKeyEnv string
	// Remote tunes the openai backend (concurrency, timeouts, retries, image size, see
	// remote.AddFlags); Endpoint and APIKeyEnv above override its fields when set.
	Remote remote.Flags
}

// Open loads the model described by opts.
func Open(opts Options) (infer.Model, error) {
	if opts.Backend == remote.BackendName {
		return openRemote(opts)
	}
	if opts.Model == "" || opts.Model == Builtin {
		if opts.Adapter != "" {
			return nil, fmt.Errorf("--adapter applies to Qwen2.5-VL models, not the built-in grader")
		}
		m, err := grader.LoadWithBackend("", opts.Backend)
		if err != nil {
			return nil, err
		}
		return &grader.InferModel{M: m}, nil
	}
	st, err := os.Stat(opts.Model)
	if err != nil {
		return nil, fmt.Errorf("model %s: %w", opts.Model, err)
	}
	if !st.IsDir() {
		if opts.Adapter != "" {
			return nil, fmt.Errorf("--adapter applies to Qwen2.5-VL models, not grader checkpoints")
		}
		m, err := grader.LoadWithBackend(opts.Model, opts.Backend)
		if err != nil {
			return nil, err
		}
		return &grader.InferModel{M: m, Name: "acdtcm-grader:" + filepath.Base(opts.Model), Version: grader.WeightsVersion(opts.Model)}, nil
	}
	if quant.IsGraderDir(opts.Model) { // a grader written by acdtcm quantize
		if opts.Adapter != "" {
			return nil, fmt.Errorf("--adapter applies to Qwen2.5-VL models, not graders")
		}
		return quant.OpenGrader(opts.Model, opts.Backend)
	}
	if _, err := os.Stat(filepath.Join(opts.Model, "config.json")); err != nil {
		return nil, fmt.Errorf("model directory %s has no config.json (expected a Hugging Face Qwen2.5-VL checkpoint)", opts.Model)
	}
	backend, err := mlbackend.NewForInference(opts.Backend)
	if err != nil {
		return nil, err
	}
	qc, err := quant.ReadConfig(opts.Model)
	if err != nil {
		return nil, err
	}
	dtype, err := qwen.ParseComputeDType(opts.ComputeDType)
	if err != nil {
		return nil, err
	}
	m, err := qwen.LoadWith(opts.Model, backend, qwen.LoadOptions{ComputeDType: dtype})
	if err != nil {
		return nil, err
	}
	version := filepath.Base(filepath.Clean(opts.Model))
	if opts.Adapter != "" {
		// The adapter brings the image size limits it was trained with; explicit options win.
		if _, _, err := m.LoadAdapterWithProcessor(opts.Adapter); err != nil {
			return nil, err
		}
		version += "+lora:" + filepath.Base(filepath.Clean(opts.Adapter))
	}
	if opts.MinPixels <= 0 {
		opts.MinPixels = opts.Remote.MinPixels
	}
	if opts.MaxPixels <= 0 {
		opts.MaxPixels = opts.Remote.MaxPixels
	}
	if err := m.Processor.OverrideLimits(opts.MinPixels, opts.MaxPixels); err != nil {
		return nil, fmt.Errorf("image size limits of %s: %w", opts.Model, err)
	}
	g, err := qwen.NewGrader(m, version, backend.Name())
	if err != nil {
		return nil, err
	}
	if qc != nil {
		g.Quantization = string(qc.Method)
	}
	return g, nil
}

// openRemote connects to an OpenAI-compatible server (--backend openai).
func openRemote(opts Options) (infer.Model, error) {
	if opts.Model == "" || opts.Model == Builtin {
		return nil, fmt.Errorf("--backend openai needs --model NAME, the name the server serves the model under")
	}
	if opts.Adapter != "" {
		return nil, fmt.Errorf("--adapter does not apply to --backend openai: load the adapter in the server (vLLM --enable-lora --lora-modules NAME=PATH) and pass --model NAME")
	}
	f := opts.Remote
	if opts.Endpoint != "" {
		f.Endpoint = opts.Endpoint
	}
	if opts.APIKeyEnv != "" {
		f.APIKeyEnv = opts.APIKeyEnv
	}
	cfg := f.Config(opts.Model)
	if opts.MinPixels > 0 {
		cfg.MinPixels = opts.MinPixels
	}
	if opts.MaxPixels > 0 {
		cfg.MaxPixels = opts.MaxPixels
	}
	return remote.Open(context.Background(), cfg)
}
