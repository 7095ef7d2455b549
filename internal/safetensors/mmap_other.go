//go:build !unix

package safetensors

import (
	"io"
	"os"
)

// mmapped says whether Open maps files (true) or reads them into memory.
const mmapped = false

// Without mmap the file is read into memory once.
func mmapFile(f *os.File, size int64) ([]byte, error) {
	buf := make([]byte, size)
	_, err := io.ReadFull(f, buf)
	return buf, err
}

func munmap([]byte) error { return nil }
