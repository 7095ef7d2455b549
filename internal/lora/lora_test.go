package lora

import (
	"bytes"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/safetensors"
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
	userRegex, err := NewRegexConfig(8, 16, 0, `.*layers\.0\..*(?<!k)_proj`) // --lora-target-regex
	if err != nil {
		t.Fatal(err)
	}
	if want := `".*layers\\.0\\..*(?<!k)_proj"`; string(userRegex.TargetModules) != want {
		t.Errorf("regex target_modules written as %s, want %s", userRegex.TargetModules, want)
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
		{userRegex, "model.layers.0.self_attn.q_proj", true},
		{userRegex, "model.layers.0.self_attn.k_proj", false}, // (?<!k) lookbehind
		{userRegex, "model.layers.10.mlp.up_proj", false},
	}
	for _, tc := range tests {
		if got := tc.cfg.Targets(tc.module); got != tc.want {
			t.Errorf("Targets(%s) with %s = %v, want %v", tc.module, tc.cfg.TargetModules, got, tc.want)
		}
	}
}

func TestRankAndScaling(t *testing.T) {
	c := &Config{R: 64, Alpha: 16, TargetModules: json.RawMessage(`["q_proj"]`),
		RankPattern: Patterns[int]{{`layers\.1\.self_attn\.q_proj`, 8}}, AlphaPattern: Patterns[float64]{{`q_proj`, 32}}}
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

// TestOverlappingPatterns: when several rank_pattern/alpha_pattern keys match a module, PEFT
// (get_pattern_key) takes the first in adapter_config.json's order; a key matches the whole
// name or a "."-suffix, re.match(rf"(.*\.)?({key})$", name). Each config is decoded from
// JSON, so the order is the file's, and every lookup is repeated to catch map-order luck.
func TestOverlappingPatterns(t *testing.T) {
	const (
		q0   = "model.layers.0.self_attn.q_proj"
		q1   = "model.layers.1.self_attn.q_proj"
		k1   = "model.layers.1.self_attn.k_proj"
		down = "model.layers.1.mlp.down_proj"
		vis  = "visual.blocks.0.mlp.down_proj"
	)
	tests := []struct {
		name     string
		patterns string // rank_pattern and alpha_pattern, with r=64 and lora_alpha=16
		module   string
		wantR    int
		wantA    float64
	}{
		{"specific first", `"rank_pattern":{"layers\\.1\\.self_attn\\.q_proj":8,"q_proj":4}`, q1, 8, 16},
		{"specific first, other layer", `"rank_pattern":{"layers\\.1\\.self_attn\\.q_proj":8,"q_proj":4}`, q0, 4, 16},
		{"general first wins", `"rank_pattern":{"q_proj":4,"layers\\.1\\.self_attn\\.q_proj":8}`, q1, 4, 16},
		{"alternation vs name", `"alpha_pattern":{"(q|k)_proj":8,"k_proj":32}`, k1, 64, 8},
		{"name vs alternation", `"alpha_pattern":{"k_proj":32,"(q|k)_proj":8}`, k1, 64, 32},
		{"no match keeps defaults", `"rank_pattern":{"k_proj":2},"alpha_pattern":{"k_proj":2}`, q1, 64, 16},
		{"suffix must start at a dot", `"rank_pattern":{"proj":2,"_proj":3,"q_proj":5}`, q1, 5, 16},
		{"full-name regex", `"rank_pattern":{".*mlp.*":2,"down_proj":3}`, down, 2, 16},
		{"regex matches the new spelling", `"rank_pattern":{"language_model\\..*":2,"down_proj":3}`, down, 2, 16},
		{"legacy spelling of the vision tower", `"rank_pattern":{"^visual\\..*":2,"down_proj":3}`, vis, 2, 16},
		{"new spelling of the vision tower", `"rank_pattern":{"model\\.visual\\..*":6,"down_proj":3}`, vis, 6, 16},
		{"anchored key misses a suffix", `"rank_pattern":{"^layers\\.1\\..*":2,"down_proj":3}`, down, 3, 16},
		{"rank and alpha independent", `"rank_pattern":{"q_proj":8,"self_attn\\..*":2},"alpha_pattern":{"self_attn\\..*":4,"q_proj":8}`, q1, 8, 4},
		{"repeated key keeps its place, last value", `"rank_pattern":{"q_proj":8,"layers\\.1\\..*":2,"q_proj":16}`, q1, 16, 16},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			body := `{"peft_type":"LORA","r":64,"lora_alpha":16,"target_modules":["q_proj"],` + tc.patterns + `}`
			if err := os.WriteFile(filepath.Join(dir, ConfigName), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := LoadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			for range 20 {
				r, s := c.RankAndScaling(tc.module)
				if r != tc.wantR || math.Abs(s-tc.wantA/float64(tc.wantR)) > 1e-12 {
					t.Fatalf("%s with %s: r=%d alpha=%g, want r=%d alpha=%g", tc.module, tc.patterns, r, s*float64(r), tc.wantR, tc.wantA)
				}
			}
			// Saving keeps the order (and the values), so a reload decides the same.
			if err := c.Save(dir); err != nil {
				t.Fatal(err)
			}
			c2, err := LoadConfig(dir)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c2.RankPattern, c.RankPattern) || !reflect.DeepEqual(c2.AlphaPattern, c.AlphaPattern) {
				t.Errorf("saved patterns %v %v reload as %v %v", c.RankPattern, c.AlphaPattern, c2.RankPattern, c2.AlphaPattern)
			}
		})
	}
}

func TestPatternsJSON(t *testing.T) {
	tests := []struct {
		in   string
		want Patterns[float64]
		out  string
	}{
		{`null`, nil, `{}`},
		{`{}`, nil, `{}`},
		{`{"z":1,"a":2.5,"m":3}`, Patterns[float64]{{"z", 1}, {"a", 2.5}, {"m", 3}}, `{"z":1,"a":2.5,"m":3}`},
		{`{"b":1,"a":2,"b":3}`, Patterns[float64]{{"b", 3}, {"a", 2}}, `{"b":3,"a":2}`},
		{`{"(?<!visual)\\.q_proj":8, "x\"y":1}`, Patterns[float64]{{`(?<!visual)\.q_proj`, 8}, {`x"y`, 1}}, `{"(?<!visual)\\.q_proj":8,"x\"y":1}`},
	}
	for _, tc := range tests {
		var p Patterns[float64]
		if err := json.Unmarshal([]byte(tc.in), &p); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if !reflect.DeepEqual(p, tc.want) {
			t.Errorf("%s decodes to %v, want %v", tc.in, p, tc.want)
		}
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf) // as Config.Save
		enc.SetEscapeHTML(false)
		err := enc.Encode(p)
		if out := strings.TrimSpace(buf.String()); err != nil || out != tc.out {
			t.Errorf("%s encodes to %s (%v), want %s", tc.in, out, err, tc.out)
		}
	}
	for _, bad := range []string{`[]`, `{"a":"x"}`, `"a"`, `{"a":1.5}`} {
		var p Patterns[int]
		if err := json.Unmarshal([]byte(bad), &p); err == nil {
			t.Errorf("%s decodes as rank pattern %v", bad, p)
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
		`{"peft_type":"LORA","r":8,"target_modules":["q_proj"],"rank_pattern":{"(":4}}`,
		`{"peft_type":"LORA","r":8,"target_modules":["q_proj"],"alpha_pattern":{"[":4}}`,
		`{"peft_type":"LORA","r":8,"target_modules":["q_proj"],"rank_pattern":{"q_proj":0}}`,
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
	if _, err := Attach(ctx, cfg, []Module{{Name: "m.proj", In: 3, Out: 4}}, 9); err != nil {
		t.Fatal(err)
	}
	a := ctx.GetVariableByScopeAndName("/lora/m/proj", "lora_A")
	b := ctx.GetVariableByScopeAndName("/lora/m/proj", "lora_B")
	setValue(t, a, tensors.FromFlatDataAndDimensions([]float64{0.1, -0.2, 0.3, 0.05, 0.4, -0.1}, 2, 3))
	setValue(t, b, tensors.FromFlatDataAndDimensions([]float64{0.2, -0.1, 0.05, 0.3, -0.4, 0.1, 0.25, 0.15}, 4, 2))
	setValue(t, ctx.GetVariableByScopeAndName("/lora/m/proj", "scaling"), tensors.FromScalar(3.0))
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
				setValue(t, v, tensors.FromFlatDataAndDimensions(c, dims...))
				return lossExec.MustExec(xt, rt)[0].Value().(float64)
			}
			fd := (eval(eps) - eval(-eps)) / (2 * eps)
			setValue(t, v, tensors.FromFlatDataAndDimensions(vals, dims...))
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

// TestNamingSaveLoadRename: adapters saved under either naming have exactly that naming's
// keys, load back to identical weights, and Rename turns one naming's file into the other's
// byte for byte.
func TestNamingSaveLoadRename(t *testing.T) {
	modules := []Module{
		{"model.layers.0.self_attn.q_proj", 4, 4},
		{"model.layers.1.mlp.down_proj", 6, 4},
		{"visual.blocks.0.mlp.gate_proj", 4, 6},
		{"visual.merger.mlp.0", 8, 8},
	}
	cfg, err := NewConfig(2, 4, 0, []string{"q_proj", "down_proj", "gate_proj", "mlp.0"}, false)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.New()
	if got, err := Attach(ctx, cfg, modules, 5); err != nil || len(got) != len(modules) {
		t.Fatalf("adapted %v (%v)", got, err)
	}
	for i, m := range Adapted(ctx) { // non-zero B, so B round-trips too
		a, b, aShape, bShape, s, err := Weights(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		for j := range b {
			b[j] = float32(i+1) * a[j%len(a)]
		}
		if err := setAdapter(ctx, m, tensors.FromFlatDataAndDimensions(a, aShape...), tensors.FromFlatDataAndDimensions(b, bShape...), float64(s)); err != nil {
			t.Fatal(err)
		}
	}
	keys := func(prefixes ...string) []string {
		var out []string
		for i, m := range []string{"layers.0.self_attn.q_proj", "layers.1.mlp.down_proj", "blocks.0.mlp.gate_proj", "merger.mlp.0"} {
			for _, matrix := range []string{"lora_A", "lora_B"} {
				out = append(out, "base_model.model."+prefixes[i/2]+m+"."+matrix+".weight")
			}
		}
		sort.Strings(out)
		return out
	}
	tests := []struct {
		flag string
		want []string
	}{
		{"", keys("model.language_model.", "model.visual.")},
		{"new", keys("model.language_model.", "model.visual.")},
		{"legacy", keys("model.", "visual.")},
		{"Legacy", keys("model.", "visual.")},
	}
	saved := map[Naming]string{}
	for _, tc := range tests {
		naming, err := ParseNaming(tc.flag)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if err := Save(ctx, cfg, dir, naming); err != nil {
			t.Fatal(err)
		}
		saved[naming] = dir
		if got := weightKeys(t, dir); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("--peft-names %q saves keys\n%v\nwant\n%v", tc.flag, got, tc.want)
		}
		ctx2 := context.New()
		if _, names, err := Load(ctx2, dir, modules); err != nil || len(names) != len(modules) {
			t.Fatalf("--peft-names %q: load: %v %v", tc.flag, names, err)
		}
		for _, m := range modules {
			a1, b1, _, _, s1, _ := Weights(ctx, m.Name)
			a2, b2, _, _, s2, err := Weights(ctx2, m.Name)
			if err != nil || !reflect.DeepEqual(a1, a2) || !reflect.DeepEqual(b1, b2) || s1 != s2 {
				t.Errorf("--peft-names %q: %s does not round-trip (%v)", tc.flag, m.Name, err)
			}
		}
	}
	for from, to := range map[Naming]Naming{NamingNew: NamingLegacy, NamingLegacy: NamingNew} {
		dst := t.TempDir()
		if err := Rename(saved[from], dst, to); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{WeightsName, ConfigName} {
			got, _ := os.ReadFile(filepath.Join(dst, name))
			want, _ := os.ReadFile(filepath.Join(saved[to], name))
			if !bytes.Equal(got, want) {
				t.Errorf("Rename %s -> %s: %s differs from a %s save", from, to, name, to)
			}
		}
	}
	if _, err := ParseNaming("4.50"); err == nil {
		t.Error("ParseNaming accepts 4.50")
	}
}

func weightKeys(t *testing.T, dir string) []string {
	t.Helper()
	f, err := safetensors.Open(filepath.Join(dir, WeightsName))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return f.Names()
}

// setValue sets a variable's value, failing the test on error.
func setValue(t testing.TB, v *context.Variable, value *tensors.Tensor) {
	t.Helper()
	if err := v.SetValue(value); err != nil {
		t.Fatalf("set %s: %v", v.ScopeAndName(), err)
	}
}
