package train

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/tokenizer"
)

func writeFile(t *testing.T, path, body string) string {
	t.Helper()
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// expectError checks err against want, a substring of the expected error ("": none, and
// any error is fatal); it reports whether an error was expected.
func expectError(t *testing.T, err error, want string) bool {
	t.Helper()
	if want == "" {
		if err != nil {
			t.Fatal(err)
		}
		return false
	}
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want one containing %q", err, want)
	}
	return true
}

// TestSamplesFromMessages reads sharegpt/messages records as JSON Lines and as a JSON array.
func TestSamplesFromMessages(t *testing.T) {
	dir := t.TempDir()
	const rec1 = `{"messages":[{"role":"system","content":"Grade acne."},{"role":"user","content":"<image>What grade?"},{"role":"assistant","content":"2 (moderate)"}],"images":["p00.png"]}`
	const rec2 = `{"messages":[{"role":"user","content":"Compare <image> and <image>"},{"role":"assistant","content":"Both mild."}],"images":["/abs/a.png","b.png"]}`
	wantFirst := []tokenizer.Message{
		{Role: "system", Content: []tokenizer.Content{{Text: "Grade acne."}}},
		{Role: "user", Content: []tokenizer.Content{{Image: true}, {Text: "What grade?"}}},
		{Role: "assistant", Content: []tokenizer.Content{{Text: "2 (moderate)"}}},
	}
	tests := []struct {
		name, file, body string
		wantErr          string
	}{
		{"jsonl", "data.jsonl", rec1 + "\n\n" + rec2 + "\n", ""},
		{"json array", "data.json", "[" + rec1 + "," + rec2 + "]", ""},
		{"placeholder count", "bad.jsonl", `{"messages":[{"role":"user","content":"<image>"}],"images":[]}`, "bad.jsonl record 1: 1 <image> placeholders but 0 images"},
		{"bad line", "broken.jsonl", rec1 + "\n{oops\n", "broken.jsonl:2:"},
		{"empty", "empty.jsonl", "\n", "has no records"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(dir, tc.file), tc.body)
			got, err := LoadSamples(path, "train")
			if expectError(t, err, tc.wantErr) {
				return
			}
			if len(got) != 2 {
				t.Fatalf("%d samples, want 2", len(got))
			}
			if fmt.Sprint(got[0].Messages) != fmt.Sprint(wantFirst) {
				t.Errorf("messages %+v, want %+v", got[0].Messages, wantFirst)
			}
			want := []struct {
				id     string
				grade  int
				images []string
			}{
				{tc.file + "#1", 2, []string{filepath.Join(dir, "p00.png")}},
				{tc.file + "#2", -1, []string{"/abs/a.png", filepath.Join(dir, "b.png")}},
			}
			for i, w := range want {
				if got[i].ID != w.id || got[i].Grade != w.grade || fmt.Sprint(got[i].Images) != fmt.Sprint(w.images) {
					t.Errorf("sample %d: %s grade %d images %v, want %s grade %d images %v", i, got[i].ID, got[i].Grade, got[i].Images, w.id, w.grade, w.images)
				}
			}
		})
	}
}

// TestLoRATrainingFromMessages trains from a messages JSONL file (no manifest).
func TestLoRATrainingFromMessages(t *testing.T) {
	dir := t.TempDir()
	model, _ := fixture(t, dir)
	var lines []string
	for i := 0; i < 4; i++ {
		lines = append(lines, fmt.Sprintf(`{"messages":[{"role":"user","content":"<image>Grade this acne."},{"role":"assistant","content":"%d"}],"images":["p%02d.png"]}`, i%4, i))
	}
	data := writeFile(t, filepath.Join(dir, "messages.jsonl"), strings.Join(lines, "\n")+"\n")
	c := testConfig(model, data, filepath.Join(dir, "out"))
	c.EvalData, c.Epochs, c.GradAccum = "", 1, 1
	tr := run(t, c)
	if len(tr.Train) != 4 || tr.Train[3].Grade != 3 {
		t.Fatalf("read %d samples (last grade %d), want 4 (last grade 3)", len(tr.Train), tr.Train[len(tr.Train)-1].Grade)
	}
	steps, _ := readMetrics(t, c.Out)
	if len(steps) != 2 {
		t.Fatalf("%d step lines, want 2 (4 samples, batch 2)", len(steps))
	}
	for _, s := range steps {
		if math.IsNaN(s.Loss) || s.Loss <= 0 {
			t.Errorf("step %d: loss %g", s.Step, s.Loss)
		}
	}
	if _, err := os.Stat(filepath.Join(c.Out, "checkpoint-last", "adapter_model.safetensors")); err != nil {
		t.Error(err)
	}
}
