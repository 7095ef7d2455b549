package qwen

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteProcessorConfig: the written file keeps the base's keys, sets min/max pixels in
// both spellings the base uses, and falls back to the class defaults without a base file.
func TestWriteProcessorConfig(t *testing.T) {
	p := DefaultProcessorConfig()
	p.MinPixels, p.MaxPixels = 6272, 25088
	tests := []struct {
		name, base string // base preprocessor_config.json ("" for none)
		wantKeys   []string
	}{
		{"flat keys", `{"min_pixels": 3136, "max_pixels": 50176, "patch_size": 14, "do_resize": true}`, []string{"do_resize"}},
		{"size dict", `{"size": {"shortest_edge": 3136, "longest_edge": 50176}, "patch_size": 14}`, []string{"size"}},
		{"no base file", "", []string{"image_processor_type", "image_mean"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base, out := t.TempDir(), t.TempDir()
			if tc.base != "" {
				if err := os.WriteFile(filepath.Join(base, ProcessorFile), []byte(tc.base), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := WriteProcessorConfig(out, base, p); err != nil {
				t.Fatal(err)
			}
			got, err := LoadProcessorConfig(filepath.Join(out, ProcessorFile))
			if err != nil {
				t.Fatal(err)
			}
			if got.MinPixels != p.MinPixels || got.MaxPixels != p.MaxPixels || got.PatchSize != 14 {
				t.Errorf("read back min/max pixels %d/%d patch %d, want %d/%d patch 14", got.MinPixels, got.MaxPixels, got.PatchSize, p.MinPixels, p.MaxPixels)
			}
			if got.Size != nil && (got.Size.ShortestEdge != p.MinPixels || got.Size.LongestEdge != p.MaxPixels) {
				t.Errorf("size %+v, want the new min/max pixels", *got.Size)
			}
			data, _ := os.ReadFile(filepath.Join(out, ProcessorFile))
			var doc map[string]any
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			for _, k := range append(tc.wantKeys, "min_pixels", "max_pixels") {
				if _, ok := doc[k]; !ok {
					t.Errorf("key %s missing from %s", k, data)
				}
			}
		})
	}
	if err := WriteProcessorConfig(t.TempDir(), writeBad(t), p); err == nil {
		t.Error("a malformed base preprocessor_config.json was accepted")
	}
}

func writeBad(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, ProcessorFile), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
