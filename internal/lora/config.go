// Package lora implements LoRA adapters on linear layers, compatible with Hugging Face PEFT:
// y = W x + b + s · B A dropout(x), s = alpha/r (or alpha/√r with rsLoRA), A Kaiming-uniform
// and B zero at init, base weights frozen. Adapters are saved and loaded in PEFT's format
// (adapter_config.json + adapter_model.safetensors) under either transformers naming scheme,
// and can be merged into the base weights.
package lora

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"

	"github.com/dlclark/regexp2"

	"github.com/acdtcm/acdtcm/internal/fsutil"
)

// ConfigName and WeightsName are PEFT's adapter file names.
const (
	ConfigName  = "adapter_config.json"
	WeightsName = "adapter_model.safetensors"
)

// DefaultTargets are the design's target projections (attention and MLP).
var DefaultTargets = []string{"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}

// LanguageModelOnly is the regex written as target_modules when only the language model is
// adapted (acdtcm's default): a plain suffix list would also hit the vision tower's
// mlp.gate_proj/up_proj/down_proj.
const LanguageModelOnly = `^(?!.*visual).*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)$`

// Config is PEFT's LoraConfig as serialised in adapter_config.json.
type Config struct {
	PeftType          string            `json:"peft_type"`
	TaskType          string            `json:"task_type"`
	BaseModel         string            `json:"base_model_name_or_path"`
	R                 int               `json:"r"`
	Alpha             float64           `json:"lora_alpha"`
	Dropout           float64           `json:"lora_dropout"`
	TargetModules     json.RawMessage   `json:"target_modules"`
	ExcludeModules    json.RawMessage   `json:"exclude_modules,omitempty"`
	Bias              string            `json:"bias"`
	UseRSLoRA         bool              `json:"use_rslora"`
	UseDoRA           bool              `json:"use_dora"`
	InitLoraWeights   any               `json:"init_lora_weights"`
	ModulesToSave     []string          `json:"modules_to_save"`
	RankPattern       Patterns[int]     `json:"rank_pattern"`
	AlphaPattern      Patterns[float64] `json:"alpha_pattern"`
	FanInFanOut       bool              `json:"fan_in_fan_out"`
	InferenceMode     bool              `json:"inference_mode"`
	Revision          *string           `json:"revision"`
	LayersToTransform any               `json:"layers_to_transform"`
	LayersPattern     any               `json:"layers_pattern"`

	targetList  []string
	targetRegex *regexp2.Regexp
	excludeList []string
	excludeRe   *regexp2.Regexp
}

// NewConfig returns a LoRA config with the given rank, alpha, dropout and targets (module
// name suffixes); languageModelOnly writes the targets as a regex that skips the vision tower.
func NewConfig(r int, alpha, dropout float64, targets []string, languageModelOnly bool) (*Config, error) {
	if languageModelOnly {
		return newConfig(r, alpha, dropout, `^(?!.*visual).*\.(`+strings.Join(targets, "|")+`)$`)
	}
	return newConfig(r, alpha, dropout, targets)
}

// NewRegexConfig returns a LoRA config whose target_modules is the regex string re: as in
// PEFT (re.fullmatch), a module is adapted when re matches its whole name, under either
// transformers naming (model.layers.* or model.language_model.layers.*).
func NewRegexConfig(r int, alpha, dropout float64, re string) (*Config, error) {
	return newConfig(r, alpha, dropout, re)
}

// newConfig builds a config with target_modules set to targets (a list or a regex string).
func newConfig(r int, alpha, dropout float64, targets any) (*Config, error) {
	c := &Config{PeftType: "LORA", TaskType: "CAUSAL_LM", R: r, Alpha: alpha, Dropout: dropout, Bias: "none", InitLoraWeights: true}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // a regex such as (?<!visual) stays readable in adapter_config.json
	if err := enc.Encode(targets); err != nil {
		return nil, fmt.Errorf("encode target_modules: %w", err)
	}
	c.TargetModules = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return c, c.compile()
}

// compile validates the config and prepares target matching.
func (c *Config) compile() error {
	if c.PeftType != "" && c.PeftType != "LORA" {
		return fmt.Errorf("peft_type %q is not LORA", c.PeftType)
	}
	if c.UseDoRA {
		return fmt.Errorf("DoRA adapters (use_dora) are not supported yet")
	}
	if c.R <= 0 {
		return fmt.Errorf("r must be positive, got %d", c.R)
	}
	if c.Bias != "" && c.Bias != "none" {
		return fmt.Errorf("bias %q is not supported (only \"none\")", c.Bias)
	}
	if c.LayersToTransform != nil {
		return fmt.Errorf("layers_to_transform is not supported")
	}
	if c.FanInFanOut {
		return fmt.Errorf("fan_in_fan_out adapters (Conv1D layers) are not supported")
	}
	var err error
	if c.targetList, c.targetRegex, err = parseTargets(c.TargetModules, "target_modules"); err != nil {
		return err
	}
	if c.targetList == nil && c.targetRegex == nil {
		return fmt.Errorf("target_modules is empty")
	}
	if c.excludeList, c.excludeRe, err = parseTargets(c.ExcludeModules, "exclude_modules"); err != nil {
		return err
	}
	for _, p := range c.RankPattern {
		if p.Value <= 0 {
			return fmt.Errorf("rank_pattern %q: rank must be positive, got %d", p.Key, p.Value)
		}
	}
	if err := c.RankPattern.check("rank_pattern"); err != nil {
		return err
	}
	return c.AlphaPattern.check("alpha_pattern")
}

func parseTargets(raw json.RawMessage, field string) ([]string, *regexp2.Regexp, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil, nil
	}
	var list []string
	if err := json.Unmarshal(raw, &list); err == nil {
		return list, nil, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, nil, fmt.Errorf("%s must be a list of names or a regex string", field)
	}
	re, err := regexp2.Compile(`^(?:`+s+`)$`, regexp2.None)
	if err != nil {
		return nil, nil, fmt.Errorf("%s regex %q: %w", field, s, err)
	}
	return nil, re, nil
}

// spellings returns a module's name in the legacy and the transformers ≥ 4.52 layout:
// PEFT matches whichever the training run used.
func spellings(module string) []string {
	switch {
	case strings.HasPrefix(module, "model."):
		return []string{module, "model.language_model." + strings.TrimPrefix(module, "model.")}
	case strings.HasPrefix(module, "visual."):
		return []string{module, "model." + module}
	}
	return []string{module}
}

func matches(list []string, re *regexp2.Regexp, module string) bool {
	for _, name := range spellings(module) {
		for _, t := range list {
			if name == t || strings.HasSuffix(name, "."+t) {
				return true
			}
		}
		if re != nil {
			if ok, _ := re.MatchString(name); ok {
				return true
			}
		}
	}
	return false
}

// Targets reports whether a (canonical) module name is adapted, with PEFT's rules: a list
// entry matches the full name or a "."-suffix, a string is a full regex match; excluded
// modules never are.
func (c *Config) Targets(module string) bool {
	if matches(c.excludeList, c.excludeRe, module) {
		return false
	}
	return matches(c.targetList, c.targetRegex, module)
}

// RankAndScaling returns the rank and scale factor of a module, honouring rank_pattern and
// alpha_pattern (the first key, in file order, that matches the end of the name; see
// Patterns) and rsLoRA.
func (c *Config) RankAndScaling(module string) (int, float64) {
	r := c.RankPattern.Lookup(module, c.R)
	alpha := c.AlphaPattern.Lookup(module, c.Alpha)
	if c.UseRSLoRA {
		return r, alpha / math.Sqrt(float64(r))
	}
	return r, alpha / float64(r)
}

// LoadConfig reads adapter_config.json from an adapter directory.
func LoadConfig(dir string) (*Config, error) {
	path := filepath.Join(dir, ConfigName)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read adapter config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	if err := c.compile(); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &c, nil
}

// Save writes adapter_config.json atomically. rank_pattern and alpha_pattern are written as
// objects in their order, {} when empty (see Patterns.MarshalJSON).
func (c *Config) Save(dir string) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // regexes such as (?<!visual) stay readable
	enc.SetIndent("", "  ")
	if err := enc.Encode(c); err != nil {
		return fmt.Errorf("encode adapter config: %w", err)
	}
	data := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	return fsutil.WriteFileAtomic(filepath.Join(dir, ConfigName), data, 0o644)
}
