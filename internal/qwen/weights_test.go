package qwen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/quant"
	"github.com/acdtcm/acdtcm/internal/safetensors"
)

// storedValues encodes n deterministic values, some far outside bfloat16's precision, as
// raw little-endian elements of dtype.
func storedValues(n int, dtype safetensors.DType) []byte {
	vals := make([]float32, n)
	for i := range vals {
		vals[i] = float32(math.Sin(float64(i)*0.7)) * float32(1+i%17) / 3
	}
	var buf bytes.Buffer
	for _, v := range vals {
		switch dtype {
		case safetensors.F32:
			_ = binary.Write(&buf, binary.LittleEndian, v)
		case safetensors.BF16:
			buf.Write(safetensors.Float32ToBF16([]float32{v}))
		case safetensors.F16:
			_ = binary.Write(&buf, binary.LittleEndian, float32ToHalf(v))
		}
	}
	return buf.Bytes()
}

// float32ToHalf rounds toward zero to IEEE binary16 (enough for test inputs in range).
func float32ToHalf(f float32) uint16 {
	b := math.Float32bits(f)
	sign := uint16(b>>16) & 0x8000
	exp := int(b>>23&0xff) - 127 + 15
	if exp <= 0 {
		return sign
	}
	return sign | uint16(exp)<<10 | uint16(b>>13&0x3ff)
}

// TestDecodeWeight: decoding stored bytes straight into a weight's memory gives what the
// float32 route (ToFloat32, then rounding to bfloat16) gives, for every stored dtype, both
// weight dtypes, and sizes around the bfloat16 conversion's block.
func TestDecodeWeight(t *testing.T) {
	for _, stored := range []safetensors.DType{safetensors.F32, safetensors.BF16, safetensors.F16} {
		for _, dtype := range []dtypes.DType{dtypes.Float32, dtypes.BFloat16} {
			for _, n := range []int{0, 1, 5, 1<<16 + 7} {
				t.Run(fmt.Sprintf("%s-to-%s-%d", stored, dtype, n), func(t *testing.T) {
					raw := storedValues(n, stored)
					ref, err := safetensors.ToFloat32(raw, stored)
					if err != nil {
						t.Fatal(err)
					}
					want := make([]byte, n*4)
					for i, v := range ref {
						binary.LittleEndian.PutUint32(want[4*i:], math.Float32bits(v))
					}
					if dtype == dtypes.BFloat16 {
						want = safetensors.Float32ToBF16(ref)
					}
					got := make([]byte, len(want))
					for _, direct := range []bool{true, false} {
						loadBF16Direct = direct
						err := decodeWeight(got, raw, stored, dtype)
						loadBF16Direct = true
						if err != nil {
							t.Fatal(err)
						}
						if !bytes.Equal(got, want) {
							t.Fatalf("direct=%v: decoded bytes differ from the float32 route", direct)
						}
					}
				})
			}
		}
	}
	if err := decodeWeight(make([]byte, 4), []byte{1, 2}, safetensors.I8, dtypes.Float32); err == nil {
		t.Error("I8 weights decoded into float32 without an error")
	}
	if err := decodeWeight(make([]byte, 8), storedValues(3, safetensors.F32), safetensors.F32, dtypes.Float32); err == nil {
		t.Error("3 stored values decoded into a 2-value weight without an error")
	}
}

// TestLoadPlacesWeightsOnBackend: a model loaded for a backend that shares host memory
// (simplego) holds every weight, float or quantized, in the backend's buffers and no host
// copy of it, with the checkpoint's values; LoadWeights without a backend keeps host tensors
// with the same values.
func TestLoadPlacesWeightsOnBackend(t *testing.T) {
	root := t.TempDir()
	src, qdir := filepath.Join(root, "f32"), filepath.Join(root, "int8")
	if _, err := InitCheckpoint(src, InitOptions{Preset: PresetTiny, Seed: 21}); err != nil {
		t.Fatal(err)
	}
	if _, err := quant.ConvertCheckpoint(src, qdir, quant.ConvertOptions{Method: quant.Int8, Canonical: CanonicalName}); err != nil {
		t.Fatal(err)
	}
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	ckpt, err := safetensors.OpenCheckpoint(src)
	if err != nil {
		t.Fatal(err)
	}
	defer ckpt.Close()
	for _, dir := range []string{src, qdir} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			m, err := LoadWith(dir, backend, LoadOptions{})
			if err != nil {
				t.Fatal(err)
			}
			host := context.New()
			if err := LoadWeights(host, dir, m.Config); err != nil {
				t.Fatal(err)
			}
			n, quantized := 0, 0
			for v := range m.Ctx.IterVariables() {
				value := v.MustValue()
				if value.HasLocal() || !value.IsOnDevice(0) {
					t.Fatalf("%s/%s: host copy %v, on the backend %v; want only the backend's buffer", v.Scope(), v.Name(), value.HasLocal(), value.IsOnDevice(0))
				}
				hv := host.GetVariableByScopeAndName(v.Scope(), v.Name())
				if hv == nil || !hv.MustValue().HasLocal() {
					t.Fatalf("%s/%s: LoadWeights without a backend gave no host tensor", v.Scope(), v.Name())
				}
				if !bytes.Equal(tensorBytes(t, value), tensorBytes(t, hv.MustValue())) {
					t.Fatalf("%s/%s: values on the backend differ from the host load", v.Scope(), v.Name())
				}
				if value.Shape().DType != dtypes.Float32 {
					quantized++
				}
				n++
			}
			if dir == qdir && quantized == 0 {
				t.Fatal("the int8 checkpoint loaded no packed weight")
			}
			checked := 0
			for _, spec := range m.Config.ExpectedTensors() {
				scope, name := scopeAndName(spec.Name)
				v := m.Ctx.GetVariableByScopeAndName(scope, name)
				if v == nil || v.Shape().DType != dtypes.Float32 {
					continue // quantized: compared with the host load above
				}
				want, err := ckpt.Float32(spec.Name, spec.Shape)
				if err != nil {
					t.Fatal(err)
				}
				got, err := tensors.CopyFlatData[float32](v.MustValue())
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(got, want) {
					t.Fatalf("%s: loaded values differ from the checkpoint's", spec.Name)
				}
				checked++
			}
			t.Logf("%s: %d variables on the backend (%d packed), %d float weights equal to the checkpoint", filepath.Base(dir), n, quantized, checked)
			if checked == 0 {
				t.Fatal("no float weight checked")
			}
		})
	}
}
