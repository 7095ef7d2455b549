package qwen

import (
	"bytes"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

func tensorsFloat32(t *tensors.Tensor) ([]float32, error) { return tensors.CopyFlatData[float32](t) }
