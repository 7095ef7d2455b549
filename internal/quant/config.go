package quant

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/acdtcm/acdtcm/internal/fsutil"
)

// ConfigKey is the config.json key holding the quantization description.
const ConfigKey = "quantization_config"

// QuantMethodName is the quant_method written in quantization_config, so Hugging Face
// loaders do not mistake the layout for bitsandbytes or GPTQ.
const QuantMethodName = "acdtcm"

// FormatVersion is the version of the stored layout.
const FormatVersion = 1

// MetadataKey is the safetensors __metadata__ key repeating the method, so a weights file
// paired with the wrong config.json is detected.
const MetadataKey = "acdtcm_quantization"

// Config is config.json's quantization_config.
type Config struct {
	QuantMethod          string   `json:"quant_method"`
	FormatVersion        int      `json:"format_version"`
	Method               Method   `json:"method"`
	Bits                 int      `json:"bits"`
	BlockSize            int      `json:"block_size"` // 0: one scale per output channel
	DoubleQuant          bool     `json:"double_quant"`
	DoubleQuantBlockSize int      `json:"double_quant_block_size,omitempty"`
	ScaleDType           string   `json:"scale_dtype"`
	Keep                 []string `json:"keep"`                  // categories and name patterns left in full precision
	ModulesNotConverted  []string `json:"modules_not_converted"` // the resulting list of full-precision weights (rank ≥ 2)
	Quantized            int      `json:"quantized_tensors"`
}

// NewConfig describes a method with its keep list.
func NewConfig(m Method, keep []string, opts Options) *Config {
	c := &Config{QuantMethod: QuantMethodName, FormatVersion: FormatVersion, Method: m, Bits: m.Bits(), BlockSize: m.BlockSize(),
		ScaleDType: "float32", Keep: append([]string{}, keep...), ModulesNotConverted: []string{}}
	if m == NF4 && !opts.NoDoubleQuant {
		c.DoubleQuant, c.DoubleQuantBlockSize, c.ScaleDType = true, DoubleQuantBlockSize, "uint8+float32"
	}
	if m == Q8_0 || m == Q4_0 {
		c.ScaleDType = "float16"
	}
	return c
}

// Validate checks a parsed config.
func (c *Config) Validate() error {
	if c.QuantMethod != QuantMethodName {
		return fmt.Errorf("quant_method %q is not supported (acdtcm reads its own %q layout)", c.QuantMethod, QuantMethodName)
	}
	if c.FormatVersion != FormatVersion {
		return fmt.Errorf("quantization format_version %d is not supported (want %d)", c.FormatVersion, FormatVersion)
	}
	if _, err := ParseMethod(string(c.Method)); err != nil {
		return err
	}
	if c.BlockSize != c.Method.BlockSize() || c.Bits != c.Method.Bits() {
		return fmt.Errorf("%s needs bits %d and block_size %d, config says %d and %d", c.Method, c.Method.Bits(), c.Method.BlockSize(), c.Bits, c.BlockSize)
	}
	if c.DoubleQuant && c.Method != NF4 {
		return fmt.Errorf("double_quant is only defined for nf4, not %s", c.Method)
	}
	return nil
}

// MetadataValue is the __metadata__ value of the weights file for this config.
func (c *Config) MetadataValue() string {
	return fmt.Sprintf("%s;v%d;double_quant=%v", c.Method, c.FormatVersion, c.DoubleQuant)
}

// CheckMetadata compares a weights file's __metadata__ with the config.
func (c *Config) CheckMetadata(file string, md map[string]string) error {
	got, ok := md[MetadataKey]
	if !ok {
		return fmt.Errorf("%s: no %s metadata: these weights were not written by acdtcm quantize, but config.json has a quantization_config", file, MetadataKey)
	}
	if got != c.MetadataValue() {
		return fmt.Errorf("%s: weights are quantized as %q but config.json's quantization_config says %q", file, got, c.MetadataValue())
	}
	return nil
}

// ReadConfig returns the quantization_config of a checkpoint directory's config.json, or
// nil when the checkpoint is not quantized.
func ReadConfig(dir string) (*Config, error) {
	p := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read model config: %w", err)
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	raw, ok := doc[ConfigKey]
	if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, nil
	}
	var c Config
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&c); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", p, ConfigKey, err)
	}
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", p, ConfigKey, err)
	}
	return &c, nil
}

// WriteConfig copies the config.json document src with quantization_config set to c and
// writes it atomically to dst (other keys keep their values; keys are sorted).
func WriteConfig(src []byte, dst string, c *Config) error {
	var doc map[string]any
	if err := json.Unmarshal(src, &doc); err != nil {
		return fmt.Errorf("parse source config.json: %w", err)
	}
	if _, already := doc[ConfigKey]; already {
		return errors.New("the input is already quantized (config.json has a quantization_config)")
	}
	doc[ConfigKey] = c
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", dst, err)
	}
	return fsutil.WriteFileAtomic(dst, append(out, '\n'), 0o644)
}

// Keep categories understood by KeepRule. Other entries are tensor-name prefixes or
// path.Match patterns (with '*').
const (
	KeepEmbeddings = "embeddings" // token embedding tables
	KeepNorms      = "norms"      // normalisation weights
	KeepLMHead     = "lm_head"    // the output head
	KeepVision     = "vision"     // the whole vision tower (visual.*)
	KeepNone       = "none"       // nothing beyond rank-1 tensors
)

// DefaultKeep is what stays in full precision unless told otherwise.
var DefaultKeep = []string{KeepEmbeddings, KeepNorms, KeepLMHead, KeepVision}

// KeepRule decides which tensors stay in full precision.
type KeepRule struct{ entries []string }

// NewKeepRule validates a keep list ("none" alone keeps only rank-1 tensors).
func NewKeepRule(keep []string) (KeepRule, error) {
	var r KeepRule
	for _, k := range keep {
		k = strings.TrimSpace(k)
		switch {
		case k == "":
			continue
		case k == KeepNone:
			if len(keep) > 1 {
				return r, fmt.Errorf("keep list %v: %q cannot be combined with other entries", keep, KeepNone)
			}
			continue
		case strings.ContainsAny(k, "*?["):
			if _, err := path.Match(k, ""); err != nil {
				return r, fmt.Errorf("keep pattern %q: %w", k, err)
			}
		}
		r.entries = append(r.entries, k)
	}
	sort.Strings(r.entries)
	return r, nil
}

// Entries lists the normalised keep entries.
func (r KeepRule) Entries() []string { return append([]string{}, r.entries...) }

// Keep tells whether the tensor name of the given rank stays in full precision. Tensors of
// rank < 2 (biases, norm weights, scalars) always do.
func (r KeepRule) Keep(name string, rank int) bool {
	if rank < 2 {
		return true
	}
	for _, k := range r.entries {
		switch k {
		case KeepEmbeddings:
			if strings.Contains(name, "embed_tokens") || strings.Contains(name, "embedding") {
				return true
			}
		case KeepNorms:
			if strings.Contains(name, "norm") || strings.Contains(name, ".ln_") {
				return true
			}
		case KeepLMHead:
			if strings.HasPrefix(name, "lm_head.") || strings.Contains(name, "/head/") {
				return true
			}
		case KeepVision:
			if strings.HasPrefix(name, "visual.") || strings.HasPrefix(name, "model.visual.") {
				return true
			}
		default:
			if strings.ContainsAny(k, "*?[") {
				if ok, _ := path.Match(k, name); ok {
					return true
				}
			} else if strings.HasPrefix(name, k) {
				return true
			}
		}
	}
	return false
}
