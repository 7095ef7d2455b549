package safetensors

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"sort"

	"github.com/acdtcm/acdtcm/internal/fsutil"
)

// Tensor is a named tensor to write.
type Tensor struct {
	Name  string
	DType DType
	Shape []int
	Data  []byte // little-endian elements
}

// F32Tensor builds an F32 tensor from float32 values.
func F32Tensor(name string, shape []int, values []float32) Tensor {
	data := make([]byte, len(values)*4)
	for i, v := range values {
		binary.LittleEndian.PutUint32(data[i*4:], math.Float32bits(v))
	}
	return Tensor{Name: name, DType: F32, Shape: shape, Data: data}
}

// Write encodes tensors (sorted by name) and metadata as safetensors.
func Write(w io.Writer, tensors []Tensor, metadata map[string]string) error {
	sorted := append([]Tensor(nil), tensors...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var offset int64
	for _, t := range sorted {
		if _, dup := header[t.Name]; dup || t.Name == "__metadata__" {
			return fmt.Errorf("duplicate or reserved tensor name %q", t.Name)
		}
		info := TensorInfo{Shape: t.Shape}
		if want := info.NumElements() * t.DType.Size(); want != len(t.Data) || t.DType.Size() == 0 {
			return fmt.Errorf("tensor %s: %d bytes for shape %v of %s (want %d)", t.Name, len(t.Data), t.Shape, t.DType, want)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		header[t.Name] = headerEntry{DType: t.DType, Shape: shape, DataOffsets: []int64{offset, offset + int64(len(t.Data))}}
		offset += int64(len(t.Data))
	}
	hj, err := json.Marshal(header)
	if err != nil {
		return fmt.Errorf("encode safetensors header: %w", err)
	}
	for len(hj)%8 != 0 { // keep the data section 8-byte aligned, as the reference writer does
		hj = append(hj, ' ')
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hj)))
	bw.Write(lenBuf[:])
	bw.Write(hj)
	for _, t := range sorted {
		if _, err := bw.Write(t.Data); err != nil {
			return err
		}
	}
	return bw.Flush()
}

// WriteFile writes tensors to path atomically (temp file + rename).
func WriteFile(path string, tensors []Tensor, metadata map[string]string) error {
	return fsutil.WriteAtomic(path, 0o644, func(w io.Writer) error {
		return Write(w, tensors, metadata)
	})
}
