// Package qwen implements Qwen2.5-VL (vision tower, text decoder, image processor, weight
// loading) on GoMLX, matching Hugging Face transformers. One file per component: config.go,
// weights.go, imageproc.go (+ resample.go), vision.go, text.go, generate.go.
package qwen

import (
	"encoding/json"
	"fmt"
	"os"
)

// TextConfig holds the language model's hyper-parameters.
type TextConfig struct {
	HiddenSize            int     `json:"hidden_size"`
	IntermediateSize      int     `json:"intermediate_size"`
	NumHiddenLayers       int     `json:"num_hidden_layers"`
	NumAttentionHeads     int     `json:"num_attention_heads"`
	NumKeyValueHeads      int     `json:"num_key_value_heads"`
	RMSNormEps            float64 `json:"rms_norm_eps"`
	RopeTheta             float64 `json:"rope_theta"`
	VocabSize             int     `json:"vocab_size"`
	MaxPositionEmbeddings int     `json:"max_position_embeddings"`
	TieWordEmbeddings     bool    `json:"tie_word_embeddings"`
	HiddenAct             string  `json:"hidden_act"`
	MRopeSection          []int   `json:"-"`
}

// HeadDim is the per-head width (hidden_size / num_attention_heads).
func (t TextConfig) HeadDim() int { return t.HiddenSize / t.NumAttentionHeads }

// VisionConfig holds the vision tower's hyper-parameters.
type VisionConfig struct {
	Depth               int    `json:"depth"`
	HiddenSize          int    `json:"hidden_size"`
	IntermediateSize    int    `json:"intermediate_size"`
	NumHeads            int    `json:"num_heads"`
	PatchSize           int    `json:"patch_size"`
	TemporalPatchSize   int    `json:"temporal_patch_size"`
	SpatialMergeSize    int    `json:"spatial_merge_size"`
	WindowSize          int    `json:"window_size"`
	FullAttBlockIndexes []int  `json:"fullatt_block_indexes"`
	OutHiddenSize       int    `json:"out_hidden_size"`
	InChannels          int    `json:"in_channels"`
	HiddenAct           string `json:"hidden_act"`
}

// Config is a Qwen2.5-VL config.json, normalised across the three layouts seen in the wild.
type Config struct {
	ModelType         string       `json:"model_type"`
	Text              TextConfig   `json:"text"`
	Vision            VisionConfig `json:"vision"`
	ImageTokenID      int          `json:"image_token_id"`
	VideoTokenID      int          `json:"video_token_id"`
	VisionStartID     int          `json:"vision_start_token_id"`
	VisionEndID       int          `json:"vision_end_token_id"`
	BOSTokenID        int          `json:"bos_token_id"`
	EOSTokenID        int          `json:"eos_token_id"`
	TorchDType        string       `json:"torch_dtype"`
	TieWordEmbeddings bool         `json:"tie_word_embeddings"`
}

// rawConfig mirrors config.json in any of its layouts.
type rawConfig struct {
	ModelType         string          `json:"model_type"`
	TextConfig        json.RawMessage `json:"text_config"`
	VisionConfig      json.RawMessage `json:"vision_config"`
	ImageTokenID      *int            `json:"image_token_id"`
	VideoTokenID      *int            `json:"video_token_id"`
	VisionStartID     *int            `json:"vision_start_token_id"`
	VisionEndID       *int            `json:"vision_end_token_id"`
	BOSTokenID        *int            `json:"bos_token_id"`
	EOSTokenID        json.RawMessage `json:"eos_token_id"`
	TorchDType        string          `json:"torch_dtype"`
	DType             string          `json:"dtype"`
	TieWordEmbeddings *bool           `json:"tie_word_embeddings"`
}

// rawText holds the text fields (top level or text_config) plus both rope spellings.
type rawText struct {
	TextConfig
	RopeTheta      *float64 `json:"rope_theta"`
	RopeScaling    *rope    `json:"rope_scaling"`
	RopeParameters *rope    `json:"rope_parameters"`
	Tie            *bool    `json:"tie_word_embeddings"`
}

type rope struct {
	Type         string   `json:"type"`
	RopeType     string   `json:"rope_type"`
	RopeTheta    *float64 `json:"rope_theta"`
	MRopeSection []int    `json:"mrope_section"`
}

type rawVision struct {
	VisionConfig
	InChans          *int `json:"in_chans"`
	SpatialPatchSize *int `json:"spatial_patch_size"`
}

// LoadConfig reads config.json of a checkpoint directory or file.
func LoadConfig(path string) (*Config, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = path + string(os.PathSeparator) + "config.json"
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read model config: %w", err)
	}
	cfg, err := ParseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig normalises a config.json: text fields from text_config when present, else the
// top level; mrope_section from rope_scaling or rope_parameters; rope_theta from the top,
// text_config or rope_parameters. Required vision fields must be present: they are never
// filled from class defaults (transformers' default ViT width 3584 is wrong for real
// checkpoints).
func ParseConfig(data []byte) (*Config, error) {
	var raw rawConfig
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("parse config.json: %w", err)
	}
	var top, nested rawText
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("parse text fields: %w", err)
	}
	text := top
	if len(raw.TextConfig) > 0 && string(raw.TextConfig) != "null" {
		if err := json.Unmarshal(raw.TextConfig, &nested); err != nil {
			return nil, fmt.Errorf("parse text_config: %w", err)
		}
		text = mergeText(top, nested)
	}
	cfg := &Config{ModelType: raw.ModelType, Text: text.TextConfig, TorchDType: raw.TorchDType}
	if cfg.TorchDType == "" {
		cfg.TorchDType = raw.DType
	}
	for _, r := range []*rope{text.RopeScaling, text.RopeParameters} {
		if r == nil {
			continue
		}
		if len(r.MRopeSection) > 0 {
			cfg.Text.MRopeSection = r.MRopeSection
		}
		if r.RopeTheta != nil && text.RopeTheta == nil {
			cfg.Text.RopeTheta = *r.RopeTheta
		}
	}
	if text.RopeTheta != nil {
		cfg.Text.RopeTheta = *text.RopeTheta
	}
	switch {
	case raw.TieWordEmbeddings != nil:
		cfg.Text.TieWordEmbeddings = *raw.TieWordEmbeddings
	case text.Tie != nil:
		cfg.Text.TieWordEmbeddings = *text.Tie
	}
	cfg.TieWordEmbeddings = cfg.Text.TieWordEmbeddings
	if cfg.Text.RMSNormEps == 0 {
		cfg.Text.RMSNormEps = 1e-6
	}
	if cfg.Text.HiddenAct == "" {
		cfg.Text.HiddenAct = "silu"
	}
	if len(raw.VisionConfig) == 0 || string(raw.VisionConfig) == "null" {
		return nil, fmt.Errorf("config has no vision_config")
	}
	var vis rawVision
	if err := json.Unmarshal(raw.VisionConfig, &vis); err != nil {
		return nil, fmt.Errorf("parse vision_config: %w", err)
	}
	cfg.Vision = vis.VisionConfig
	if cfg.Vision.InChannels == 0 && vis.InChans != nil {
		cfg.Vision.InChannels = *vis.InChans
	}
	if cfg.Vision.PatchSize == 0 && vis.SpatialPatchSize != nil {
		cfg.Vision.PatchSize = *vis.SpatialPatchSize
	}
	if cfg.Vision.HiddenAct == "" {
		cfg.Vision.HiddenAct = "silu"
	}
	setInt := func(dst *int, src *int, def int) {
		if src != nil {
			*dst = *src
		} else {
			*dst = def
		}
	}
	setInt(&cfg.ImageTokenID, raw.ImageTokenID, 151655)
	setInt(&cfg.VideoTokenID, raw.VideoTokenID, 151656)
	setInt(&cfg.VisionStartID, raw.VisionStartID, 151652)
	setInt(&cfg.VisionEndID, raw.VisionEndID, 151653)
	setInt(&cfg.BOSTokenID, raw.BOSTokenID, 151643)
	cfg.EOSTokenID = 151645
	if len(raw.EOSTokenID) > 0 {
		var one int
		var many []int
		if json.Unmarshal(raw.EOSTokenID, &one) == nil {
			cfg.EOSTokenID = one
		} else if json.Unmarshal(raw.EOSTokenID, &many) == nil && len(many) > 0 {
			cfg.EOSTokenID = many[0]
		}
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// mergeText prefers text_config's fields, falling back to the top level field by field.
func mergeText(top, nested rawText) rawText {
	out := nested
	t, n := &top.TextConfig, &out.TextConfig
	fillInt := func(dst *int, src int) {
		if *dst == 0 {
			*dst = src
		}
	}
	fillInt(&n.HiddenSize, t.HiddenSize)
	fillInt(&n.IntermediateSize, t.IntermediateSize)
	fillInt(&n.NumHiddenLayers, t.NumHiddenLayers)
	fillInt(&n.NumAttentionHeads, t.NumAttentionHeads)
	fillInt(&n.NumKeyValueHeads, t.NumKeyValueHeads)
	fillInt(&n.VocabSize, t.VocabSize)
	fillInt(&n.MaxPositionEmbeddings, t.MaxPositionEmbeddings)
	if n.RMSNormEps == 0 {
		n.RMSNormEps = t.RMSNormEps
	}
	if n.HiddenAct == "" {
		n.HiddenAct = t.HiddenAct
	}
	if out.RopeTheta == nil {
		out.RopeTheta = top.RopeTheta
	}
	if out.RopeScaling == nil {
		out.RopeScaling = top.RopeScaling
	}
	if out.RopeParameters == nil {
		out.RopeParameters = top.RopeParameters
	}
	if out.Tie == nil {
		out.Tie = top.Tie
	}
	return out
}

// Validate checks the fields the model needs and their consistency.
func (c *Config) Validate() error {
	t, v := c.Text, c.Vision
	missing := func(name string, val int) error {
		if val <= 0 {
			return fmt.Errorf("config: %s is missing or not positive", name)
		}
		return nil
	}
	for _, check := range []struct {
		name string
		val  int
	}{
		{"hidden_size", t.HiddenSize}, {"intermediate_size", t.IntermediateSize}, {"num_hidden_layers", t.NumHiddenLayers},
		{"num_attention_heads", t.NumAttentionHeads}, {"num_key_value_heads", t.NumKeyValueHeads}, {"vocab_size", t.VocabSize},
		{"vision_config.depth", v.Depth}, {"vision_config.hidden_size", v.HiddenSize}, {"vision_config.intermediate_size", v.IntermediateSize},
		{"vision_config.num_heads", v.NumHeads}, {"vision_config.patch_size", v.PatchSize}, {"vision_config.temporal_patch_size", v.TemporalPatchSize},
		{"vision_config.spatial_merge_size", v.SpatialMergeSize}, {"vision_config.window_size", v.WindowSize},
		{"vision_config.out_hidden_size", v.OutHiddenSize}, {"vision_config.in_channels (or in_chans)", v.InChannels},
	} {
		if err := missing(check.name, check.val); err != nil {
			return err
		}
	}
	if t.RopeTheta <= 0 {
		return fmt.Errorf("config: rope_theta is missing")
	}
	if t.HiddenSize%t.NumAttentionHeads != 0 || t.NumAttentionHeads%t.NumKeyValueHeads != 0 {
		return fmt.Errorf("config: hidden_size %d, num_attention_heads %d and num_key_value_heads %d do not divide evenly", t.HiddenSize, t.NumAttentionHeads, t.NumKeyValueHeads)
	}
	sum := 0
	for _, s := range t.MRopeSection {
		sum += s
	}
	if len(t.MRopeSection) != 3 || sum*2 != t.HeadDim() {
		return fmt.Errorf("config: mrope_section %v must have 3 entries summing to head_dim/2 = %d", t.MRopeSection, t.HeadDim()/2)
	}
	if v.HiddenSize%v.NumHeads != 0 {
		return fmt.Errorf("config: vision hidden_size %d not divisible by num_heads %d", v.HiddenSize, v.NumHeads)
	}
	if v.OutHiddenSize != t.HiddenSize {
		return fmt.Errorf("config: vision out_hidden_size %d differs from text hidden_size %d", v.OutHiddenSize, t.HiddenSize)
	}
	for _, b := range v.FullAttBlockIndexes {
		if b < 0 || b >= v.Depth {
			return fmt.Errorf("config: fullatt_block_indexes entry %d outside 0..%d", b, v.Depth-1)
		}
	}
	if v.WindowSize%(v.PatchSize*v.SpatialMergeSize) != 0 {
		return fmt.Errorf("config: window_size %d is not a multiple of patch_size*spatial_merge_size", v.WindowSize)
	}
	return nil
}
