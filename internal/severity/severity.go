// Package severity defines the acne severity scales acdtcm understands and the single
// cross-walk between them. Every grade stored or reported by acdtcm carries its scale.
//
// Scales:
//   - hayashi:   0 mild, 1 moderate, 2 severe, 3 very severe (Hayashi 2008; ACNE04's levels)
//   - clinical4: 0 normal, 1 mild, 2 moderate, 3 severe (the design's seed labels)
//   - cn2019:    I, II, III, IV (中国痤疮治疗指南 2019, graded by lesion type), stored as 0..3
//
// The cross-walk (acne-knowledge.md §1.7, a compiler synthesis tagged X, not a published
// standard) maps hayashi 0→clinical4 1, 1→2, 2→3, 3→3 and hayashi g→cn2019 g (I..IV). Mappings
// through clinical4 "normal" have no hayashi/cn2019 equivalent and report ok=false.
package severity

import (
	"fmt"
	"strings"
)

// Scale names a severity grading scale.
type Scale string

// The supported scales.
const (
	Hayashi   Scale = "hayashi"
	Clinical4 Scale = "clinical4"
	CN2019    Scale = "cn2019"
)

// Scales lists every supported scale in a stable order.
var Scales = []Scale{Hayashi, Clinical4, CN2019}

// Label is the bilingual name of one grade.
type Label struct {
	EN string `json:"en"`
	ZH string `json:"zh"`
}

var labels = map[Scale][]Label{
	Hayashi:   {{"mild", "轻度"}, {"moderate", "中度"}, {"severe", "重度"}, {"very severe", "极重度"}},
	Clinical4: {{"normal", "正常"}, {"mild", "轻度"}, {"moderate", "中度"}, {"severe", "重度"}},
	CN2019:    {{"grade I (comedones)", "轻度(Ⅰ级)"}, {"grade II (papules)", "中度(Ⅱ级)"}, {"grade III (pustules)", "中度(Ⅲ级)"}, {"grade IV (nodules/cysts)", "重度(Ⅳ级)"}},
}

var (
	romans       = []string{"I", "II", "III", "IV"}
	unicodeRoman = []string{"Ⅰ", "Ⅱ", "Ⅲ", "Ⅳ"}
)

// ParseScale returns the scale with the given name (case-insensitive).
func ParseScale(name string) (Scale, error) {
	s := Scale(strings.ToLower(strings.TrimSpace(name)))
	if _, ok := labels[s]; !ok {
		return "", fmt.Errorf("unknown severity scale %q (want one of hayashi, clinical4, cn2019)", name)
	}
	return s, nil
}

// NumGrades is the number of grades on the scale.
func (s Scale) NumGrades() int { return len(labels[s]) }

// Valid reports whether grade is a valid grade index on the scale.
func (s Scale) Valid(grade int) bool { return grade >= 0 && grade < len(labels[s]) }

// Label returns the bilingual label of a grade; an invalid grade yields an empty label.
func (s Scale) Label(grade int) Label {
	if !s.Valid(grade) {
		return Label{}
	}
	return labels[s][grade]
}

// Format renders a grade the way users write it on that scale ("II" for cn2019, "2" otherwise).
func (s Scale) Format(grade int) string {
	if s == CN2019 && s.Valid(grade) {
		return romans[grade]
	}
	return fmt.Sprint(grade)
}

// ParseGrade parses a grade written as a number or, for cn2019, a Roman numeral.
func (s Scale) ParseGrade(text string) (int, error) {
	t := strings.ToUpper(strings.TrimSpace(text))
	if s == CN2019 {
		for i, r := range romans {
			if t == r || t == unicodeRoman[i] {
				return i, nil
			}
		}
	}
	var g int
	if _, err := fmt.Sscanf(t, "%d", &g); err != nil || fmt.Sprint(g) != t {
		return 0, fmt.Errorf("invalid %s grade %q", s, text)
	}
	if !s.Valid(g) {
		return 0, fmt.Errorf("%s grade %d out of range 0..%d", s, g, s.NumGrades()-1)
	}
	return g, nil
}

// toClinical4 maps each scale's grades onto clinical4 (the hub of the cross-walk).
var toClinical4 = map[Scale][]int{
	Hayashi:   {1, 2, 3, 3},
	Clinical4: {0, 1, 2, 3},
	CN2019:    {1, 2, 2, 3},
}

// fromClinical4 maps clinical4 grades onto each scale; -1 means no equivalent.
var fromClinical4 = map[Scale][]int{
	Hayashi:   {-1, 0, 1, 2},
	Clinical4: {0, 1, 2, 3},
	CN2019:    {-1, 0, 1, 3},
}

// Convert maps a grade from one scale to another through the documented cross-walk.
// Same-scale conversion is the identity. Hayashi and cn2019 convert directly (grade g ↔ g),
// since both are four ordered acne grades; every other pair goes through clinical4.
// ok is false when the target scale has no equivalent grade (e.g. clinical4 "normal").
func Convert(grade int, from, to Scale) (converted int, ok bool) {
	if !from.Valid(grade) {
		return 0, false
	}
	if from == to {
		return grade, true
	}
	if (from == Hayashi && to == CN2019) || (from == CN2019 && to == Hayashi) {
		return grade, true
	}
	c := toClinical4[from][grade]
	g := fromClinical4[to][c]
	return g, g >= 0
}

// Grade is a severity grade together with the scale it is expressed on.
type Grade struct {
	Value int   `json:"value"`
	Scale Scale `json:"scale"`
}

// Validate checks that the scale is known and the value is within its range.
func (g Grade) Validate() error {
	if _, err := ParseScale(string(g.Scale)); err != nil {
		return err
	}
	if !g.Scale.Valid(g.Value) {
		return fmt.Errorf("%s grade %d out of range 0..%d", g.Scale, g.Value, g.Scale.NumGrades()-1)
	}
	return nil
}

// HayashiFromCount applies ACNE04's labelling rule (≤5 → 0, ≤20 → 1, ≤50 → 2, else 3) to a
// lesion count.
func HayashiFromCount(count int) int {
	switch {
	case count <= 5:
		return 0
	case count <= 20:
		return 1
	case count <= 50:
		return 2
	default:
		return 3
	}
}
