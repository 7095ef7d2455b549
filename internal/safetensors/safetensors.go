// Package safetensors reads and writes the safetensors format: an 8-byte little-endian
// header length, a JSON header mapping tensor names to dtype, shape and byte offsets, then
// the raw data. Files are memory-mapped read-only, so loading a checkpoint does not hold a
// second copy of the weights; sharded checkpoints are opened through their index file.
package safetensors

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"sort"
)

// DType is a safetensors element type name.
type DType string

// Element types acdtcm reads and writes.
const (
	F32  DType = "F32"
	F16  DType = "F16"
	BF16 DType = "BF16"
	F64  DType = "F64"
	I64  DType = "I64"
	I32  DType = "I32"
	I8   DType = "I8"
	U8   DType = "U8"
)

// Size is the number of bytes of one element.
func (d DType) Size() int {
	switch d {
	case F64, I64:
		return 8
	case F32, I32:
		return 4
	case F16, BF16:
		return 2
	case I8, U8:
		return 1
	}
	return 0
}

// TensorInfo describes one tensor of a file.
type TensorInfo struct {
	Name    string
	DType   DType
	Shape   []int
	Offsets [2]int64 // byte range within the data section
}

// NumElements is the product of the shape.
func (t TensorInfo) NumElements() int {
	n := 1
	for _, d := range t.Shape {
		n *= d
	}
	return n
}

// File is an open, memory-mapped safetensors file.
type File struct {
	Path     string
	Metadata map[string]string
	tensors  map[string]TensorInfo
	data     []byte // the data section (a view of the mapping)
	mapping  []byte
	mapped   bool // mapping is a file mapping (Open on unix), not memory of the Go heap
}

type headerEntry struct {
	DType       DType   `json:"dtype"`
	Shape       []int   `json:"shape"`
	DataOffsets []int64 `json:"data_offsets"`
}

// maxHeader bounds the JSON header (real checkpoints stay far below).
const maxHeader = 100 << 20

// Open memory-maps a safetensors file and validates its header against the file size.
func Open(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("stat %s: %w", path, err)
	}
	size := st.Size()
	if size < 8 {
		return nil, fmt.Errorf("%s: truncated safetensors file (%d bytes, no header)", path, size)
	}
	mapping, err := mmapFile(f, size)
	if err != nil {
		return nil, fmt.Errorf("map %s: %w", path, err)
	}
	sf, err := parse(path, mapping)
	if err != nil {
		munmap(mapping)
		return nil, err
	}
	sf.mapped = mmapped
	return sf, nil
}

// Parse reads a safetensors file held in memory (no mapping).
func Parse(name string, buf []byte) (*File, error) { return parse(name, buf) }

func parse(path string, buf []byte) (*File, error) {
	if len(buf) < 8 {
		return nil, fmt.Errorf("%s: truncated safetensors file (%d bytes, no header)", path, len(buf))
	}
	n := binary.LittleEndian.Uint64(buf[:8])
	if n > maxHeader || int64(n) > int64(len(buf))-8 {
		return nil, fmt.Errorf("%s: header length %d exceeds the file (%d bytes): truncated or not safetensors", path, n, len(buf))
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(buf[8:8+n], &raw); err != nil {
		return nil, fmt.Errorf("%s: bad safetensors header: %w", path, err)
	}
	sf := &File{Path: path, tensors: map[string]TensorInfo{}, data: buf[8+n:], mapping: buf}
	for name, msg := range raw {
		if name == "__metadata__" {
			if err := json.Unmarshal(msg, &sf.Metadata); err != nil {
				return nil, fmt.Errorf("%s: bad __metadata__: %w", path, err)
			}
			continue
		}
		var e headerEntry
		if err := json.Unmarshal(msg, &e); err != nil {
			return nil, fmt.Errorf("%s: tensor %s: bad header entry: %w", path, name, err)
		}
		info := TensorInfo{Name: name, DType: e.DType, Shape: e.Shape}
		if e.DType.Size() == 0 {
			return nil, fmt.Errorf("%s: tensor %s: unsupported dtype %q", path, name, e.DType)
		}
		if len(e.DataOffsets) != 2 || e.DataOffsets[0] < 0 || e.DataOffsets[1] < e.DataOffsets[0] {
			return nil, fmt.Errorf("%s: tensor %s: bad data_offsets %v", path, name, e.DataOffsets)
		}
		info.Offsets = [2]int64{e.DataOffsets[0], e.DataOffsets[1]}
		if want := int64(info.NumElements() * e.DType.Size()); info.Offsets[1]-info.Offsets[0] != want {
			return nil, fmt.Errorf("%s: tensor %s: %d bytes for shape %v of %s (want %d)", path, name, info.Offsets[1]-info.Offsets[0], e.Shape, e.DType, want)
		}
		if info.Offsets[1] > int64(len(sf.data)) {
			return nil, fmt.Errorf("%s: tensor %s ends at byte %d beyond the data section (%d bytes): truncated file", path, name, info.Offsets[1], len(sf.data))
		}
		sf.tensors[name] = info
	}
	return sf, nil
}

// Close unmaps the file; tensors read from it must not be used afterwards.
func (f *File) Close() error {
	if f.mapping == nil {
		return nil
	}
	err := munmap(f.mapping)
	f.mapping, f.data = nil, nil
	return err
}

// Names lists the tensor names, sorted.
func (f *File) Names() []string {
	names := make([]string, 0, len(f.tensors))
	for n := range f.tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Info describes a tensor.
func (f *File) Info(name string) (TensorInfo, bool) {
	t, ok := f.tensors[name]
	return t, ok
}

// ErrNotFound is wrapped by errors about missing tensors.
var ErrNotFound = errors.New("tensor not found")

// Bytes returns the raw little-endian bytes of a tensor (a view of the mapping).
func (f *File) Bytes(name string) ([]byte, TensorInfo, error) {
	t, ok := f.tensors[name]
	if !ok {
		return nil, t, fmt.Errorf("%s: %s: %w", f.Path, name, ErrNotFound)
	}
	return f.data[t.Offsets[0]:t.Offsets[1]], t, nil
}

// Release tells the system that a tensor's bytes will not be read again soon: on Linux the
// pages of the file mapping that hold it leave the process's resident memory (they stay in
// the page cache, and reading them again maps them back). A loader that has copied a tensor
// calls it so that a multi-gigabyte checkpoint is not counted twice in its RSS. It is a no-op
// for files read into memory (Parse, or systems without mmap) and after Close.
func (f *File) Release(name string) error {
	t, ok := f.tensors[name]
	if !ok {
		return fmt.Errorf("%s: %s: %w", f.Path, name, ErrNotFound)
	}
	if !f.mapped || f.mapping == nil || t.Offsets[1] == t.Offsets[0] {
		return nil
	}
	// The mapping starts on a page boundary; widen the tensor's byte range to whole pages.
	// A page shared with a neighbouring tensor is only dropped from the page tables, so the
	// neighbour is still read correctly (from the page cache) if it is used later.
	base := int64(len(f.mapping) - len(f.data))
	page := int64(os.Getpagesize())
	start := (base + t.Offsets[0]) / page * page
	end := min((base+t.Offsets[1]+page-1)/page*page, int64(len(f.mapping)))
	if err := releasePages(f.mapping[start:end]); err != nil {
		return fmt.Errorf("%s: release %s: %w", f.Path, name, err)
	}
	return nil
}

// Float32 returns a tensor converted to float32 (from F32, BF16, F16 or F64).
func (f *File) Float32(name string) ([]float32, TensorInfo, error) {
	raw, t, err := f.Bytes(name)
	if err != nil {
		return nil, t, err
	}
	out, err := ToFloat32(raw, t.DType)
	if err != nil {
		return nil, t, fmt.Errorf("%s: %s: %w", f.Path, name, err)
	}
	return out, t, nil
}

// ToFloat32 converts raw little-endian elements of dtype to float32.
func ToFloat32(raw []byte, dtype DType) ([]float32, error) {
	out := make([]float32, len(raw)/max(dtype.Size(), 1))
	if err := DecodeFloat32(out, raw, dtype); err != nil {
		return nil, err
	}
	return out, nil
}

// DecodeFloat32 converts raw little-endian elements of dtype (F32, BF16, F16 or F64) into
// dst, which must hold exactly len(raw)/dtype.Size() values: the allocation-free form of
// ToFloat32, for filling memory that is already in place (a backend's buffer).
func DecodeFloat32(dst []float32, raw []byte, dtype DType) error {
	if size := dtype.Size(); size != 0 && len(raw) != len(dst)*size {
		return fmt.Errorf("cannot convert %d bytes of %s into %d float32 values", len(raw), dtype, len(dst))
	}
	switch dtype {
	case F32:
		for i := range dst {
			dst[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[i*4:]))
		}
	case BF16:
		for i := range dst {
			dst[i] = math.Float32frombits(uint32(binary.LittleEndian.Uint16(raw[i*2:])) << 16)
		}
	case F16:
		for i := range dst {
			dst[i] = halfToFloat32(binary.LittleEndian.Uint16(raw[i*2:]))
		}
	case F64:
		for i := range dst {
			dst[i] = float32(math.Float64frombits(binary.LittleEndian.Uint64(raw[i*8:])))
		}
	default:
		return fmt.Errorf("cannot convert %s to float32", dtype)
	}
	return nil
}

// halfToFloat32 converts an IEEE 754 binary16 value.
func halfToFloat32(h uint16) float32 {
	sign := uint32(h>>15) << 31
	exp := uint32(h>>10) & 0x1f
	frac := uint32(h) & 0x3ff
	switch {
	case exp == 0 && frac == 0:
		return math.Float32frombits(sign)
	case exp == 0: // subnormal: frac * 2^-24
		v := float32(float64(frac) * math.Pow(2, -24))
		if sign != 0 {
			v = -v
		}
		return v
	case exp == 31:
		return math.Float32frombits(sign | 0x7f800000 | frac<<13)
	}
	return math.Float32frombits(sign | (exp+112)<<23 | frac<<13)
}

// Float32ToBF16 rounds float32 values to bfloat16 (round to nearest even) as raw bytes.
func Float32ToBF16(values []float32) []byte {
	out := make([]byte, len(values)*2)
	PutBF16(out, values)
	return out
}

// PutBF16 writes values rounded to bfloat16 (round to nearest even) into dst, two
// little-endian bytes each; dst must hold 2*len(values) bytes.
func PutBF16(dst []byte, values []float32) {
	for i, v := range values {
		bits := math.Float32bits(v)
		if v != v { // NaN stays NaN
			binary.LittleEndian.PutUint16(dst[i*2:], uint16(bits>>16)|0x40)
			continue
		}
		rounding := uint32(0x7fff) + (bits>>16)&1
		binary.LittleEndian.PutUint16(dst[i*2:], uint16((bits+rounding)>>16))
	}
}
