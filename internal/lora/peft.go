package lora

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/safetensors"
)

// Naming selects the module path spelling of saved adapter keys. PEFT matches adapter keys
// against the module names of the transformers it runs on, and an adapter whose keys do not
// match loads with only a "missing adapter keys" warning and changes nothing, so the naming
// must fit the transformers version the adapter is used with. Loading accepts both.
type Naming int

// Naming schemes of Qwen2.5-VL checkpoints in transformers.
const (
	// NamingNew is transformers ≥ 4.52: model.language_model.*, model.visual.*.
	NamingNew Naming = iota
	// NamingLegacy is transformers < 4.52 (4.49-4.51), the layout Qwen shipped: model.*, visual.*.
	NamingLegacy
)

// NamingUsage describes the --peft-names values.
const NamingUsage = `adapter key spelling: "new" (transformers >= 4.52: model.language_model.*, model.visual.*) or "legacy" (transformers < 4.52: model.*, visual.*)`

// String returns the --peft-names value of a naming.
func (n Naming) String() string {
	if n == NamingLegacy {
		return "legacy"
	}
	return "new"
}

// ParseNaming reads a --peft-names value: "new" (also "") or "legacy".
func ParseNaming(s string) (Naming, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "new":
		return NamingNew, nil
	case "legacy":
		return NamingLegacy, nil
	}
	return 0, fmt.Errorf("unknown PEFT naming %q: want new (transformers >= 4.52) or legacy (transformers < 4.52)", s)
}

// peftKey is PEFT's state-dict key of a module's adapter matrix ("lora_A" or "lora_B").
func peftKey(module, matrix string, naming Naming) string {
	name := module
	if naming == NamingNew {
		name = spellings(module)[len(spellings(module))-1]
	}
	return "base_model.model." + name + "." + matrix + ".weight"
}

// parsePeftKey turns a PEFT key's module path (either naming) into acdtcm's canonical
// (legacy) module name, or "" with the matrix name when the key is not a LoRA matrix.
func parsePeftKey(key string) (module, matrix string, ok bool) {
	rest, found := strings.CutPrefix(key, "base_model.model.")
	if !found {
		return "", "", false
	}
	for _, m := range []string{"lora_A", "lora_B"} {
		if base, cut := strings.CutSuffix(rest, "."+m+".weight"); cut {
			switch {
			case strings.HasPrefix(base, "model.language_model."):
				base = "model." + strings.TrimPrefix(base, "model.language_model.")
			case strings.HasPrefix(base, "model.visual."):
				base = strings.TrimPrefix(base, "model.")
			}
			return base, m, true
		}
	}
	return "", "", false
}

// Save writes the adapters in ctx in PEFT's format (adapter_config.json +
// adapter_model.safetensors) to dir, atomically.
func Save(ctx *context.Context, cfg *Config, dir string, naming Naming) error {
	modules := Adapted(ctx)
	if len(modules) == 0 {
		return fmt.Errorf("no LoRA adapters to save")
	}
	var ts []safetensors.Tensor
	for _, m := range modules {
		a, b, aShape, bShape, _, err := Weights(ctx, m)
		if err != nil {
			return err
		}
		ts = append(ts, safetensors.F32Tensor(peftKey(m, "lora_A", naming), aShape, a), safetensors.F32Tensor(peftKey(m, "lora_B", naming), bShape, b))
	}
	if err := safetensors.WriteFile(filepath.Join(dir, WeightsName), ts, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	return cfg.Save(dir)
}

// Rename copies the adapter directory src to dst with its tensor keys spelled in naming; the
// tensors' bytes and dtypes and adapter_config.json are copied unchanged. Tensors other than
// LoRA A/B matrices are errors, as in Load.
func Rename(src, dst string, naming Naming) error {
	path := filepath.Join(src, WeightsName)
	f, err := safetensors.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var ts []safetensors.Tensor
	seen := map[string]string{}
	for _, key := range f.Names() {
		module, matrix, ok := parsePeftKey(key)
		if !ok {
			return fmt.Errorf("%s: unsupported adapter tensor %s (only LoRA A/B matrices are supported)", path, key)
		}
		name := peftKey(module, matrix, naming)
		if other, dup := seen[name]; dup {
			return fmt.Errorf("%s: tensors %s and %s are the same matrix under two namings", path, other, key)
		}
		seen[name] = key
		raw, info, err := f.Bytes(key)
		if err != nil {
			return err
		}
		ts = append(ts, safetensors.Tensor{Name: name, DType: info.DType, Shape: info.Shape, Data: raw})
	}
	if len(ts) == 0 {
		return fmt.Errorf("%s: no adapter tensors", path)
	}
	meta := f.Metadata
	if meta == nil {
		meta = map[string]string{"format": "pt"}
	}
	if err := safetensors.WriteFile(filepath.Join(dst, WeightsName), ts, meta); err != nil {
		return err
	}
	return fsutil.CopyFileAtomic(filepath.Join(src, ConfigName), filepath.Join(dst, ConfigName))
}

// Load reads a PEFT LoRA adapter directory into ctx for the given base modules. Adapters
// whose module is unknown or whose shapes disagree with the base are errors naming the key.
// It returns the config and the adapted module names.
func Load(ctx *context.Context, dir string, modules []Module) (*Config, []string, error) {
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, WeightsName)
	f, err := safetensors.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	known := map[string]Module{}
	for _, m := range modules {
		known[m.Name] = m
	}
	type pair struct{ a, b *tensors.Tensor }
	found := map[string]*pair{}
	for _, key := range f.Names() {
		module, matrix, ok := parsePeftKey(key)
		if !ok {
			return nil, nil, fmt.Errorf("%s: unsupported adapter tensor %s (only LoRA A/B matrices are supported)", path, key)
		}
		m, ok := known[module]
		if !ok {
			return nil, nil, fmt.Errorf("%s: tensor %s adapts %s, which the base model does not have", path, key, module)
		}
		vals, info, err := f.Float32(key)
		if err != nil {
			return nil, nil, err
		}
		r, _ := cfg.RankAndScaling(module)
		want := []int{r, m.In}
		if matrix == "lora_B" {
			want = []int{m.Out, r}
		}
		if len(info.Shape) != 2 || info.Shape[0] != want[0] || info.Shape[1] != want[1] {
			return nil, nil, fmt.Errorf("%s: tensor %s has shape %v, want %v for r=%d", path, key, info.Shape, want, r)
		}
		p := found[module]
		if p == nil {
			p = &pair{}
			found[module] = p
		}
		t := tensors.FromFlatDataAndDimensions(vals, info.Shape...)
		if matrix == "lora_A" {
			p.a = t
		} else {
			p.b = t
		}
	}
	var names []string
	for module, p := range found {
		if p.a == nil || p.b == nil {
			return nil, nil, fmt.Errorf("%s: module %s has only one of lora_A/lora_B", path, module)
		}
		_, s := cfg.RankAndScaling(module)
		if err := setAdapter(ctx, module, p.a, p.b, s); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", path, err)
		}
		names = append(names, module)
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("%s: no adapter tensors", path)
	}
	ctx.SetParam(paramDropout, cfg.Dropout)
	sort.Strings(names)
	return cfg, names, nil
}

// MergedWeight returns W + s·B·A for a module's base weight W [out, in] (row-major).
func MergedWeight(ctx *context.Context, module string, w []float32, out, in int) ([]float32, error) {
	a, b, aShape, bShape, s, err := Weights(ctx, module)
	if err != nil {
		return nil, err
	}
	r := aShape[0]
	if aShape[1] != in || bShape[0] != out || bShape[1] != r {
		return nil, fmt.Errorf("adapter of %s has A %v, B %v; base weight is [%d, %d]", module, aShape, bShape, out, in)
	}
	merged := append([]float32(nil), w...)
	for o := 0; o < out; o++ {
		for k := 0; k < r; k++ {
			bk := s * b[o*r+k]
			if bk == 0 {
				continue
			}
			row := merged[o*in : (o+1)*in]
			arow := a[k*in : (k+1)*in]
			for i := range row {
				row[i] += bk * arow[i]
			}
		}
	}
	return merged, nil
}
