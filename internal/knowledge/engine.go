package knowledge

import (
	"fmt"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// Input is what the rule engine reasons from. Every field is optional.
type Input struct {
	// Grade is the predicted grade; a zero Grade (empty scale) means no grade.
	Grade severity.Grade `json:"grade"`
	// Probabilities are the model's grade probabilities, in grade order of Grade.Scale.
	Probabilities []float64 `json:"probabilities,omitempty"`
	// Lesions counts lesions by type (lesionTypes: comedone, papule, pustule, nodule; "lesion"
	// for lesions of untold type, which count towards the total only).
	Lesions map[string]float64 `json:"lesions,omitempty"`
	// Age in years, when known.
	Age *int `json:"age,omitempty"`
	// Gender: female or male (also f/m, woman/man, 女/男); empty when unknown.
	Gender string `json:"gender,omitempty"`
	// Symptoms is a free-text description in Chinese and/or English, e.g. "口干 便秘, oily skin".
	Symptoms string `json:"symptoms,omitempty"`
	// Constitution is a constitution id (damp_heat), code (F) or name (湿热质), when known from
	// the questionnaire.
	Constitution string `json:"constitution,omitempty"`
}

// Analysis is the engine's full, explained output.
type Analysis struct {
	// Grade is the input grade and Label its bilingual name, when a valid grade was given.
	Grade *severity.Grade `json:"grade,omitempty"`
	Label *Text           `json:"label,omitempty"`
	// Effective lists the grade used for recommendations on each scale, after cross-walk rule
	// 1 (the worse of the count grade and the lesion-type grade on cn2019 and clinical4).
	Effective []EffectiveGrade `json:"effective_grades,omitempty"`
	// Recommendations are the Western options, cautions and education that apply.
	Recommendations []RecommendationHit `json:"recommendations"`
	// Scores holds every syndrome's score with the rules that fired, best first.
	Scores []result.SyndromeScore `json:"scores"`
	// Syndrome is the chosen syndrome; Secondary the co-existing ones.
	Syndrome  *SyndromeAdvice  `json:"syndrome,omitempty"`
	Secondary []SyndromeAdvice `json:"secondary,omitempty"`
	// Constitution is the resolved constitution, when one was given.
	Constitution *ConstitutionInfo `json:"constitution,omitempty"`
	// Referrals are the triggers that fired, with why.
	Referrals []ReferralHit `json:"referrals,omitempty"`
	// Disclaimers are the statements every result carries.
	Disclaimers []Text `json:"disclaimers"`
	// Notes explain input problems and caveats (unknown gender, weak evidence, ...).
	Notes []string `json:"notes,omitempty"`
}

// EffectiveGrade is the grade used on one scale and why it differs from the input, if it does.
type EffectiveGrade struct {
	Scale  severity.Scale `json:"scale"`
	Grade  string         `json:"grade"`
	Label  Text           `json:"label"`
	Reason string         `json:"reason,omitempty"`
	value  int
}

// RecommendationHit is a recommendation with the selector that made it apply.
type RecommendationHit struct {
	ID string `json:"id"`
	result.Recommendation
	Why string `json:"why"`
}

// ReferralHit is a fired referral trigger with the condition that fired it.
type ReferralHit struct {
	result.Referral
	Why []string `json:"why"`
}

// SyndromeAdvice is what the result shows for a chosen syndrome. The formula is a textbook
// reference name, never a prescription; tongue and pulse are what a physician would confirm.
type SyndromeAdvice struct {
	ID         string   `json:"id"`
	Name       Text     `json:"name"`
	Score      float64  `json:"score"`
	Principle  Text     `json:"treatment_principle"`
	Formula    Text     `json:"formula"`
	Tongue     Text     `json:"tongue"`
	Pulse      Text     `json:"pulse"`
	External   []Text   `json:"external_treatment,omitempty"`
	Lifestyle  []Text   `json:"lifestyle,omitempty"`
	Sources    []string `json:"sources"`
	Confidence string   `json:"confidence"`
}

// ConstitutionInfo is a resolved constitution.
type ConstitutionInfo struct {
	ID            string `json:"id"`
	Code          string `json:"code"`
	Name          Text   `json:"name"`
	AcneRelevance Text   `json:"acne_relevance"`
}

// FormulaLabel is shown with every reference formula.
var FormulaLabel = Text{
	ZH: "该证型的代表方(教材参考)，须由执业中医师辨证后个体化处方",
	EN: "representative formula for this pattern (textbook reference); a licensed TCM physician individualises it",
}

// state is the normalised input the conditions are evaluated against.
type state struct {
	kb           *KB
	text         string
	gender       string
	age          *int
	lesions      map[string]float64
	total        float64
	effective    map[severity.Scale]int
	constitution string
	maxProb      float64
	hasProb      bool
}

// normalizeGender maps common spellings to female/male; ok is false for unknown text.
func normalizeGender(g string) (string, bool) {
	switch strings.ToLower(strings.TrimSpace(g)) {
	case "":
		return "", true
	case "female", "f", "woman", "women", "girl", "女", "女性":
		return "female", true
	case "male", "m", "man", "men", "boy", "男", "男性":
		return "male", true
	}
	return "", false
}

// FindConstitution resolves a constitution by id, code, Chinese name or alias.
func (kb *KB) FindConstitution(name string) (*Constitution, bool) {
	n := strings.ToLower(strings.TrimSpace(name))
	if n == "" {
		return nil, false
	}
	for i := range kb.Constitutions {
		k := &kb.Constitutions[i]
		if n == k.ID || n == strings.ToLower(k.Code) || n == k.Name.ZH || n == strings.ToLower(k.Name.EN) || slices.Contains(k.Aliases, n) {
			return k, true
		}
	}
	return nil, false
}

// Syndrome returns the syndrome with the given id.
func (kb *KB) Syndrome(id string) (*Syndrome, bool) {
	for i := range kb.Syndromes {
		if kb.Syndromes[i].ID == id {
			return &kb.Syndromes[i], true
		}
	}
	return nil, false
}

// scaleGrade returns the knowledge base's description of grade g of scale s.
func (kb *KB) scaleGrade(s severity.Scale, g int) (*ScaleGrade, bool) {
	for i := range kb.Scales {
		if kb.Scales[i].ID == string(s) && g >= 0 && g < len(kb.Scales[i].Grades) {
			return &kb.Scales[i].Grades[g], true
		}
	}
	return nil, false
}

func (kb *KB) label(s severity.Scale, g int) Text {
	if sg, ok := kb.scaleGrade(s, g); ok {
		return sg.Label
	}
	l := s.Label(g)
	return Text{ZH: l.ZH, EN: l.EN}
}

func round2(x float64) float64 { return math.Round(x*100) / 100 }

// Analyze runs the rule engine: effective grades, Western recommendations, syndrome scores
// with the rules that fired, the chosen syndrome(s), referral triggers and disclaimers. It
// only reads kb, so one KB (from Load or LoadFile) serves concurrent callers.
func (kb *KB) Analyze(in Input) Analysis {
	a := Analysis{Recommendations: []RecommendationHit{}, Scores: []result.SyndromeScore{}}
	st := &state{kb: kb, text: normalizeText(in.Symptoms), age: in.Age, lesions: map[string]float64{},
		effective: map[severity.Scale]int{}}

	if g, ok := normalizeGender(in.Gender); ok {
		st.gender = g
	} else {
		a.Notes = append(a.Notes, fmt.Sprintf("unknown gender %q ignored (use female or male)", in.Gender))
	}
	if in.Age != nil && (*in.Age < 0 || *in.Age > 130) {
		a.Notes = append(a.Notes, fmt.Sprintf("implausible age %d ignored", *in.Age))
		st.age = nil
	}
	for _, t := range slices.Sorted(maps.Keys(in.Lesions)) {
		v := in.Lesions[t]
		if !slices.Contains(lesionTypes, t) && t != untypedLesion {
			a.Notes = append(a.Notes, fmt.Sprintf("unknown lesion type %q ignored", t))
			continue
		}
		if v < 0 || math.IsNaN(v) || math.IsInf(v, 0) {
			a.Notes = append(a.Notes, fmt.Sprintf("invalid %s count %v ignored", t, v))
			continue
		}
		if t != untypedLesion {
			st.lesions[t] = v
		}
		st.total += v
	}
	if in.Constitution != "" {
		if k, ok := kb.FindConstitution(in.Constitution); ok {
			st.constitution = k.ID
			a.Constitution = &ConstitutionInfo{ID: k.ID, Code: k.Code, Name: k.Name, AcneRelevance: k.AcneRelevance}
		} else {
			a.Notes = append(a.Notes, fmt.Sprintf("unknown constitution %q ignored", in.Constitution))
		}
	}
	for _, p := range in.Probabilities {
		if !st.hasProb || p > st.maxProb {
			st.maxProb, st.hasProb = p, true
		}
	}

	kb.effectiveGrades(in, st, &a)
	kb.recommend(st, &a)
	kb.scoreSyndromes(st, &a)
	kb.refer(st, &a)
	for _, d := range kb.Disclaimers {
		if d.InResult {
			a.Disclaimers = append(a.Disclaimers, d.Text)
		}
	}
	return a
}

// effectiveGrades applies cross-walk rule 1: on cn2019 the grade is the worse of the predicted
// grade and the grade the most severe present lesion type defines; on clinical4 lesion types
// that force a grade (nodules: severe) raise it likewise. Hayashi is count-based, so it only
// carries the predicted grade.
func (kb *KB) effectiveGrades(in Input, st *state, a *Analysis) {
	hasGrade := in.Grade.Scale != ""
	if hasGrade {
		if err := in.Grade.Validate(); err != nil {
			a.Notes = append(a.Notes, fmt.Sprintf("invalid grade ignored: %v", err))
			hasGrade = false
		} else {
			g := in.Grade
			a.Grade = &g
			l := kb.label(g.Scale, g.Value)
			a.Label = &l
			if len(in.Probabilities) > 0 && len(in.Probabilities) != g.Scale.NumGrades() {
				a.Notes = append(a.Notes, fmt.Sprintf("%d probabilities given for the %d grades of %s", len(in.Probabilities), g.Scale.NumGrades(), g.Scale))
			}
		}
	}
	// The grade the present lesion types force on each type-driven scale, and which type.
	forced := map[severity.Scale]int{severity.CN2019: -1, severity.Clinical4: -1}
	forcedBy := map[severity.Scale]string{}
	for _, lt := range kb.LesionTypes {
		if st.lesions[lt.ID] < kb.Engine.LesionPresentMin {
			continue
		}
		if lt.cn2019 > forced[severity.CN2019] {
			forced[severity.CN2019], forcedBy[severity.CN2019] = lt.cn2019, lt.ID
		}
		if lt.clinical4 > forced[severity.Clinical4] {
			forced[severity.Clinical4], forcedBy[severity.Clinical4] = lt.clinical4, lt.ID
		}
	}
	for _, s := range severity.Scales {
		g, ok := -1, false
		if hasGrade {
			g, ok = severity.Convert(in.Grade.Value, in.Grade.Scale, s)
			if !ok {
				g = -1
			}
		}
		reason := ""
		if lg, has := forced[s]; has && lg > g {
			if g >= 0 {
				reason = fmt.Sprintf("raised from %s because %s lesions are present (the worse of the count grade and the lesion-type grade)", s.Format(g), forcedBy[s])
			} else {
				reason = fmt.Sprintf("from the %s lesions present", forcedBy[s])
			}
			g = lg
		}
		if g < 0 {
			continue
		}
		st.effective[s] = g
		a.Effective = append(a.Effective, EffectiveGrade{Scale: s, Grade: s.Format(g), Label: kb.label(s, g), Reason: reason, value: g})
	}
}

// recommend selects the Western entries whose selectors hold, in knowledge-base order.
func (kb *KB) recommend(st *state, a *Analysis) {
	for _, w := range kb.Western {
		var why []string
		if w.Scale != "" {
			s := severity.Scale(w.Scale)
			g, ok := st.effective[s]
			if !ok || !slices.Contains(w.grades, g) {
				continue
			}
			why = append(why, fmt.Sprintf("%s grade %s", s, s.Format(g)))
		}
		if w.Lesion != "" {
			n := st.lesions[w.Lesion]
			if n < kb.Engine.LesionPresentMin {
				continue
			}
			why = append(why, fmt.Sprintf("%s present (%g)", w.Lesion, n))
		}
		if w.When != nil {
			ok, reasons := w.When.eval(st)
			if !ok {
				continue
			}
			why = append(why, reasons...)
		}
		if len(why) == 0 {
			why = append(why, "always")
		}
		a.Recommendations = append(a.Recommendations, RecommendationHit{
			ID: w.ID,
			Recommendation: result.Recommendation{Category: w.Category, EN: w.EN, ZH: w.ZH,
				Source: strings.Join(w.Sources, ", "), Guideline: w.Guideline, Confidence: w.Confidence},
			Why: strings.Join(why, "; "),
		})
	}
}

// scoreSyndromes adds up the weights of the rules that fire, picks the best syndrome and the
// co-existing ones.
func (kb *KB) scoreSyndromes(st *state, a *Analysis) {
	scores := make([]result.SyndromeScore, len(kb.Syndromes))
	evidence := map[string]bool{}
	index := map[string]int{}
	for i, s := range kb.Syndromes {
		scores[i] = result.SyndromeScore{Syndrome: s.ID}
		index[s.ID] = i
	}
	for _, r := range kb.Rules {
		ok, reasons := r.When.eval(st)
		if !ok {
			continue
		}
		i, found := index[r.Syndrome]
		if !found {
			continue
		}
		why := "always (prior)"
		if len(reasons) > 0 {
			why = strings.Join(reasons, ", ")
		}
		scores[i].Score += r.Weight
		if !r.Prior && r.Weight > 0 {
			evidence[r.Syndrome] = true
		}
		scores[i].Reasons = append(scores[i].Reasons, fmt.Sprintf("%s %+.2f: %s", r.ID, r.Weight, why))
	}
	for i := range scores {
		scores[i].Score = round2(scores[i].Score)
	}
	sort.SliceStable(scores, func(i, j int) bool { return scores[i].Score > scores[j].Score })
	a.Scores = scores
	bi := slices.IndexFunc(scores, func(s result.SyndromeScore) bool { return s.Score > 0 && evidence[s.Syndrome] })
	if bi < 0 {
		a.Notes = append(a.Notes, "no TCM evidence (no lesion pattern, symptom, tongue, pulse or constitution rule fired): no pattern is suggested; a TCM physician differentiates in person")
		return
	}
	best := scores[bi]
	s, _ := kb.Syndrome(best.Syndrome)
	adv := kb.advice(s, best.Score)
	a.Syndrome = &adv
	if best.Score < kb.Engine.WeakEvidenceBelow {
		a.Notes = append(a.Notes, fmt.Sprintf("weak evidence for %s (score %.2f < %.2f): describe symptoms, tongue and pulse, and see a TCM physician for differentiation in person",
			best.Syndrome, best.Score, kb.Engine.WeakEvidenceBelow))
	}
	for i, sc := range scores {
		if i != bi && evidence[sc.Syndrome] && sc.Score > 0 && sc.Score >= kb.Engine.SecondaryRatio*best.Score {
			s2, _ := kb.Syndrome(sc.Syndrome)
			a.Secondary = append(a.Secondary, kb.advice(s2, sc.Score))
		}
	}
}

func (kb *KB) advice(s *Syndrome, score float64) SyndromeAdvice {
	adv := SyndromeAdvice{ID: s.ID, Name: s.Name, Score: score, Principle: s.Principle, Formula: s.Formula,
		Tongue: s.Tongue, Pulse: s.Pulse, Sources: s.Sources, Confidence: s.Confidence}
	for _, id := range s.External {
		for _, it := range kb.External {
			if it.ID == id {
				adv.External = append(adv.External, it.Text)
			}
		}
	}
	for _, id := range s.Lifestyle {
		for _, it := range kb.Lifestyle {
			if it.ID == id {
				adv.Lifestyle = append(adv.Lifestyle, it.Text)
			}
		}
	}
	return adv
}

// refer evaluates the referral triggers.
func (kb *KB) refer(st *state, a *Analysis) {
	for _, r := range kb.Referrals {
		for _, c := range r.WhenAny {
			ok, why := c.eval(st)
			if !ok {
				continue
			}
			a.Referrals = append(a.Referrals, ReferralHit{
				Referral: result.Referral{Code: r.ID, EN: r.EN, ZH: r.ZH, Urgent: r.Urgent,
					Source: strings.Join(r.Sources, ", "), Confidence: r.Confidence},
				Why: why,
			})
			break
		}
	}
}

// eval reports whether the condition holds and, if so, the facts that made it hold.
func (k *Cond) eval(st *state) (bool, []string) {
	var why []string
	if len(k.Keywords) > 0 {
		kw, ok := findKeyword(st.text, k.Keywords)
		if !ok {
			return false, nil
		}
		why = append(why, fmt.Sprintf("keyword %q", kw))
	}
	if len(k.AndKeywords) > 0 {
		kw, ok := findKeyword(st.text, k.AndKeywords)
		if !ok {
			return false, nil
		}
		why = append(why, fmt.Sprintf("keyword %q", kw))
	}
	if k.Gender != "" {
		if st.gender != k.Gender {
			return false, nil
		}
		why = append(why, "gender "+k.Gender)
	}
	if k.MinAge != nil {
		if st.age == nil || *st.age < *k.MinAge {
			return false, nil
		}
		why = append(why, fmt.Sprintf("age %d ≥ %d", *st.age, *k.MinAge))
	}
	if k.MaxAge != nil {
		if st.age == nil || *st.age > *k.MaxAge {
			return false, nil
		}
		why = append(why, fmt.Sprintf("age %d ≤ %d", *st.age, *k.MaxAge))
	}
	for _, t := range slices.Sorted(maps.Keys(k.LesionMin)) {
		n := st.lesions[t]
		if n < k.LesionMin[t] {
			return false, nil
		}
		why = append(why, fmt.Sprintf("%s %g ≥ %g", t, n, k.LesionMin[t]))
	}
	for _, t := range slices.Sorted(maps.Keys(k.LesionMax)) {
		n := st.lesions[t]
		if n > k.LesionMax[t] {
			return false, nil
		}
		why = append(why, fmt.Sprintf("%s %g ≤ %g", t, n, k.LesionMax[t]))
	}
	for _, t := range slices.Sorted(maps.Keys(k.LesionShareMin)) {
		if st.total <= 0 {
			return false, nil
		}
		share := st.lesions[t] / st.total
		if share < k.LesionShareMin[t] {
			return false, nil
		}
		why = append(why, fmt.Sprintf("%s share %.2f ≥ %.2f", t, share, k.LesionShareMin[t]))
	}
	if g := k.GradeMin; g != nil {
		s := severity.Scale(g.Scale)
		v, ok := st.effective[s]
		if !ok || v < g.value {
			return false, nil
		}
		why = append(why, fmt.Sprintf("%s grade %s ≥ %s", s, s.Format(v), s.Format(g.value)))
	}
	if len(k.Constitution) > 0 {
		if !slices.Contains(k.Constitution, st.constitution) {
			return false, nil
		}
		why = append(why, "constitution "+st.constitution)
	}
	if k.MaxProbabilityBelow != nil {
		if !st.hasProb || st.maxProb >= *k.MaxProbabilityBelow {
			return false, nil
		}
		why = append(why, fmt.Sprintf("highest grade probability %.2f < %.2f", st.maxProb, *k.MaxProbabilityBelow))
	}
	return true, why
}

// InputFromResult builds an engine input from a diagnosis result's grade, probabilities and
// lesion counts; the caller adds the patient's details.
func InputFromResult(res *result.DiagnosisResult) Input {
	in := Input{Grade: res.Severity, Probabilities: res.Probabilities}
	if len(res.Lesions) > 0 {
		in.Lesions = map[string]float64{}
		for _, l := range res.Lesions {
			in.Lesions[l.Type] += l.Count
		}
	}
	return in
}

// Apply runs Analyze and fills res: Diagnosis label, Recommendations, TCMAnalysis, Referral
// and Disclaimer, and records the time taken in Timing.KnowledgeMS. Fields of in left empty
// (grade, probabilities, lesions) are taken from res. A result that carries an Error is left
// alone.
func (kb *KB) Apply(res *result.DiagnosisResult, in Input) {
	if res == nil || res.Error != "" {
		return
	}
	from := InputFromResult(res)
	if in.Grade.Scale == "" {
		in.Grade = from.Grade
	}
	if in.Probabilities == nil {
		in.Probabilities = from.Probabilities
	}
	if in.Lesions == nil {
		in.Lesions = from.Lesions
	}
	start := time.Now()
	a := kb.Analyze(in)
	defer func() { res.Timing.KnowledgeMS = float64(time.Since(start).Microseconds()) / 1000 }()
	if a.Label != nil {
		res.Diagnosis = severity.Label{EN: a.Label.EN, ZH: a.Label.ZH}
	}
	res.Recommendations = nil
	for _, r := range a.Recommendations {
		res.Recommendations = append(res.Recommendations, r.Recommendation)
	}
	res.Referral = nil
	for _, r := range a.Referrals {
		res.Referral = append(res.Referral, r.Referral)
	}
	res.TCMAnalysis = nil
	if s := a.Syndrome; s != nil {
		t := &result.TCMAnalysis{
			Syndrome:           result.Named(s.Name),
			TreatmentPrinciple: result.Named(s.Principle),
			Formula:            result.Named{ZH: s.Formula.ZH + "(" + FormulaLabel.ZH + ")", EN: s.Formula.EN + " (" + FormulaLabel.EN + ")"},
			Scores:             a.Scores,
			Source:             strings.Join(s.Sources, ", "),
		}
		for _, x := range s.External {
			t.ExternalTreatment = append(t.ExternalTreatment, result.Named(x))
		}
		for _, x := range s.Lifestyle {
			t.Lifestyle = append(t.Lifestyle, result.Named(x))
		}
		for _, x := range a.Secondary {
			t.Secondary = append(t.Secondary, result.Named(x.Name))
		}
		if c := a.Constitution; c != nil {
			n := result.Named(c.Name)
			t.Constitution = &n
		}
		for _, sc := range a.Scores {
			if sc.Syndrome == s.ID {
				t.Reasoning = append(t.Reasoning, sc.Reasons...)
			}
		}
		t.Reasoning = append(t.Reasoning, a.Notes...)
		res.TCMAnalysis = t
	}
	if len(a.Disclaimers) > 0 {
		var en, zh []string
		for _, d := range a.Disclaimers {
			en = append(en, d.EN)
			zh = append(zh, d.ZH)
		}
		res.Disclaimer = strings.Join(en, " ") + "\n" + strings.Join(zh, "")
	}
}
