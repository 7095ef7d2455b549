package cli

import (
	"bytes"
	"encoding/json"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/validate"
)

// writeValidateDataset writes two distinct PNGs and a manifest with the given extra JSON for
// the second record's diagnosis.
func writeValidateDataset(t *testing.T, diagnosis string) string {
	t.Helper()
	dir := t.TempDir()
	for i, name := range []string{"a.png", "b.png"} {
		m := image.NewGray(image.Rect(0, 0, 40, 40))
		for y := 0; y < 40; y++ {
			for x := 0; x < 40; x++ {
				v := x * 6
				if i == 1 {
					v = (x*y + 3*y) % 256
				}
				m.SetGray(x, y, color.Gray{uint8(v)})
			}
		}
		var b bytes.Buffer
		if err := png.Encode(&b, m); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	man := `{"image_id":"a","image":"a.png","width":40,"height":40,"diagnosis":{"severity":{"value":1,"scale":"hayashi"}},"split":"train","source_id":"a"}
{"image_id":"b","image":"b.png","diagnosis":` + diagnosis + `,"split":"test","source_id":"b"}
`
	if err := os.WriteFile(filepath.Join(dir, "manifest.jsonl"), []byte(man), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestDatasetValidateExitCodes(t *testing.T) {
	clean := writeValidateDataset(t, `{"severity":{"value":2,"scale":"hayashi"}}`)
	warnOnly := writeValidateDataset(t, `{"lesion_count":4,"lesions":[{"type":"papule","box":{"x0":1,"y0":1,"x1":5,"y1":5}}]}`)
	fixture := filepath.Join("..", "validate", "testdata", "fixture")
	tests := []struct {
		name    string
		args    []string
		code    int
		stdout  string // substring of stdout
		stderr  string // substring of stderr
		nostdio bool
	}{
		{"clean", []string{clean}, 0, "Result: OK: 0 errors, 0 warnings", "", false},
		{"clean strict", []string{clean, "--strict"}, 0, "Result: OK", "", false},
		{"warnings", []string{warnOnly}, 0, "lesion_count 4 but only 1 lesions are listed", "", false},
		{"warnings strict", []string{warnOnly, "--strict"}, 1, "Result: OK: 0 errors, 1 warning", "1 warnings (--strict)", false},
		{"errors", []string{fixture, "--no-progress"}, 1, "Result: FAILED: 16 errors", "failed validation: 16 errors", false},
		{"byte limit", []string{clean, "--max-bytes", "50"}, 1, "exceeds the limit of 50 bytes", "", false},
		{"pixel limit", []string{clean, "--max-pixels", "100"}, 1, "1600 pixels exceeds the limit of 100", "", false},
		{"missing manifest", []string{filepath.Join(t.TempDir(), "none")}, 2, "", "cannot read manifest", true},
		{"bad threshold", []string{clean, "--phash-threshold", "65"}, 2, "", "exceeds the 64 bits", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Execute(append([]string{"dataset", "validate"}, tt.args...), strings.NewReader(""), &out, &errOut)
			if code != tt.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, out.String(), errOut.String())
			}
			if !strings.Contains(out.String(), tt.stdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.stdout, out.String())
			}
			if !strings.Contains(errOut.String(), tt.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.stderr, errOut.String())
			}
			if tt.nostdio && out.Len() != 0 {
				t.Errorf("a run that cannot start printed a report:\n%s", out.String())
			}
			if strings.Contains(errOut.String(), "validating") {
				t.Errorf("progress bar shown on a non-terminal without --progress")
			}
		})
	}
}

func TestDatasetValidateJSONAndConfig(t *testing.T) {
	fixture := filepath.Join("..", "validate", "testdata", "fixture")
	t.Setenv("ACDTCM_DATASET_VALIDATE_PHASH_THRESHOLD", "7")
	var out, errOut bytes.Buffer
	code := Execute([]string{"dataset", "validate", "--json", fixture}, strings.NewReader(""), &out, &errOut)
	if code != 1 {
		t.Fatalf("exit code %d, want 1; stderr %s", code, errOut.String())
	}
	var rep validate.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("stdout is not a JSON report: %v\n%s", err, out.String())
	}
	if rep.PHashThreshold != 7 {
		t.Errorf("phash_threshold %d, want 7 from the environment", rep.PHashThreshold)
	}
	if rep.Summary.Errors != 16 || len(rep.Findings) != rep.Summary.Errors+rep.Summary.Warnings+rep.Summary.Infos {
		t.Errorf("summary %+v does not match %d findings", rep.Summary, len(rep.Findings))
	}
	for _, f := range rep.Findings {
		if f.File == "" || f.Message == "" || (f.Line == 0 && f.Check != validate.CheckManifest && f.Check != validate.CheckTypeGrade) {
			t.Errorf("finding without file, line or message: %+v", f)
		}
	}
}

func TestDatasetValidateProgressForced(t *testing.T) {
	clean := writeValidateDataset(t, `{}`)
	var out, errOut bytes.Buffer
	if code := Execute([]string{"dataset", "validate", "--progress", clean}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(errOut.String(), "validating") {
		t.Errorf("--progress showed no bar on stderr: %q", errOut.String())
	}
	errOut.Reset()
	Execute([]string{"dataset", "validate", "--progress", "--no-progress", clean}, strings.NewReader(""), &out, &errOut)
	if strings.Contains(errOut.String(), "validating") {
		t.Errorf("--no-progress still showed the bar")
	}
}
