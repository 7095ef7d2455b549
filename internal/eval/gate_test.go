package eval

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGate(t *testing.T) {
	base := map[string]Num{"accuracy": 0.80, "macro_f1": 0.70, "kappa": 0.60, "mae": 0.30, "macro_auc": Undefined}
	cases := []struct {
		name    string
		current map[string]Num
		metrics []string
		fail    []string // metrics expected to fail
		reason  string   // substring of the first failure's reason
	}{
		{"unchanged passes", map[string]Num{"accuracy": 0.80, "macro_f1": 0.70, "kappa": 0.60}, []string{"accuracy", "macro_f1", "kappa"}, nil, ""},
		{"improvement passes", map[string]Num{"accuracy": 0.90, "macro_f1": 0.75, "kappa": 0.70}, []string{"accuracy", "macro_f1", "kappa"}, nil, ""},
		{"drop within allowance passes", map[string]Num{"accuracy": 0.795, "macro_f1": 0.69, "kappa": 0.60}, []string{"accuracy", "macro_f1", "kappa"}, nil, ""},
		{"drop of exactly the allowance passes", map[string]Num{"accuracy": 0.79}, []string{"accuracy"}, nil, ""},
		{"drop beyond allowance fails", map[string]Num{"accuracy": 0.75, "macro_f1": 0.70, "kappa": 0.55}, []string{"accuracy", "macro_f1", "kappa"},
			[]string{"accuracy", "kappa"}, "accuracy dropped by 0.0500 (0.8000 → 0.7500), more than the allowed 0.0100"},
		{"error metric rising fails", map[string]Num{"mae": 0.35}, []string{"mae"}, []string{"mae"}, "mae rose by 0.0500"},
		{"error metric falling passes", map[string]Num{"mae": 0.20}, []string{"mae"}, nil, ""},
		{"undefined current fails", map[string]Num{"kappa": Undefined}, []string{"kappa"}, []string{"kappa"}, "kappa is undefined in this evaluation"},
		{"undefined baseline fails", map[string]Num{"macro_auc": 0.9}, []string{"macro_auc"}, []string{"macro_auc"}, "macro_auc is missing or undefined in the baseline"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			checks := Gate(base, c.current, c.metrics, 0.01)
			if len(checks) != len(c.metrics) {
				t.Fatalf("%d checks for %d metrics", len(checks), len(c.metrics))
			}
			failed := GateFailures(checks)
			var names []string
			for _, f := range failed {
				names = append(names, f.Metric)
			}
			if strings.Join(names, ",") != strings.Join(c.fail, ",") {
				t.Fatalf("failed %v, want %v (%+v)", names, c.fail, checks)
			}
			if c.reason != "" && !strings.Contains(failed[0].Reason, c.reason) {
				t.Errorf("reason %q lacks %q", failed[0].Reason, c.reason)
			}
		})
	}
}

func TestParseGateMetricsAndBaseline(t *testing.T) {
	got, err := ParseGateMetrics([]string{"accuracy,Macro_F1", " kappa "})
	if err != nil || strings.Join(got, ",") != "accuracy,macro_f1,kappa" {
		t.Errorf("ParseGateMetrics = %v, %v", got, err)
	}
	if _, err := ParseGateMetrics([]string{"acuracy"}); err == nil || !strings.Contains(err.Error(), "acuracy") {
		t.Errorf("unknown metric error = %v", err)
	}
	dir := t.TempDir()
	good := filepath.Join(dir, "metrics.json")
	if err := os.WriteFile(good, []byte(`{"summary":{"accuracy":0.5,"kappa":null}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	b, err := ReadBaseline(good)
	if err != nil || b["accuracy"] != 0.5 || b["kappa"].Defined() {
		t.Errorf("ReadBaseline = %v, %v", b, err)
	}
	bad := filepath.Join(dir, "other.json")
	if err := os.WriteFile(bad, []byte(`{"accuracy":0.5}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadBaseline(bad); err == nil || !strings.Contains(err.Error(), "summary") {
		t.Errorf("baseline without summary: %v", err)
	}
}
