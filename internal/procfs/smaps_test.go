package procfs

import (
	"runtime"
	"syscall"
	"testing"
	"unsafe"
)

// TestSmapsBytes: a fresh 8 MiB anonymous mapping counts no resident bytes until it is
// written, then all of them; a range outside any mapping counts nothing.
func TestSmapsBytes(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("/proc/self/smaps is Linux's")
	}
	const size = 8 << 20
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Munmap(b)
	lo := uintptr(unsafe.Pointer(&b[0]))
	before, err := SmapsBytes(lo, lo+size, "Rss")
	if err != nil {
		t.Fatal(err)
	}
	for i := range b {
		b[i] = 1
	}
	after, err := SmapsBytes(lo, lo+size, "Rss")
	if err != nil {
		t.Fatal(err)
	}
	if before != 0 || after < size {
		t.Errorf("Rss %d bytes before writing and %d after: want 0, then at least %d", before, after, size)
	}
	if none, err := SmapsBytes(0, 4096, "Rss"); err != nil || none != 0 {
		t.Errorf("the null page's range: %d bytes, %v", none, err)
	}
}
