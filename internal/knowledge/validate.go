package knowledge

import (
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/acdtcm/acdtcm/internal/severity"
)

// ValidationError lists every problem found in a knowledge base, each prefixed with the file,
// line (where known), section and entry id.
type ValidationError struct {
	Problems []string
}

// Error lists the problems, one per line.
func (e *ValidationError) Error() string {
	if len(e.Problems) == 1 {
		return "invalid knowledge base: " + e.Problems[0]
	}
	return fmt.Sprintf("invalid knowledge base (%d problems):\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// confidenceRE accepts the reference's tags: V, S, X, combinations such as V/S, and "S (weak)".
var confidenceRE = regexp.MustCompile(`^[VSX](/[VSX])*( \(weak\))?$`)

// doseRE finds dose text (a number followed by a weight unit) that must never appear in a
// formula: the program gives reference formulas only, never a prescription.
var doseRE = regexp.MustCompile(`(?i)([0-9０-９]+(\.[0-9]+)?\s*(g|mg|kg|克|毫克|千克|钱|两|ml|毫升)\b)|([0-9０-９]+(\.[0-9]+)?\s*(克|毫克|钱|两|毫升))|([一二三四五六七八九十半]+\s*(钱|两))`)

// HasDose reports whether text contains dose-like text such as "10g", "3 克" or "二钱".
func HasDose(text string) bool { return doseRE.MatchString(text) }

// Western recommendation categories.
var categories = []string{"first_line", "second_line", "women", "maintenance", "adjunct", "evidence", "caution", "education"}

// Constitution relevance levels.
var relevanceLevels = []string{"none", "low", "moderate", "high", "highest"}

// removableSections are the section names accepted by remove.
var removableSections = []string{"disclaimers", "scales", "reference_scales", "lesion_types", "western",
	"external_treatments", "lifestyle", "syndromes", "rules", "constitutions", "referrals", "sources"}

type checker struct {
	kb       *KB
	problems []string
}

func (c *checker) addf(p pos, what, format string, args ...any) {
	c.problems = append(c.problems, fmt.Sprintf("%s: %s: %s", p, what, fmt.Sprintf(format, args...)))
}

func (c *checker) meta(p pos, what string, m Meta) {
	if len(m.Sources) == 0 {
		c.addf(p, what, "missing sources (every entry must cite at least one source id)")
	}
	for _, s := range m.Sources {
		if _, ok := c.kb.Sources[s]; !ok {
			c.addf(p, what, "source %q is not in the sources registry", s)
		}
	}
	if m.Confidence == "" {
		c.addf(p, what, "missing confidence (V, S or X)")
	} else if !confidenceRE.MatchString(m.Confidence) {
		c.addf(p, what, "confidence %q is not one of V, S, X, a combination like V/S, or \"S (weak)\"", m.Confidence)
	}
}

func (c *checker) text(p pos, what, field string, t Text) {
	if strings.TrimSpace(t.ZH) == "" {
		c.addf(p, what, "%s: missing zh text", field)
	}
	if strings.TrimSpace(t.EN) == "" {
		c.addf(p, what, "%s: missing en text", field)
	}
}

func (c *checker) id(p pos, section, id string, seen map[string]bool) string {
	what := section + " " + id
	if id == "" {
		what = section + " (no id)"
		c.addf(p, what, "missing id")
	} else if seen[id] {
		c.addf(p, what, "duplicate id %q", id)
	}
	seen[id] = true
	return what
}

func (c *checker) noDose(p pos, what, field string, t Text) {
	for _, s := range []string{t.ZH, t.EN} {
		if m := doseRE.FindString(s); m != "" {
			c.addf(p, what, "%s contains dose text %q: formulas are reference names only, never doses", field, m)
		}
	}
}

// Validate checks the knowledge base's schema-level semantics: every entry has an id, text in
// both languages, sources from the registry and a confidence tag; the scales match
// internal/severity and its cross-walk; every grade of every scale has recommendations;
// references between entries resolve; formulas carry no doses; every syndrome has a rule.
func (kb *KB) Validate() error {
	c := &checker{kb: kb}
	file := embeddedLabel
	if len(kb.Files) > 0 {
		file = kb.Files[len(kb.Files)-1]
	}
	top := pos{file: file}
	if kb.Version != 1 {
		c.addf(top, "version", "got %d, want 1", kb.Version)
	}
	e := kb.Engine
	if !(e.SecondaryRatio > 0 && e.SecondaryRatio <= 1) {
		c.addf(top, "engine", "secondary_ratio %v must be in (0, 1]", e.SecondaryRatio)
	}
	if e.WeakEvidenceBelow < 0 || math.IsNaN(e.WeakEvidenceBelow) {
		c.addf(top, "engine", "weak_evidence_below %v must be ≥ 0", e.WeakEvidenceBelow)
	}
	if !(e.LesionPresentMin > 0) {
		c.addf(top, "engine", "lesion_present_min %v must be > 0", e.LesionPresentMin)
	}
	if len(kb.Sources) == 0 {
		c.addf(top, "sources", "the source registry is empty")
	}
	for _, id := range slices.Sorted(maps.Keys(kb.Sources)) {
		if strings.TrimSpace(kb.Sources[id].Title) == "" {
			c.addf(top, "sources "+id, "missing title")
		}
	}
	for _, section := range slices.Sorted(maps.Keys(kb.Remove)) {
		if !slices.Contains(removableSections, section) {
			c.addf(top, "remove", "unknown section %q", section)
		}
	}

	seen := map[string]bool{}
	inResult := 0
	for _, d := range kb.Disclaimers {
		what := c.id(d.pos, "disclaimer", d.ID, seen)
		c.text(d.pos, what, "text", d.Text)
		c.meta(d.pos, what, d.Meta)
		if d.InResult {
			inResult++
		}
	}
	if inResult == 0 {
		c.addf(top, "disclaimers", "no disclaimer has in_result: true; every result must carry one")
	}

	kb.checkScales(c, top)

	seen = map[string]bool{}
	for _, r := range kb.ReferenceScales {
		what := c.id(r.pos, "reference_scale", r.ID, seen)
		c.text(r.pos, what, "name", r.Name)
		c.text(r.pos, what, "description", r.Description)
		if r.Caveat != nil {
			c.text(r.pos, what, "caveat", *r.Caveat)
		}
		c.meta(r.pos, what, r.Meta)
		if len(r.Bands) == 0 {
			c.addf(r.pos, what, "no bands")
		}
		for _, b := range r.Bands {
			bw := what + " band " + b.Range
			if b.Range == "" {
				c.addf(b.pos, bw, "missing range")
			}
			c.text(b.pos, bw, "label", b.Label)
			c.meta(b.pos, bw, b.Meta)
		}
	}

	seen = map[string]bool{}
	for i := range kb.LesionTypes {
		l := &kb.LesionTypes[i]
		what := c.id(l.pos, "lesion_type", l.ID, seen)
		if l.ID != "" && !slices.Contains(lesionTypes, l.ID) {
			c.addf(l.pos, what, "unknown lesion type (want one of %s)", strings.Join(lesionTypes, ", "))
		}
		c.text(l.pos, what, "name", l.Name)
		c.meta(l.pos, what, l.Meta)
		g, err := severity.CN2019.ParseGrade(l.CN2019)
		if err != nil {
			c.addf(l.pos, what, "cn2019: %v", err)
		}
		l.cn2019 = g
		l.clinical4 = -1
		if l.Clinical4 != "" {
			c4, err := severity.Clinical4.ParseGrade(l.Clinical4)
			if err != nil {
				c.addf(l.pos, what, "clinical4: %v", err)
			}
			l.clinical4 = c4
		}
	}
	for _, t := range lesionTypes {
		if !seen[t] {
			c.addf(top, "lesion_types", "lesion type %q is missing", t)
		}
	}

	seen = map[string]bool{}
	for i := range kb.Western {
		w := &kb.Western[i]
		what := c.id(w.pos, "western", w.ID, seen)
		if w.Guideline == "" {
			c.addf(w.pos, what, "missing guideline")
		}
		if !slices.Contains(categories, w.Category) {
			c.addf(w.pos, what, "category %q is not one of %s", w.Category, strings.Join(categories, ", "))
		}
		w.grades = nil
		switch {
		case w.Scale != "":
			s, err := severity.ParseScale(w.Scale)
			if err != nil {
				c.addf(w.pos, what, "%v", err)
				break
			}
			if len(w.Grades) == 0 {
				c.addf(w.pos, what, "scale %s given without grades", w.Scale)
			}
			for _, gt := range w.Grades {
				g, err := s.ParseGrade(gt)
				if err != nil {
					c.addf(w.pos, what, "grades: %v", err)
					continue
				}
				w.grades = append(w.grades, g)
			}
		case len(w.Grades) > 0:
			c.addf(w.pos, what, "grades given without a scale")
		}
		if w.Lesion != "" && !slices.Contains(lesionTypes, w.Lesion) {
			c.addf(w.pos, what, "unknown lesion %q (want one of %s)", w.Lesion, strings.Join(lesionTypes, ", "))
		}
		if w.When != nil {
			c.cond(w.pos, what+" when", w.When)
		}
		c.text(w.pos, what, "text", w.Text)
		c.meta(w.pos, what, w.Meta)
	}
	kb.checkCoverage(c, top)

	external := map[string]bool{}
	for _, it := range kb.External {
		what := c.id(it.pos, "external_treatment", it.ID, external)
		c.text(it.pos, what, "name", it.Name)
		c.text(it.pos, what, "text", it.Text)
		c.meta(it.pos, what, it.Meta)
	}
	lifestyle := map[string]bool{}
	for _, it := range kb.Lifestyle {
		what := c.id(it.pos, "lifestyle", it.ID, lifestyle)
		c.text(it.pos, what, "name", it.Name)
		c.text(it.pos, what, "text", it.Text)
		c.meta(it.pos, what, it.Meta)
	}

	constitutions := map[string]bool{}
	for _, k := range kb.Constitutions {
		what := c.id(k.pos, "constitution", k.ID, constitutions)
		if k.Code == "" {
			c.addf(k.pos, what, "missing code")
		}
		c.text(k.pos, what, "name", k.Name)
		c.text(k.pos, what, "features", k.Features)
		c.text(k.pos, what, "tongue_pulse", k.TonguePulse)
		c.text(k.pos, what, "acne_relevance", k.AcneRelevance)
		if !slices.Contains(relevanceLevels, k.Relevance) {
			c.addf(k.pos, what, "relevance %q is not one of %s", k.Relevance, strings.Join(relevanceLevels, ", "))
		}
		c.meta(k.pos, what, k.Meta)
	}

	syndromes := map[string]bool{}
	if len(kb.Syndromes) == 0 {
		c.addf(top, "syndromes", "no syndromes")
	}
	for _, s := range kb.Syndromes {
		what := c.id(s.pos, "syndrome", s.ID, syndromes)
		for _, f := range []struct {
			name string
			t    Text
		}{{"name", s.Name}, {"lesions", s.Lesions}, {"signs", s.Signs}, {"tongue", s.Tongue},
			{"pulse", s.Pulse}, {"principle", s.Principle}, {"formula", s.Formula}} {
			c.text(s.pos, what, f.name, f.t)
		}
		c.noDose(s.pos, what, "formula", s.Formula)
		c.noDose(s.pos, what, "principle", s.Principle)
		for _, m := range s.Modifications {
			c.text(s.pos, what, "modification", m)
			c.noDose(s.pos, what, "modification", m)
		}
		for _, id := range s.External {
			if !external[id] {
				c.addf(s.pos, what, "external treatment %q does not exist", id)
			}
		}
		for _, id := range s.Lifestyle {
			if !lifestyle[id] {
				c.addf(s.pos, what, "lifestyle entry %q does not exist", id)
			}
		}
		c.meta(s.pos, what, s.Meta)
	}

	seen = map[string]bool{}
	positive := map[string]bool{}
	for i := range kb.Rules {
		r := &kb.Rules[i]
		what := c.id(r.pos, "rule", r.ID, seen)
		if !syndromes[r.Syndrome] {
			c.addf(r.pos, what, "syndrome %q does not exist", r.Syndrome)
		}
		if r.Weight == 0 || math.IsNaN(r.Weight) || math.IsInf(r.Weight, 0) {
			c.addf(r.pos, what, "weight %v must be a non-zero finite number", r.Weight)
		}
		if r.Weight > 0 && !r.Prior && !r.When.empty() {
			positive[r.Syndrome] = true
		}
		c.cond(r.pos, what+" when", &r.When)
		c.meta(r.pos, what, r.Meta)
	}
	for _, s := range kb.Syndromes {
		if s.ID != "" && !positive[s.ID] {
			c.addf(s.pos, "syndrome "+s.ID, "unreachable: no non-prior rule with a condition adds a positive weight to it")
		}
	}

	seen = map[string]bool{}
	for i := range kb.Referrals {
		r := &kb.Referrals[i]
		what := c.id(r.pos, "referral", r.ID, seen)
		if len(r.WhenAny) == 0 {
			c.addf(r.pos, what, "when_any is empty: a referral needs at least one condition")
		}
		for j := range r.WhenAny {
			cw := fmt.Sprintf("%s when_any[%d]", what, j)
			if r.WhenAny[j].empty() {
				c.addf(r.pos, cw, "empty condition would fire for every input")
			}
			c.cond(r.pos, cw, &r.WhenAny[j])
		}
		c.text(r.pos, what, "text", r.Text)
		c.meta(r.pos, what, r.Meta)
	}

	if len(c.problems) > 0 {
		return &ValidationError{Problems: c.problems}
	}
	return nil
}

// checkScales verifies that the scales are exactly internal/severity's, grade by grade, and
// that every cross-walk entry agrees with severity.Convert.
func (kb *KB) checkScales(c *checker, top pos) {
	seen := map[string]bool{}
	for i := range kb.Scales {
		s := &kb.Scales[i]
		what := c.id(s.pos, "scale", s.ID, seen)
		scale, err := severity.ParseScale(s.ID)
		if err != nil {
			c.addf(s.pos, what, "%v", err)
			continue
		}
		c.text(s.pos, what, "name", s.Name)
		c.text(s.pos, what, "description", s.Description)
		c.meta(s.pos, what, s.Meta)
		if len(s.Grades) != scale.NumGrades() {
			c.addf(s.pos, what, "has %d grades, the scale has %d", len(s.Grades), scale.NumGrades())
		}
		for j := range s.Grades {
			g := &s.Grades[j]
			gw := what + " grade " + g.Grade
			v, err := scale.ParseGrade(g.Grade)
			if err != nil {
				c.addf(g.pos, gw, "%v", err)
				continue
			}
			if v != j {
				c.addf(g.pos, gw, "grades must be listed in order: expected %s here", scale.Format(j))
			}
			g.value = v
			c.text(g.pos, gw, "label", g.Label)
			c.text(g.pos, gw, "criterion", g.Criterion)
			c.meta(g.pos, gw, g.Meta)
			if g.CountMin != nil && g.CountMax != nil && *g.CountMin > *g.CountMax {
				c.addf(g.pos, gw, "count_min %d > count_max %d", *g.CountMin, *g.CountMax)
			}
			for _, other := range severity.Scales {
				if other == scale {
					continue
				}
				got, ok := g.Crosswalk[string(other)]
				want, wok := severity.Convert(v, scale, other)
				wantText := "none"
				if wok {
					wantText = other.Format(want)
				}
				switch {
				case !ok:
					c.addf(g.pos, gw, "crosswalk: missing %s (internal/severity maps it to %s)", other, wantText)
				case got != wantText:
					c.addf(g.pos, gw, "crosswalk: %s is %q but internal/severity (authoritative) maps it to %s", other, got, wantText)
				}
			}
			for _, k := range slices.Sorted(maps.Keys(g.Crosswalk)) {
				if _, err := severity.ParseScale(k); err != nil || severity.Scale(k) == scale {
					c.addf(g.pos, gw, "crosswalk: unexpected key %q", k)
				}
			}
		}
	}
	for _, s := range severity.Scales {
		if !seen[string(s)] {
			c.addf(top, "scales", "scale %q is missing", s)
		}
	}
}

// checkCoverage verifies that every grade of every scale maps to at least one unconditional
// Western recommendation.
func (kb *KB) checkCoverage(c *checker, top pos) {
	for _, s := range severity.Scales {
		for g := 0; g < s.NumGrades(); g++ {
			if len(kb.gradeRecommendations(s, g)) == 0 {
				c.addf(top, "western", "no recommendation applies to %s grade %s", s, s.Format(g))
			}
		}
	}
}

// gradeRecommendations returns the ids of the western entries that apply to grade g of scale s
// through the cross-walk, ignoring lesion- and condition-selected entries.
func (kb *KB) gradeRecommendations(s severity.Scale, g int) []string {
	var ids []string
	for _, w := range kb.Western {
		if w.Scale == "" || w.Lesion != "" || w.When != nil {
			continue
		}
		ws, err := severity.ParseScale(w.Scale)
		if err != nil {
			continue
		}
		cg, ok := severity.Convert(g, s, ws)
		if ok && slices.Contains(w.grades, cg) {
			ids = append(ids, w.ID)
		}
	}
	return ids
}

// cond validates a condition's fields (an empty condition is valid here; callers that need a
// non-empty one check it themselves).
func (c *checker) cond(p pos, what string, k *Cond) {
	for _, kw := range append(append([]string{}, k.Keywords...), k.AndKeywords...) {
		if strings.TrimSpace(kw) == "" {
			c.addf(p, what, "empty keyword")
		}
	}
	if len(k.AndKeywords) > 0 && len(k.Keywords) == 0 {
		c.addf(p, what, "and_keywords given without keywords")
	}
	if k.Gender != "" && k.Gender != "female" && k.Gender != "male" {
		c.addf(p, what, "gender %q must be female or male", k.Gender)
	}
	if k.MinAge != nil && *k.MinAge < 0 {
		c.addf(p, what, "min_age %d < 0", *k.MinAge)
	}
	if k.MaxAge != nil && *k.MaxAge < 0 {
		c.addf(p, what, "max_age %d < 0", *k.MaxAge)
	}
	if k.MinAge != nil && k.MaxAge != nil && *k.MinAge > *k.MaxAge {
		c.addf(p, what, "min_age %d > max_age %d", *k.MinAge, *k.MaxAge)
	}
	for _, f := range []struct {
		name string
		m    map[string]float64
	}{{"lesion_min", k.LesionMin}, {"lesion_max", k.LesionMax}, {"lesion_share_min", k.LesionShareMin}} {
		name := f.name
		for _, t := range slices.Sorted(maps.Keys(f.m)) {
			v := f.m[t]
			if !slices.Contains(lesionTypes, t) {
				c.addf(p, what, "%s: unknown lesion type %q (want one of %s)", name, t, strings.Join(lesionTypes, ", "))
			}
			if v < 0 || math.IsNaN(v) || (name == "lesion_share_min" && v > 1) {
				c.addf(p, what, "%s: %s value %v out of range", name, t, v)
			}
		}
	}
	if g := k.GradeMin; g != nil {
		s, err := severity.ParseScale(g.Scale)
		if err != nil {
			c.addf(p, what, "grade_min: %v", err)
		} else if v, err := s.ParseGrade(g.Grade); err != nil {
			c.addf(p, what, "grade_min: %v", err)
		} else {
			g.value = v
		}
	}
	for _, id := range k.Constitution {
		if !slices.ContainsFunc(c.kb.Constitutions, func(x Constitution) bool { return x.ID == id }) {
			c.addf(p, what, "constitution %q does not exist", id)
		}
	}
	if v := k.MaxProbabilityBelow; v != nil && !(*v > 0 && *v <= 1) {
		c.addf(p, what, "max_probability_below %v must be in (0, 1]", *v)
	}
}

// empty reports whether the condition sets nothing (and so always holds).
func (k *Cond) empty() bool {
	return len(k.Keywords) == 0 && len(k.AndKeywords) == 0 && k.Gender == "" && k.MinAge == nil &&
		k.MaxAge == nil && len(k.LesionMin) == 0 && len(k.LesionMax) == 0 && len(k.LesionShareMin) == 0 &&
		k.GradeMin == nil && len(k.Constitution) == 0 && k.MaxProbabilityBelow == nil
}
