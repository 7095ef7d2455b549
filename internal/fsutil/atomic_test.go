package fsutil

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "out.txt")
	if err := WriteFileAtomic(path, []byte("first"), 0o600); err != nil {
		t.Fatal(err)
	}
	// A failing writer leaves the previous content and no temporary file behind.
	boom := errors.New("disk full")
	err := WriteAtomic(path, 0o644, func(w io.Writer) error {
		w.Write([]byte("partial"))
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want %v", err, boom)
	}
	if got, _ := os.ReadFile(path); string(got) != "first" {
		t.Errorf("content after a failed write = %q, want the old %q", got, "first")
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("%d files in the directory, want only out.txt (no temp left)", len(entries))
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	copyPath := filepath.Join(dir, "copy.txt")
	if err := CopyFileAtomic(path, copyPath); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(copyPath); string(got) != "first" {
		t.Errorf("copy = %q", got)
	}
	if err := CopyFileAtomic(filepath.Join(dir, "missing"), copyPath); err == nil {
		t.Error("copying a missing file should fail")
	}
}
