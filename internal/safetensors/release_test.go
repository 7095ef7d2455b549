package safetensors

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"unsafe"

	"github.com/acdtcm/acdtcm/internal/procfs"
)

// TestReleaseKeepsValues: a released tensor, its neighbours, and tensors of a file parsed
// from memory still read back exactly; an unknown name is an error naming the file.
func TestReleaseKeepsValues(t *testing.T) {
	values := func(n int, scale float32) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(i)*scale + 0.25
		}
		return v
	}
	// Sizes that are not multiples of a page, so tensors share pages with their neighbours.
	tensors := []Tensor{
		F32Tensor("a", []int{3001}, values(3001, 1)),
		F32Tensor("b", []int{5000}, values(5000, -2)),
		F32Tensor("c", []int{7}, values(7, 3)),
	}
	path := filepath.Join(t.TempDir(), "m.safetensors")
	if err := WriteFile(path, tensors, nil); err != nil {
		t.Fatal(err)
	}
	mapped, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer mapped.Close()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	inMemory, err := Parse(path, raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		file *File
	}{{"mapped", mapped}, {"in memory", inMemory}} {
		t.Run(tc.name, func(t *testing.T) {
			for _, want := range tensors {
				if _, _, err := tc.file.Float32(want.Name); err != nil {
					t.Fatal(err)
				}
				if err := tc.file.Release(want.Name); err != nil {
					t.Fatalf("release %s: %v", want.Name, err)
				}
			}
			for _, want := range tensors {
				got, _, err := tc.file.Bytes(want.Name)
				if err != nil {
					t.Fatal(err)
				}
				if !bytes.Equal(got, want.Data) {
					t.Fatalf("%s changed after release", want.Name)
				}
			}
			if err := tc.file.Release("missing"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), path) {
				t.Errorf("release of a missing tensor: %v", err)
			}
		})
	}
}

// TestReleaseDropsResidentPages: on Linux, releasing a tensor of a mapped file takes its pages
// out of the process's resident memory (the mapping's Rss in /proc/self/smaps).
func TestReleaseDropsResidentPages(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("madvise(MADV_DONTNEED) is used on Linux only")
	}
	const n = 8 << 20 // 32 MiB of float32
	path := filepath.Join(t.TempDir(), "big.safetensors")
	if err := WriteFile(path, []Tensor{F32Tensor("w", []int{n}, make([]float32, n))}, nil); err != nil {
		t.Fatal(err)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b, _, err := f.Bytes("w")
	if err != nil {
		t.Fatal(err)
	}
	var sum byte
	for i := 0; i < len(b); i += 4096 {
		sum += b[i] // touch every page
	}
	lo := uintptr(unsafe.Pointer(&f.mapping[0]))
	hi := lo + uintptr(len(f.mapping))
	before, err := procfs.SmapsBytes(lo, hi, "Rss")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Release("w"); err != nil {
		t.Fatal(err)
	}
	after, err := procfs.SmapsBytes(lo, hi, "Rss")
	if err != nil {
		t.Fatal(err)
	}
	if before < 30<<20 || after > 1<<20 {
		t.Errorf("mapping resident %d bytes before release and %d after (touched sum %d): want ~32 MiB, then ~0", before, after, sum)
	}
}
