package quant

import (
	"encoding/binary"
	"fmt"
	"math"
	"sort"
)

// NF4Code is the 4-bit NormalFloat code book of QLoRA (Dettmers et al., 2023, appendix E;
// bitsandbytes' get_4bit_type("nf4")), index 0..15.
var NF4Code = [16]float32{
	-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
	-0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
	0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
	0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
}

// DynamicCode is bitsandbytes' signed 8-bit dynamic-exponent code (create_dynamic_map with
// signed=True, max_exponent_bits=7, total_bits=8), sorted: the 256 values NF4's double
// quantization maps the block absmax values to.
var DynamicCode = dynamicMap()

func dynamicMap() [256]float32 {
	const maxExp, nonSign = 7, 7
	var data []float64
	for i := 0; i < maxExp; i++ {
		items := 1<<(i+nonSign-maxExp) + 1
		scale := math.Pow(10, float64(-(maxExp-1)+i))
		for k := 0; k < items-1; k++ {
			// means of adjacent points of linspace(0.1, 1, items), computed in float32 as torch does
			b0 := float32(0.1 + (0.9)*float64(k)/float64(items-1))
			b1 := float32(0.1 + (0.9)*float64(k+1)/float64(items-1))
			mean := float64((b0 + b1) / 2)
			data = append(data, scale*mean, -scale*mean)
		}
	}
	data = append(data, 0, 1)
	sort.Float64s(data)
	var out [256]float32
	for i, v := range data {
		out[i] = float32(v)
	}
	return out
}

// Pack4 packs 4-bit values (0..15) two per byte, the first of each pair in the high nibble
// (bitsandbytes' order); an odd count leaves the last low nibble zero.
func Pack4(q []uint8) []byte {
	out := make([]byte, (len(q)+1)/2)
	for i, v := range q {
		if i%2 == 0 {
			out[i/2] = (v & 0x0f) << 4
		} else {
			out[i/2] |= v & 0x0f
		}
	}
	return out
}

// Unpack4 reverses Pack4 for n values.
func Unpack4(packed []byte, n int) ([]uint8, error) {
	if (n+1)/2 != len(packed) {
		return nil, fmt.Errorf("unpack 4-bit: %d bytes cannot hold exactly %d values", len(packed), n)
	}
	out := make([]uint8, n)
	for i := range out {
		if i%2 == 0 {
			out[i] = packed[i/2] >> 4
		} else {
			out[i] = packed[i/2] & 0x0f
		}
	}
	return out, nil
}

// Float32ToHalf rounds a float32 to IEEE 754 binary16 (round to nearest even, subnormals
// kept, overflow to ±Inf).
func Float32ToHalf(f float32) uint16 {
	bits := math.Float32bits(f)
	sign := uint16(bits>>16) & 0x8000
	exp := int((bits >> 23) & 0xff)
	mant := bits & 0x7fffff
	switch {
	case exp == 0xff: // Inf or NaN
		if mant != 0 {
			return sign | 0x7e00
		}
		return sign | 0x7c00
	case exp-127 > 15:
		return sign | 0x7c00
	case exp-127 >= -14: // normal half
		he := uint32(exp-127+15) << 10
		v := he | mant>>13
		rem := mant & 0x1fff
		if rem > 0x1000 || (rem == 0x1000 && v&1 == 1) {
			v++ // may carry into the exponent, up to Inf: correct
		}
		return sign | uint16(v)
	case exp-127 >= -25: // subnormal half
		m := mant | 0x800000
		shift := uint(-(exp - 127) - 14 + 13) // 14..24
		v := m >> shift
		rem := m & (1<<shift - 1)
		half := uint32(1) << (shift - 1)
		if rem > half || (rem == half && v&1 == 1) {
			v++
		}
		return sign | uint16(v)
	}
	return sign
}

// HalfToFloat32 converts binary16 to float32.
func HalfToFloat32(h uint16) float32 {
	var b [2]byte
	binary.LittleEndian.PutUint16(b[:], h)
	return halfBytesToFloat32(b[:])[0]
}

// roundToHalf rounds a scale to float16 precision, refusing scales float16 cannot hold.
func roundToHalf(d float32) (float32, error) {
	h := HalfToFloat32(Float32ToHalf(d))
	if math.IsInf(float64(h), 0) {
		return 0, fmt.Errorf("scale %g overflows float16", d)
	}
	return h, nil
}
