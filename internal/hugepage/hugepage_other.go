//go:build !linux

package hugepage

import (
	"errors"
	"unsafe"
)

// errUnsupported is what advise reports off Linux.
var errUnsupported = errors.New("transparent huge pages are a Linux feature")

// advise is a no-op off Linux.
func advise([]byte) error { return errUnsupported }

// address is the address of b's first byte.
func address(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }
