package hugepage

import (
	"syscall"
	"unsafe"
)

// advise calls madvise(MADV_HUGEPAGE).
func advise(b []byte) error { return syscall.Madvise(b, syscall.MADV_HUGEPAGE) }

// address is the address of b's first byte.
func address(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
