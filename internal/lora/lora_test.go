package lora

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/mlbackend"
)

func TestTargets(t *testing.T) {
	list, _ := NewConfig(8, 16, 0, DefaultTargets, false)
	lm, _ := NewConfig(8, 16, 0, DefaultTargets, true)
	newRegex := &Config{R: 8, Alpha: 8, TargetModules: json.RawMessage(`".*language_model.*\\.(q_proj|v_proj)"`)}
	if err := newRegex.compile(); err != nil {
		t.Fatal(err)
	}
	excl := &Config{R: 8, Alpha: 8, TargetModules: json.RawMessage(`["q_proj","gate_proj"]`), ExcludeModules: json.RawMessage(`".*visual.*"`)}
	if err := excl.compile(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		cfg    *Config
		module string
		want   bool
	}{
		{list, "model.layers.0.self_attn.q_proj", true},
		{list, "visual.blocks.3.mlp.gate_proj", true}, // the PEFT pitfall: suffix lists hit the ViT MLP
		{list, "visual.blocks.3.attn.qkv", false},
		{list, "model.layers.0.self_attn.q_proj_extra", false},
		{lm, "model.layers.0.mlp.down_proj", true},
		{lm, "visual.blocks.3.mlp.gate_proj", false},
		{newRegex, "model.layers.2.self_attn.v_proj", true}, // matched through its new spelling
		{newRegex, "model.layers.2.self_attn.k_proj", false},
		{excl, "visual.blocks.0.mlp.gate_proj", false},
		{excl, "model.layers.0.mlp.gate_proj", true},
	}
	for _, tc := range tests {
		if got := tc.cfg.Targets(tc.module); got != tc.want {
			t.Errorf("Targets(%s) with %s = %v, want %v", tc.module, tc.cfg.TargetModules, got, tc.want)
		}
	}
}

func TestRankAndScaling(t *testing.T) {
	c := &Config{R: 64, Alpha: 16, TargetModules: json.RawMessage(`["q_proj"]`),
		RankPattern: map[string]int{`layers\.1\.self_attn\.q_proj`: 8}, AlphaPattern: map[string]float64{`q_proj`: 32}}
	if err := c.compile(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		module string
		rs     bool
		wantR  int
		wantS  float64
	}{
		{"model.layers.0.self_attn.q_proj", false, 64, 32.0 / 64},
		{"model.layers.1.self_attn.q_proj", false, 8, 32.0 / 8},
		{"model.layers.0.self_attn.q_proj", true, 64, 32.0 / 8}, // rsLoRA: alpha/sqrt(r)
	}
	for _, tc := range tests {
		c.UseRSLoRA = tc.rs
		r, s := c.RankAndScaling(tc.module)
		if r != tc.wantR || math.Abs(s-tc.wantS) > 1e-12 {
			t.Errorf("%s rslora=%v: r=%d s=%g, want %d %g", tc.module, tc.rs, r, s, tc.wantR, tc.wantS)
		}
	}
}

func TestConfigErrorsAndPEFTKeys(t *testing.T) {
	for _, body := range []string{
		`{"peft_type":"LORA","r":0,"target_modules":["q_proj"]}`,
		`{"peft_type":"IA3","r":8,"target_modules":["q_proj"]}`,
		`{"peft_type":"LORA","r":8,"use_dora":true,"target_modules":["q_proj"]}`,
		`{"peft_type":"LORA","r":8,"target_modules":"("}`,
		`{"peft_type":"LORA","r":8}`,
	} {
		dir := t.TempDir()
		os.WriteFile(filepath.Join(dir, ConfigName), []byte(body), 0o644)
		if _, err := LoadConfig(dir); err == nil || !strings.Contains(err.Error(), ConfigName) {
			t.Errorf("config %s: err = %v, want an error naming %s", body, err, ConfigName)
		}
	}
	keys := []struct{ key, module, matrix string }{
		{"base_model.model.model.language_model.layers.0.self_attn.q_proj.lora_A.weight", "model.layers.0.self_attn.q_proj", "lora_A"},
		{"base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight", "model.layers.0.self_attn.q_proj", "lora_B"},
		{"base_model.model.model.visual.blocks.0.mlp.gate_proj.lora_A.weight", "visual.blocks.0.mlp.gate_proj", "lora_A"},
		{"base_model.model.visual.blocks.0.mlp.gate_proj.lora_A.weight", "visual.blocks.0.mlp.gate_proj", "lora_A"},
	}
	for _, k := range keys {
		module, matrix, ok := parsePeftKey(k.key)
		if !ok || module != k.module || matrix != k.matrix {
			t.Errorf("parsePeftKey(%s) = %s %s %v", k.key, module, matrix, ok)
		}
	}
	if got := peftKey("model.layers.0.self_attn.q_proj", "lora_A", NamingNew); got != keys[0].key {
		t.Errorf("new-naming key %s", got)
	}
	if got := peftKey("visual.blocks.0.mlp.gate_proj", "lora_A", NamingLegacy); got != keys[3].key {
		t.Errorf("legacy-naming key %s", got)
	}
}

// TestApplyGradientFiniteDifferences checks the LoRA branch of one linear layer in float64:
// d/dA and d/dB of sum(y * r) against central differences, and the forward formula.
func TestApplyGradientFiniteDifferences(t *testing.T) {
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	cfg, _ := NewConfig(2, 6, 0, []string{"proj"}, false)
	Attach(ctx, cfg, []Module{{Name: "m.proj", In: 3, Out: 4}}, 9)
	a := ctx.GetVariableByScopeAndName("/lora/m/proj", "lora_A")
	b := ctx.GetVariableByScopeAndName("/lora/m/proj", "lora_B")
	a.MustSetValue(tensors.FromFlatDataAndDimensions([]float64{0.1, -0.2, 0.3, 0.05, 0.4, -0.1}, 2, 3))
	b.MustSetValue(tensors.FromFlatDataAndDimensions([]float64{0.2, -0.1, 0.05, 0.3, -0.4, 0.1, 0.25, 0.15}, 4, 2))
	ctx.GetVariableByScopeAndName("/lora/m/proj", "scaling").MustSetValue(tensors.FromScalar(3.0))
	x := []float64{1, -2, 0.5, 0.3, 0.7, -1.1}
	r := []float64{0.5, -1, 2, 0.1, 1, 1, -0.3, 0.2}
	lossFn := func(ctx *context.Context, xs, rs *Node) *Node {
		y := Apply(ctx, xs, ZerosLike(rs), "m.proj")
		return ReduceAllSum(Mul(y, rs))
	}
	exec, err := context.NewExecAny(backend, ctx, func(ctx *context.Context, xs, rs *Node) []*Node {
		loss := lossFn(ctx, xs, rs)
		g := loss.Graph()
		return append([]*Node{loss}, Gradient(loss, a.ValueGraph(g), b.ValueGraph(g))...)
	})
	if err != nil {
		t.Fatal(err)
	}
	xt, rt := tensors.FromFlatDataAndDimensions(x, 2, 3), tensors.FromFlatDataAndDimensions(r, 2, 4)
	out := exec.MustExec(xt, rt)
	// Forward check by hand: loss = 3 * sum_n sum_o r[n,o] * (B (A x_n))_o.
	av, _ := tensors.CopyFlatData[float64](a.MustValue())
	bv, _ := tensors.CopyFlatData[float64](b.MustValue())
	want := 0.0
	for n := 0; n < 2; n++ {
		var h [2]float64
		for k := 0; k < 2; k++ {
			for i := 0; i < 3; i++ {
				h[k] += av[k*3+i] * x[n*3+i]
			}
		}
		for o := 0; o < 4; o++ {
			want += 3 * r[n*4+o] * (bv[o*2]*h[0] + bv[o*2+1]*h[1])
		}
	}
	if got := out[0].Value().(float64); math.Abs(got-want) > 1e-12 {
		t.Fatalf("loss %.15g, by hand %.15g", got, want)
	}
	lossExec, _ := context.NewExecAny(backend, ctx, lossFn)
	for vi, v := range []*context.Variable{a, b} {
		grad, _ := tensors.CopyFlatData[float64](out[1+vi])
		vals, _ := tensors.CopyFlatData[float64](v.MustValue())
		dims := v.Shape().Dimensions
		for i := range vals {
			const eps = 1e-6
			eval := func(d float64) float64 {
				c := append([]float64(nil), vals...)
				c[i] += d
				v.MustSetValue(tensors.FromFlatDataAndDimensions(c, dims...))
				return lossExec.MustExec(xt, rt)[0].Value().(float64)
			}
			fd := (eval(eps) - eval(-eps)) / (2 * eps)
			v.MustSetValue(tensors.FromFlatDataAndDimensions(vals, dims...))
			if math.Abs(fd-grad[i]) > 1e-8 {
				t.Errorf("%s[%d]: autodiff %g, finite difference %g", v.Name(), i, grad[i], fd)
			}
		}
	}
}

// TestSavedConfigHasPatternDicts: PEFT 0.15 fails to load an adapter_config.json whose
// rank_pattern/alpha_pattern are null (PeftModel.from_pretrained calls .keys() on them).
func TestSavedConfigHasPatternDicts(t *testing.T) {
	c, err := NewConfig(4, 8, 0, DefaultTargets, true)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := c.Save(dir); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, ConfigName))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"rank_pattern", "alpha_pattern"} {
		if m, ok := doc[key].(map[string]any); !ok || len(m) != 0 {
			t.Errorf("%s = %v, want {}", key, doc[key])
		}
	}
	if c.RankPattern != nil || c.AlphaPattern != nil {
		t.Error("Save changed the config it saved")
	}
}
