package knowledge

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// goldenInputs are the inputs whose Analyze output is pinned under testdata/analyze_<name>.json.
var goldenInputs = []struct {
	name string
	in   Input
}{
	{"mild_comedonal_male", Input{Grade: severity.Grade{Value: 0, Scale: severity.Hayashi}, Probabilities: []float64{0.85, 0.1, 0.03, 0.02},
		Lesions: map[string]float64{"comedone": 6, "papule": 1}, Age: intp(17), Gender: "male", Symptoms: "blackheads on the nose, slightly itchy"}},
	{"female_premenstrual", Input{Grade: severity.Grade{Value: 1, Scale: severity.Hayashi}, Probabilities: []float64{0.2, 0.65, 0.1, 0.05},
		Lesions: map[string]float64{"papule": 9, "pustule": 2}, Age: intp(29), Gender: "女", Symptoms: "经前加重，口干，月经不调，痘痘集中在下巴", Constitution: "气郁质"}},
	{"nodulocystic_scarring", Input{Grade: severity.Grade{Value: 3, Scale: severity.Clinical4}, Probabilities: []float64{0.01, 0.04, 0.25, 0.7},
		Lesions: map[string]float64{"nodule": 3, "papule": 12, "pustule": 6}, Age: intp(22), Gender: "male", Symptoms: "暗红色结节囊肿，反复多年，有痘坑，便秘"}},
	{"uncertain_no_details", Input{Grade: severity.Grade{Value: 0, Scale: severity.Clinical4}, Probabilities: []float64{0.45, 0.4, 0.1, 0.05}}},
	{"virilisation_urgent", Input{Grade: severity.Grade{Value: 2, Scale: severity.Hayashi}, Probabilities: []float64{0.05, 0.2, 0.6, 0.15},
		Lesions: map[string]float64{"papule": 20, "pustule": 8}, Age: intp(45), Gender: "female", Symptoms: "sudden acne over two months, deepening voice and hirsutism, oily skin"}},
}

func TestAnalyzeGolden(t *testing.T) {
	kb := mustLoad(t)
	for _, g := range goldenInputs {
		t.Run(g.name, func(t *testing.T) {
			got, err := json.MarshalIndent(struct {
				Input    Input    `json:"input"`
				Analysis Analysis `json:"analysis"`
			}{g.in, kb.Analyze(g.in)}, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, '\n')
			path := filepath.Join("testdata", "analyze_"+g.name+".json")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Analyze output differs from %s (run go test -update after checking the change):\n%s", path, firstDiff(string(want), string(got)))
			}
		})
	}
}

func firstDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < len(w) || i < len(g); i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			return "line " + itoa(i+1) + ":\n  want: " + wl + "\n  got:  " + gl
		}
	}
	return ""
}

func TestApplyFillsResult(t *testing.T) {
	kb := mustLoad(t)
	res := &result.DiagnosisResult{
		ImageID:       "img1",
		Severity:      severity.Grade{Value: 2, Scale: severity.Hayashi},
		Probabilities: []float64{0.05, 0.15, 0.7, 0.1},
		Confidence:    0.7,
		Lesions:       []result.LesionFinding{{Type: "papule", Count: 18}, {Type: "pustule", Count: 9}, {Type: "nodule", Count: 1}},
		Disclaimer:    result.Disclaimer,
		CreatedAt:     time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	kb.Apply(res, Input{Gender: "male", Age: intp(19), Symptoms: "red swollen painful lumps, oily"})
	if res.Diagnosis.EN != "severe" || res.Diagnosis.ZH != "重度" {
		t.Errorf("Diagnosis = %+v", res.Diagnosis)
	}
	if len(res.Recommendations) == 0 || res.Recommendations[0].Guideline == "" {
		t.Errorf("Recommendations = %+v", res.Recommendations)
	}
	codes := map[string]bool{}
	for _, r := range res.Referral {
		codes[r.Code] = true
	}
	if !codes["nodulocystic"] || !codes["very_severe"] || !res.Referred() {
		t.Errorf("Referral = %+v; the nodule from res.Lesions should fire nodulocystic and raise cn2019 to IV", res.Referral)
	}
	ta := res.TCMAnalysis
	if ta == nil || ta.Syndrome.ZH == "" || ta.Formula.ZH == "" || ta.TreatmentPrinciple.EN == "" || len(ta.Scores) != len(kb.Syndromes) || len(ta.Reasoning) == 0 {
		t.Fatalf("TCMAnalysis = %+v", ta)
	}
	if !strings.Contains(ta.Formula.EN, FormulaLabel.EN) {
		t.Errorf("formula %q is not labelled as a textbook reference", ta.Formula.EN)
	}
	if !strings.Contains(res.Disclaimer, "not a clinical diagnosis") || !strings.Contains(res.Disclaimer, "严禁") {
		t.Errorf("Disclaimer = %q", res.Disclaimer)
	}

	failed := &result.DiagnosisResult{Error: "decode: bad jpeg"}
	kb.Apply(failed, Input{Symptoms: "nodules"})
	if failed.TCMAnalysis != nil || failed.Referral != nil || failed.Recommendations != nil {
		t.Errorf("Apply changed a failed result: %+v", failed)
	}
}

func BenchmarkAnalyze(b *testing.B) {
	kb := mustLoad(b)
	in := goldenInputs[1].in
	b.ReportAllocs()
	for b.Loop() {
		kb.Analyze(in)
	}
}

func BenchmarkLoad(b *testing.B) {
	for b.Loop() {
		if _, err := Load(); err != nil {
			b.Fatal(err)
		}
	}
}
