package dataset

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// repoRoot walks up from the working directory to the folder holding go.mod.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// sharedDir returns ../shared next to the repository, skipping the test when absent.
func sharedDir(t testing.TB, sub string) string {
	t.Helper()
	p := filepath.Join(repoRoot(t), "..", "shared", sub)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("shared data %s not available (%v); skipping", p, err)
	}
	return p
}

// treeDigest hashes the names, sizes and contents of every file below dir, to prove an
// import left its source untouched.
func treeDigest(t testing.TB, dir string) string {
	t.Helper()
	h := sha256.New()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		names = append(names, p)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	for _, n := range names {
		st, err := os.Lstat(n)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(h, "%s %v %d\n", n, st.Mode(), st.Size())
		if st.Mode().IsRegular() {
			b, err := os.ReadFile(n)
			if err != nil {
				t.Fatal(err)
			}
			h.Write(b)
		}
	}
	return fmt.Sprintf("%x", h.Sum(nil))
}

// skipFor returns the skip entries whose file ends with name.
func skipFor(skips []Skip, name string) []Skip {
	var out []Skip
	for _, s := range skips {
		if strings.Contains(s.File, name) {
			out = append(out, s)
		}
	}
	return out
}

// byID indexes records by image ID.
func byID(recs []Record) map[string]Record {
	m := map[string]Record{}
	for _, r := range recs {
		m[r.ImageID] = r
	}
	return m
}

func intp(n int) *int { return &n }
