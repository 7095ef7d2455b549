package safetensors

import "syscall"

// releasePages drops a range of a read-only file mapping from the process's memory
// (MADV_DONTNEED): the pages stay in the page cache and are read back if touched again.
func releasePages(b []byte) error { return syscall.Madvise(b, syscall.MADV_DONTNEED) }
