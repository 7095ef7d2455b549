package remote

import (
	"regexp"

	"github.com/acdtcm/acdtcm/internal/severity"
)

// gradeRE matches an answer that opens with the grade: optional markdown or quotes, an
// optional "Grade:"-like label, then one digit not followed by more digits or a decimal.
var gradeRE = regexp.MustCompile("(?is)^[\\s*#_>`\"'\\[(]*" +
	`(?:(?:hayashi\s+)?(?:severity\s+)?(?:grade|severity|level)\s*(?:is|=|:|：)?\s*)?` +
	"[*_`\"'\\[(]*" + `(\d)(?:$|[^\d.]|\.(?:$|\D))`)

// ParseGrade reads the grade an answer opens with and the byte offset of its digit, or
// (-1, -1). It accepts the trained form ("2\nSeverity: ...") and the usual drift of served
// models: leading blanks, markdown ("**2**"), and a label ("Grade: 2", "Hayashi grade 2").
// A number that is not a single valid grade ("12", "2.5", "7" on a 0-3 scale) is rejected.
func ParseGrade(answer string, scale severity.Scale) (grade, offset int) {
	m := gradeRE.FindStringSubmatchIndex(answer)
	if m == nil {
		return -1, -1
	}
	g := int(answer[m[2]] - '0')
	if !scale.Valid(g) {
		return -1, -1
	}
	return g, m[2]
}
