// Package quant quantizes float32 weights to 8 and 4 bits and back: symmetric int8 per
// output channel, NF4 (QLoRA's 4-bit NormalFloat, blocks of 64, with double quantization of
// the block scales), and GGML's q8_0 and q4_0 (blocks of 32 with a float16 scale). It packs
// 4-bit values two per byte, encodes quantized tensors as safetensors companions of the
// original weight name, describes the choice in config.json's quantization_config, measures
// the error (relative RMS, SNR) and rebuilds the float32 weights inside a GoMLX graph
// (simplego has no int4 dtype and no bit shifts: nibbles are split with integer Div/Rem).
package quant

import (
	"fmt"
	"math"
	"strings"
)

// Method is a quantization format.
type Method string

// The supported methods.
const (
	// Int8 is symmetric int8 with one float32 scale per output channel (row): q = round(x/s),
	// s = max|row|/127.
	Int8 Method = "int8"
	// NF4 is QLoRA's 4-bit NormalFloat: blocks of 64 values, each an index into the 16-value
	// NF4 code book times the block's absmax; the absmax values are themselves quantized to
	// 8 bits in blocks of 256 (double quantization).
	NF4 Method = "nf4"
	// Q8_0 is GGML's q8_0: blocks of 32 int8 values with a float16 scale amax/127.
	Q8_0 Method = "q8_0"
	// Q4_0 is GGML's q4_0: blocks of 32 4-bit values q with a float16 scale d; x = (q-8)·d.
	Q4_0 Method = "q4_0"
)

// Methods lists every method in a stable order.
var Methods = []Method{Int8, NF4, Q8_0, Q4_0}

// ParseMethod validates a method name (case-insensitive).
func ParseMethod(s string) (Method, error) {
	m := Method(strings.ToLower(strings.TrimSpace(s)))
	for _, k := range Methods {
		if m == k {
			return m, nil
		}
	}
	return "", fmt.Errorf("unknown quantization method %q (want int8, nf4, q8_0 or q4_0)", s)
}

// BlockSize is the number of values sharing one scale (0 for per-row int8).
func (m Method) BlockSize() int {
	switch m {
	case NF4:
		return 64
	case Q8_0, Q4_0:
		return 32
	}
	return 0
}

// Bits is the width of one stored value.
func (m Method) Bits() int {
	if m == NF4 || m == Q4_0 {
		return 4
	}
	return 8
}

// DoubleQuantBlockSize is the block size of NF4's second quantization (of the absmax
// values), as QLoRA uses.
const DoubleQuantBlockSize = 256

// Options tune Quantize.
type Options struct {
	// NoDoubleQuant stores NF4 block scales as float32 instead of 8-bit codes.
	NoDoubleQuant bool
}

// Tensor is a quantized tensor.
type Tensor struct {
	Method Method
	Shape  []int // original shape
	// Data holds the stored values: int8 (two's complement bytes) for int8 and q8_0, two
	// 4-bit values per byte for nf4 and q4_0. Block methods pad the last block with zeros.
	Data []byte
	// Scales are the per-row (int8) or per-block scales. For q8_0/q4_0 they are already
	// rounded to float16 (stored as F16); for NF4 with double quantization they are nil.
	Scales []float32
	// NF4 double quantization: ScaleCodes index DynamicCode, times ScaleAbsmax of their group
	// of 256 blocks, plus ScaleOffset.
	ScaleCodes  []uint8
	ScaleAbsmax []float32
	ScaleOffset float32
}

// NumElements is the product of the original shape.
func (t *Tensor) NumElements() int { return numElements(t.Shape) }

// NumBlocks is the number of blocks (rows for int8).
func (t *Tensor) NumBlocks() int { return numBlocks(t.Method, t.Shape) }

// DoubleQuant tells whether the block scales are stored as 8-bit codes.
func (t *Tensor) DoubleQuant() bool { return t.ScaleCodes != nil }

func numElements(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

func numBlocks(m Method, shape []int) int {
	if m == Int8 {
		return shape[0]
	}
	bs := m.BlockSize()
	return (numElements(shape) + bs - 1) / bs
}

// dataBytes is the length of Data for a method and shape.
func dataBytes(m Method, shape []int) int {
	if m == Int8 {
		return numElements(shape)
	}
	n := numBlocks(m, shape) * m.BlockSize()
	if m.Bits() == 4 {
		return n / 2
	}
	return n
}

// Quantize quantizes row-major float32 values of the given shape. Tensors must have rank
// ≥ 1 (int8 quantizes each slice along the first axis, i.e. each output channel of a
// PyTorch [out, in] weight); non-finite values are an error.
func Quantize(m Method, values []float32, shape []int, opts Options) (*Tensor, error) {
	if len(shape) == 0 {
		return nil, fmt.Errorf("quantize %s: scalar tensors are not quantized", m)
	}
	if n := numElements(shape); n != len(values) || n == 0 {
		return nil, fmt.Errorf("quantize %s: %d values for shape %v", m, len(values), shape)
	}
	for i, v := range values {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			return nil, fmt.Errorf("quantize %s: value %d is %v", m, i, v)
		}
	}
	t := &Tensor{Method: m, Shape: append([]int(nil), shape...)}
	switch m {
	case Int8:
		quantizeInt8(t, values)
	case Q8_0:
		if err := quantizeQ8_0(t, values); err != nil {
			return nil, err
		}
	case Q4_0:
		if err := quantizeQ4_0(t, values); err != nil {
			return nil, err
		}
	case NF4:
		quantizeNF4(t, values, !opts.NoDoubleQuant)
	default:
		return nil, fmt.Errorf("unknown quantization method %q", m)
	}
	return t, nil
}

// Dequantize rebuilds the float32 values (original shape, padding dropped).
func (t *Tensor) Dequantize() []float32 {
	n := t.NumElements()
	out := make([]float32, n)
	scales := t.BlockScales()
	switch t.Method {
	case Int8:
		cols := n / t.Shape[0]
		for i := range out {
			out[i] = float32(int8(t.Data[i])) * scales[i/cols]
		}
	case Q8_0:
		for i := range out {
			out[i] = float32(int8(t.Data[i])) * scales[i/32]
		}
	case Q4_0:
		for i := range out {
			b, j := i/32, i%32
			byt := t.Data[b*16+j%16]
			q := byt & 0x0f
			if j >= 16 {
				q = byt >> 4
			}
			out[i] = float32(int(q)-8) * scales[b]
		}
	case NF4:
		for i := range out {
			byt := t.Data[i/2]
			q := byt >> 4
			if i%2 == 1 {
				q = byt & 0x0f
			}
			out[i] = NF4Code[q] * scales[i/64]
		}
	}
	return out
}

// BlockScales returns the float32 scale of every row (int8) or block, resolving NF4's
// double quantization.
func (t *Tensor) BlockScales() []float32 {
	if !t.DoubleQuant() {
		return t.Scales
	}
	out := make([]float32, len(t.ScaleCodes))
	for i, c := range t.ScaleCodes {
		out[i] = DynamicCode[c]*t.ScaleAbsmax[i/DoubleQuantBlockSize] + t.ScaleOffset
	}
	return out
}

// StoredBytes is the size of the quantized representation (data plus scales).
func (t *Tensor) StoredBytes() int64 {
	n := int64(len(t.Data)) + int64(len(t.ScaleCodes)) + 4*int64(len(t.ScaleAbsmax))
	switch {
	case t.DoubleQuant():
		n += 4 // offset
	case t.Method == Q8_0 || t.Method == Q4_0:
		n += 2 * int64(len(t.Scales))
	default:
		n += 4 * int64(len(t.Scales))
	}
	return n
}

func quantizeInt8(t *Tensor, x []float32) {
	rows := t.Shape[0]
	cols := len(x) / rows
	t.Data = make([]byte, len(x))
	t.Scales = make([]float32, rows)
	for r := 0; r < rows; r++ {
		row := x[r*cols : (r+1)*cols]
		amax := float32(0)
		for _, v := range row {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		s := amax / 127
		t.Scales[r] = s
		inv := float32(0)
		if s != 0 {
			inv = 1 / s
		}
		for j, v := range row {
			q := math.Round(float64(v * inv))
			t.Data[r*cols+j] = byte(int8(math.Max(-127, math.Min(127, q))))
		}
	}
}

// blockOf returns block b of x, zero-padded to size bs.
func blockOf(x []float32, b, bs int, buf []float32) []float32 {
	clear(buf)
	copy(buf, x[b*bs:min(len(x), (b+1)*bs)])
	return buf
}

// quantizeQ8_0 follows GGML's quantize_row_q8_0_ref: d = amax/127 stored as float16,
// q = round(x/d) computed with the unrounded d.
func quantizeQ8_0(t *Tensor, x []float32) error {
	nb := t.NumBlocks()
	t.Data = make([]byte, nb*32)
	t.Scales = make([]float32, nb)
	buf := make([]float32, 32)
	for b := 0; b < nb; b++ {
		blk := blockOf(x, b, 32, buf)
		amax := float32(0)
		for _, v := range blk {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		d := amax / 127
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		h, err := roundToHalf(d)
		if err != nil {
			return fmt.Errorf("q8_0 block %d: %w", b, err)
		}
		t.Scales[b] = h
		for j, v := range blk {
			t.Data[b*32+j] = byte(int8(math.Round(float64(v * id))))
		}
	}
	return nil
}

// quantizeQ4_0 follows GGML's quantize_row_q4_0_ref: d = max/-8 where max is the value of
// largest magnitude (sign kept), q = min(15, trunc(x/d + 8.5)); byte j of a block holds
// q[j] in its low nibble and q[j+16] in its high nibble.
func quantizeQ4_0(t *Tensor, x []float32) error {
	nb := t.NumBlocks()
	t.Data = make([]byte, nb*16)
	t.Scales = make([]float32, nb)
	buf := make([]float32, 32)
	for b := 0; b < nb; b++ {
		blk := blockOf(x, b, 32, buf)
		amax, mx := float32(0), float32(0)
		for _, v := range blk {
			if a := float32(math.Abs(float64(v))); a > amax {
				amax, mx = a, v
			}
		}
		d := mx / -8
		id := float32(0)
		if d != 0 {
			id = 1 / d
		}
		h, err := roundToHalf(d)
		if err != nil {
			return fmt.Errorf("q4_0 block %d: %w", b, err)
		}
		t.Scales[b] = h
		for j := 0; j < 16; j++ {
			q0 := min(15, int(int8(float32(blk[j]*id)+8.5))) // explicit float32: no fused multiply-add
			q1 := min(15, int(int8(float32(blk[j+16]*id)+8.5)))
			t.Data[b*16+j] = byte(q0) | byte(q1)<<4
		}
	}
	return nil
}

// quantizeNF4 follows bitsandbytes' quantize_4bit (nf4, blocksize 64): absmax per block,
// nearest NF4 code of x/absmax, the first value of a pair in the high nibble. With double
// quantization the absmax values minus their mean are quantized blockwise (256) to
// bitsandbytes' 8-bit dynamic code.
func quantizeNF4(t *Tensor, x []float32, double bool) {
	nb := t.NumBlocks()
	codes := make([]uint8, nb*64)
	absmax := make([]float32, nb)
	buf := make([]float32, 64)
	for b := 0; b < nb; b++ {
		blk := blockOf(x, b, 64, buf)
		amax := float32(0)
		for _, v := range blk {
			amax = max(amax, float32(math.Abs(float64(v))))
		}
		absmax[b] = amax
		inv := float32(0)
		if amax != 0 {
			inv = 1 / amax
		}
		for j, v := range blk {
			codes[b*64+j] = nearest(NF4Code[:], v*inv)
		}
	}
	t.Data = Pack4(codes)
	if !double {
		t.Scales = absmax
		return
	}
	t.ScaleCodes, t.ScaleAbsmax, t.ScaleOffset = doubleQuantize(absmax)
}

// doubleQuantize quantizes absmax values as bitsandbytes' nested quantization does:
// subtract the mean, then blockwise (256) absmax scaling to the dynamic 8-bit code.
func doubleQuantize(absmax []float32) (codes []uint8, scales []float32, offset float32) {
	var sum float64
	for _, a := range absmax {
		sum += float64(a)
	}
	offset = float32(sum / float64(len(absmax)))
	codes = make([]uint8, len(absmax))
	ng := (len(absmax) + DoubleQuantBlockSize - 1) / DoubleQuantBlockSize
	scales = make([]float32, ng)
	for g := 0; g < ng; g++ {
		lo, hi := g*DoubleQuantBlockSize, min(len(absmax), (g+1)*DoubleQuantBlockSize)
		m := float32(0)
		for _, a := range absmax[lo:hi] {
			m = max(m, float32(math.Abs(float64(a-offset))))
		}
		scales[g] = m
		inv := float32(0)
		if m != 0 {
			inv = 1 / m
		}
		for i := lo; i < hi; i++ {
			codes[i] = nearest(DynamicCode[:], (absmax[i]-offset)*inv)
		}
	}
	return codes, scales, offset
}

// nearest returns the index of the code value closest to v (codes sorted ascending); ties go
// to the lower index.
func nearest(codes []float32, v float32) uint8 {
	lo, hi := 0, len(codes)-1
	for lo < hi { // first index with codes[i] >= v
		mid := (lo + hi) / 2
		if codes[mid] < v {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	if lo > 0 && v-codes[lo-1] <= codes[lo]-v {
		lo--
	}
	return uint8(lo)
}

// LayoutBytes is the size of a quantized tensor of the given shape without quantizing it:
// on disk (q8_0/q4_0 scales as float16) and in memory as loaded (every scale float32).
func LayoutBytes(m Method, shape []int, opts Options) (disk, memory int64) {
	data := int64(dataBytes(m, shape))
	nb := int64(numBlocks(m, shape))
	switch {
	case m == NF4 && !opts.NoDoubleQuant:
		s := nb + 4*((nb+DoubleQuantBlockSize-1)/DoubleQuantBlockSize) + 4
		return data + s, data + s
	case m == Q8_0 || m == Q4_0:
		return data + 2*nb, data + 4*nb
	}
	return data + 4*nb, data + 4*nb
}
