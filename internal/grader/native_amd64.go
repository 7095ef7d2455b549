//go:build !purego

package grader

import "unsafe"

//go:noescape
func kernel6x16AVX(k int, a *float32, lda int, b *float32, c *float32, ldc int)

//go:noescape
func kernel6x8AVX(k int, a *float32, lda int, b *float32, c *float32, ldc int)

func cpuidex(leaf, sub uint32) (eax, ebx, ecx, edx uint32)

func xgetbv0() (eax uint32)

// hasAVX2FMA reports whether the CPU and the OS support AVX2 and FMA (YMM state enabled).
func hasAVX2FMA() bool {
	maxLeaf, _, _, _ := cpuidex(0, 0)
	if maxLeaf < 7 {
		return false
	}
	_, _, c1, _ := cpuidex(1, 0)
	const fma, osxsave, avx = 1 << 12, 1 << 27, 1 << 28
	if c1&fma == 0 || c1&osxsave == 0 || c1&avx == 0 {
		return false
	}
	if xgetbv0()&6 != 6 { // XMM and YMM state saved by the OS
		return false
	}
	_, b7, _, _ := cpuidex(7, 0)
	return b7&(1<<5) != 0
}

// nativeAsm is true when the AVX2/FMA micro-kernels run; tests switch it off to check the
// Go kernels.
var nativeAsm = hasAVX2FMA()

// microKernel computes c[6 x width] = a[6 x k] · b[k x width] (width 16 or 8) with the
// assembly kernels when the CPU has AVX2 and FMA, else with kernelGo. The slices must hold
// the 6 rows of a (lda apart, k each), k*width floats of b and the 6 rows of c (ldc apart);
// the checks below make an out-of-range call panic instead of reading past them.
func microKernel(k int, a []float32, lda int, b []float32, width int, c []float32, ldc int) {
	if !nativeAsm {
		kernelGo(k, a, lda, b, width, c, ldc)
		return
	}
	_ = a[5*lda+k-1]
	_ = b[k*width-1]
	_ = c[5*ldc+width-1]
	if width == gemmNR {
		kernel6x16AVX(k, unsafe.SliceData(a), lda, unsafe.SliceData(b), unsafe.SliceData(c), ldc)
	} else {
		kernel6x8AVX(k, unsafe.SliceData(a), lda, unsafe.SliceData(b), unsafe.SliceData(c), ldc)
	}
}
