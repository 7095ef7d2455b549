package quant

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/acdtcm/acdtcm/internal/safetensors"
)

// Suffixes of the companion tensors stored next to a quantized weight W. W itself holds
// the packed values (I8 for int8 and q8_0, U8 for nf4 and q4_0).
const (
	SuffixScale       = ".qscale"        // F32 per row (int8) or block (nf4 without double quantization); F16 per block (q8_0, q4_0)
	SuffixScaleCode   = ".qscale_code"   // U8 per block: NF4 double-quantized absmax codes
	SuffixScaleAbsmax = ".qscale_absmax" // F32 per 256 blocks
	SuffixScaleOffset = ".qscale_offset" // F32 [1]: mean absmax added back
)

// Companions lists the suffixes a quantized weight may carry.
var Companions = []string{SuffixScale, SuffixScaleCode, SuffixScaleAbsmax, SuffixScaleOffset}

func halfBytesToFloat32(raw []byte) []float32 {
	v, _ := safetensors.ToFloat32(raw, safetensors.F16)
	return v
}

// Encode returns the safetensors tensors of a quantized weight named name.
func (t *Tensor) Encode(name string) []safetensors.Tensor {
	dataType := safetensors.U8
	dataShape := []int{len(t.Data)}
	switch t.Method {
	case Int8:
		dataType, dataShape = safetensors.I8, t.Shape
	case Q8_0:
		dataType = safetensors.I8
	}
	out := []safetensors.Tensor{{Name: name, DType: dataType, Shape: dataShape, Data: t.Data}}
	switch {
	case t.DoubleQuant():
		out = append(out,
			safetensors.Tensor{Name: name + SuffixScaleCode, DType: safetensors.U8, Shape: []int{len(t.ScaleCodes)}, Data: t.ScaleCodes},
			safetensors.F32Tensor(name+SuffixScaleAbsmax, []int{len(t.ScaleAbsmax)}, t.ScaleAbsmax),
			safetensors.F32Tensor(name+SuffixScaleOffset, []int{1}, []float32{t.ScaleOffset}))
	case t.Method == Q8_0 || t.Method == Q4_0:
		h := make([]byte, 2*len(t.Scales))
		for i, s := range t.Scales {
			binary.LittleEndian.PutUint16(h[2*i:], Float32ToHalf(s))
		}
		out = append(out, safetensors.Tensor{Name: name + SuffixScale, DType: safetensors.F16, Shape: []int{len(t.Scales)}, Data: h})
	default:
		out = append(out, safetensors.F32Tensor(name+SuffixScale, []int{len(t.Scales)}, t.Scales))
	}
	return out
}

// Lookup returns a stored tensor's info and raw bytes, ok=false when absent.
type Lookup func(name string) (safetensors.TensorInfo, []byte, bool)

// Decode reads the quantized weight name of the given original shape, checking every
// dtype and size against what the method needs. The returned tensor copies the bytes (the
// source may be an unmapped file afterwards).
func Decode(m Method, name string, shape []int, doubleQuant bool, get Lookup) (*Tensor, error) {
	if len(shape) == 0 || numElements(shape) == 0 {
		return nil, fmt.Errorf("quantized tensor %s: bad shape %v", name, shape)
	}
	t := &Tensor{Method: m, Shape: append([]int(nil), shape...)}
	wantData := safetensors.U8
	if m == Int8 || m == Q8_0 {
		wantData = safetensors.I8
	}
	info, raw, ok := get(name)
	if !ok {
		return nil, fmt.Errorf("quantized tensor %s is missing", name)
	}
	if info.DType != wantData || len(raw) != dataBytes(m, shape) {
		return nil, fmt.Errorf("quantized tensor %s: stored %s %v (%d bytes), but %s of shape %v needs %s with %d bytes: the file does not match its quantization_config or the model config",
			name, info.DType, info.Shape, len(raw), m, shape, wantData, dataBytes(m, shape))
	}
	t.Data = append([]byte(nil), raw...)
	nb := t.NumBlocks()
	companion := func(suffix string, dt safetensors.DType, n int) ([]byte, error) {
		info, raw, ok := get(name + suffix)
		if !ok {
			return nil, fmt.Errorf("quantized tensor %s: companion %s%s is missing", name, name, suffix)
		}
		if info.DType != dt || info.NumElements() != n {
			return nil, fmt.Errorf("quantized tensor %s: %s%s is %s %v, want %s with %d elements", name, name, suffix, info.DType, info.Shape, dt, n)
		}
		return raw, nil
	}
	switch {
	case m == NF4 && doubleQuant:
		codes, err := companion(SuffixScaleCode, safetensors.U8, nb)
		if err != nil {
			return nil, err
		}
		ng := (nb + DoubleQuantBlockSize - 1) / DoubleQuantBlockSize
		absRaw, err := companion(SuffixScaleAbsmax, safetensors.F32, ng)
		if err != nil {
			return nil, err
		}
		offRaw, err := companion(SuffixScaleOffset, safetensors.F32, 1)
		if err != nil {
			return nil, err
		}
		t.ScaleCodes = append([]uint8(nil), codes...)
		t.ScaleAbsmax, _ = safetensors.ToFloat32(absRaw, safetensors.F32)
		off, _ := safetensors.ToFloat32(offRaw, safetensors.F32)
		t.ScaleOffset = off[0]
	case m == Q8_0 || m == Q4_0:
		raw, err := companion(SuffixScale, safetensors.F16, nb)
		if err != nil {
			return nil, err
		}
		t.Scales = halfBytesToFloat32(raw)
	default:
		raw, err := companion(SuffixScale, safetensors.F32, nb)
		if err != nil {
			return nil, err
		}
		t.Scales, _ = safetensors.ToFloat32(raw, safetensors.F32)
	}
	for i, s := range t.Scales {
		if math.IsNaN(float64(s)) || math.IsInf(float64(s), 0) {
			return nil, fmt.Errorf("quantized tensor %s: scale %d is %v (corrupt file)", name, i, s)
		}
	}
	if m == Int8 || m == Q8_0 {
		for i, b := range t.Data {
			if int8(b) == -128 {
				return nil, fmt.Errorf("quantized tensor %s: value %d is -128, outside the symmetric range (corrupt file)", name, i)
			}
		}
	}
	return t, nil
}
