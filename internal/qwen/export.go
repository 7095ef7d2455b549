package qwen

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/quant"
	"github.com/acdtcm/acdtcm/internal/safetensors"
)

// sideFiles are the non-weight files of a checkpoint copied by exports.
var sideFiles = []string{"config.json", "generation_config.json", "preprocessor_config.json", "tokenizer.json",
	"tokenizer_config.json", "vocab.json", "merges.txt", "chat_template.json", "chat_template.jinja", "special_tokens_map.json",
	"video_preprocessor_config.json", "processor_config.json", "added_tokens.json"}

// ExportOptions control ExportMerged.
type ExportOptions struct {
	// ShardBytes splits the weights into shards of at most this many bytes (default 4 GiB),
	// with model.safetensors.index.json when there is more than one.
	ShardBytes int64
	// Processor, when set, gives the merged checkpoint's preprocessor_config.json its image
	// size limits (min/max pixels), e.g. those the adapter was trained with.
	Processor *ProcessorConfig
}

// ExportMerged writes a full Hugging Face checkpoint to out whose weights are the base
// checkpoint's (in its own names and dtypes) with every LoRA adapter in ctx folded in
// (W + s·B·A, stored in the tensor's original dtype). Side files are copied, with
// opts.Processor's min/max pixels written into preprocessor_config.json when set.
func ExportMerged(baseDir, out string, ctx *context.Context, opts ExportOptions) error {
	if opts.ShardBytes <= 0 {
		opts.ShardBytes = 4 << 30
	}
	if qc, err := quant.ReadConfig(baseDir); err != nil {
		return err
	} else if qc != nil {
		// Folding a float update into packed 4/8-bit weights would silently requantize them;
		// merge into the float base and quantize the merged checkpoint instead.
		return fmt.Errorf("%s is a quantized (%s) checkpoint: merge the adapter into the float base model, then run acdtcm quantize on the merged output", baseDir, qc.Method)
	}
	ckpt, err := safetensors.OpenCheckpoint(baseDir)
	if err != nil {
		return err
	}
	defer ckpt.Close()
	adapted := map[string]bool{}
	for _, m := range lora.Adapted(ctx) {
		adapted[m+".weight"] = true
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", out, err)
	}
	// Plan the shards from the header alone, then write each one tensor at a time: an adapted
	// weight is merged when the writer reaches it, and each tensor's mapped pages are
	// released once written, so memory holds one merged tensor, not the whole model.
	var shards [][]safetensors.Tensor
	var cur []safetensors.Tensor
	var curBytes int64
	merged := 0
	for _, name := range ckpt.Names() {
		info, _ := ckpt.Info(name)
		head := safetensors.Tensor{Name: name, DType: info.DType, Shape: info.Shape}
		if adapted[CanonicalName(name)] {
			head.DType = mergedDType(info.DType)
			merged++
		}
		size := int64(info.NumElements() * head.DType.Size())
		if len(cur) > 0 && curBytes+size > opts.ShardBytes {
			shards, cur, curBytes = append(shards, cur), nil, 0
		}
		cur = append(cur, head)
		curBytes += size
	}
	shards = append(shards, cur)
	if merged != len(adapted) {
		return fmt.Errorf("merged %d of %d adapted weights: the base checkpoint lacks some adapted modules", merged, len(adapted))
	}
	previous := ""
	data := func(t safetensors.Tensor) ([]byte, error) {
		if previous != "" {
			_ = ckpt.Release(previous) // written: a failure only keeps its pages mapped
		}
		previous = t.Name
		info, _ := ckpt.Info(t.Name)
		canonical := CanonicalName(t.Name)
		if !adapted[canonical] {
			return ckpt.Bytes(t.Name)
		}
		w, err := ckpt.Float32(t.Name, nil)
		if err != nil {
			return nil, err
		}
		mw, err := lora.MergedWeight(ctx, strings.TrimSuffix(canonical, ".weight"), w, info.Shape[0], info.Shape[1])
		if err != nil {
			return nil, err
		}
		return encodeAs(t.Name, info, mw).Data, nil
	}
	metadata := map[string]string{"format": "pt"}
	if len(shards) == 1 {
		if err := safetensors.WriteStreamFile(filepath.Join(out, "model.safetensors"), shards[0], metadata, data); err != nil {
			return err
		}
	} else {
		weightMap := map[string]string{}
		var total int64
		for i, sh := range shards {
			file := fmt.Sprintf("model-%05d-of-%05d.safetensors", i+1, len(shards))
			for _, t := range sh {
				weightMap[t.Name] = file
				total += int64(safetensors.TensorInfo{Shape: t.Shape}.NumElements() * t.DType.Size())
			}
			if err := safetensors.WriteStreamFile(filepath.Join(out, file), sh, metadata, data); err != nil {
				return err
			}
		}
		idx, _ := json.MarshalIndent(map[string]any{"metadata": map[string]any{"total_size": total}, "weight_map": weightMap}, "", "  ")
		if err := fsutil.WriteFileAtomic(filepath.Join(out, safetensors.IndexName), idx, 0o644); err != nil {
			return err
		}
	}
	if err := CopySideFiles(baseDir, out); err != nil {
		return err
	}
	if opts.Processor != nil {
		return WriteProcessorConfig(out, baseDir, *opts.Processor)
	}
	return nil
}

// CopySideFiles copies config, tokenizer, processor and generation files atomically.
func CopySideFiles(from, to string) error {
	for _, name := range sideFiles {
		if _, err := os.Stat(filepath.Join(from, name)); os.IsNotExist(err) {
			continue
		}
		if err := fsutil.CopyFileAtomic(filepath.Join(from, name), filepath.Join(to, name)); err != nil {
			return err
		}
	}
	return nil
}

// mergedDType is the dtype a merged weight is stored in (encodeAs): bfloat16 stays
// bfloat16, anything else becomes float32.
func mergedDType(stored safetensors.DType) safetensors.DType {
	if stored == safetensors.BF16 {
		return safetensors.BF16
	}
	return safetensors.F32
}

// encodeAs stores float32 values in the dtype the tensor had.
func encodeAs(name string, info safetensors.TensorInfo, vals []float32) safetensors.Tensor {
	if info.DType == safetensors.BF16 {
		return safetensors.Tensor{Name: name, DType: safetensors.BF16, Shape: info.Shape, Data: safetensors.Float32ToBF16(vals)}
	}
	return safetensors.F32Tensor(name, info.Shape, vals)
}
