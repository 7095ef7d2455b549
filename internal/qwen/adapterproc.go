package qwen

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

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
	path := filepath.Join(dir, ProcessorFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return cfg, names, nil
	}
	saved, err := LoadProcessorConfig(path)
	if err != nil {
		return nil, nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	m.Processor.MinPixels, m.Processor.MaxPixels = saved.MinPixels, saved.MaxPixels
	return cfg, names, nil
}
