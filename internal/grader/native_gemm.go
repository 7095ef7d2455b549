package grader

// The native engine's matrix multiply: C[m x n] = A[m x k] · B[k x n] for the small, fixed
// shapes of the grader (k = kh*kw*cin up to a few hundred, n = output channels). B (the
// weights) is packed once into column panels of 16 (and a last panel of 8) floats per k, zero
// padded to a multiple of 8 columns; A is a row-major tile of rows rounded up to gemmMR that
// fits the L1/L2 cache; the micro-kernel computes a gemmMR x 16 (or x 8) block of C over the
// whole k, in AVX2/FMA assembly where the CPU has it (native_amd64.s) and in Go elsewhere.

const (
	gemmMR = 6  // rows per micro-kernel call
	gemmNR = 16 // columns of a full B panel
)

// packedB is a weight matrix packed for the micro-kernels.
type packedB struct {
	k, n, npad int
	data       []float32
	panels     []bPanel
}

// bPanel is a column panel: columns col..col+width of B, stored [k][width] at data[off:].
type bPanel struct{ col, width, off int }

// packB packs w [k x n] (row-major, as the checkpoint stores [kh, kw, cin, cout] kernels).
func packB(w []float32, k, n int) *packedB {
	p := &packedB{k: k, n: n, npad: (n + 7) / 8 * 8}
	p.data = make([]float32, k*p.npad)
	off := 0
	for col := 0; col < p.npad; {
		width := min(gemmNR, p.npad-col)
		for kk := 0; kk < k; kk++ {
			for j := 0; j < width && col+j < n; j++ {
				p.data[off+kk*width+j] = w[kk*n+col+j]
			}
		}
		p.panels = append(p.panels, bPanel{col, width, off})
		off += k * width
		col += width
	}
	return p
}

// gemmTile computes c[rows x b.npad] (row stride b.npad) = a[rows x b.k] (row stride b.k) · B,
// rows a multiple of gemmMR.
func gemmTile(a []float32, rows int, b *packedB, c []float32) {
	k, ldc := b.k, b.npad
	_ = a[rows*k-1]
	_ = c[rows*ldc-1]
	for _, pn := range b.panels {
		bp := b.data[pn.off : pn.off+k*pn.width]
		for r := 0; r < rows; r += gemmMR {
			microKernel(k, a[r*k:], k, bp, pn.width, c[r*ldc+pn.col:], ldc)
		}
	}
}

// kernelGo is the portable micro-kernel: c[6 x width] = a[6 x k] · b[k x width] (width 16
// or 8), a with row stride lda, c with row stride ldc. A 2-row x 4-column block of partial
// sums is what Go's register allocator keeps in registers (1.6x faster than a row at a time).
func kernelGo(k int, a []float32, lda int, b []float32, width int, c []float32, ldc int) {
	for r := 0; r < gemmMR; r += 2 {
		a0 := a[r*lda : r*lda+k]
		a1 := a[(r+1)*lda : (r+1)*lda+k]
		for j := 0; j < width; j += 4 {
			var c00, c01, c02, c03, c10, c11, c12, c13 float32
			for kk := range a0 {
				x0, x1 := a0[kk], a1[kk]
				bb := b[kk*width+j : kk*width+j+4 : kk*width+j+4]
				b0, b1, b2, b3 := bb[0], bb[1], bb[2], bb[3]
				c00 += x0 * b0
				c01 += x0 * b1
				c02 += x0 * b2
				c03 += x0 * b3
				c10 += x1 * b0
				c11 += x1 * b1
				c12 += x1 * b2
				c13 += x1 * b3
			}
			r0 := c[r*ldc+j : r*ldc+j+4 : r*ldc+j+4]
			r1 := c[(r+1)*ldc+j : (r+1)*ldc+j+4 : (r+1)*ldc+j+4]
			r0[0], r0[1], r0[2], r0[3] = c00, c01, c02, c03
			r1[0], r1[1], r1[2], r1[3] = c10, c11, c12, c13
		}
	}
}
