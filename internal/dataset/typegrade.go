package dataset

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// GradeTypes is one photo's grade and the types of its lesions: the input of
// LesionTypesInformative.
type GradeTypes struct {
	Grade string   // the grade, as any stable key (e.g. "hayashi 2")
	Types []string // the type of each lesion
}

// LesionTypesInformative tells whether lesion-type labels say more than the grade, so that a
// model can learn lesion types from them; when they do not, why says so, and mirrorsGrade
// tells the case where the types are a function of the grade. ACNE04's Roboflow export is the
// case in point: every lesion of a photo has one type, a different one for each grade, so its
// "types" are the grade painted onto the boxes.
func LesionTypesInformative(photos []GradeTypes) (informative, mirrorsGrade bool, why string) {
	gradesOfType := map[string]map[string]bool{}
	oneTypePerPhoto := true
	for _, p := range photos {
		for _, t := range p.Types {
			if gradesOfType[t] == nil {
				gradesOfType[t] = map[string]bool{}
			}
			gradesOfType[t][p.Grade] = true
			oneTypePerPhoto = oneTypePerPhoto && t == p.Types[0]
		}
	}
	var used []string
	typeSpansGrades := false
	for _, t := range slices.Sorted(maps.Keys(gradesOfType)) {
		grades := slices.Sorted(maps.Keys(gradesOfType[t]))
		used = append(used, fmt.Sprintf("%s in %s", t, strings.Join(grades, "/")))
		typeSpansGrades = typeSpansGrades || len(grades) > 1
	}
	switch {
	case len(used) == 0:
		return false, false, "no lesion has a type"
	case len(used) == 1:
		return false, false, "every lesion has the same type (" + used[0] + ")"
	case oneTypePerPhoto && !typeSpansGrades:
		return false, true, "every photo's lesions have one type, fixed by its grade (" + strings.Join(used, ", ") +
			"): the type labels mirror the grade, not the lesions"
	}
	return true, false, ""
}
