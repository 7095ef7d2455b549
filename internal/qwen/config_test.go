package qwen

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadConfigLayouts(t *testing.T) {
	tests := []struct {
		file                            string
		hidden, layers, kv, vocab, vitW int
		theta                           float64
		tied                            bool
		section                         []int
	}{
		{"original-3b.json", 2048, 36, 2, 151936, 1280, 1e6, true, []int{16, 24, 24}},
		{"resaved-7b.json", 3584, 28, 4, 152064, 1280, 1e6, false, []int{16, 24, 24}},
		{"v5-tiny.json", 64, 2, 2, 151936, 32, 1e4, true, []int{2, 3, 3}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			cfg, err := LoadConfig(filepath.Join("testdata", "configs", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			tx := cfg.Text
			if tx.HiddenSize != tc.hidden || tx.NumHiddenLayers != tc.layers || tx.NumKeyValueHeads != tc.kv || tx.VocabSize != tc.vocab {
				t.Errorf("text config %+v", tx)
			}
			if tx.RopeTheta != tc.theta || tx.TieWordEmbeddings != tc.tied || len(tx.MRopeSection) != 3 || tx.MRopeSection[0] != tc.section[0] {
				t.Errorf("rope/tie: theta %v tied %v section %v", tx.RopeTheta, tx.TieWordEmbeddings, tx.MRopeSection)
			}
			if cfg.Vision.HiddenSize != tc.vitW || cfg.Vision.InChannels != 3 || cfg.Vision.OutHiddenSize != tc.hidden {
				t.Errorf("vision config %+v", cfg.Vision)
			}
			if cfg.ImageTokenID != 151655 || cfg.EOSTokenID != 151645 {
				t.Errorf("token ids image %d eos %d", cfg.ImageTokenID, cfg.EOSTokenID)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	base, _ := os.ReadFile(filepath.Join("testdata", "configs", "v5-tiny.json"))
	tests := []struct {
		name, from, to, want string
	}{
		{"missing vision width is never defaulted", `"hidden_size": 32, `, ``, "vision_config.hidden_size"},
		{"bad mrope section", `[2, 3, 3]`, `[2, 3, 4]`, "mrope_section"},
		{"no rope theta", `"rope_theta": 10000.0, `, ``, "rope_theta"},
		{"gqa mismatch", `"num_key_value_heads": 2`, `"num_key_value_heads": 3`, "divide evenly"},
		{"vision out width", `"out_hidden_size": 64`, `"out_hidden_size": 63`, "out_hidden_size"},
		{"syntax", `{`, `[`, "parse config.json"},
	}
	for _, tc := range tests {
		doc := strings.Replace(string(base), tc.from, tc.to, 1)
		if doc == string(base) {
			t.Fatalf("%s: replacement %q not found", tc.name, tc.from)
		}
		if _, err := ParseConfig([]byte(doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}
