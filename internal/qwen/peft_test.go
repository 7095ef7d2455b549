package qwen

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/safetensors"
)

// PEFT exchange fixtures (issue #6), in testdata/peft:
//
//	acdtcm-adapter/        an adapter written by acdtcm (writeAcdtcmAdapter; deterministic)
//	acdtcm-adapter.json    what PEFT computes with it (PeftModel.from_pretrained)
//	peft-adapter/          an adapter made and saved by PEFT (get_peft_model, save_pretrained)
//	peft-adapter.json      what PEFT computes with it
//	*-grad.json, *-grad.safetensors  PEFT's loss and LoRA gradients with each adapter for one
//	                       training sample (internal/train's TestLoRAGradientsMatchPEFT)
//
// The .json files and peft-adapter/ are written by scripts/peft-reference/peft_exchange.py on
// the tiny seed-7 checkpoint, with the same prompt as the parity fixture; the -grad files by
// scripts/peft-reference/peft_gradients.py.
var peftDir = filepath.Join("testdata", "peft")

// acdtcmAdapterTargets adapt every linear layer acdtcm supports: the language model's
// projections, the vision blocks' qkv/proj and MLPs, and the patch merger's two linears.
var acdtcmAdapterTargets = append(slices.Clone(lora.DefaultTargets), "qkv", "attn.proj", "mlp.0", "mlp.2")

// writeAcdtcmAdapter saves a LoRA adapter on the tiny seed-7 model as acdtcm makes them
// (Kaiming-uniform A from a seed) with non-zero B, in PEFT's format with the module names of
// transformers < 4.52 (the transformers 4.50 the fixture was made with).
func writeAcdtcmAdapter(t *testing.T, dir string) {
	t.Helper()
	m := tinySeed7(t)
	cfg, err := lora.NewConfig(4, 8, 0, acdtcmAdapterTargets, false)
	if err != nil {
		t.Fatal(err)
	}
	cfg.BaseModel = "acdtcm model init --preset tiny --seed 7"
	attachLoRA(t, m, cfg, 21)
	randomizeB(t, m.Ctx, 22)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := lora.Save(m.Ctx, cfg, dir, lora.NamingLegacy); err != nil {
		t.Fatal(err)
	}
}

// TestAcdtcmAdapterFixtureIsCurrent checks that testdata/peft/acdtcm-adapter is what this code
// writes, so PEFT's reference outputs belong to it. ACDTCM_WRITE_PEFT_FIXTURE=1 rewrites it
// (then rerun scripts/peft-reference/peft_exchange.py and peft_gradients.py).
func TestAcdtcmAdapterFixtureIsCurrent(t *testing.T) {
	committed := filepath.Join(peftDir, "acdtcm-adapter")
	if os.Getenv("ACDTCM_WRITE_PEFT_FIXTURE") == "1" {
		writeAcdtcmAdapter(t, committed)
		t.Logf("wrote %s", committed)
		return
	}
	fresh := filepath.Join(t.TempDir(), "adapter")
	writeAcdtcmAdapter(t, fresh)
	for _, name := range []string{lora.ConfigName, lora.WeightsName} {
		want, err := os.ReadFile(filepath.Join(committed, name))
		if err != nil {
			t.Fatalf("%v (ACDTCM_WRITE_PEFT_FIXTURE=1 go test -run %s writes it)", err, t.Name())
		}
		got, err := os.ReadFile(filepath.Join(fresh, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from what acdtcm writes now: rewrite it with ACDTCM_WRITE_PEFT_FIXTURE=1 and rerun scripts/peft-reference/peft_exchange.py and peft_gradients.py", name)
		}
	}
}

// checkPEFT loads testdata/peft/<name> onto the tiny seed-7 model and compares with PEFT's
// outputs for the same adapter.
func checkPEFT(t *testing.T, name string) {
	fx, ok := readReference(t, filepath.Join(peftDir, name+".json"))
	if !ok {
		t.Skipf("skipping: no PEFT reference for %s (run scripts/peft-reference/peft_exchange.py where transformers and PEFT are installed; scripts/pyshim/README.md)", name)
	}
	m := tinySeed7(t)
	_, modules, err := m.LoadAdapter(filepath.Join(peftDir, name))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(modules, fx.AdaptedModules) {
		t.Fatalf("acdtcm adapted %d modules %v,\nPEFT %d %v", len(modules), modules, len(fx.AdaptedModules), fx.AdaptedModules)
	}
	t.Logf("%d adapted modules", len(modules))
	checkAgainstReference(t, m, fx, 0)
}

// TestPEFTLoadsAcdtcmAdapter: an adapter acdtcm saved, loaded by PEFT's
// PeftModel.from_pretrained, gives acdtcm's features, logits and greedy tokens.
func TestPEFTLoadsAcdtcmAdapter(t *testing.T) { checkPEFT(t, "acdtcm-adapter") }

// TestAcdtcmLoadsPEFTAdapter: an adapter PEFT made and saved (rsLoRA, a rank_pattern, random
// B) loads with --adapter and gives PEFT's features, logits and greedy tokens.
func TestAcdtcmLoadsPEFTAdapter(t *testing.T) { checkPEFT(t, "peft-adapter") }

// TestSavedNamingMatchesPEFT: with --peft-names legacy, acdtcm saves exactly the tensor keys
// PEFT wrote under transformers 4.50 for the same config (testdata/peft/peft-adapter), and
// with new names (the default) those keys in the transformers >= 4.52 spelling. Both load
// back to identical weights.
func TestSavedNamingMatchesPEFT(t *testing.T) {
	fixture := filepath.Join(peftDir, "peft-adapter")
	cfg, err := lora.LoadConfig(fixture)
	if err != nil {
		t.Fatal(err)
	}
	peftKeys := safetensorsKeys(t, filepath.Join(fixture, lora.WeightsName))
	var newKeys []string
	for _, k := range peftKeys {
		if rest, ok := strings.CutPrefix(k, "base_model.model.model."); ok {
			k = "base_model.model.model.language_model." + rest
		} else if rest, ok := strings.CutPrefix(k, "base_model.model.visual."); ok {
			k = "base_model.model.model.visual." + rest
		}
		newKeys = append(newKeys, k)
	}
	slices.Sort(newKeys)
	m := tinySeed7(t)
	attachLoRA(t, m, cfg, 3)
	randomizeB(t, m.Ctx, 4)
	tests := []struct {
		flag string
		want []string
	}{
		{"legacy", peftKeys},
		{"new", newKeys},
		{"", newKeys},
	}
	for _, tc := range tests {
		naming, err := lora.ParseNaming(tc.flag)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(t.TempDir(), "adapter")
		if err := lora.Save(m.Ctx, cfg, dir, naming); err != nil {
			t.Fatal(err)
		}
		if got := safetensorsKeys(t, filepath.Join(dir, lora.WeightsName)); !slices.Equal(got, tc.want) {
			t.Errorf("--peft-names %q saves keys\n%v\nwant\n%v", tc.flag, got, tc.want)
		}
		m2 := tinySeed7(t)
		_, names, err := m2.LoadAdapter(dir)
		if err != nil {
			t.Fatal(err)
		}
		if want := lora.Adapted(m.Ctx); !slices.Equal(names, want) {
			t.Fatalf("--peft-names %q: reloaded %v, want %v", tc.flag, names, want)
		}
		for _, name := range names {
			a1, b1, _, _, s1, _ := lora.Weights(m.Ctx, name)
			a2, b2, _, _, s2, err := lora.Weights(m2.Ctx, name)
			if err != nil || !slices.Equal(a1, a2) || !slices.Equal(b1, b2) || s1 != s2 {
				t.Errorf("--peft-names %q: %s does not round-trip (%v)", tc.flag, name, err)
			}
		}
	}
}

func safetensorsKeys(t *testing.T, path string) []string {
	t.Helper()
	f, err := safetensors.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return f.Names()
}
