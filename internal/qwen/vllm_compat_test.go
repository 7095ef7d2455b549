package qwen

// Static checks that vLLM can load what acdtcm writes: merged checkpoints (ExportMerged) and
// PEFT adapters (lora.Save), under both transformers namings. vLLM is not installable here,
// so its name handling is transcribed below; see scripts/vllm/COMPAT.md. Sources, from
// github.com/vllm-project/vllm:
//   - vllm/model_executor/models/qwen2_5_vl.py @ fb33ec8cf0a73c82af00a2128dee4ad058d16e9b:
//     Qwen2_5_VLForConditionalGeneration.hf_to_vllm_mapper and packed_modules_mapping,
//     Qwen2_5_VisionTransformer (module tree) and its load_weights (stacked_params_mapping).
//   - vllm/model_executor/models/qwen2.py @ cb24295ecafdd4263f538ecf05a9c69d05190e1b:
//     Qwen2Model.load_weights (stacked_params_mapping), Qwen2ForCausalLM.load_weights
//     (lm_head. skipped when tie_word_embeddings).
//   - vllm/model_executor/models/utils.py WeightsMapper._map_name: prefixes are applied in
//     order, each to the result of the previous one (no break after a match).
//   - vllm/lora/utils.py @ 0fd157078c53638b7ffc9ce7f2c8b8d7ef7a7d28: parse_fine_tuned_lora_name,
//     get_supported_lora_modules; vllm/lora/lora_model.py @ 532cc2581840104cf00297b7ea6a187420456403:
//     from_local_checkpoint (unexpected-module check; target_modules unused for safetensors);
//     vllm/lora/model_manager.py @ bb1d76e5bfb6f2315f4414d1dc4a84f1e7b22e75 (vision-tower LoRA
//     only with enable_tower_connector_lora on models with get_num_mm_encoder_tokens).
//   - vllm/lora/peft_helper.py @ e745bafffc44744aa601169f8c6f325e47ca7cd5: PEFTHelper (required
//     r, lora_alpha, target_modules; rejects modules_to_save and use_dora; bias must be "none"
//     unless LoRA biases are enabled; r <= max_lora_rank; rank_pattern/alpha_pattern ignored).
//   - vllm/config/lora.py @ a78dc92f43ae2471dd40675a47079aa1a9a157c1: max_lora_rank is one of
//     1, 8, 16, 32, 64, 128, 256, 320, 512.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/safetensors"
)

// vllmHFToVLLMPrefixes is Qwen2_5_VLForConditionalGeneration.hf_to_vllm_mapper, in order.
var vllmHFToVLLMPrefixes = [][2]string{
	{"model.language_model.", "language_model.model."}, // transformers >= 4.52
	{"model.visual.", "visual."},
	{"lm_head.", "language_model.lm_head."}, // original (legacy) checkpoints
	{"model.", "language_model.model."},
}

// vllmMapName is WeightsMapper._map_name with orig_to_new_prefix only.
func vllmMapName(name string) string {
	for _, p := range vllmHFToVLLMPrefixes {
		if strings.HasPrefix(name, p[0]) {
			name = p[1] + strings.TrimPrefix(name, p[0])
		}
	}
	return name
}

// vllmStacked are the stacked_params_mapping entries (param, shard name, shard id) of
// Qwen2Model.load_weights and Qwen2_5_VisionTransformer.load_weights; both match substrings.
var vllmStacked = map[string][][3]string{
	"language_model.": {{"qkv_proj", "q_proj", "q"}, {"qkv_proj", "k_proj", "k"}, {"qkv_proj", "v_proj", "v"},
		{"gate_up_proj", "gate_proj", "0"}, {"gate_up_proj", "up_proj", "1"}},
	"visual.": {{"attn.qkv.", "attn.q.", "q"}, {"attn.qkv.", "attn.k.", "k"}, {"attn.qkv.", "attn.v.", "v"},
		{"mlp.gate_up_proj.", "mlp.gate_proj.", "0"}, {"mlp.gate_up_proj.", "mlp.up_proj.", "1"}},
}

// vllmParam returns the vLLM parameter a checkpoint tensor loads into and its shard id ("" for
// a whole parameter); skip is set for lm_head.weight of a model with tied embeddings.
func vllmParam(name string, tied bool) (param, shard string, skip bool, err error) {
	name = vllmMapName(name)
	if tied && strings.HasPrefix(name, "language_model.lm_head.") {
		return "", "", true, nil
	}
	for top, rules := range vllmStacked {
		if !strings.HasPrefix(name, top) {
			continue
		}
		for _, r := range rules {
			if strings.Contains(name, r[1]) {
				return strings.Replace(name, r[1], r[0], 1), r[2], false, nil
			}
		}
		return name, "", false, nil
	}
	return "", "", false, fmt.Errorf("%s has no vLLM module (AutoWeightsLoader raises)", name)
}

// vllmParams lists Qwen2_5_VLForConditionalGeneration's parameters for cfg with the shards
// each needs: the module tree of qwen2_5_vl.py (vision) and qwen2.py (language model).
func vllmParams(cfg *Config) map[string][]string {
	ps := map[string][]string{}
	whole := []string{""}
	lm := "language_model.model."
	ps[lm+"embed_tokens.weight"] = whole
	for l := 0; l < cfg.Text.NumHiddenLayers; l++ {
		p := fmt.Sprintf("%slayers.%d.", lm, l)
		for _, n := range []string{"input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.o_proj.weight", "mlp.down_proj.weight"} {
			ps[p+n] = whole
		}
		ps[p+"self_attn.qkv_proj.weight"] = []string{"q", "k", "v"}
		ps[p+"self_attn.qkv_proj.bias"] = []string{"q", "k", "v"}
		ps[p+"mlp.gate_up_proj.weight"] = []string{"0", "1"}
	}
	ps[lm+"norm.weight"] = whole
	if !cfg.Text.TieWordEmbeddings {
		ps["language_model.lm_head.weight"] = whole
	}
	ps["visual.patch_embed.proj.weight"] = whole
	for b := 0; b < cfg.Vision.Depth; b++ {
		p := fmt.Sprintf("visual.blocks.%d.", b)
		for _, n := range []string{"norm1.weight", "norm2.weight", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight",
			"attn.proj.bias", "mlp.down_proj.weight", "mlp.down_proj.bias"} {
			ps[p+n] = whole
		}
		ps[p+"mlp.gate_up_proj.weight"] = []string{"0", "1"}
		ps[p+"mlp.gate_up_proj.bias"] = []string{"0", "1"}
	}
	for _, n := range []string{"ln_q.weight", "mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"} {
		ps["visual.merger."+n] = whole
	}
	return ps
}

// checkVLLMWeights fails unless every name loads into a vLLM parameter (shard) exactly once
// and every parameter is loaded (DefaultModelLoader raises on uninitialized weights).
func checkVLLMWeights(t *testing.T, what string, cfg *Config, names []string) {
	t.Helper()
	want := vllmParams(cfg)
	got := map[string]map[string]string{}
	for _, name := range names {
		param, shard, skip, err := vllmParam(name, cfg.Text.TieWordEmbeddings)
		if err != nil {
			t.Errorf("%s: %v", what, err)
			continue
		}
		if skip {
			continue
		}
		if _, ok := want[param]; !ok {
			t.Errorf("%s: %s -> %s, which vLLM's Qwen2.5-VL does not have", what, name, param)
			continue
		}
		if got[param] == nil {
			got[param] = map[string]string{}
		}
		if prev, dup := got[param][shard]; dup {
			t.Errorf("%s: %s and %s both load %s shard %q", what, prev, name, param, shard)
		}
		got[param][shard] = name
	}
	for param, shards := range want {
		for _, s := range shards {
			if _, ok := got[param][s]; !ok {
				t.Errorf("%s: vLLM parameter %s (shard %q) is not in the checkpoint", what, param, s)
			}
		}
	}
}

// newSpelling is a canonical (legacy) tensor name as transformers >= 4.52 saves it.
func newSpelling(name string) string {
	switch {
	case strings.HasPrefix(name, "model."):
		return "model.language_model." + strings.TrimPrefix(name, "model.")
	case strings.HasPrefix(name, "visual."):
		return "model." + name
	}
	return name
}

func TestVLLMWeightNames(t *testing.T) {
	for _, file := range []string{"original-3b.json", "resaved-7b.json"} { // tied and untied lm_head
		cfg, err := LoadConfig(filepath.Join("testdata", "configs", file))
		if err != nil {
			t.Fatal(err)
		}
		var legacy, renamed []string
		for _, s := range cfg.ExpectedTensors() {
			legacy = append(legacy, s.Name)
			renamed = append(renamed, newSpelling(s.Name))
		}
		checkVLLMWeights(t, file+" legacy names", cfg, legacy)
		checkVLLMWeights(t, file+" new names", cfg, renamed)
	}
}

// TestVLLMLoadsExports exports a merged checkpoint from a tiny base in each naming and a PEFT
// adapter in each naming, and checks them against vLLM's loaders.
func TestVLLMLoadsExports(t *testing.T) {
	root := t.TempDir()
	base := filepath.Join(root, "legacy-base")
	if _, err := InitCheckpoint(base, InitOptions{Preset: PresetTiny, Seed: 3}); err != nil {
		t.Fatal(err)
	}
	// The same weights as transformers >= 4.52 saves them (model.language_model.*, model.visual.*).
	newBase := filepath.Join(root, "new-base")
	if err := os.MkdirAll(newBase, 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := safetensors.OpenCheckpoint(base)
	if err != nil {
		t.Fatal(err)
	}
	var ts []safetensors.Tensor
	for _, name := range src.Names() {
		info, _ := src.Info(name)
		raw, err := src.Bytes(name)
		if err != nil {
			t.Fatal(err)
		}
		ts = append(ts, safetensors.Tensor{Name: newSpelling(name), DType: info.DType, Shape: info.Shape, Data: raw})
	}
	err = safetensors.WriteFile(filepath.Join(newBase, "model.safetensors"), ts, map[string]string{"format": "pt"})
	src.Close() // after writing: Bytes are views of the memory-mapped file
	if err != nil {
		t.Fatal(err)
	}
	if err := CopySideFiles(base, newBase); err != nil {
		t.Fatal(err)
	}

	backend, _ := mlbackend.New("go")
	load := func(lmOnly bool) (*Model, *lora.Config) {
		m, err := Load(base, backend)
		if err != nil {
			t.Fatal(err)
		}
		cfg := defaultLoRA(t, lmOnly)
		attachLoRA(t, m, cfg, 5)
		randomizeB(t, m.Ctx, 6)
		return m, cfg
	}
	lmModel, lmCfg := load(true)    // acdtcm's default: language model only
	visModel, visCfg := load(false) // plain suffix list: the vision MLPs too

	for _, b := range []string{base, newBase} {
		out := filepath.Join(root, "merged-"+filepath.Base(b))
		if err := ExportMerged(b, out, visModel.Ctx, ExportOptions{ShardBytes: 200 << 10}); err != nil {
			t.Fatal(err)
		}
		ck, err := safetensors.OpenCheckpoint(out)
		if err != nil {
			t.Fatal(err)
		}
		checkVLLMWeights(t, "merged from "+filepath.Base(b), visModel.Config, ck.Names())
		ck.Close()
		var doc struct {
			Architectures []string       `json:"architectures"`
			ModelType     string         `json:"model_type"`
			RopeScaling   map[string]any `json:"rope_scaling"`
			ImageTokenID  *int           `json:"image_token_id"`
		}
		data, err := os.ReadFile(filepath.Join(out, "config.json"))
		if err != nil || json.Unmarshal(data, &doc) != nil {
			t.Fatalf("config.json: %v", err)
		}
		// vLLM picks the model class from architectures (registry key) and M-RoPE from
		// rope_scaling.mrope_section; its processor needs preprocessor_config.json.
		if len(doc.Architectures) != 1 || doc.Architectures[0] != "Qwen2_5_VLForConditionalGeneration" || doc.ModelType != "qwen2_5_vl" ||
			doc.RopeScaling["mrope_section"] == nil || doc.ImageTokenID == nil {
			t.Errorf("merged config.json lacks what vLLM needs: %s", data)
		}
		for _, f := range []string{"preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"} {
			if _, err := os.Stat(filepath.Join(out, f)); err != nil {
				t.Errorf("merged checkpoint lacks %s", f)
			}
		}
	}

	for _, naming := range []lora.Naming{lora.NamingNew, lora.NamingLegacy} {
		for _, tc := range []struct {
			name string
			m    *Model
			cfg  *lora.Config
		}{{"lm-only", lmModel, lmCfg}, {"with-vision", visModel, visCfg}} {
			dir := filepath.Join(root, tc.name+"-"+naming.String())
			if err := lora.Save(tc.m.Ctx, tc.cfg, dir, naming); err != nil {
				t.Fatal(err)
			}
			checkVLLMAdapter(t, tc.name+" "+naming.String(), dir, tc.m.Config, tc.name == "with-vision")
		}
	}
}

// vllmLoRASuffixes are the expected_lora_modules of vLLM's Qwen2.5-VL: the last name of every
// LinearBase module (get_supported_lora_modules), packed ones expanded through
// packed_modules_mapping. An adapter module whose last name is not here fails to load.
var vllmLoRASuffixes = map[string]bool{"q_proj": true, "k_proj": true, "v_proj": true, "o_proj": true, "gate_proj": true,
	"up_proj": true, "down_proj": true, "qkv": true, "proj": true, "0": true, "2": true}

// checkVLLMAdapter checks adapter_config.json against PEFTHelper and every tensor key against
// parse_fine_tuned_lora_name + hf_to_vllm_mapper. Language-model modules are required;
// vision-tower ones load, but vLLM applies them only with tower/connector LoRA enabled
// (model_manager.py), which Qwen2.5-VL lacks at fb33ec8c: they are allowed only if vision.
func checkVLLMAdapter(t *testing.T, what, dir string, cfg *Config, vision bool) {
	t.Helper()
	var conf map[string]any
	data, err := os.ReadFile(filepath.Join(dir, lora.ConfigName))
	if err != nil || json.Unmarshal(data, &conf) != nil {
		t.Fatalf("%s: adapter config: %v", what, err)
	}
	for _, k := range []string{"r", "lora_alpha", "target_modules"} { // PEFTHelper.from_dict
		if _, ok := conf[k]; !ok {
			t.Errorf("%s: adapter_config.json lacks %s", what, k)
		}
	}
	if r, _ := conf["r"].(float64); r < 1 || r > 512 {
		t.Errorf("%s: r=%v is outside vLLM's max_lora_rank range", what, conf["r"])
	}
	if mts, ok := conf["modules_to_save"].([]any); ok && len(mts) > 0 {
		t.Errorf("%s: vLLM rejects modules_to_save %v", what, mts)
	}
	if conf["use_dora"] == true || (conf["bias"] != nil && conf["bias"] != "none") {
		t.Errorf("%s: use_dora %v, bias %v: vLLM rejects DoRA and LoRA biases", what, conf["use_dora"], conf["bias"])
	}
	for _, k := range []string{"rank_pattern", "alpha_pattern"} {
		if p, ok := conf[k].(map[string]any); ok && len(p) > 0 {
			t.Errorf("%s: vLLM ignores %s %v (it scales every module by lora_alpha/r)", what, k, p)
		}
	}
	lm := map[string]bool{}
	for l := 0; l < cfg.Text.NumHiddenLayers; l++ {
		for _, n := range []string{"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"} {
			lm[fmt.Sprintf("language_model.model.layers.%d.%s", l, n)] = true
		}
	}
	f, err := safetensors.Open(filepath.Join(dir, lora.WeightsName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ab := map[string]int{}
	nlm, nvis := 0, 0
	for _, key := range f.Names() {
		// parse_fine_tuned_lora_name: strip base_model.model., map, take the module path.
		rest, ok := strings.CutPrefix(key, "base_model.model.")
		parts := strings.Split(vllmMapName(rest), ".")
		if !ok || len(parts) < 3 || parts[len(parts)-1] != "weight" || (parts[len(parts)-2] != "lora_A" && parts[len(parts)-2] != "lora_B") {
			t.Errorf("%s: %s is not a LoRA weight vLLM parses", what, key)
			continue
		}
		module := strings.Join(parts[:len(parts)-2], ".")
		if !vllmLoRASuffixes[parts[len(parts)-3]] {
			t.Errorf("%s: %s: vLLM rejects module %s (not a supported LoRA module)", what, key, module)
		}
		ab[module]++
		if ab[module] > 1 {
			continue
		}
		switch {
		case lm[module]:
			nlm++
		case vision && strings.HasPrefix(module, "visual.blocks."):
			nvis++
		default:
			t.Errorf("%s: %s adapts %s, not a module vLLM applies LoRA to", what, key, module)
		}
	}
	for mod, n := range ab {
		if n != 2 {
			t.Errorf("%s: %s has %d of lora_A/lora_B", what, mod, n)
		}
	}
	if nlm != len(lm) {
		t.Errorf("%s: adapter covers %d language-model projections, want %d", what, nlm, len(lm))
	}
	if vision && nvis == 0 {
		t.Errorf("%s: no vision-tower adapters", what)
	}
	if nvis > 0 {
		t.Logf("%s: %d vision-tower modules: vLLM (fb33ec8c) ignores them, with a warning", what, nvis)
	}
}
