//go:build !amd64 || purego

package grader

// nativeAsm is false: no assembly kernels on this platform (or with the purego tag).
var nativeAsm = false

// microKernel computes c[6 x width] = a[6 x k] · b[k x width] (see native_amd64.go).
func microKernel(k int, a []float32, lda int, b []float32, width int, c []float32, ldc int) {
	kernelGo(k, a, lda, b, width, c, ldc)
}
