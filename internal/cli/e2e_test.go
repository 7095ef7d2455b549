package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/dataset"
)

// sharedACNE04 locates ../shared/datasets/acne04-detection or skips.
func sharedACNE04(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", "..", "..", "shared", "datasets", "acne04-detection"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "train")); err != nil {
		t.Skipf("skipping: the shared ACNE04 dataset is absent (%s); CI has it", dir)
	}
	return dir
}

type validateSummary struct {
	Records int `json:"records"`
	Summary struct {
		Errors   int `json:"errors"`
		Warnings int `json:"warnings"`
	} `json:"summary"`
	Findings []struct {
		Check    string `json:"check"`
		Severity string `json:"severity"`
		Message  string `json:"message"`
	} `json:"findings"`
}

func validateJSON(t *testing.T, path string) (validateSummary, int) {
	t.Helper()
	stdout, stderr, code := runArgs(t, "dataset", "validate", path, "--json", "--no-progress")
	var v validateSummary
	if err := json.Unmarshal([]byte(stdout), &v); err != nil {
		t.Fatalf("validate %s: exit %d, no JSON report: %v\n%s", path, code, err, stderr)
	}
	return v, code
}

// TestEndToEndSharedDataset imports the shared ACNE04 train and valid sets, validates them,
// re-splits train by source photo, augments 50 photos and validates the result.
func TestEndToEndSharedDataset(t *testing.T) {
	src := sharedACNE04(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "acne04")
	if _, stderr, code := runArgs(t, "dataset", "import", "--format", "acne04-voc", src, "--out", data); code != 0 {
		t.Fatalf("import: exit %d\n%s", code, stderr)
	}
	v, code := validateJSON(t, data)
	if v.Records != 3256 {
		t.Errorf("validated %d records, want 3256 (2973 train + 283 valid)", v.Records)
	}
	// The export has exactly one real defect: a zero-height box in levle2_11 (train).
	if v.Summary.Errors != 1 || code != 1 {
		t.Errorf("validate found %d errors (exit %d), want the 1 known zero-height box", v.Summary.Errors, code)
	}
	split := filepath.Join(dir, "split")
	if _, stderr, code := runArgs(t, "dataset", "split", data, "--only", "train", "--names", "train,dev", "--ratios", "0.9,0.1", "--seed", "7", "--out", split); code != 0 {
		t.Fatalf("split: exit %d\n%s", code, stderr)
	}
	m, err := dataset.ReadManifest(split)
	if err != nil {
		t.Fatal(err)
	}
	splitOf := map[string]string{}
	counts := map[string]int{}
	for _, r := range m.Records {
		counts[r.Split]++
		if prev, ok := splitOf[r.SourceID]; ok && prev != r.Split {
			t.Fatalf("source %s is in both %s and %s", r.SourceID, prev, r.Split)
		}
		splitOf[r.SourceID] = r.Split
	}
	if counts["valid"] != 283 || counts["train"]+counts["dev"] != 2973 || counts["dev"] == 0 {
		t.Errorf("split counts %v", counts)
	}
	aug := filepath.Join(dir, "aug")
	if _, stderr, code := runArgs(t, "augment", split, "--out", aug, "--limit", "50", "--copies", "1", "--seed", "3", "--no-progress"); code != 0 {
		t.Fatalf("augment: exit %d\n%s", code, stderr)
	}
	va, code := validateJSON(t, aug)
	if va.Records != 50 {
		t.Errorf("augmented manifest has %d records, want 50", va.Records)
	}
	for _, f := range va.Findings {
		if f.Severity == "error" && !strings.Contains(f.Message, "levle2_11_") {
			t.Errorf("augmented data has an error: %s %s", f.Check, f.Message)
		}
	}
	t.Logf("validate exit %d on the augmented set: %d errors, %d warnings", code, va.Summary.Errors, va.Summary.Warnings)
}
