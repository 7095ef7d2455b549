package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/qwen"
)

// runArgs runs acdtcm with args and returns stdout, stderr and the exit code.
func runArgs(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	code, out, errOut := runCLI(t, "", args...)
	return out, errOut, code
}

func TestModelInitInspectExport(t *testing.T) {
	dir := t.TempDir()
	tiny := filepath.Join(dir, "tiny")
	if out, errs, code := runArgs(t, "model", "init", "--preset", "tiny", "--seed", "3", "--out", tiny); code != 0 || !strings.Contains(out, "parameters") {
		t.Fatalf("model init: exit %d, %s %s", code, out, errs)
	}
	out, errs, code := runArgs(t, "model", "inspect", tiny)
	if code != 0 || !strings.Contains(out, "hidden 64, layers 2") || !strings.Contains(out, "F32") {
		t.Fatalf("model inspect: exit %d\n%s%s", code, out, errs)
	}
	os.Remove(filepath.Join(tiny, "preprocessor_config.json"))
	if out, _, _ := runArgs(t, "model", "inspect", tiny); !strings.Contains(out, "preprocessor_config.json is absent") {
		t.Errorf("inspect does not note the missing processor config:\n%s", out)
	}
	if _, errs, code := runArgs(t, "model", "init", "--preset", "huge", "--out", filepath.Join(dir, "x")); code == 0 || !strings.Contains(errs, "unknown preset") {
		t.Errorf("bad preset: exit %d, %s", code, errs)
	}

	// An adapter trained elsewhere (here: attached and saved through the API) exports both ways.
	backend, _ := mlbackend.New("go")
	m, err := qwen.Load(tiny, backend)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := lora.NewConfig(2, 4, 0, lora.DefaultTargets, true)
	if _, err := m.AttachLoRA(cfg, 1); err != nil {
		t.Fatal(err)
	}
	adapter := filepath.Join(dir, "adapter")
	if err := lora.Save(m.Ctx, cfg, adapter, lora.NamingNew); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := runArgs(t, "export", "--adapter", adapter, "--out", filepath.Join(dir, "copy")); code != 0 || !strings.Contains(out, "r=2") {
		t.Fatalf("export adapter: exit %d %s %s", code, out, errs)
	}
	merged := filepath.Join(dir, "merged")
	if out, errs, code := runArgs(t, "export", "--merge", "--model", tiny, "--adapter", adapter, "--out", merged); code != 0 || !strings.Contains(out, "merged 14 adapted layers") {
		t.Fatalf("export --merge: exit %d %s %s", code, out, errs)
	}
	if _, err := qwen.Load(merged, backend); err != nil {
		t.Errorf("merged checkpoint does not load: %v", err)
	}
	if _, errs, code := runArgs(t, "export", "--merge", "--adapter", adapter, "--out", merged); code != 2 || !strings.Contains(errs, "--model") {
		t.Errorf("--merge without --model: exit %d, %s", code, errs)
	}
	// Merging into a quantized base is refused with the way forward, not done lossily.
	q := filepath.Join(dir, "tiny-int8")
	if _, errs, code := runArgs(t, "quantize", "--method", "int8", tiny, q); code != 0 {
		t.Fatalf("quantize: exit %d %s", code, errs)
	}
	if _, errs, code := runArgs(t, "export", "--merge", "--model", q, "--adapter", adapter, "--out", filepath.Join(dir, "m2")); code == 0 || !strings.Contains(errs, "quantized") {
		t.Errorf("merge into a quantized base: exit %d, %s", code, errs)
	}
}
