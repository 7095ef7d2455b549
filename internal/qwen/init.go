package qwen

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/parallel"
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
	// Preset3B has the shapes of Qwen2.5-VL-3B-Instruct (config.json as released: 36 layers of
	// width 2048, 16 heads with 2 KV heads, MLP 11008, vocabulary 151,936, tied embeddings, a
	// 32-block 1280-wide vision tower): 3.75 B parameters, 7.5 GB in bfloat16. Random weights,
	// for speed and memory measurements of real-sized models (GPU benchmarks).
	Preset3B Preset = "3b"
)

// qwen3BVocab is vocab_size of Qwen2.5-VL-3B-Instruct (the tokenizer's 151,665 ids plus
// padding rows).
const qwen3BVocab = 151936

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
// special tokens start at firstSpecial. The 3b preset always has the released vocab_size
// (151,936 rows, whatever the tokenizer), so its embedding matrix has the real shape.
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
	case Preset3B:
		// Qwen/Qwen2.5-VL-3B-Instruct config.json (internal/qwen/testdata/configs/original-3b.json).
		text = map[string]any{"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "num_attention_heads": 16, "num_key_value_heads": 2,
			"rope_scaling":            map[string]any{"type": "mrope", "mrope_section": []int{16, 24, 24}},
			"max_position_embeddings": 128000, "sliding_window": 32768, "max_window_layers": 70, "attention_dropout": 0.0,
			"initializer_range": 0.02, "use_cache": true}
		vision = map[string]any{"depth": 32, "hidden_size": 1280, "intermediate_size": 3420, "num_heads": 16, "out_hidden_size": 2048,
			"window_size": 112, "fullatt_block_indexes": []int{7, 15, 23, 31}, "in_chans": 3, "spatial_patch_size": 14}
		vocab = max(vocab, qwen3BVocab)
	default:
		return nil, fmt.Errorf("unknown preset %q (want tiny, small or 3b)", p)
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

// PresetConfig is the parsed configuration of a preset with the byte-level tokenizer
// InitCheckpoint generates (or, with qwenTokenizer, Qwen's real vocabulary): the shapes a
// checkpoint written by InitCheckpoint has, without writing it.
func PresetConfig(p Preset, qwenTokenizer bool) (*Config, error) {
	vocab, first := tokenizerVocab(qwenTokenizer)
	doc, err := presetConfig(p, vocab, first)
	if err != nil {
		return nil, err
	}
	data, _ := json.Marshal(doc)
	return ParseConfig(data)
}

// tokenizerVocab is the vocab_size and first special token id of Qwen's tokenizer or of the
// generated byte-level one (256 bytes, the special tokens, a few padding rows as real
// vocab_size values have).
func tokenizerVocab(qwen bool) (vocab, firstSpecial int) {
	if qwen {
		return qwen3BVocab, 151643
	}
	return 256 + len(qwenSpecialTokens) + 10, 256
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
		vocab, firstSpecial = tokenizerVocab(true)
		if !strings.Contains(string(data), `"<|image_pad|>"`) {
			return nil, fmt.Errorf("%s is not a Qwen tokenizer (no <|image_pad|> token)", opts.Tokenizer)
		}
	} else {
		tokJSON, _ = byteLevelTokenizerJSON()
		vocab, firstSpecial = tokenizerVocab(false)
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
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	if err := writeRandomWeights(filepath.Join(dir, "model.safetensors"), cfg.ExpectedTensors(), opts); err != nil {
		return nil, err
	}
	maxPixels := 28 * 28 * 64
	switch opts.Preset {
	case PresetSmall:
		maxPixels = 28 * 28 * 256
	case Preset3B:
		maxPixels = 12845056 // as shipped with Qwen2.5-VL-*-Instruct
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

// chunkedInitElements is the parameter count from which InitCheckpoint fills tensors in
// parallel chunks with independent random streams (a variable so tests can lower it).
var chunkedInitElements int64 = 1 << 26

// initChunk is the number of elements of one independently seeded chunk.
const initChunk = 1 << 20

// isNormWeight reports whether a tensor is an RMSNorm scale (initialised around 1).
func isNormWeight(name string) bool {
	return strings.HasSuffix(name, "norm.weight") || strings.HasSuffix(name, "norm1.weight") ||
		strings.HasSuffix(name, "norm2.weight") || strings.HasSuffix(name, "ln_q.weight")
}

// writeRandomWeights streams random weights for specs into a safetensors file: norm scales
// ~ 1 + 0.1·N(0,1), everything else 0.05·N(0,1), in float32 or (opts.BF16) bfloat16.
//
// Checkpoints below chunkedInitElements parameters (tiny, small) draw every value from one
// sequential stream seeded by opts.Seed, in ExpectedTensors order (the parity fixtures depend
// on these exact values). Larger ones (3b) give each chunk of initChunk elements of tensor k
// its own stream seeded by (opts.Seed, k, chunk), filled by GOMAXPROCS workers, and hold only
// one tensor's bytes at a time: the result does not depend on the number of workers.
func writeRandomWeights(path string, specs []TensorSpec, opts InitOptions) error {
	dtype, size := safetensors.F32, 4
	if opts.BF16 {
		dtype, size = safetensors.BF16, 2
	}
	heads := make([]safetensors.Tensor, len(specs))
	index := map[string]int{}
	var total, largest int64
	for k, spec := range specs {
		heads[k] = safetensors.Tensor{Name: spec.Name, DType: dtype, Shape: spec.Shape}
		index[spec.Name] = k
		n := numElements(spec.Shape)
		total += n
		largest = max(largest, n)
	}
	md := map[string]string{"format": "pt"}
	if total < chunkedInitElements {
		rng := rand.New(rand.NewPCG(opts.Seed, 0xacd7c3))
		data := make([][]byte, len(specs))
		for k, spec := range specs {
			vals := make([]float32, numElements(spec.Shape))
			fillRandom(vals, isNormWeight(spec.Name), rng)
			data[k] = make([]byte, len(vals)*size)
			encodeValues(data[k], vals, opts.BF16)
		}
		return safetensors.WriteStreamFile(path, heads, md, func(t safetensors.Tensor) ([]byte, error) { return data[index[t.Name]], nil })
	}
	buf := make([]byte, largest*int64(size))
	return safetensors.WriteStreamFile(path, heads, md, func(t safetensors.Tensor) ([]byte, error) {
		k := index[t.Name]
		n := numElements(t.Shape)
		out := buf[:n*int64(size)]
		fillChunked(out, n, k, isNormWeight(t.Name), opts)
		return out, nil
	})
}

func numElements(shape []int) int64 {
	n := int64(1)
	for _, d := range shape {
		n *= int64(d)
	}
	return n
}

func fillRandom(vals []float32, norm bool, rng *rand.Rand) {
	for i := range vals {
		if norm {
			vals[i] = 1 + 0.1*float32(rng.NormFloat64())
		} else {
			vals[i] = 0.05 * float32(rng.NormFloat64())
		}
	}
}

func encodeValues(dst []byte, vals []float32, bf16 bool) {
	if bf16 {
		safetensors.PutBF16(dst, vals)
		return
	}
	for i, v := range vals {
		binary.LittleEndian.PutUint32(dst[i*4:], math.Float32bits(v))
	}
}

// fillChunked writes the n random values of tensor k into out, chunk by chunk in parallel.
func fillChunked(out []byte, n int64, k int, norm bool, opts InitOptions) {
	size := int64(4)
	if opts.BF16 {
		size = 2
	}
	chunks := (n + initChunk - 1) / initChunk
	workers := min(runtime.GOMAXPROCS(0), int(chunks))
	bufs := make([][]float32, workers)
	parallel.For(int(chunks), workers, func(w, ci int) {
		if bufs[w] == nil {
			bufs[w] = make([]float32, initChunk)
		}
		c := int64(ci)
		lo, hi := c*initChunk, min((c+1)*initChunk, n)
		rng := rand.New(rand.NewPCG(opts.Seed, uint64(k)<<32|uint64(c)))
		fillRandom(bufs[w][:hi-lo], norm, rng)
		encodeValues(out[lo*size:hi*size], bufs[w][:hi-lo], opts.BF16)
	})
}
