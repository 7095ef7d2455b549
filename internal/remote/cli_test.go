package remote_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"image"
	"image/png"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/cli"
	"github.com/acdtcm/acdtcm/internal/remote/fakeserver"
	"github.com/acdtcm/acdtcm/internal/result"
)

// TestDiagnoseCommandWithOpenAIBackend runs `acdtcm diagnose --backend openai` against the
// fake server: one photo's answer is a refusal, so it is reported failed by name and the
// other photos are graded as the server graded them.
func TestDiagnoseCommandWithOpenAIBackend(t *testing.T) {
	fs := &fakeserver.Server{APIKey: "sk-cli", Fault: func(_ int, r fakeserver.Request) fakeserver.Fault {
		if r.Width == 112 { // the 112-pixel-wide photo
			return fakeserver.Fault{Answer: "Sorry, I can't help with that."}
		}
		return fakeserver.Fault{}
	}}
	ts := httptest.NewServer(fs)
	defer ts.Close()
	t.Setenv("OPENAI_API_KEY", "sk-cli")

	dir := t.TempDir()
	widths := []int{56, 84, 112, 140}
	for i, w := range widths {
		img := image.NewRGBA(image.Rect(0, 0, w, 56))
		for p := 0; p < len(img.Pix); p += 4 {
			img.Pix[p], img.Pix[p+3] = uint8(i*64+10), 255
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("face%d.png", i)))
		if err != nil {
			t.Fatal(err)
		}
		png.Encode(f, img)
		f.Close()
	}
	var out, errOut bytes.Buffer
	code := cli.Execute([]string{"diagnose", "--backend", "openai", "--endpoint", ts.URL + "/v1", "--model", "acne",
		"--format", "jsonl", "--retries", "0", dir}, strings.NewReader(""), &out, &errOut)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var got []result.DiagnosisResult
	sc := bufio.NewScanner(&out)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var r result.DiagnosisResult
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		got = append(got, r)
	}
	if len(got) != len(widths) {
		t.Fatalf("%d results for %d photos:\n%s", len(got), len(widths), out.String())
	}
	for i, r := range got {
		if !strings.HasSuffix(r.Image, fmt.Sprintf("face%d.png", i)) {
			t.Errorf("result %d is for %s", i, r.Image)
		}
		if i == 2 {
			if !strings.Contains(r.Error, "face2.png") || !strings.Contains(r.Error, "does not start with") {
				t.Errorf("refused photo: error %q", r.Error)
			}
			continue
		}
		if r.Error != "" || r.Severity.Value != i || r.Confidence < 0.69 {
			t.Errorf("photo %d: %+v", i, r)
		}
	}
}
