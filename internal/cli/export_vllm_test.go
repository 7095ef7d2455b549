package cli

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestVLLMAdapterNotes(t *testing.T) {
	tests := []struct {
		r, vision int
		want      []string
	}{
		{8, 0, nil},
		{16, 0, nil},
		{64, 0, []string{"--max-lora-rank 64"}},
		{40, 0, []string{"--max-lora-rank 64"}},
		{300, 0, []string{"--max-lora-rank 320"}},
		{4, 6, []string{"6 vision-tower tensors"}},
		{64, 2, []string{"--max-lora-rank 64", "2 vision-tower tensors"}},
	}
	for _, tc := range tests {
		got := vllmAdapterNotes(tc.r, tc.vision)
		if len(got) != len(tc.want) {
			t.Errorf("r=%d vision=%d: notes %q, want %d", tc.r, tc.vision, got, len(tc.want))
			continue
		}
		for i, w := range tc.want {
			if !strings.Contains(got[i], w) {
				t.Errorf("r=%d vision=%d: note %q lacks %q", tc.r, tc.vision, got[i], w)
			}
		}
	}
}

// TestExportWarnsAboutVisionAdapters: copying the PEFT fixture adapter, whose plain target
// list also matched the vision MLPs, says that vLLM would skip those.
func TestExportWarnsAboutVisionAdapters(t *testing.T) {
	adapter := filepath.Join("..", "qwen", "testdata", "peft", "peft-adapter")
	stdout, stderr, code := runArgs(t, "export", "--adapter", adapter, "--out", filepath.Join(t.TempDir(), "copy"))
	if code != 0 || !strings.Contains(stdout, "exported LoRA adapter") || !strings.Contains(stderr, "vision-tower tensors, which vLLM skips") {
		t.Fatalf("exit %d\nstdout %s\nstderr %s", code, stdout, stderr)
	}
}
