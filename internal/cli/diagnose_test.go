package cli

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acdtcm/acdtcm/internal/qwen"
)

// diagnoseFixture writes n small photos (plus a broken one when broken is set) and a tiny
// Qwen2.5-VL checkpoint, the model used here so the tests need no trained weights.
func diagnoseFixture(t *testing.T, n int, broken bool) (model, photos string) {
	t.Helper()
	dir := t.TempDir()
	model = filepath.Join(dir, "tiny")
	if _, err := qwen.InitCheckpoint(model, qwen.InitOptions{Preset: qwen.PresetTiny, Seed: 2}); err != nil {
		t.Fatal(err)
	}
	photos = filepath.Join(dir, "photos")
	os.MkdirAll(filepath.Join(photos, "sub"), 0o755)
	for i := 0; i < n; i++ {
		img := image.NewRGBA(image.Rect(0, 0, 56, 56))
		for p := 0; p < 56*56; p++ {
			img.Set(p%56, p/56, color.RGBA{uint8(30 * i), uint8(p), 120, 255})
		}
		sub := ""
		if i%3 == 0 {
			sub = "sub"
		}
		f, _ := os.Create(filepath.Join(photos, sub, fmt.Sprintf("p%02d.png", i)))
		png.Encode(f, img)
		f.Close()
	}
	if broken {
		os.WriteFile(filepath.Join(photos, "broken.jpg"), []byte("\xff\xd8\xff\xe0 truncated"), 0o644)
	}
	return model, photos
}

func jsonlImages(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var r struct {
			Image string `json:"image"`
			Error string `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("bad line %q", sc.Text())
		}
		out = append(out, r.Image)
	}
	return out
}

func TestDiagnoseCommand(t *testing.T) {
	model, photos := diagnoseFixture(t, 5, true)
	out := filepath.Join(t.TempDir(), "r.jsonl")
	stdout, stderr, code := runArgs(t, "diagnose", "--model", model, "--format", "jsonl", "--output", out, photos,
		"--description", "口干 便秘", "--age", "23", "--gender", "female")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "broken.jpg") {
		t.Errorf("the broken photo is not reported by name:\n%s", stderr)
	}
	lines, _ := os.ReadFile(out)
	var results []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(string(lines)), "\n") {
		var r map[string]any
		json.Unmarshal([]byte(l), &r)
		results = append(results, r)
	}
	if len(results) != 6 {
		t.Fatalf("%d results for 5 photos + 1 broken", len(results))
	}
	failed := 0
	for _, r := range results {
		if r["error"] != nil {
			failed++
			continue
		}
		if r["tcm_analysis"] == nil || r["disclaimer"] == nil || len(r["probabilities"].([]any)) != 4 {
			t.Errorf("incomplete result %v", r)
		}
	}
	if failed != 1 {
		t.Errorf("%d failed results, want 1", failed)
	}
	// --fail-on-error turns the broken photo into exit 1; nothing diagnosable is exit 1 too.
	if _, _, code := runArgs(t, "diagnose", "--model", model, "--format", "jsonl", "--fail-on-error", photos); code != 1 {
		t.Errorf("--fail-on-error: exit %d", code)
	}
	if _, _, code := runArgs(t, "diagnose", "--model", model, filepath.Join(photos, "broken.jpg")); code != 1 {
		t.Errorf("only broken inputs: exit %d, want 1", code)
	}
	if _, stderr, code := runArgs(t, "diagnose", "--model", model, "--shard", "3/2", photos); code != 2 || !strings.Contains(stderr, "--shard") {
		t.Errorf("bad shard: exit %d %s", code, stderr)
	}
	// stdin list and globs.
	code, stdoutList, _ := runCLI(t, filepath.Join(photos, "p01.png")+"\n", "diagnose", "--model", model, "--format", "csv", "-", filepath.Join(photos, "sub", "*.png"))
	if code != 0 || strings.Count(stdoutList, "\n") != 1+1+2 {
		t.Errorf("stdin + glob: exit %d\n%s", code, stdoutList)
	}
}

// TestDiagnoseShardsAndResume: shards partition the inputs, and a resumed run appends only
// what is missing.
func TestDiagnoseShardsAndResume(t *testing.T) {
	model, photos := diagnoseFixture(t, 7, false)
	dir := t.TempDir()
	var union []string
	for i := 0; i < 3; i++ {
		out := filepath.Join(dir, fmt.Sprintf("shard%d.jsonl", i))
		if _, stderr, code := runArgs(t, "diagnose", "--model", model, "--format", "jsonl", "--output", out, "--shard", fmt.Sprintf("%d/3", i), photos); code != 0 && code != 1 {
			t.Fatalf("shard %d: exit %d %s", i, code, stderr)
		}
		if _, err := os.Stat(out); err == nil {
			union = append(union, jsonlImages(t, out)...)
		}
	}
	var all []string
	filepath.WalkDir(photos, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			all = append(all, p)
		}
		return nil
	})
	sort.Strings(union)
	sort.Strings(all)
	if !slices.Equal(union, all) {
		t.Errorf("union of shards %v\n!= inputs %v", union, all)
	}

	// Resume: a partial output (as left by a killed run, with a cut last line) is completed.
	out := filepath.Join(dir, "resume.jsonl")
	if _, _, code := runArgs(t, "diagnose", "--model", model, "--format", "jsonl", "--output", out, filepath.Join(photos, "p01.png"), filepath.Join(photos, "p02.png")); code != 0 {
		t.Fatal("first run failed")
	}
	f, _ := os.OpenFile(out, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"image":"` + filepath.Join(photos, "p04.png") + `","sev`) // cut mid-line by the kill
	f.Close()
	if _, stderr, code := runArgs(t, "diagnose", "--model", model, "--format", "jsonl", "--output", out, "--resume", photos); code != 0 {
		t.Fatalf("resume: exit %d %s", code, stderr)
	}
	got := jsonlImages(t, out)
	sort.Strings(got)
	if !slices.Equal(got, all) {
		t.Errorf("after resume the output has %v, want each photo once: %v", got, all)
	}
	// CSV resume keeps a single header.
	csvOut := filepath.Join(dir, "r.csv")
	runArgs(t, "diagnose", "--model", model, "--format", "csv", "--output", csvOut, filepath.Join(photos, "p01.png"))
	runArgs(t, "diagnose", "--model", model, "--format", "csv", "--output", csvOut, "--resume", photos)
	csvData, _ := os.ReadFile(csvOut)
	if strings.Count(string(csvData), "image,image_id") != 1 || strings.Count(string(csvData), "\n") != 1+len(all) {
		t.Errorf("resumed CSV:\n%s", csvData)
	}
	// A CSV with another build's columns is refused, not appended to with rows of another width.
	oldCSV := filepath.Join(dir, "old.csv")
	if err := os.WriteFile(oldCSV, []byte("image,image_id,grade,scale,label,confidence,p0,p1,p2,p3,comedone,papule,pustule,nodule,syndrome,formula,referral,error\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := runArgs(t, "diagnose", "--model", model, "--format", "csv", "--output", oldCSV, "--resume", photos); code == 0 ||
		!strings.Contains(stderr, "old.csv has the columns") {
		t.Errorf("resume onto an older CSV: exit %d, stderr %q; want a refusal naming the file", code, stderr)
	}
}

// TestDiagnoseResumeRetryFailed: --resume keeps a failed photo's record; with --retry-failed
// the photo is tried again (here after being fixed) and a successful record is appended.
func TestDiagnoseResumeRetryFailed(t *testing.T) {
	model, photos := diagnoseFixture(t, 2, true)
	broken := filepath.Join(photos, "broken.jpg")
	for _, format := range []string{"jsonl", "csv"} {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "r."+format)
			if _, stderr, code := runArgs(t, "diagnose", "--model", model, "--format", format, "--output", out, photos); code != 0 {
				t.Fatalf("first run: exit %d %s", code, stderr)
			}
			first, _ := os.ReadFile(out)
			if _, _, code := runArgs(t, "diagnose", "--model", model, "--format", format, "--output", out, "--retry-failed", photos); code != 2 {
				t.Fatalf("--retry-failed without --resume: exit %d, want 2", code)
			}
			// Plain --resume: everything is recorded already, including the failure.
			if _, stderr, code := runArgs(t, "diagnose", "--model", model, "--format", format, "--output", out, "--resume", photos); code != 0 {
				t.Fatalf("resume: exit %d %s", code, stderr)
			}
			if again, _ := os.ReadFile(out); !bytes.Equal(again, first) {
				t.Fatalf("--resume without --retry-failed changed the output:\n%s", again)
			}
			// Fix the photo; --retry-failed diagnoses it and appends its record.
			src, _ := os.ReadFile(filepath.Join(photos, "p01.png"))
			defer os.WriteFile(broken, []byte("\xff\xd8\xff\xe0 truncated"), 0o644)
			if err := os.WriteFile(broken, src, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, stderr, code := runArgs(t, "diagnose", "--model", model, "--format", format, "--output", out, "--resume", "--retry-failed", photos); code != 0 {
				t.Fatalf("retry: exit %d %s", code, stderr)
			}
			data, _ := os.ReadFile(out)
			added := strings.TrimPrefix(string(data), string(first))
			if len(added) == len(data) || strings.Count(added, "\n") != 1 || !strings.Contains(added, "broken.jpg") || strings.Contains(added, "image,image_id") {
				t.Fatalf("retry appended %q, want one record for broken.jpg", added)
			}
			var errText string
			if format == "jsonl" {
				var r struct{ Error string }
				if err := json.Unmarshal([]byte(added), &r); err != nil {
					t.Fatal(err)
				}
				errText = r.Error
			} else {
				rows, err := csv.NewReader(strings.NewReader(strings.SplitN(string(first), "\n", 2)[0] + "\n" + added)).ReadAll()
				if err != nil || len(rows) != 2 {
					t.Fatalf("appended CSV %q: %v", added, err)
				}
				errText = rows[1][slices.Index(rows[0], "error")]
			}
			if errText != "" || !strings.Contains(string(first), "broken.jpg") {
				t.Errorf("retried record has error %q; first output:\n%s", errText, first)
			}
		})
	}
}

// TestDiagnoseSIGKILLResume kills a diagnose run with SIGKILL while it writes and resumes
// it: every photo ends up in the output exactly once.
func TestDiagnoseSIGKILLResume(t *testing.T) {
	if args := os.Getenv("ACDTCM_DIAGNOSE_CHILD"); args != "" {
		var argv []string
		json.Unmarshal([]byte(args), &argv)
		os.Exit(Execute(argv, strings.NewReader(""), os.Stdout, os.Stderr))
	}
	if testing.Short() {
		t.Skip("skipping the subprocess kill test in -short mode")
	}
	model, photos := diagnoseFixture(t, 40, false)
	out := filepath.Join(t.TempDir(), "r.jsonl")
	argv := []string{"diagnose", "--model", model, "--format", "jsonl", "--output", out, "--resume", "--batch-size", "1", photos}
	argJSON, _ := json.Marshal(argv)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestDiagnoseSIGKILLResume$")
	cmd.Env = append(os.Environ(), "ACDTCM_DIAGNOSE_CHILD="+string(argJSON))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		data, _ := os.ReadFile(out)
		if strings.Count(string(data), "\n") >= 5 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("the child never wrote 5 results")
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	before := len(jsonlImages(t, out))
	if before >= 40 {
		t.Fatalf("the child finished (%d results) before the kill; the test proves nothing", before)
	}
	if _, stderr, code := runArgs(t, argv...); code != 0 {
		t.Fatalf("resume: exit %d %s", code, stderr)
	}
	got := jsonlImages(t, out)
	seen := map[string]int{}
	for _, g := range got {
		seen[g]++
	}
	if len(got) != 40 || len(seen) != 40 {
		t.Errorf("after the kill at %d results and a resume: %d lines, %d distinct photos (want 40 and 40)", before, len(got), len(seen))
	}
	t.Logf("killed after %d results; resumed to %d", before, len(got))
}
