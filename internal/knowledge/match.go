package knowledge

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Keyword matching over the free-text symptom description.
//
// Latin keywords ("itch", "dry mouth") match whole words, case-insensitively, optionally
// followed by a common English suffix (s, es, y, ing, ed, ness, ly), so "itch" matches "itchy"
// and "itching" but "red" does not match "reduced". CJK keywords match as substrings.
// A mention is skipped when it is negated inside its clause: for Latin keywords one of the
// three words before it is a negator (no, not, without, denies, never, ...); for CJK keywords
// one of the four characters before it is 无, 不, 没, 未, 非 or 否 (words such as 月经不调
// that merely contain one are not negators). Clauses end at punctuation
// and, for Latin text, at "and", "but" and "with".

var latinSuffixes = []string{"", "s", "es", "y", "ing", "ed", "ness", "ly"}

var latinNegators = map[string]bool{"no": true, "not": true, "without": true, "denies": true, "deny": true,
	"denied": true, "never": true, "none": true, "non": true, "don't": true, "doesn't": true, "didn't": true,
	"isn't": true, "aren't": true, "wasn't": true, "nor": true}

var latinClauseBreaks = map[string]bool{"and": true, "but": true, "with": true}

const cjkNegators = "无不没未非否"

// cjkNotNegations are words that contain a negator character but do not negate what follows
// (月经不调 "irregular menses", 食欲不振 "poor appetite").
var cjkNotNegations = strings.NewReplacer("不调", "", "不规律", "", "不畅", "", "不振", "", "不适", "",
	"不佳", "", "不好", "", "不见好", "", "不安", "", "不足", "", "不良", "", "不欲", "", "无力", "")

const clausePunct = ",;.!?:()[]，。；！？：、（）\n\r\t"

// normalizeText lower-cases text for matching.
func normalizeText(s string) string { return strings.ToLower(s) }

// findKeyword returns the first keyword of kws that occurs, not negated, in text (already
// normalised).
func findKeyword(text string, kws []string) (string, bool) {
	for _, kw := range kws {
		if matchKeyword(text, normalizeText(strings.TrimSpace(kw))) {
			return kw, true
		}
	}
	return "", false
}

func isLatinLetter(r rune) bool { return r < utf8.RuneSelf && unicode.IsLetter(r) }

func matchKeyword(text, kw string) bool {
	if kw == "" {
		return false
	}
	first, _ := utf8.DecodeRuneInString(kw)
	latin := first < utf8.RuneSelf
	for start := 0; start < len(text); {
		i := strings.Index(text[start:], kw)
		if i < 0 {
			return false
		}
		i += start
		end := i + len(kw)
		start = i + 1
		if latin {
			if prev, _ := utf8.DecodeLastRuneInString(text[:i]); i > 0 && isLatinLetter(prev) {
				continue
			}
			j := end
			for j < len(text) && text[j] < utf8.RuneSelf && (unicode.IsLetter(rune(text[j]))) {
				j++
			}
			suffixOK := false
			for _, s := range latinSuffixes {
				if text[end:j] == s {
					suffixOK = true
					break
				}
			}
			if !suffixOK {
				continue
			}
		}
		if !negated(text[:i], latin) {
			return true
		}
	}
	return false
}

// negated reports whether the clause ending at the end of before negates what follows.
func negated(before string, latin bool) bool {
	if k := strings.LastIndexAny(before, clausePunct); k >= 0 {
		before = before[k+1:]
	}
	if latin {
		words := strings.Fields(before)
		for n := 0; n < 3 && n < len(words); n++ {
			w := strings.Trim(words[len(words)-1-n], "\"'")
			if latinClauseBreaks[w] {
				return false
			}
			if latinNegators[w] {
				return true
			}
		}
		return false
	}
	if k := strings.LastIndexAny(before, " "); k >= 0 {
		before = before[k+1:]
	}
	runes := []rune(cjkNotNegations.Replace(before))
	if len(runes) > 4 {
		runes = runes[len(runes)-4:]
	}
	return strings.ContainsAny(string(runes), cjkNegators)
}
