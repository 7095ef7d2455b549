package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProfileFlags: --cpu-profile and --mem-profile write gzip-compressed pprof files when
// the command ends, creating their folder (and no temporary file is left beside them); a
// path that cannot be written fails the command with an error naming the flag and the path.
func TestProfileFlags(t *testing.T) {
	dir := t.TempDir()
	notDir := filepath.Join(dir, "file")
	if err := os.WriteFile(notDir, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		flags     []string
		wantFiles []string
		wantCode  int
		wantErr   string
	}{
		{"cpu and heap", []string{"--cpu-profile", filepath.Join(dir, "cpu.pprof"), "--mem-profile", filepath.Join(dir, "mem.pprof")}, []string{"cpu.pprof", "mem.pprof"}, 0, ""},
		{"heap only", []string{"--mem-profile", filepath.Join(dir, "heap-only.pprof")}, []string{"heap-only.pprof"}, 0, ""},
		{"into a new folder", []string{"--cpu-profile", filepath.Join(dir, "new", "cpu.pprof"), "--mem-profile", filepath.Join(dir, "new", "mem.pprof")}, []string{"new/cpu.pprof", "new/mem.pprof"}, 0, ""},
		{"cpu under a file", []string{"--cpu-profile", filepath.Join(notDir, "cpu.pprof")}, nil, 2, "--cpu-profile " + filepath.Join(notDir, "cpu.pprof")},
		{"heap under a file", []string{"--mem-profile", filepath.Join(notDir, "mem.pprof")}, nil, 1, "--mem-profile " + filepath.Join(notDir, "mem.pprof")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			code := Execute(append(tc.flags, "version"), strings.NewReader(""), &out, &errOut)
			if code != tc.wantCode || !strings.Contains(errOut.String(), tc.wantErr) {
				t.Fatalf("exit %d, stderr %q: want exit %d and %q", code, errOut.String(), tc.wantCode, tc.wantErr)
			}
			for _, name := range tc.wantFiles {
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				st, err := os.Stat(filepath.Join(dir, name))
				if err != nil {
					t.Fatal(err)
				}
				if st.Mode().Perm()&0o044 != 0o044 {
					t.Errorf("%s: mode %v: want readable by group and others, as other outputs", name, st.Mode())
				}
				if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
					t.Errorf("%s is not a gzip-compressed pprof profile (%d bytes)", name, len(b))
				}
			}
		})
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, "*", ".*.tmp"))
	more, _ := filepath.Glob(filepath.Join(dir, ".*.tmp"))
	leftovers = append(leftovers, more...)
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
}
