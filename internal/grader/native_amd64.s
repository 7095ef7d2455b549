//go:build !purego

#include "textflag.h"

// KERNEL_ARGS loads the kernels' arguments: CX = k, SI = a, DX = lda in bytes, BX = b,
// DI = c, R9 = ldc in bytes, R8 = a + 3*lda (rows 3-5 are (R8), (R8)(DX*1), (R8)(DX*2)).
#define KERNEL_ARGS \
	MOVQ k+0(FP), CX; MOVQ a+8(FP), SI; MOVQ lda+16(FP), DX; MOVQ b+24(FP), BX; \
	MOVQ c+32(FP), DI; MOVQ ldc+40(FP), R9; SHLQ $2, DX; SHLQ $2, R9; \
	LEAQ (SI)(DX*2), R8; ADDQ DX, R8

// func kernel6x16AVX(k int, a *float32, lda int, b *float32, c *float32, ldc int)
// C[6 x 16] = A[6 x k] · B[k x 16]: A rows lda floats apart, B packed 16 floats per k,
// C rows ldc floats apart. Accumulators Y0-Y11, B in Y12-Y13, broadcasts in Y14.
TEXT ·kernel6x16AVX(SB), NOSPLIT, $0-48
	KERNEL_ARGS
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	VXORPS Y6, Y6, Y6
	VXORPS Y7, Y7, Y7
	VXORPS Y8, Y8, Y8
	VXORPS Y9, Y9, Y9
	VXORPS Y10, Y10, Y10
	VXORPS Y11, Y11, Y11
	TESTQ CX, CX
	JZ    store16

loop16:
	VMOVUPS      (BX), Y12
	VMOVUPS      32(BX), Y13
	VBROADCASTSS (SI), Y14
	VFMADD231PS  Y12, Y14, Y0
	VFMADD231PS  Y13, Y14, Y1
	VBROADCASTSS (SI)(DX*1), Y14
	VFMADD231PS  Y12, Y14, Y2
	VFMADD231PS  Y13, Y14, Y3
	VBROADCASTSS (SI)(DX*2), Y14
	VFMADD231PS  Y12, Y14, Y4
	VFMADD231PS  Y13, Y14, Y5
	VBROADCASTSS (R8), Y14
	VFMADD231PS  Y12, Y14, Y6
	VFMADD231PS  Y13, Y14, Y7
	VBROADCASTSS (R8)(DX*1), Y14
	VFMADD231PS  Y12, Y14, Y8
	VFMADD231PS  Y13, Y14, Y9
	VBROADCASTSS (R8)(DX*2), Y14
	VFMADD231PS  Y12, Y14, Y10
	VFMADD231PS  Y13, Y14, Y11
	ADDQ         $4, SI
	ADDQ         $4, R8
	ADDQ         $64, BX
	DECQ         CX
	JNZ          loop16

store16:
	VMOVUPS Y0, (DI)
	VMOVUPS Y1, 32(DI)
	ADDQ    R9, DI
	VMOVUPS Y2, (DI)
	VMOVUPS Y3, 32(DI)
	ADDQ    R9, DI
	VMOVUPS Y4, (DI)
	VMOVUPS Y5, 32(DI)
	ADDQ    R9, DI
	VMOVUPS Y6, (DI)
	VMOVUPS Y7, 32(DI)
	ADDQ    R9, DI
	VMOVUPS Y8, (DI)
	VMOVUPS Y9, 32(DI)
	ADDQ    R9, DI
	VMOVUPS Y10, (DI)
	VMOVUPS Y11, 32(DI)
	VZEROUPPER
	RET

// func kernel6x8AVX(k int, a *float32, lda int, b *float32, c *float32, ldc int)
// kernel6x16AVX for an 8-column panel (B packed 8 floats per k).
TEXT ·kernel6x8AVX(SB), NOSPLIT, $0-48
	KERNEL_ARGS
	VXORPS Y0, Y0, Y0
	VXORPS Y1, Y1, Y1
	VXORPS Y2, Y2, Y2
	VXORPS Y3, Y3, Y3
	VXORPS Y4, Y4, Y4
	VXORPS Y5, Y5, Y5
	TESTQ CX, CX
	JZ    store8

loop8:
	VMOVUPS      (BX), Y12
	VBROADCASTSS (SI), Y13
	VFMADD231PS  Y12, Y13, Y0
	VBROADCASTSS (SI)(DX*1), Y14
	VFMADD231PS  Y12, Y14, Y1
	VBROADCASTSS (SI)(DX*2), Y13
	VFMADD231PS  Y12, Y13, Y2
	VBROADCASTSS (R8), Y14
	VFMADD231PS  Y12, Y14, Y3
	VBROADCASTSS (R8)(DX*1), Y13
	VFMADD231PS  Y12, Y13, Y4
	VBROADCASTSS (R8)(DX*2), Y14
	VFMADD231PS  Y12, Y14, Y5
	ADDQ         $4, SI
	ADDQ         $4, R8
	ADDQ         $32, BX
	DECQ         CX
	JNZ          loop8

store8:
	VMOVUPS Y0, (DI)
	ADDQ    R9, DI
	VMOVUPS Y1, (DI)
	ADDQ    R9, DI
	VMOVUPS Y2, (DI)
	ADDQ    R9, DI
	VMOVUPS Y3, (DI)
	ADDQ    R9, DI
	VMOVUPS Y4, (DI)
	ADDQ    R9, DI
	VMOVUPS Y5, (DI)
	VZEROUPPER
	RET

// func cpuidex(leaf, sub uint32) (eax, ebx, ecx, edx uint32)
TEXT ·cpuidex(SB), NOSPLIT, $0-24
	MOVL leaf+0(FP), AX
	MOVL sub+4(FP), CX
	CPUID
	MOVL AX, eax+8(FP)
	MOVL BX, ebx+12(FP)
	MOVL CX, ecx+16(FP)
	MOVL DX, edx+20(FP)
	RET

// func xgetbv0() (eax uint32)
TEXT ·xgetbv0(SB), NOSPLIT, $0-4
	MOVL $0, CX
	XGETBV
	MOVL AX, eax+0(FP)
	RET
