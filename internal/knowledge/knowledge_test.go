package knowledge

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/severity"
)

func mustLoad(t testing.TB) *KB {
	t.Helper()
	kb, err := Load()
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return kb
}

func intp(i int) *int { return &i }

func TestScalesAgreeWithSeverityPackage(t *testing.T) {
	kb := mustLoad(t)
	if len(kb.Scales) != len(severity.Scales) {
		t.Fatalf("%d scales in YAML, %d in internal/severity", len(kb.Scales), len(severity.Scales))
	}
	for _, sc := range kb.Scales {
		s := severity.Scale(sc.ID)
		for g, grade := range sc.Grades {
			t.Run(sc.ID+"/"+grade.Grade, func(t *testing.T) {
				if want := s.Label(g); grade.Label.EN != want.EN || grade.Label.ZH != want.ZH {
					t.Errorf("label %+v, internal/severity says %+v", grade.Label, want)
				}
				for _, other := range severity.Scales {
					if other == s {
						continue
					}
					want, ok := severity.Convert(g, s, other)
					wantText := "none"
					if ok {
						wantText = other.Format(want)
					}
					if got := grade.Crosswalk[string(other)]; got != wantText {
						t.Errorf("crosswalk to %s = %q, severity.Convert gives %s", other, got, wantText)
					}
				}
			})
		}
	}
}

func TestHayashiCountBandsMatchACNE04Rule(t *testing.T) {
	kb := mustLoad(t)
	var hayashi *Scale
	for i := range kb.Scales {
		if kb.Scales[i].ID == "hayashi" {
			hayashi = &kb.Scales[i]
		}
	}
	if hayashi == nil {
		t.Fatal("no hayashi scale")
	}
	for count := 0; count <= 120; count++ {
		band := -1
		for g, grade := range hayashi.Grades {
			if grade.CountMin != nil && count >= *grade.CountMin && (grade.CountMax == nil || count <= *grade.CountMax) {
				if band >= 0 {
					t.Fatalf("count %d falls in two bands", count)
				}
				band = g
			}
		}
		if want := severity.HayashiFromCount(count); band != want {
			t.Errorf("count %d: YAML band %d, severity.HayashiFromCount %d", count, band, want)
		}
	}
}

func TestEveryGradeOfEveryScaleHasRecommendations(t *testing.T) {
	kb := mustLoad(t)
	// Expected first entry ids per clinical4 grade and per cn2019 grade reached via the cross-walk.
	tests := []struct {
		scale severity.Scale
		grade int
		want  []string
	}{
		{severity.Hayashi, 0, []string{"cn2019_I_first", "aad_mild_first"}},
		{severity.Hayashi, 1, []string{"cn2019_II_first", "aad_moderate_first"}},
		{severity.Hayashi, 2, []string{"cn2019_III_first", "aad_severe_first"}},
		{severity.Hayashi, 3, []string{"cn2019_IV_first", "aad_severe_first"}},
		{severity.Clinical4, 0, []string{"aad_normal"}},
		{severity.Clinical4, 1, []string{"cn2019_I_first", "aad_mild_first"}},
		{severity.Clinical4, 2, []string{"cn2019_II_first", "aad_moderate_first"}},
		{severity.Clinical4, 3, []string{"cn2019_IV_first", "aad_severe_first"}},
		{severity.CN2019, 0, []string{"cn2019_I_first", "aad_mild_first"}},
		{severity.CN2019, 1, []string{"cn2019_II_first", "aad_moderate_first"}},
		{severity.CN2019, 2, []string{"cn2019_III_first", "aad_moderate_first"}},
		{severity.CN2019, 3, []string{"cn2019_IV_first", "aad_severe_first"}},
	}
	covered := map[severity.Scale]int{}
	for _, tc := range tests {
		covered[tc.scale]++
		t.Run(string(tc.scale)+"/"+tc.scale.Format(tc.grade), func(t *testing.T) {
			a := kb.Analyze(Input{Grade: severity.Grade{Value: tc.grade, Scale: tc.scale}})
			var ids []string
			for _, r := range a.Recommendations {
				ids = append(ids, r.ID)
				if r.Source == "" || r.EN == "" || r.ZH == "" {
					t.Errorf("recommendation %s lacks source or text", r.ID)
				}
			}
			for _, w := range tc.want {
				if !slices.Contains(ids, w) {
					t.Errorf("recommendations %v lack %s", ids, w)
				}
			}
			if len(kb.gradeRecommendations(tc.scale, tc.grade)) == 0 {
				t.Errorf("no grade-selected recommendation")
			}
		})
	}
	for _, s := range severity.Scales {
		if covered[s] != s.NumGrades() {
			t.Errorf("table covers %d of %d grades of %s", covered[s], s.NumGrades(), s)
		}
	}
}

func TestEverySyndromeIsReachable(t *testing.T) {
	kb := mustLoad(t)
	tests := []struct {
		want string
		in   Input
	}{
		{"lung_meridian_wind_heat", Input{Grade: severity.Grade{Value: 0, Scale: severity.Hayashi},
			Lesions: map[string]float64{"comedone": 8, "papule": 3}, Symptoms: "红色丘疹，瘙痒，口渴，舌红苔薄黄，脉浮数"}},
		{"lung_meridian_wind_heat", Input{Lesions: map[string]float64{"comedone": 10, "papule": 2}, Symptoms: "itchy red bumps, thirsty"}},
		{"stomach_intestine_damp_heat", Input{Grade: severity.Grade{Value: 1, Scale: severity.Hayashi},
			Lesions: map[string]float64{"papule": 6, "pustule": 4}, Symptoms: "面部油腻，口臭，便秘，苔黄腻，脉滑数"}},
		{"stomach_intestine_damp_heat", Input{Symptoms: "very oily, greasy skin on face and chest, bad breath, constipated"}},
		{"phlegm_damp_stasis", Input{Grade: severity.Grade{Value: 3, Scale: severity.Clinical4},
			Lesions: map[string]float64{"papule": 5, "nodule": 4}, Symptoms: "暗红色结节囊肿，反复发作多年，纳呆，舌暗"}},
		{"phlegm_damp_stasis", Input{Lesions: map[string]float64{"nodule": 2}, Symptoms: "dark red cysts, chronic, scarring", Constitution: "痰湿质"}},
		{"chong_ren_disharmony", Input{Grade: severity.Grade{Value: 1, Scale: severity.Hayashi}, Age: intp(30), Gender: "female",
			Lesions: map[string]float64{"papule": 8}, Symptoms: "经前加重，月经不调，乳房胀痛，烦躁"}},
		{"chong_ren_disharmony", Input{Gender: "女", Age: intp(27), Symptoms: "breakouts on the chin every month before my period, breast tenderness"}},
		{"heat_toxin", Input{Grade: severity.Grade{Value: 2, Scale: severity.Hayashi},
			Lesions: map[string]float64{"papule": 10, "pustule": 15}, Symptoms: "脓疱多，红肿疼痛"}},
		{"heat_toxin", Input{Lesions: map[string]float64{"pustule": 12, "papule": 30}, Symptoms: "painful pustules"}},
	}
	reached := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.want+"/"+tc.in.Symptoms, func(t *testing.T) {
			a := kb.Analyze(tc.in)
			if a.Syndrome == nil {
				t.Fatalf("no syndrome chosen; scores %+v", a.Scores)
			}
			if a.Syndrome.ID != tc.want {
				t.Fatalf("chose %s, want %s; scores %+v", a.Syndrome.ID, tc.want, a.Scores)
			}
			if a.Scores[0].Syndrome != tc.want || len(a.Scores[0].Reasons) == 0 {
				t.Errorf("best score %+v should be %s with reasons", a.Scores[0], tc.want)
			}
			if a.Syndrome.Formula.ZH == "" || a.Syndrome.Principle.ZH == "" || len(a.Syndrome.External) == 0 || len(a.Syndrome.Lifestyle) == 0 {
				t.Errorf("advice incomplete: %+v", a.Syndrome)
			}
			reached[tc.want] = true
		})
	}
	for _, s := range kb.Syndromes {
		if !reached[s.ID] {
			t.Errorf("syndrome %s has no input that selects it", s.ID)
		}
	}
	for _, want := range []string{"lung_meridian_wind_heat", "stomach_intestine_damp_heat", "phlegm_damp_stasis", "chong_ren_disharmony"} {
		if _, ok := kb.Syndrome(want); !ok {
			t.Errorf("required syndrome %s missing", want)
		}
	}
}

func TestChongRenNeedsFemale(t *testing.T) {
	kb := mustLoad(t)
	a := kb.Analyze(Input{Gender: "male", Age: intp(30), Symptoms: "经前加重，月经不调"})
	for _, s := range a.Scores {
		if s.Syndrome == "chong_ren_disharmony" && s.Score != 0 {
			t.Errorf("chong_ren scored %v for a man: %v", s.Score, s.Reasons)
		}
	}
}

// entries lists every sourced entry of the knowledge base with a name for messages.
func entries(kb *KB) map[string]Meta {
	m := map[string]Meta{}
	for _, x := range kb.Disclaimers {
		m["disclaimer "+x.ID] = x.Meta
	}
	for _, x := range kb.Scales {
		m["scale "+x.ID] = x.Meta
		for _, g := range x.Grades {
			m["scale "+x.ID+" grade "+g.Grade] = g.Meta
		}
	}
	for _, x := range kb.ReferenceScales {
		m["reference_scale "+x.ID] = x.Meta
		for _, b := range x.Bands {
			m["reference_scale "+x.ID+" band "+b.Range] = b.Meta
		}
	}
	for _, x := range kb.LesionTypes {
		m["lesion_type "+x.ID] = x.Meta
	}
	for _, x := range kb.Western {
		m["western "+x.ID] = x.Meta
	}
	for _, x := range kb.External {
		m["external "+x.ID] = x.Meta
	}
	for _, x := range kb.Lifestyle {
		m["lifestyle "+x.ID] = x.Meta
	}
	for _, x := range kb.Syndromes {
		m["syndrome "+x.ID] = x.Meta
	}
	for _, x := range kb.Rules {
		m["rule "+x.ID] = x.Meta
	}
	for _, x := range kb.Constitutions {
		m["constitution "+x.ID] = x.Meta
	}
	for _, x := range kb.Referrals {
		m["referral "+x.ID] = x.Meta
	}
	return m
}

func TestEveryEntryHasSourceAndConfidence(t *testing.T) {
	kb := mustLoad(t)
	all := entries(kb)
	if len(all) < 150 {
		t.Fatalf("only %d entries found; the walk is missing sections", len(all))
	}
	for name, m := range all {
		if len(m.Sources) == 0 {
			t.Errorf("%s: no source", name)
		}
		for _, s := range m.Sources {
			if kb.Sources[s].Title == "" {
				t.Errorf("%s: source %s not in registry", name, s)
			}
		}
		if !confidenceRE.MatchString(m.Confidence) {
			t.Errorf("%s: confidence %q", name, m.Confidence)
		}
	}
}

func TestNineConstitutions(t *testing.T) {
	kb := mustLoad(t)
	if len(kb.Constitutions) != 9 {
		t.Fatalf("%d constitutions, want 9", len(kb.Constitutions))
	}
	for i, k := range kb.Constitutions {
		if want := string(rune('A' + i)); k.Code != want {
			t.Errorf("constitution %s code %s, want %s", k.ID, k.Code, want)
		}
	}
	for _, name := range []string{"damp_heat", "F", "湿热质", "湿热", "Damp-Heat"} {
		if k, ok := kb.FindConstitution(name); !ok || k.ID != "damp_heat" {
			t.Errorf("FindConstitution(%q) = %v, %v", name, k, ok)
		}
	}
}

// doseText is the pattern the task forbids in formulas: digits followed by g or 克.
var doseText = regexp.MustCompile(`[0-9]+(\.[0-9]+)?\s*(g|克)`)

func TestFormulasCarryNoDoses(t *testing.T) {
	kb := mustLoad(t)
	for _, s := range kb.Syndromes {
		texts := []Text{s.Formula, s.Principle}
		texts = append(texts, s.Modifications...)
		for _, x := range texts {
			for _, str := range []string{x.ZH, x.EN} {
				if doseText.MatchString(str) || HasDose(str) {
					t.Errorf("syndrome %s: dose text in %q", s.ID, str)
				}
			}
		}
	}
	tests := []struct {
		text string
		want bool
	}{
		{"枇杷清肺饮加减", false},
		{"Pipa Qingfei Yin (枇杷清肺饮), modified", false},
		{"颠倒散调糊 20–30 分钟", false},
		{"黄连 10g", true},
		{"黄连10克", true},
		{"甘草 3 g", true},
		{"人参二钱", true},
		{"石膏 30 克", true},
		{"0.5 mg", true},
	}
	for _, tc := range tests {
		if got := HasDose(tc.text); got != tc.want {
			t.Errorf("HasDose(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
}

func TestKeywordMatching(t *testing.T) {
	tests := []struct {
		text, kw string
		want     bool
	}{
		{"itchy red papules", "itch", true},
		{"itching at night", "itch", true},
		{"reduced oil", "red", false},
		{"bored", "red", false},
		{"red, swollen", "red", true},
		{"no itching, red papules", "itch", false},
		{"no itching, red papules", "red", true},
		{"no itching and red papules", "red", true},
		{"does not itch", "itch", false},
		{"denies constipation", "constipation", false},
		{"premenstrual flares", "menstrual", false},
		{"worse before my period", "before my period", true},
		{"口干，便秘", "便秘", true},
		{"无口干，便秘", "口干", false},
		{"无口干，便秘", "便秘", true},
		{"没有明显瘙痒", "瘙痒", false},
		{"月经不调经前加重", "经前", true},
		{"不痒", "痒", false},
		{"食欲不振，腹胀", "腹胀", true},
		{"DRY MOUTH", "dry mouth", true},
	}
	for _, tc := range tests {
		if got := matchKeyword(normalizeText(tc.text), normalizeText(tc.kw)); got != tc.want {
			t.Errorf("match(%q, %q) = %v, want %v", tc.text, tc.kw, got, tc.want)
		}
	}
}

func referralCodes(a Analysis) map[string]bool {
	m := map[string]bool{}
	for _, r := range a.Referrals {
		m[r.Code] = true
		if r.Urgent {
			m[r.Code+"!"] = true
		}
	}
	return m
}

func TestReferralTriggers(t *testing.T) {
	kb := mustLoad(t)
	tests := []struct {
		name    string
		in      Input
		want    []string // codes; "code!" means it must be urgent
		notWant []string
	}{
		{"nodule count", Input{Lesions: map[string]float64{"nodule": 2, "papule": 4}}, []string{"nodulocystic"}, nil},
		{"fractional nodule below threshold", Input{Lesions: map[string]float64{"nodule": 0.2, "papule": 4}}, nil, []string{"nodulocystic"}},
		{"cyst keyword", Input{Symptoms: "deep painful cysts on the jaw"}, []string{"nodulocystic"}, nil},
		{"very severe hayashi", Input{Grade: severity.Grade{Value: 3, Scale: severity.Hayashi}}, []string{"very_severe"}, nil},
		{"severe hayashi is not very severe", Input{Grade: severity.Grade{Value: 2, Scale: severity.Hayashi}}, nil, []string{"very_severe"}},
		{"cn2019 IV", Input{Grade: severity.Grade{Value: 3, Scale: severity.CN2019}}, []string{"very_severe"}, nil},
		{"nodule raises cn2019 to IV", Input{Grade: severity.Grade{Value: 1, Scale: severity.Hayashi}, Lesions: map[string]float64{"nodule": 1}}, []string{"very_severe", "nodulocystic"}, nil},
		{"scarring keyword zh", Input{Symptoms: "脸上有痘坑和瘢痕"}, []string{"scarring"}, nil},
		{"scarring keyword en", Input{Symptoms: "some scarring on cheeks"}, []string{"scarring"}, nil},
		{"negated scarring", Input{Symptoms: "no scars"}, nil, []string{"scarring"}},
		{"androgen excess", Input{Gender: "female", Age: intp(28), Symptoms: "多毛，月经不规律"}, []string{"hyperandrogenism"}, []string{"adult_onset_female"}},
		{"sudden adult onset with androgen excess", Input{Gender: "female", Age: intp(32), Symptoms: "sudden onset acne at 32, hirsutism and irregular periods"}, []string{"hyperandrogenism", "adult_onset_female"}, nil},
		{"sudden onset in a teenager is not adult onset", Input{Gender: "female", Age: intp(16), Symptoms: "sudden acne, irregular periods"}, []string{"hyperandrogenism"}, []string{"adult_onset_female"}},
		{"hirsutism keyword in a man", Input{Gender: "male", Age: intp(28), Symptoms: "hirsutism"}, nil, []string{"hyperandrogenism"}},
		{"virilisation", Input{Gender: "female", Age: intp(40), Symptoms: "突然长痘，声音变粗"}, []string{"virilisation!"}, nil},
		{"fulminans", Input{Symptoms: "ulcerated painful lesions with fever and joint pain"}, []string{"acne_fulminans!"}, nil},
		{"psychological", Input{Symptoms: "因为长痘很抑郁"}, []string{"psychological"}, nil},
		{"pregnancy", Input{Symptoms: "I am pregnant"}, []string{"pregnancy"}, nil},
		{"young child", Input{Age: intp(7)}, []string{"young_child"}, nil},
		{"uncertain model", Input{Grade: severity.Grade{Value: 1, Scale: severity.Hayashi}, Probabilities: []float64{0.3, 0.4, 0.2, 0.1}}, []string{"uncertain_grade"}, nil},
		{"confident model", Input{Grade: severity.Grade{Value: 1, Scale: severity.Hayashi}, Probabilities: []float64{0.1, 0.8, 0.05, 0.05}}, nil, []string{"uncertain_grade"}},
		{"untyped lesions refer on the grade alone", Input{Grade: severity.Grade{Value: 1, Scale: severity.Hayashi}, Lesions: map[string]float64{"lesion": 40}}, nil,
			[]string{"nodulocystic", "very_severe"}},
		{"mild, nothing", Input{Grade: severity.Grade{Value: 0, Scale: severity.Hayashi}, Lesions: map[string]float64{"comedone": 4}}, nil,
			[]string{"nodulocystic", "very_severe", "scarring", "hyperandrogenism", "uncertain_grade"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := kb.Analyze(tc.in)
			got := referralCodes(a)
			for _, w := range tc.want {
				if !got[w] {
					t.Errorf("referral %s did not fire; got %v", w, got)
				}
			}
			for _, w := range tc.notWant {
				if got[w] {
					t.Errorf("referral %s fired; got %v", w, got)
				}
			}
			for _, r := range a.Referrals {
				if len(r.Why) == 0 || r.EN == "" || r.ZH == "" || r.Source == "" {
					t.Errorf("referral %s lacks why/text/source: %+v", r.Code, r)
				}
			}
		})
	}
}

func TestBrokenUserFiles(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		yaml    string
		wantAll []string
	}{
		{"unknown field", "rules:\n  - id: my_rule\n    syndrome: heat_toxin\n    wieght: 1\n", []string{"line 4", "wieght", "not found"}},
		{"missing source", "rules:\n  - id: my_rule\n    syndrome: heat_toxin\n    weight: 1\n    when: {keywords: [热]}\n    confidence: X\n", []string{":2", "rule my_rule", "missing sources"}},
		{"unknown source", "rules:\n  - id: my_rule\n    syndrome: heat_toxin\n    weight: 1\n    when: {keywords: [热]}\n    sources: [S999]\n    confidence: X\n", []string{"rule my_rule", `"S999"`}},
		{"bad grade", "western:\n  - id: my_rec\n    guideline: local\n    category: first_line\n    scale: cn2019\n    grades: [V]\n    en: x\n    zh: x\n    sources: [S12]\n    confidence: V\n", []string{":2", "western my_rec", `invalid cn2019 grade "V"`}},
		{"grade out of range", "western:\n  - id: my_rec\n    guideline: local\n    category: first_line\n    scale: hayashi\n    grades: [\"7\"]\n    en: x\n    zh: x\n    sources: [S12]\n    confidence: V\n", []string{"western my_rec", "out of range"}},
		{"yaml syntax error", "rules:\n  - id: [unclosed\n", []string{"line"}},
		{"unknown syndrome", "rules:\n  - id: my_rule\n    syndrome: liver_fire\n    weight: 1\n    when: {keywords: [热]}\n    sources: [S47]\n    confidence: X\n", []string{"rule my_rule", `syndrome "liver_fire" does not exist`}},
		{"dose in formula", "syndromes:\n  - id: heat_toxin\n    name: {en: a, zh: a}\n    lesions: {en: a, zh: a}\n    signs: {en: a, zh: a}\n    tongue: {en: a, zh: a}\n    pulse: {en: a, zh: a}\n    principle: {en: a, zh: a}\n    formula: {en: gypsum 30 g, zh: 生石膏30克}\n    sources: [S58]\n    confidence: S\n", []string{":2", "syndrome heat_toxin", "dose text"}},
		{"bad confidence", "rules:\n  - id: my_rule\n    syndrome: heat_toxin\n    weight: 1\n    when: {keywords: [热]}\n    sources: [S47]\n    confidence: verified\n", []string{"rule my_rule", `confidence "verified"`}},
		{"crosswalk disagrees", "scales:\n  - id: cn2019\n    name: {en: a, zh: a}\n    description: {en: a, zh: a}\n    sources: [S8]\n    confidence: V\n    grades:\n" +
			"      - {grade: I, label: {en: a, zh: a}, criterion: {en: a, zh: a}, crosswalk: {hayashi: \"0\", clinical4: \"1\"}, sources: [S8], confidence: V}\n" +
			"      - {grade: II, label: {en: a, zh: a}, criterion: {en: a, zh: a}, crosswalk: {hayashi: \"1\", clinical4: \"2\"}, sources: [S8], confidence: V}\n" +
			"      - {grade: III, label: {en: a, zh: a}, criterion: {en: a, zh: a}, crosswalk: {hayashi: \"2\", clinical4: \"3\"}, sources: [S8], confidence: V}\n" +
			"      - {grade: IV, label: {en: a, zh: a}, criterion: {en: a, zh: a}, crosswalk: {hayashi: \"3\", clinical4: \"3\"}, sources: [S8], confidence: V}\n",
			[]string{":10", "scale cn2019 grade III", "clinical4", "authoritative"}},
		{"remove unknown id", "remove: {rules: [no_such_rule]}\n", []string{"remove", `"no_such_rule"`}},
		{"removing a syndrome orphans its rules", "remove: {syndromes: [heat_toxin]}\n", []string{"rule heat_toxin_pain", `syndrome "heat_toxin" does not exist`}},
		{"missing zh text", "lifestyle:\n  - id: walk\n    name: {en: walking}\n    en: walk daily\n    zh: 每日步行\n    sources: [S9]\n    confidence: X\n", []string{"lifestyle walk", "name: missing zh"}},
		{"empty file", "", []string{"empty knowledge file"}},
		{"two documents", "version: 1\n---\nversion: 1\n", []string{"more than one YAML document"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := LoadFile(path)
			if err == nil {
				t.Fatalf("LoadFile accepted a broken file")
			}
			msg := err.Error()
			for _, w := range append([]string{path}, tc.wantAll...) {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
	if _, err := LoadFile(filepath.Join(dir, "missing.yaml")); err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestOverrideMergeSemantics(t *testing.T) {
	path := filepath.Join(t.TempDir(), "site.yaml")
	yaml := `# a clinic's local additions
engine:
  secondary_ratio: 0.5
remove:
  rules: [prior_lung]
rules:
  - id: damp_heat_oily          # replaces the built-in rule
    syndrome: stomach_intestine_damp_heat
    weight: 5
    when: {keywords: [oily, 油腻]}
    sources: [S47]
    confidence: X
  - id: local_sweet_tooth       # new rule with a new source
    syndrome: stomach_intestine_damp_heat
    weight: 0.5
    when: {keywords: [甜食]}
    sources: [LOCAL1]
    confidence: X
sources:
  LOCAL1: {title: "Clinic protocol 2026", url: ""}
`
	if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	kb, err := LoadFile(path)
	if err != nil {
		t.Fatalf("LoadFile: %v", err)
	}
	base := mustLoad(t)
	if kb.Engine.SecondaryRatio != 0.5 || kb.Engine.WeakEvidenceBelow != base.Engine.WeakEvidenceBelow {
		t.Errorf("engine merge: got %+v, base %+v", kb.Engine, base.Engine)
	}
	if len(kb.Rules) != len(base.Rules) { // one removed, one replaced, one added
		t.Errorf("%d rules after merge, want %d", len(kb.Rules), len(base.Rules))
	}
	if len(kb.Files) != 2 || kb.Files[1] != path {
		t.Errorf("Files = %v", kb.Files)
	}
	a := kb.Analyze(Input{Symptoms: "oily skin, 爱吃甜食"})
	var dh, lung float64 = -1, -1
	for _, s := range a.Scores {
		switch s.Syndrome {
		case "stomach_intestine_damp_heat":
			dh = s.Score
		case "lung_meridian_wind_heat":
			lung = s.Score
		}
	}
	if dh != 5.7 { // prior 0.2 + replaced oily 5 + new 0.5
		t.Errorf("damp-heat score %v, want 5.7", dh)
	}
	if lung != 0 {
		t.Errorf("lung score %v, want 0 after removing its prior", lung)
	}
}

func TestNoSyndromeWithoutEvidence(t *testing.T) {
	kb := mustLoad(t)
	for _, in := range []Input{
		{},
		{Grade: severity.Grade{Value: 0, Scale: severity.Clinical4}},
		{Gender: "female", Age: intp(30)}, // demographics alone are priors
	} {
		a := kb.Analyze(in)
		if a.Syndrome != nil {
			t.Errorf("input %+v: syndrome %s suggested from priors alone", in, a.Syndrome.ID)
		}
		if len(a.Notes) == 0 || len(a.Disclaimers) == 0 {
			t.Errorf("input %+v: want a note and disclaimers, got %+v", in, a)
		}
	}
}

func TestNoduleForcesSevereButPapulesDoNot(t *testing.T) {
	kb := mustLoad(t)
	grade := func(a Analysis, s severity.Scale) string {
		for _, e := range a.Effective {
			if e.Scale == s {
				return e.Grade
			}
		}
		return ""
	}
	tests := []struct {
		name             string
		lesions          map[string]float64
		clinical4, cn    string
		raisedOnClinical bool
	}{
		{"comedones only", map[string]float64{"comedone": 5}, "1", "I", false},
		{"a few papules", map[string]float64{"comedone": 5, "papule": 2}, "1", "II", false},
		{"pustules", map[string]float64{"papule": 2, "pustule": 1}, "1", "III", false},
		{"one nodule", map[string]float64{"papule": 2, "nodule": 1}, "3", "IV", true},
		{"untyped lesions force nothing", map[string]float64{"lesion": 30}, "1", "I", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := kb.Analyze(Input{Grade: severity.Grade{Value: 0, Scale: severity.Hayashi}, Lesions: tc.lesions})
			if got := grade(a, severity.Clinical4); got != tc.clinical4 {
				t.Errorf("clinical4 %s, want %s", got, tc.clinical4)
			}
			if got := grade(a, severity.CN2019); got != tc.cn {
				t.Errorf("cn2019 %s, want %s", got, tc.cn)
			}
			if got := grade(a, severity.Hayashi); got != "0" {
				t.Errorf("hayashi %s, want the predicted 0", got)
			}
			for _, n := range a.Notes {
				if strings.Contains(n, "lesion type") {
					t.Errorf("note %q: every lesion type given is understood", n)
				}
			}
		})
	}
}
