//go:build unix

package safetensors

import (
	"os"
	"syscall"
)

// mmapped says whether Open maps files (true) or reads them into memory.
const mmapped = true

func mmapFile(f *os.File, size int64) ([]byte, error) {
	return syscall.Mmap(int(f.Fd()), 0, int(size), syscall.PROT_READ, syscall.MAP_SHARED)
}

func munmap(b []byte) error { return syscall.Munmap(b) }
