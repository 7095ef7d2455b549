package qwen

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/lora"
)

// ProcessorFile is a checkpoint's image processor config. acdtcm train also writes one
// beside adapter_config.json, recording the image size limits (min/max pixels) the adapter
// was trained with; PEFT and vLLM ignore it, transformers' AutoImageProcessor reads it.
const ProcessorFile = "preprocessor_config.json"

// WriteProcessorConfig writes dir/preprocessor_config.json atomically: baseDir's file with
// every key kept (the processor's own defaults when baseDir has none) and min_pixels and
// max_pixels set to p's, in size.shortest_edge/longest_edge as well when the file spells
// them there (transformers reads either).
func WriteProcessorConfig(dir, baseDir string, p ProcessorConfig) error {
	doc := map[string]any{}
	basePath := filepath.Join(baseDir, ProcessorFile)
	data, err := os.ReadFile(basePath)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &doc); err != nil {
			return fmt.Errorf("parse %s: %w", basePath, err)
		}
	case errors.Is(err, os.ErrNotExist):
		doc = map[string]any{"patch_size": p.PatchSize, "temporal_patch_size": p.TemporalPatchSize, "merge_size": p.MergeSize,
			"image_mean": p.ImageMean, "image_std": p.ImageStd, "image_processor_type": "Qwen2VLImageProcessor"}
	default:
		return fmt.Errorf("read %s: %w", basePath, err)
	}
	doc["min_pixels"], doc["max_pixels"] = p.MinPixels, p.MaxPixels
	if size, ok := doc["size"].(map[string]any); ok {
		size["shortest_edge"], size["longest_edge"] = p.MinPixels, p.MaxPixels
	}
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", filepath.Join(dir, ProcessorFile), err)
	}
	return fsutil.WriteFileAtomic(filepath.Join(dir, ProcessorFile), out, 0o644)
}

// LoadAdapterWithProcessor loads a PEFT LoRA adapter (LoadAdapter) and adopts the image size
// limits saved beside it by acdtcm train, so photos are resized as in training. An adapter
// without preprocessor_config.json (one trained with PEFT) keeps the base's limits.
func (m *Model) LoadAdapterWithProcessor(dir string) (*lora.Config, []string, error) {
	cfg, names, err := m.LoadAdapter(dir)
	if err != nil {
		return nil, nil, err
	}
	if m.Processor, err = adapterProcessor(dir, m.Processor); err != nil {
		return nil, nil, err
	}
	return cfg, names, nil
}

// adapterProcessor is base with the min/max pixels saved beside an adapter, if any.
func adapterProcessor(dir string, base ProcessorConfig) (ProcessorConfig, error) {
	path := filepath.Join(dir, ProcessorFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return base, nil
	}
	saved, err := LoadProcessorConfig(path)
	if err != nil {
		return base, fmt.Errorf("adapter %s: %w", dir, err)
	}
	base.MinPixels, base.MaxPixels = saved.MinPixels, saved.MaxPixels
	return base, nil
}

// AdapterOnBase is a PEFT adapter loaded against a base checkpoint's configuration, without
// the base weights: what checking an adapter and ExportMerged need.
type AdapterOnBase struct {
	Config    *lora.Config
	Ctx       *context.Context // the adapter's LoRA variables only
	Modules   []string         // the adapted modules
	Processor ProcessorConfig  // the base's image processor with the adapter's saved sizes
}

// LoadAdapterOnBase reads baseDir's config.json and preprocessor_config.json and loads the
// adapter in adapterDir, checking every matrix against the base's linear layers (as
// LoadAdapter does on a loaded model). It reads no base weights, so checking or merging an
// adapter of a 3B or 7B model does not need the model in memory.
func LoadAdapterOnBase(baseDir, adapterDir string) (*AdapterOnBase, error) {
	cfg, err := LoadConfig(baseDir)
	if err != nil {
		return nil, err
	}
	proc, err := checkpointProcessor(baseDir)
	if err != nil {
		return nil, err
	}
	a := &AdapterOnBase{Ctx: context.New()}
	if a.Config, a.Modules, err = lora.Load(a.Ctx, adapterDir, cfg.LinearModules()); err != nil {
		return nil, fmt.Errorf("adapter %s: %w", adapterDir, err)
	}
	if a.Processor, err = adapterProcessor(adapterDir, proc); err != nil {
		return nil, err
	}
	return a, nil
}

// checkpointProcessor reads a checkpoint's preprocessor_config.json, or gives the default
// processor when the checkpoint has none.
func checkpointProcessor(dir string) (ProcessorConfig, error) {
	path := filepath.Join(dir, ProcessorFile)
	if _, err := os.Stat(path); err != nil {
		return DefaultProcessorConfig(), nil
	}
	return LoadProcessorConfig(path)
}
