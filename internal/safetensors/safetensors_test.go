package safetensors

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// handMade is a safetensors file spelled byte by byte from the format description, so the
// reader is not only tested against the writer.
func handMade() []byte {
	header := `{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]}}`
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, uint64(len(header)))
	buf.WriteString(header)
	binary.Write(&buf, binary.LittleEndian, []float32{1.5, -2})
	binary.Write(&buf, binary.LittleEndian, []uint16{0x3f80, 0xc040}) // bf16 1.0, -3.0
	return buf.Bytes()
}

func TestReadHandMade(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.safetensors")
	os.WriteFile(path, handMade(), 0o644)
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Metadata["format"] != "pt" || strings.Join(f.Names(), ",") != "a,b" {
		t.Fatalf("metadata %v names %v", f.Metadata, f.Names())
	}
	a, _, err := f.Float32("a")
	if err != nil || a[0] != 1.5 || a[1] != -2 {
		t.Errorf("a = %v, %v", a, err)
	}
	b, info, err := f.Float32("b")
	if err != nil || b[0] != 1 || b[1] != -3 || info.NumElements() != 2 {
		t.Errorf("b = %v, %v", b, err)
	}
	if _, _, err := f.Float32("c"); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), path) {
		t.Errorf("missing tensor error %v", err)
	}
}

func TestCorruptFiles(t *testing.T) {
	good := handMade()
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "truncated"},
		{"header longer than file", good[:20], "exceeds the file"},
		{"data truncated", good[:len(good)-2], "truncated file"},
		{"not json", append([]byte{3, 0, 0, 0, 0, 0, 0, 0}, "abc"...), "bad safetensors header"},
		{"wrong byte count", rewriteHeader(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, 8), "want 12"},
		{"unknown dtype", rewriteHeader(`{"a":{"dtype":"Q4","shape":[1],"data_offsets":[0,1]}}`, 1), "unsupported dtype"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "bad.safetensors")
			os.WriteFile(path, tc.data, 0o644)
			_, err := Open(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("err = %v, want it to name %s and say %q", err, path, tc.want)
			}
		})
	}
}

func rewriteHeader(header string, dataLen int) []byte {
	var buf bytes.Buffer
	binary.Write(&buf, binary.LittleEndian, uint64(len(header)))
	buf.WriteString(header)
	buf.Write(make([]byte, dataLen))
	return buf.Bytes()
}

func TestWriteReadRoundTripAndAlignment(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.safetensors")
	vals := []float32{0, 1, -1, 3.14159, 1e-8, 65504}
	tensors := []Tensor{
		F32Tensor("z.weight", []int{2, 3}, vals),
		{Name: "a.bf16", DType: BF16, Shape: []int{6}, Data: Float32ToBF16(vals)},
		{Name: "scalar", DType: I64, Shape: nil, Data: make([]byte, 8)},
	}
	if err := WriteFile(path, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if n := binary.LittleEndian.Uint64(raw); (8+n)%8 != 0 {
		t.Errorf("data section starts at %d, not 8-byte aligned", 8+n)
	}
	f, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, _, _ := f.Float32("z.weight")
	for i := range vals {
		if got[i] != vals[i] {
			t.Errorf("f32[%d] = %v, want %v", i, got[i], vals[i])
		}
	}
	bf, _, _ := f.Float32("a.bf16")
	for i, v := range vals {
		if rel := math.Abs(float64(bf[i]-v)) / math.Max(math.Abs(float64(v)), 1e-30); rel > 1.0/256 {
			t.Errorf("bf16[%d] = %v, want ~%v", i, bf[i], v)
		}
	}
	if err := WriteFile(path, []Tensor{{Name: "x", DType: F32, Shape: []int{2}, Data: make([]byte, 4)}}, nil); err == nil {
		t.Error("writing a tensor whose data does not match its shape should fail")
	}
}

func TestHalfAndBF16Conversion(t *testing.T) {
	tests := []struct {
		bits uint16
		want float32
	}{
		{0x3c00, 1}, {0xc000, -2}, {0x7bff, 65504}, {0x0001, float32(math.Pow(2, -24))}, {0x8000, float32(math.Copysign(0, -1))}, {0x3555, 0.333251953125},
	}
	for _, tc := range tests {
		if got := halfToFloat32(tc.bits); got != tc.want {
			t.Errorf("half %#04x = %v, want %v", tc.bits, got, tc.want)
		}
	}
	// Round to nearest even: 1 + 2^-8 is halfway between bf16 1 and 1+2^-7 and rounds to 1.
	if got := Float32ToBF16([]float32{1 + 1.0/256}); binary.LittleEndian.Uint16(got) != 0x3f80 {
		t.Errorf("bf16(1+2^-8) = %#04x, want 0x3f80", binary.LittleEndian.Uint16(got))
	}
}

func TestShardedCheckpoint(t *testing.T) {
	dir := t.TempDir()
	WriteFile(filepath.Join(dir, "model-00001-of-00002.safetensors"), []Tensor{F32Tensor("a", []int{1}, []float32{1})}, nil)
	WriteFile(filepath.Join(dir, "model-00002-of-00002.safetensors"), []Tensor{F32Tensor("b", []int{2}, []float32{2, 3})}, nil)
	os.WriteFile(filepath.Join(dir, IndexName), []byte(`{"metadata":{},"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}}`), 0o644)
	c, err := OpenCheckpoint(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := strings.Join(c.Names(), ","); got != "a,b" {
		t.Errorf("names %s", got)
	}
	if b, err := c.Float32("b", []int{2}); err != nil || b[1] != 3 {
		t.Errorf("b = %v, %v", b, err)
	}
	if _, err := c.Float32("b", []int{3}); err == nil || !strings.Contains(err.Error(), "shape") {
		t.Errorf("wrong shape error %v", err)
	}
	if _, err := c.Float32("missing", nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("missing error %v", err)
	}
	os.WriteFile(filepath.Join(dir, IndexName), []byte(`{"weight_map":{"a":"gone.safetensors"}}`), 0o644)
	if _, err := OpenCheckpoint(dir); err == nil || !strings.Contains(err.Error(), "gone.safetensors") {
		t.Errorf("missing shard error %v", err)
	}
}

// TestWriteStreamMatchesWrite: streaming the same tensors gives the same bytes as Write, the
// data callback sees them in file (name) order, and a wrong byte count is an error.
func TestWriteStreamMatchesWrite(t *testing.T) {
	vals := []float32{1, 2, 3, 4, 5, 6}
	tensors := []Tensor{
		F32Tensor("b.weight", []int{2, 3}, vals),
		{Name: "a.bf16", DType: BF16, Shape: []int{6}, Data: Float32ToBF16(vals)},
		{Name: "c", DType: U8, Shape: []int{3}, Data: []byte{7, 8, 9}},
	}
	var want, got bytes.Buffer
	if err := Write(&want, tensors, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	byName := map[string][]byte{}
	heads := make([]Tensor, len(tensors))
	for i, ts := range tensors {
		byName[ts.Name] = ts.Data
		heads[i] = Tensor{Name: ts.Name, DType: ts.DType, Shape: ts.Shape}
	}
	var order []string
	err := WriteStream(&got, heads, map[string]string{"format": "pt"}, func(ts Tensor) ([]byte, error) {
		order = append(order, ts.Name)
		return byName[ts.Name], nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Bytes(), want.Bytes()) {
		t.Error("WriteStream and Write wrote different bytes")
	}
	if strings.Join(order, ",") != "a.bf16,b.weight,c" {
		t.Errorf("data requested in order %v, want name order", order)
	}
	err = WriteStream(io.Discard, heads, nil, func(ts Tensor) ([]byte, error) { return []byte{1}, nil })
	if err == nil || !strings.Contains(err.Error(), "a.bf16") {
		t.Errorf("short data: err = %v, want an error naming the tensor", err)
	}
}
