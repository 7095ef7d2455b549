package knowledge

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// referenceText returns acne-knowledge.md from the shared reference directory next to the
// repository, or skips the test when it is absent.
func referenceText(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Skip("repository root (go.mod) not found")
		}
		dir = parent
	}
	path := filepath.Join(dir, "..", "shared", "reference", "acne-knowledge.md")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Skipf("shared reference not available (%v): skipping the cross-check against acne-knowledge.md", err)
	}
	return string(data)
}

// TestSourcesMatchReferenceRegistry checks every source id the YAML cites against §7 of the
// compiled reference.
func TestSourcesMatchReferenceRegistry(t *testing.T) {
	ref := referenceText(t)
	kb := mustLoad(t)
	row := regexp.MustCompile(`(?m)^\| (S\d+) \| (.*) \| (.*) \|$`)
	registry := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(ref, -1) {
		registry[m[1]] = strings.ReplaceAll(m[2], "*", "")
	}
	if len(registry) < 90 {
		t.Fatalf("parsed only %d registry rows from the reference", len(registry))
	}
	for id, s := range kb.Sources {
		want, ok := registry[id]
		if !ok {
			t.Errorf("source %s is not in the reference registry", id)
			continue
		}
		if s.Title != want {
			t.Errorf("source %s title %q, reference says %q", id, s.Title, want)
		}
	}
}

// TestTCMNamesAppearInReference guards against invented formulas and herbs: every formula,
// herb in a modification and external preparation named in Chinese must occur in the
// reference text.
func TestTCMNamesAppearInReference(t *testing.T) {
	ref := referenceText(t)
	kb := mustLoad(t)
	formula := regexp.MustCompile(`\p{Han}{2,}?(汤|饮|散|丸|膏)`)
	herbList := regexp.MustCompile(`加([\p{Han}、]+)`)
	check := func(where, name string) {
		if !strings.Contains(ref, name) {
			t.Errorf("%s: %q does not occur in acne-knowledge.md", where, name)
		}
	}
	for _, s := range kb.Syndromes {
		names := formula.FindAllString(s.Formula.ZH, -1)
		if len(names) == 0 {
			t.Errorf("syndrome %s: no formula name found in %q", s.ID, s.Formula.ZH)
		}
		for _, n := range names {
			check("syndrome "+s.ID+" formula", strings.TrimPrefix(n, "或"))
		}
		for _, m := range s.Modifications {
			for _, list := range herbList.FindAllStringSubmatch(m.ZH, -1) {
				for _, herb := range strings.Split(list[1], "、") {
					if herb != "" {
						check("syndrome "+s.ID+" modification", herb)
					}
				}
			}
		}
		check("syndrome "+s.ID+" name", s.Name.ZH)
		for _, part := range strings.Split(strings.Split(strings.Split(s.Principle.ZH, "(")[0], " / ")[0], "，") {
			check("syndrome "+s.ID+" principle", part)
		}
	}
	for _, it := range kb.External {
		// Preparations and instruments must be named as in the reference; the acupuncture
		// entry's Chinese name is a translation of the reference's English list.
		if name := strings.Split(it.Name.ZH, "(")[0]; formula.MatchString(name) || strings.Contains(name, "针") && it.ID != "acupuncture" {
			check("external "+it.ID, name)
		}
	}
	for _, k := range kb.Constitutions {
		check("constitution "+k.ID, k.Name.ZH)
	}
}
