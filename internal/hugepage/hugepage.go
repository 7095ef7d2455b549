// Package hugepage asks the kernel to back large, long-lived buffers (a model's weights) with
// transparent huge pages. Filling 14.7 GB of Qwen2.5-VL-3B float32 weights in 4 KiB pages
// costs millions of page faults: on a 2-core VM with transparent huge pages in "madvise" mode
// (the common default) loading took 86 s, with the weights advised 38 s (BENCHMARKS.md).
package hugepage

// Size is the huge page size Advise aligns to (2 MiB on x86-64 and most arm64 kernels).
const Size = 2 << 20

// MinBytes is the smallest buffer Advise acts on: smaller ones hold at most one huge page.
const MinBytes = 2 * Size

// Advise marks the whole huge pages inside b as wanting transparent huge pages, before they
// are first written. It is a hint: it never changes b's contents, does nothing off Linux, for
// buffers under MinBytes, or where the kernel has no transparent huge pages, and reports
// whether the kernel accepted it.
func Advise(b []byte) bool {
	if len(b) < MinBytes {
		return false
	}
	inner := aligned(b)
	if len(inner) == 0 {
		return false
	}
	return advise(inner) == nil
}

// aligned returns the part of b that starts and ends on huge page boundaries.
func aligned(b []byte) []byte {
	start := int((Size - address(b)%Size) % Size)
	end := len(b) - int((address(b)+uintptr(len(b)))%Size)
	if end <= start {
		return nil
	}
	return b[start:end]
}
