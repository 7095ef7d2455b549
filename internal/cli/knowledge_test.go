package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/acdtcm/acdtcm/internal/knowledge"
)

func runKnowledgeCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	t.Chdir(t.TempDir()) // no ./acdtcm.yaml
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	var out, errOut bytes.Buffer
	code = Execute(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestKnowledgeDumpThenCheck(t *testing.T) {
	code, dump, stderr := runKnowledgeCLI(t, "knowledge", "dump")
	if code != 0 {
		t.Fatalf("dump exit %d: %s", code, stderr)
	}
	embedded, err := knowledge.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	if dump != string(embedded) {
		t.Fatalf("dump differs from the embedded YAML (%d vs %d bytes)", len(dump), len(embedded))
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "mine.yaml")
	os.WriteFile(good, []byte(dump), 0o644)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("rules:\n  - id: x\n    syndrom: heat_toxin\n"), 0o644)

	code, out, stderr := runKnowledgeCLI(t, "knowledge", "check", good)
	if code != 0 || !strings.Contains(out, good+": ok") {
		t.Fatalf("check of the dump: exit %d, out %q, err %q", code, out, stderr)
	}
	code, out, stderr = runKnowledgeCLI(t, "knowledge", "check", bad, good)
	if code != 1 {
		t.Fatalf("check with a bad file: exit %d, want 1", code)
	}
	for _, want := range []string{bad + ": INVALID", "line 3", "syndrom", "1 of 2 knowledge files invalid"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr %q lacks %q", stderr, want)
		}
	}
	if !strings.Contains(out, good+": ok") {
		t.Errorf("the good file after a bad one was not checked: %q", out)
	}
}

func TestKnowledgeShow(t *testing.T) {
	tests := []struct {
		args    []string
		want    []string
		notWant []string
	}{
		{[]string{"--syndromes"}, []string{"肺经风热证", "枇杷清肺饮", "冲任不调证", "痰湿瘀滞证", "肠胃湿热证", "[S47"}, []string{"== Sources", "克"}},
		{[]string{"--scales"}, []string{"hayashi", "cn2019", "cross-walk clinical4=3 cn2019=IV", "GAGS", "caveat"}, []string{"== TCM"}},
		{[]string{"--referrals", "--constitutions"}, []string{"nodulocystic", "URGENT", "湿热质", "ZYYXH/T157-2009"}, nil},
		{[]string{"--rules"}, []string{"lung_itch → lung_meridian_wind_heat +1 when keywords any of", "(prior)"}, nil},
		{nil, []string{"== Severity scales", "== Western", "== TCM syndromes", "== Sources", "S95"}, nil},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, out, stderr := runKnowledgeCLI(t, append([]string{"knowledge", "show"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q", w)
				}
			}
			for _, w := range tc.notWant {
				if strings.Contains(out, w) {
					t.Errorf("output contains %q", w)
				}
			}
		})
	}

	code, out, stderr := runKnowledgeCLI(t, "knowledge", "show", "--referrals", "--format", "yaml")
	if code != 0 {
		t.Fatalf("yaml exit %d: %s", code, stderr)
	}
	var doc struct {
		Referrals []map[string]any `yaml:"referrals"`
	}
	if err := yaml.Unmarshal([]byte(out), &doc); err != nil || len(doc.Referrals) == 0 {
		t.Fatalf("show --format yaml: %v, %d referrals", err, len(doc.Referrals))
	}
	if code, _, stderr := runKnowledgeCLI(t, "knowledge", "show", "--format", "xml"); code == 0 || !strings.Contains(stderr, "--format") {
		t.Errorf("bad --format: exit %d, %q", code, stderr)
	}
}

func TestKnowledgeAnalyze(t *testing.T) {
	override := filepath.Join(t.TempDir(), "site.yaml")
	os.WriteFile(override, []byte("remove: {referrals: [hyperandrogenism]}\n"), 0o644)
	tests := []struct {
		name         string
		args         []string
		syndrome     string
		referrals    []string
		notReferrals []string
	}{
		{"premenstrual woman", []string{"--grade", "1", "--scale", "hayashi", "--lesions", "papule=8,pustule=2", "--gender", "female", "--age", "29", "--symptoms", "经前加重，口干，月经不调"},
			"chong_ren_disharmony", []string{"hyperandrogenism"}, nil},
		{"override removes a trigger", []string{"--file", override, "--gender", "female", "--age", "29", "--symptoms", "经前加重，口干，月经不调"},
			"chong_ren_disharmony", nil, []string{"hyperandrogenism"}},
		{"nodulocystic", []string{"--grade", "IV", "--scale", "cn2019", "--lesions", "nodule=3", "--symptoms", "dark red cysts, scarring"},
			"phlegm_damp_stasis", []string{"nodulocystic", "very_severe", "scarring"}, nil},
		{"damp-heat constitution", []string{"--symptoms", "面部油腻 口臭 便秘 苔黄腻", "--constitution", "湿热质"},
			"stomach_intestine_damp_heat", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := runKnowledgeCLI(t, append([]string{"knowledge", "analyze", "--json"}, tc.args...)...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			var a knowledge.Analysis
			if err := json.Unmarshal([]byte(out), &a); err != nil {
				t.Fatalf("output is not an Analysis: %v\n%s", err, out)
			}
			if a.Syndrome == nil || a.Syndrome.ID != tc.syndrome {
				t.Errorf("syndrome %+v, want %s", a.Syndrome, tc.syndrome)
			}
			got := map[string]bool{}
			for _, r := range a.Referrals {
				got[r.Code] = true
			}
			for _, r := range tc.referrals {
				if !got[r] {
					t.Errorf("referral %s missing: %v", r, got)
				}
			}
			for _, r := range tc.notReferrals {
				if got[r] {
					t.Errorf("referral %s fired: %v", r, got)
				}
			}
			if len(a.Disclaimers) == 0 {
				t.Error("no disclaimers")
			}
		})
	}

	code, out, _ := runKnowledgeCLI(t, "knowledge", "analyze", "--grade", "2", "--lesions", "papule=25,pustule=10", "--symptoms", "oily, painful")
	for _, want := range []string{"Western options", "TCM syndrome scores", "Disclaimer", "代表方 formula"} {
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("text output (exit %d) lacks %q", code, want)
		}
	}
	for _, bad := range [][]string{{"--grade", "V", "--scale", "cn2019"}, {"--grade", "1", "--scale", "gags"}, {"--lesions", "papule=many"}} {
		if code, _, stderr := runKnowledgeCLI(t, append([]string{"knowledge", "analyze"}, bad...)...); code == 0 || stderr == "" {
			t.Errorf("analyze %v: exit %d, stderr %q; want an error", bad, code, stderr)
		}
	}
}

func TestKnowledgeCommandsHaveExamples(t *testing.T) {
	root, _ := NewRootCmd(strings.NewReader(""), &bytes.Buffer{}, &bytes.Buffer{})
	cmd, _, err := root.Find([]string{"knowledge"})
	if err != nil {
		t.Fatal(err)
	}
	if cmd.Example == "" {
		t.Error("knowledge has no example")
	}
	for _, sub := range cmd.Commands() {
		if !strings.Contains(sub.Example, "acdtcm knowledge "+sub.Name()) {
			t.Errorf("knowledge %s: example %q does not show the command", sub.Name(), sub.Example)
		}
	}
}
