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
	for _, t := range tensors {
		info := TensorInfo{Shape: t.Shape}
		if want := info.NumElements() * t.DType.Size(); want != len(t.Data) || t.DType.Size() == 0 {
			return fmt.Errorf("tensor %s: %d bytes for shape %v of %s (want %d)", t.Name, len(t.Data), t.Shape, t.DType, want)
		}
	}
	return WriteStream(w, tensors, metadata, func(t Tensor) ([]byte, error) { return t.Data, nil })
}

// WriteStream writes a safetensors file whose tensors are produced one at a time: the header
// is built from the names, dtypes and shapes of heads (their Data is ignored), then data is
// called for each tensor in file order (sorted by name) and must return exactly its bytes.
// Only one tensor's data needs to exist at a time, so a file larger than memory can be
// written (acdtcm model init at 3B scale).
func WriteStream(w io.Writer, heads []Tensor, metadata map[string]string, data func(t Tensor) ([]byte, error)) error {
	sorted := append([]Tensor(nil), heads...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	header := map[string]any{}
	if len(metadata) > 0 {
		header["__metadata__"] = metadata
	}
	var offset int64
	sizes := make([]int64, len(sorted))
	for i, t := range sorted {
		if _, dup := header[t.Name]; dup || t.Name == "__metadata__" {
			return fmt.Errorf("duplicate or reserved tensor name %q", t.Name)
		}
		if t.DType.Size() == 0 {
			return fmt.Errorf("tensor %s: unsupported dtype %q", t.Name, t.DType)
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{}
		}
		sizes[i] = int64(TensorInfo{Shape: t.Shape}.NumElements() * t.DType.Size())
		header[t.Name] = headerEntry{DType: t.DType, Shape: shape, DataOffsets: []int64{offset, offset + sizes[i]}}
		offset += sizes[i]
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
	for i, t := range sorted {
		b, err := data(t)
		if err != nil {
			return fmt.Errorf("tensor %s: %w", t.Name, err)
		}
		if int64(len(b)) != sizes[i] {
			return fmt.Errorf("tensor %s: %d bytes for shape %v of %s (want %d)", t.Name, len(b), t.Shape, t.DType, sizes[i])
		}
		if _, err := bw.Write(b); err != nil {
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

// WriteStreamFile is WriteStream to path, atomically (temp file + rename).
func WriteStreamFile(path string, heads []Tensor, metadata map[string]string, data func(t Tensor) ([]byte, error)) error {
	return fsutil.WriteAtomic(path, 0o644, func(w io.Writer) error {
		return WriteStream(w, heads, metadata, data)
	})
}
