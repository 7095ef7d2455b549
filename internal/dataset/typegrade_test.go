package dataset

import (
	"strings"
	"testing"
)

func TestLesionTypesInformative(t *testing.T) {
	p := func(grade string, types ...string) GradeTypes { return GradeTypes{Grade: grade, Types: types} }
	tests := []struct {
		name        string
		photos      []GradeTypes
		informative bool
		mirrors     bool
		why         string // substring of the reason when not informative
	}{
		{"ACNE04 export: one type per grade", []GradeTypes{p("grade 0", "comedone", "comedone"), p("grade 1", "pustule"), p("grade 2", "papule"), p("grade 3", "nodule"), p("grade 0")},
			false, true, "mirror the grade"},
		{"types mixed within a photo", []GradeTypes{p("grade 0", "comedone", "papule"), p("grade 1", "pustule"), p("grade 2", "papule")}, true, false, ""},
		{"a type across grades", []GradeTypes{p("grade 0", "comedone"), p("grade 1", "comedone"), p("grade 2", "papule")}, true, false, ""},
		{"one type only", []GradeTypes{p("grade 0", "pustule"), p("grade 3", "pustule", "pustule")}, false, false, "same type (pustule in grade 0/grade 3)"},
		{"no lesions", []GradeTypes{p("grade 0"), p("grade 1")}, false, false, "no lesion has a type"},
		{"no photos", nil, false, false, "no lesion has a type"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, mirrors, why := LesionTypesInformative(tc.photos)
			if got != tc.informative || mirrors != tc.mirrors || !strings.Contains(why, tc.why) {
				t.Fatalf("LesionTypesInformative = %v, %v, %q; want %v, %v, reason containing %q", got, mirrors, why, tc.informative, tc.mirrors, tc.why)
			}
		})
	}
}
