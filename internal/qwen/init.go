package qwen

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/safetensors"
	"github.com/acdtcm/acdtcm/internal/tokenizer"
)

// Preset names a randomly initialised configuration for tests and demos.
type Preset string

// The presets of `acdtcm model init`.
const (
	// PresetTiny is the smallest model that still exercises 2x2 merging, several attention
	// windows (window 56 px) and a full-attention block.
	PresetTiny Preset = "tiny"
	// PresetSmall is a larger CPU-trainable configuration.
	PresetSmall Preset = "small"
)

// qwenSpecialTokens are Qwen2.5's added tokens in id order (151643...151664).
var qwenSpecialTokens = []struct {
	content string
	special bool
}{
	{"<|endoftext|>", true}, {"<|im_start|>", true}, {"<|im_end|>", true}, {"<|object_ref_start|>", true},
	{"<|object_ref_end|>", true}, {"<|box_start|>", true}, {"<|box_end|>", true}, {"<|quad_start|>", true},
	{"<|quad_end|>", true}, {"<|vision_start|>", true}, {"<|vision_end|>", true}, {"<|vision_pad|>", true},
	{"<|image_pad|>", true}, {"<|video_pad|>", true}, {"<tool_call>", false}, {"</tool_call>", false},
	{"<|fim_prefix|>", false}, {"<|fim_middle|>", false}, {"<|fim_suffix|>", false}, {"<|fim_pad|>", false},
	{"<|repo_name|>", false}, {"<|file_sep|>", false},
}

// InitOptions configure InitCheckpoint.
type InitOptions struct {
	Preset Preset
	// Tokenizer is a tokenizer.json to copy (e.g. a real Qwen one). When empty, a byte-level
	// tokenizer with 256 byte tokens and Qwen's special tokens is generated, which keeps the
	// vocabulary (and the embedding matrix) tiny.
	Tokenizer string
	Seed      uint64
	// BF16 stores weights in bfloat16 (as real checkpoints do) instead of float32.
	BF16 bool
}

// presetConfig returns the config.json document of a preset for a vocabulary whose Qwen
// special tokens start at firstSpecial.
func presetConfig(p Preset, vocab, firstSpecial int) (map[string]any, error) {
	var text, vision map[string]any
	switch p {
	case PresetTiny:
		text = map[string]any{"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
			"rope_scaling": map[string]any{"type": "mrope", "mrope_section": []int{2, 3, 3}}}
		vision = map[string]any{"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 2, "out_hidden_size": 64,
			"window_size": 56, "fullatt_block_indexes": []int{1}}
	case PresetSmall:
		text = map[string]any{"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4, "num_attention_heads": 8, "num_key_value_heads": 2,
			"rope_scaling": map[string]any{"type": "mrope", "mrope_section": []int{4, 6, 6}}}
		vision = map[string]any{"depth": 4, "hidden_size": 128, "intermediate_size": 256, "num_heads": 4, "out_hidden_size": 256,
			"window_size": 112, "fullatt_block_indexes": []int{3}}
	default:
		return nil, fmt.Errorf("unknown preset %q (want tiny or small)", p)
	}
	doc := map[string]any{
		"architectures": []string{"Qwen2_5_VLForConditionalGeneration"}, "model_type": "qwen2_5_vl",
		"hidden_act": "silu", "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "max_position_embeddings": 32768,
		"vocab_size": vocab, "tie_word_embeddings": true, "torch_dtype": "float32", "use_sliding_window": false,
		"bos_token_id": firstSpecial, "eos_token_id": firstSpecial + 2, "vision_start_token_id": firstSpecial + 9,
		"vision_end_token_id": firstSpecial + 10, "vision_token_id": firstSpecial + 11, "image_token_id": firstSpecial + 12,
		"video_token_id": firstSpecial + 13, "transformers_version": "4.57.0",
	}
	for k, v := range text {
		doc[k] = v
	}
	vision["hidden_act"] = "silu"
	vision["patch_size"] = 14
	vision["spatial_merge_size"] = 2
	vision["temporal_patch_size"] = 2
	vision["in_channels"] = 3
	vision["tokens_per_second"] = 2
	doc["vision_config"] = vision
	return doc, nil
}

// byteLevelTokenizerJSON builds a tokenizer.json with the 256 byte tokens and Qwen's special
// tokens at ids 256.. (no merges: every byte is one token).
func byteLevelTokenizerJSON() ([]byte, int) {
	vocab := map[string]int{}
	for b, tok := range tokenizer.ByteTokens() {
		vocab[tok] = b
	}
	var added []map[string]any
	for i, t := range qwenSpecialTokens {
		added = append(added, map[string]any{"id": 256 + i, "content": t.content, "single_word": false, "lstrip": false,
			"rstrip": false, "normalized": false, "special": t.special})
	}
	doc := map[string]any{
		"version": "1.0", "added_tokens": added, "normalizer": map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": tokenizer.DefaultPattern}, "behavior": "Isolated", "invert": false},
			map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false}}},
		"decoder": map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
		"model":   map[string]any{"type": "BPE", "vocab": vocab, "merges": []string{}, "ignore_merges": false},
	}
	data, _ := json.MarshalIndent(doc, "", " ")
	return data, 256
}

// InitCheckpoint writes a randomly initialised Qwen2.5-VL checkpoint in the Hugging Face
// layout (config.json, model.safetensors, tokenizer files, preprocessor and generation
// configs) to dir. Every file is written atomically.
func InitCheckpoint(dir string, opts InitOptions) (*Config, error) {
	var tokJSON []byte
	vocab, firstSpecial := 0, 0
	if opts.Tokenizer != "" {
		data, err := os.ReadFile(opts.Tokenizer)
		if err != nil {
			return nil, fmt.Errorf("read tokenizer: %w", err)
		}
		tokJSON = data
		firstSpecial, vocab = 151643, 151936
		if !strings.Contains(string(data), `"<|image_pad|>"`) {
			return nil, fmt.Errorf("%s is not a Qwen tokenizer (no <|image_pad|> token)", opts.Tokenizer)
		}
	} else {
		tokJSON, firstSpecial = byteLevelTokenizerJSON()
		vocab = 256 + len(qwenSpecialTokens) + 10 // a few padding rows, as real vocab_size values have
	}
	doc, err := presetConfig(opts.Preset, vocab, firstSpecial)
	if err != nil {
		return nil, err
	}
	if opts.BF16 {
		doc["torch_dtype"] = "bfloat16"
	}
	cfgJSON, _ := json.MarshalIndent(doc, "", "  ")
	cfg, err := ParseConfig(cfgJSON)
	if err != nil {
		return nil, fmt.Errorf("preset %s: %w", opts.Preset, err)
	}
	rng := rand.New(rand.NewPCG(opts.Seed, 0xacd7c3))
	var tensors []safetensors.Tensor
	for _, spec := range cfg.ExpectedTensors() {
		n := 1
		for _, d := range spec.Shape {
			n *= d
		}
		vals := make([]float32, n)
		isNorm := strings.HasSuffix(spec.Name, "norm.weight") || strings.HasSuffix(spec.Name, "norm1.weight") ||
			strings.HasSuffix(spec.Name, "norm2.weight") || strings.HasSuffix(spec.Name, "ln_q.weight")
		for i := range vals {
			if isNorm {
				vals[i] = 1 + 0.1*float32(rng.NormFloat64())
			} else {
				vals[i] = 0.05 * float32(rng.NormFloat64())
			}
		}
		if opts.BF16 {
			tensors = append(tensors, safetensors.Tensor{Name: spec.Name, DType: safetensors.BF16, Shape: spec.Shape, Data: safetensors.Float32ToBF16(vals)})
		} else {
			tensors = append(tensors, safetensors.F32Tensor(spec.Name, spec.Shape, vals))
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := safetensors.WriteFile(filepath.Join(dir, "model.safetensors"), tensors, map[string]string{"format": "pt"}); err != nil {
		return nil, err
	}
	maxPixels := 28 * 28 * 64
	if opts.Preset == PresetSmall {
		maxPixels = 28 * 28 * 256
	}
	files := map[string]any{
		"preprocessor_config.json": map[string]any{"min_pixels": 3136, "max_pixels": maxPixels, "patch_size": 14, "temporal_patch_size": 2,
			"merge_size": 2, "image_mean": []float64{0.48145466, 0.4578275, 0.40821073}, "image_std": []float64{0.26862954, 0.26130258, 0.27577711},
			"image_processor_type": "Qwen2VLImageProcessor", "processor_class": "Qwen2_5_VLProcessor", "do_resize": true, "do_rescale": true,
			"do_normalize": true, "do_convert_rgb": true, "resample": 3, "rescale_factor": 1.0 / 255},
		"generation_config.json": map[string]any{"bos_token_id": firstSpecial, "pad_token_id": firstSpecial,
			"eos_token_id": []int{firstSpecial + 2, firstSpecial}, "do_sample": false, "repetition_penalty": 1.0},
		"tokenizer_config.json": map[string]any{"tokenizer_class": "Qwen2Tokenizer", "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>",
			"bos_token": nil, "add_prefix_space": false, "errors": "replace", "model_max_length": 32768, "split_special_tokens": false},
	}
	for name, body := range files {
		data, _ := json.MarshalIndent(body, "", "  ")
		if err := fsutil.WriteFileAtomic(filepath.Join(dir, name), data, 0o644); err != nil {
			return nil, err
		}
	}
	if err := fsutil.WriteFileAtomic(filepath.Join(dir, "config.json"), cfgJSON, 0o644); err != nil {
		return nil, err
	}
	if err := fsutil.WriteAtomic(filepath.Join(dir, "tokenizer.json"), 0o644, func(w io.Writer) error {
		_, err := w.Write(tokJSON)
		return err
	}); err != nil {
		return nil, err
	}
	return cfg, nil
}
