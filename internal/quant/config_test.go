package quant

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/safetensors"
)

func TestKeepRule(t *testing.T) {
	cases := []struct {
		keep []string
		name string
		rank int
		want bool
	}{
		{DefaultKeep, "model.embed_tokens.weight", 2, true},
		{DefaultKeep, "lm_head.weight", 2, true},
		{DefaultKeep, "visual.blocks.0.attn.qkv.weight", 2, true},
		{DefaultKeep, "model.layers.0.mlp.up_proj.weight", 2, false},
		{DefaultKeep, "model.layers.0.self_attn.q_proj.bias", 1, true},
		{[]string{"none"}, "model.embed_tokens.weight", 2, false},
		{[]string{"none"}, "model.norm.weight", 1, true},
		{[]string{"model.layers.0."}, "model.layers.0.mlp.up_proj.weight", 2, true},
		{[]string{"model.layers.0."}, "model.layers.10.mlp.up_proj.weight", 2, false},
		{[]string{"model.layers.*.mlp.down_proj.weight"}, "model.layers.3.mlp.down_proj.weight", 2, true},
		{[]string{"model.layers.*.mlp.down_proj.weight"}, "model.layers.3.mlp.up_proj.weight", 2, false},
		{[]string{"vision"}, "model.embed_tokens.weight", 2, false},
	}
	for _, c := range cases {
		r, err := NewKeepRule(c.keep)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.Keep(c.name, c.rank); got != c.want {
			t.Errorf("keep %v: Keep(%s, rank %d) = %v, want %v", c.keep, c.name, c.rank, got, c.want)
		}
	}
	for _, bad := range [][]string{{"none", "vision"}, {"model.[layers"}} {
		if _, err := NewKeepRule(bad); err == nil {
			t.Errorf("keep %v accepted", bad)
		}
	}
}

func TestConfigRoundTripAndValidation(t *testing.T) {
	dir := t.TempDir()
	src := []byte(`{"model_type": "qwen2_5_vl", "hidden_size": 64}`)
	c := NewConfig(NF4, DefaultKeep, Options{})
	if err := WriteConfig(src, filepath.Join(dir, "config.json"), c); err != nil {
		t.Fatal(err)
	}
	got, err := ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.Method != NF4 || got.BlockSize != 64 || got.Bits != 4 || !got.DoubleQuant || got.DoubleQuantBlockSize != 256 || len(got.Keep) != 4 {
		t.Errorf("read back %+v", got)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "config.json"))
	if !strings.Contains(string(data), `"hidden_size": 64`) {
		t.Errorf("other keys lost:\n%s", data)
	}
	if err := WriteConfig(data, filepath.Join(dir, "again.json"), c); err == nil {
		t.Error("re-quantizing a quantized config accepted")
	}
	plain := t.TempDir()
	os.WriteFile(filepath.Join(plain, "config.json"), src, 0o644)
	if qc, err := ReadConfig(plain); qc != nil || err != nil {
		t.Errorf("unquantized config: %+v, %v", qc, err)
	}
	bad := []struct {
		edit func(*Config)
		want string
	}{
		{func(c *Config) { c.QuantMethod = "bitsandbytes" }, "not supported"},
		{func(c *Config) { c.FormatVersion = 9 }, "format_version"},
		{func(c *Config) { c.BlockSize = 32 }, "block_size"},
		{func(c *Config) { c.Method, c.Bits, c.BlockSize = Int8, 8, 0 }, "double_quant"},
	}
	for _, b := range bad {
		c := NewConfig(NF4, nil, Options{})
		b.edit(c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), b.want) {
			t.Errorf("Validate = %v, want an error about %q", err, b.want)
		}
	}
	if err := c.CheckMetadata("w", map[string]string{MetadataKey: NewConfig(Q4_0, nil, Options{}).MetadataValue()}); err == nil {
		t.Error("metadata of another method accepted")
	}
}

// TestEncodeDecode round-trips every method through safetensors tensors and checks that
// damaged parts are reported.
func TestEncodeDecode(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	shape := []int{20, 48}
	x := randomWeights(rng, 20*48, 0.03)
	for _, m := range Methods {
		q, err := Quantize(m, x, shape, Options{})
		if err != nil {
			t.Fatal(err)
		}
		enc := q.Encode("w")
		byName := map[string]safetensors.Tensor{}
		for _, e := range enc {
			byName[e.Name] = e
		}
		lookupWith := func(mutate func(map[string]safetensors.Tensor)) Lookup {
			m := map[string]safetensors.Tensor{}
			for k, v := range byName {
				m[k] = v
			}
			if mutate != nil {
				mutate(m)
			}
			return func(name string) (safetensors.TensorInfo, []byte, bool) {
				e, ok := m[name]
				return safetensors.TensorInfo{Name: name, DType: e.DType, Shape: e.Shape}, e.Data, ok
			}
		}
		back, err := Decode(m, "w", shape, m == NF4, lookupWith(nil))
		if err != nil {
			t.Fatalf("%s: %v", m, err)
		}
		want, got := q.Dequantize(), back.Dequantize()
		for i := range want {
			if want[i] != got[i] {
				t.Fatalf("%s: value %d decoded as %g, encoded %g", m, i, got[i], want[i])
			}
		}
		if _, err := Decode(m, "w", []int{20, 40}, m == NF4, lookupWith(nil)); err == nil {
			t.Errorf("%s: decode with the wrong shape accepted", m)
		}
		scaleName := "w" + SuffixScale
		if m == NF4 {
			scaleName = "w" + SuffixScaleAbsmax
		}
		if _, err := Decode(m, "w", shape, m == NF4, lookupWith(func(mm map[string]safetensors.Tensor) { delete(mm, scaleName) })); err == nil || !strings.Contains(err.Error(), "missing") {
			t.Errorf("%s: missing scale: %v", m, err)
		}
	}
	// A -128 in symmetric int8 data can only come from corruption.
	q, _ := Quantize(Int8, x, shape, Options{})
	q.Data[5] = 0x80
	enc := q.Encode("w")
	lookup := func(name string) (safetensors.TensorInfo, []byte, bool) {
		for _, e := range enc {
			if e.Name == name {
				return safetensors.TensorInfo{Name: name, DType: e.DType, Shape: e.Shape}, e.Data, true
			}
		}
		return safetensors.TensorInfo{}, nil, false
	}
	if _, err := Decode(Int8, "w", shape, false, lookup); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("int8 -128 accepted: %v", err)
	}
}
