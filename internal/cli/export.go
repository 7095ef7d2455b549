package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/qwen"
	"github.com/acdtcm/acdtcm/internal/safetensors"
)

func init() { register(newExportCmd) }

type exportOptions struct {
	Model, Adapter, Out string
	PeftNames           string // "" keeps the adapter's key spelling
	Merge               bool
	ShardMB             int64
}

func newExportCmd(app *App) *cobra.Command {
	opts := &exportOptions{}
	cmd := &cobra.Command{
		Use:   "export --adapter DIR --out DIR [--merge --model BASE]",
		Short: "Export a LoRA adapter, or fold it into the base model as a full checkpoint",
		Long: `Without --merge, copies a PEFT adapter (adapter_config.json + adapter_model.safetensors)
after checking that it loads, so it can be used with PEFT or vLLM (--enable-lora).
With --merge, folds the adapter into the base weights (W + s·B·A, in the base dtype) and
writes a full Hugging Face checkpoint (config, safetensors shards with an index, tokenizer,
processor and generation files) that transformers and vLLM load without PEFT.
An adapter written by acdtcm train carries the image sizes it was trained with
(preprocessor_config.json beside adapter_config.json): the copy keeps that file, and the
merged checkpoint's preprocessor_config.json gets its min_pixels and max_pixels.

--peft-names rewrites the copy's tensor keys for the transformers it will be used with:
"legacy" for transformers < 4.52 (model.layers.*, visual.*), "new" for transformers >= 4.52
(model.language_model.layers.*, model.visual.*). PEFT loads an adapter of the other spelling
with only a "missing adapter keys" warning, and it then changes nothing.`,
		Example: `  acdtcm export --adapter runs/lora/checkpoint-best --out export/adapter
  acdtcm export --adapter runs/lora/checkpoint-best --out export/adapter-tf450 --peft-names legacy
  acdtcm export --merge --model models/Qwen2.5-VL-3B-Instruct --adapter runs/lora/checkpoint-best --out export/merged`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExport(app, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Adapter, "adapter", "", "PEFT LoRA adapter directory (required)")
	f.StringVar(&opts.Out, "out", "", "output directory (required)")
	f.BoolVar(&opts.Merge, "merge", false, "fold the adapter into the base weights")
	f.StringVar(&opts.PeftNames, "peft-names", "", "write the copy's "+lora.NamingUsage+" (default: as in --adapter)")
	f.StringVar(&opts.Model, "model", "", "base model directory (required with --merge)")
	f.Int64Var(&opts.ShardMB, "shard-size", 4096, "maximum shard size in MiB for merged weights")
	return cmd
}

func runExport(app *App, opts *exportOptions) error {
	if opts.Adapter == "" || opts.Out == "" {
		return &ExitError{Code: 2, Err: fmt.Errorf("--adapter and --out are required")}
	}
	if opts.Merge && opts.Model == "" {
		return &ExitError{Code: 2, Err: fmt.Errorf("--merge needs --model (the base checkpoint)")}
	}
	var naming lora.Naming
	if opts.PeftNames != "" {
		if opts.Merge {
			return &ExitError{Code: 2, Err: fmt.Errorf("--peft-names applies to adapter copies, not to --merge")}
		}
		var err error
		if naming, err = lora.ParseNaming(opts.PeftNames); err != nil {
			return &ExitError{Code: 2, Err: fmt.Errorf("--peft-names: %w", err)}
		}
	}
	cfg, err := lora.LoadConfig(opts.Adapter)
	if err != nil {
		return err
	}
	// With a base model, check that every adapter matrix fits the base's layers (and merge it
	// if asked). Only the base's config is read here; the merge streams its weights.
	var onBase *qwen.AdapterOnBase
	if opts.Model != "" {
		if onBase, err = qwen.LoadAdapterOnBase(opts.Model, opts.Adapter); err != nil {
			return err
		}
	}
	if opts.Merge {
		// The adapter's training image sizes (onBase.Processor) go into preprocessor_config.json.
		eo := qwen.ExportOptions{ShardBytes: opts.ShardMB << 20, Processor: &onBase.Processor}
		if err := qwen.ExportMerged(opts.Model, opts.Out, onBase.Ctx, eo); err != nil {
			return err
		}
		fmt.Fprintf(app.Out, "merged %d adapted layers of %s with %s into %s\n", len(onBase.Modules), opts.Adapter, opts.Model, opts.Out)
		return nil
	}
	files := []string{lora.ConfigName, lora.WeightsName}
	note := ""
	if opts.PeftNames != "" {
		if err := lora.Rename(opts.Adapter, opts.Out, naming); err != nil {
			return err
		}
		files, note = nil, fmt.Sprintf(", %s PEFT names", naming)
	}
	// preprocessor_config.json records the image sizes the adapter was trained with.
	if _, err := os.Stat(filepath.Join(opts.Adapter, qwen.ProcessorFile)); err == nil {
		files = append(files, qwen.ProcessorFile)
	}
	for _, name := range files {
		if err := fsutil.CopyFileAtomic(filepath.Join(opts.Adapter, name), filepath.Join(opts.Out, name)); err != nil {
			return err
		}
	}
	fmt.Fprintf(app.Out, "exported LoRA adapter (r=%d, alpha=%g%s) to %s\n", cfg.R, cfg.Alpha, note, opts.Out)
	visual, err := adapterVisionModules(opts.Adapter)
	if err != nil {
		return err
	}
	for _, n := range vllmAdapterNotes(cfg.R, visual) {
		app.Logger.Warn(n)
	}
	return nil
}

// adapterVisionModules counts the vision-tower tensors of an adapter's weights.
func adapterVisionModules(dir string) (int, error) {
	f, err := safetensors.Open(filepath.Join(dir, lora.WeightsName))
	if err != nil {
		return 0, fmt.Errorf("adapter %s: %w", dir, err)
	}
	defer f.Close()
	n := 0
	for _, k := range f.Names() {
		if strings.Contains(k, ".visual.") {
			n++
		}
	}
	return n, nil
}

// vllmAdapterNotes are what serving the adapter with vLLM needs (scripts/vllm/COMPAT.md): a
// --max-lora-rank of at least r (vLLM's default is 16), and a merged checkpoint instead when
// the adapter touches the vision tower, whose LoRA vLLM skips for Qwen2.5-VL.
func vllmAdapterNotes(r, visionTensors int) []string {
	var notes []string
	if r > 16 {
		rank := 512
		for _, v := range []int{32, 64, 128, 256, 320, 512} {
			if v >= r {
				rank = v
				break
			}
		}
		notes = append(notes, fmt.Sprintf("vLLM: serve this r=%d adapter with --max-lora-rank %d (its default is 16)", r, rank))
	}
	if visionTensors > 0 {
		notes = append(notes, fmt.Sprintf("vLLM: this adapter has %d vision-tower tensors, which vLLM skips for Qwen2.5-VL (outputs would differ): serve a merged checkpoint (acdtcm export --merge) instead", visionTensors))
	}
	return notes
}
