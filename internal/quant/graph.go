package quant

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph-building code reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// GraphInputs are the graph nodes of a quantized weight's stored parts (as loaded into
// variables: Data uint8/int8, Scale float32, ScaleCode uint8, ScaleAbsmax float32,
// ScaleOffset float32 [1]). Unused parts are nil.
type GraphInputs struct {
	Data, Scale, ScaleCode, ScaleAbsmax, ScaleOffset *Node
}

// DequantizeGraph rebuilds the float weight of the given shape inside the graph (simplego
// has no int4 dtype and no bit shifts): q4_0 nibbles come from integer division and
// remainder by 16; NF4 bytes index a 256-row table of their two code book values, so one
// Gather unpacks and looks up both.
func DequantizeGraph(m Method, shape []int, in GraphInputs) *Node {
	g := in.Data.Graph()
	n := numElements(shape)
	// The weight takes the dtype of its scales (float32 as loaded; float64 if a caller
	// casts the context's float variables).
	dt := dtypes.Float32
	if in.Scale != nil {
		dt = in.Scale.DType()
	} else if in.ScaleAbsmax != nil {
		dt = in.ScaleAbsmax.DType()
	}
	var flat *Node // [padded n]
	switch m {
	case Int8:
		rows := shape[0]
		x := ConvertDType(Reshape(in.Data, rows, n/rows), dt)
		return Reshape(Mul(x, Reshape(in.Scale, rows, 1)), shape...)
	case Q8_0:
		nb := in.Scale.Shape().Size()
		x := ConvertDType(Reshape(in.Data, nb, 32), dt)
		flat = Reshape(Mul(x, Reshape(in.Scale, nb, 1)), nb*32)
	case Q4_0:
		// Nibbles by integer division and remainder (no bit shifts in simplego; measured
		// faster here than a Gather from a byte table). GGML order: the low nibbles of a
		// block's 16 bytes are its values 0..15, the high nibbles 16..31.
		nb := in.Scale.Shape().Size()
		b := ConvertDType(Reshape(in.Data, nb, 16), dtypes.Int32)
		lo, hi := ModScalar(b, 16), DivScalar(b, 16)
		q := ConvertDType(Concatenate([]*Node{lo, hi}, 1), dt)
		flat = Reshape(Mul(AddScalar(q, -8), Reshape(in.Scale, nb, 1)), nb*32)
	case NF4:
		// Each byte indexes a 256-row table of its two code book values (high nibble first).
		nbytes := in.Data.Shape().Size()
		nb := nbytes * 2 / 64
		idx := ConvertDType(Reshape(in.Data, nbytes, 1), dtypes.Int32)
		vals := Reshape(Gather(ConvertDType(Const(g, nf4PairTable()), dt), idx), nb, 64)
		scales := in.Scale
		if in.ScaleCode != nil {
			scales = dequantizeScalesGraph(in, nb)
		}
		flat = Reshape(Mul(vals, Reshape(scales, nb, 1)), nb*64)
	default:
		panic(fmt.Sprintf("quant: unknown method %q", m))
	}
	if flat.Shape().Size() != n {
		flat = Slice(flat, AxisRange(0, n))
	}
	return Reshape(flat, shape...)
}

// dequantizeScalesGraph computes NF4 block scales DynamicCode[code]·absmax[block/256] + offset.
func dequantizeScalesGraph(in GraphInputs, nb int) *Node {
	g := in.Data.Graph()
	code := ConvertDType(Reshape(in.ScaleCode, nb, 1), dtypes.Int32)
	dyn := Gather(ConvertDType(Const(g, DynamicCode[:]), in.ScaleAbsmax.DType()), code) // [nb]
	group := DivScalar(Iota(g, shapes.Make(dtypes.Int32, nb, 1), 0), DoubleQuantBlockSize)
	absmax := Gather(Reshape(in.ScaleAbsmax, -1), group) // [nb]
	return Add(Mul(dyn, absmax), Reshape(in.ScaleOffset, 1))
}

// Part names of a quantized weight's variables, in GraphTensors order.
const (
	PartData        = "qdata"
	PartScale       = "qscale"
	PartScaleCode   = "qscale_code"
	PartScaleAbsmax = "qscale_absmax"
	PartScaleOffset = "qscale_offset"
)

// GraphTensors returns the stored parts as GoMLX tensors (data int8 or uint8, scales
// float32), keyed by part name, for a loader to hold as frozen variables.
func (t *Tensor) GraphTensors() map[string]*tensors.Tensor {
	out := map[string]*tensors.Tensor{}
	if t.Method == Int8 || t.Method == Q8_0 {
		v := make([]int8, len(t.Data))
		for i, b := range t.Data {
			v[i] = int8(b)
		}
		out[PartData] = tensors.FromFlatDataAndDimensions(v, len(v))
	} else {
		out[PartData] = tensors.FromFlatDataAndDimensions(append([]uint8(nil), t.Data...), len(t.Data))
	}
	if t.DoubleQuant() {
		out[PartScaleCode] = tensors.FromFlatDataAndDimensions(append([]uint8(nil), t.ScaleCodes...), len(t.ScaleCodes))
		out[PartScaleAbsmax] = tensors.FromFlatDataAndDimensions(append([]float32(nil), t.ScaleAbsmax...), len(t.ScaleAbsmax))
		out[PartScaleOffset] = tensors.FromFlatDataAndDimensions([]float32{t.ScaleOffset}, 1)
	} else {
		out[PartScale] = tensors.FromFlatDataAndDimensions(append([]float32(nil), t.Scales...), len(t.Scales))
	}
	return out
}

// InputsFromParts builds GraphInputs from part nodes keyed as GraphTensors keys them.
func InputsFromParts(parts map[string]*Node) GraphInputs {
	return GraphInputs{Data: parts[PartData], Scale: parts[PartScale], ScaleCode: parts[PartScaleCode],
		ScaleAbsmax: parts[PartScaleAbsmax], ScaleOffset: parts[PartScaleOffset]}
}

// nf4PairTable maps a packed byte to its two NF4 values (high nibble first).
func nf4PairTable() [][]float32 {
	t := make([][]float32, 256)
	for b := range t {
		t[b] = []float32{NF4Code[b>>4], NF4Code[b&0x0f]}
	}
	return t
}
