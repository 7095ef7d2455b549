package grader

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/fsutil"
)

// Checkpoint file layout (little-endian):
//
//	magic "ACDTCMGR" | uint32 format version | uint64 header length | JSON header | tensor bytes
//
// The JSON header holds the model configuration, free-form training state and metrics, and
// for each tensor its scoped name, dtype, shape and byte range in the data section.
const (
	checkpointMagic   = "ACDTCMGR"
	checkpointVersion = 1
)

// TensorEntry describes one stored tensor.
type TensorEntry struct {
	Name   string `json:"name"` // GoMLX scope and name, e.g. /model/stem/weights
	DType  string `json:"dtype"`
	DTypeN int32  `json:"dtype_n"`
	Shape  []int  `json:"shape"`
	Offset int64  `json:"offset"`
	Bytes  int64  `json:"bytes"`
}

// CheckpointHeader is the JSON header of a checkpoint.
type CheckpointHeader struct {
	FormatVersion int                `json:"format_version"`
	Model         ModelConfig        `json:"model"`
	State         json.RawMessage    `json:"state,omitempty"`       // training state (TrainState) for resume
	Metrics       map[string]float64 `json:"metrics,omitempty"`     // metrics of the saved weights
	Calibration   *Calibration       `json:"calibration,omitempty"` // count -> grade model fitted after training
	Tensors       []TensorEntry      `json:"tensors"`
}

// SaveCheckpoint writes every variable of ctx (or, with onlyModel, those under the model
// scope, which is what inference needs) atomically to path.
func SaveCheckpoint(path string, ctx *context.Context, mc ModelConfig, state any, metrics map[string]float64, onlyModel bool) error {
	ck, err := NewCheckpoint(ctx, mc, state, metrics, onlyModel)
	if err != nil {
		return fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return ck.Save(path)
}

// NewCheckpoint builds in memory the checkpoint SaveCheckpoint writes: every variable of ctx
// (with onlyModel, those under the model scope), the model configuration, the training state
// and metrics.
func NewCheckpoint(ctx *context.Context, mc ModelConfig, state any, metrics map[string]float64, onlyModel bool) (*Checkpoint, error) {
	hdr := CheckpointHeader{FormatVersion: checkpointVersion, Model: mc, Metrics: metrics}
	if state != nil {
		b, err := json.Marshal(state)
		if err != nil {
			return nil, fmt.Errorf("encode state: %w", err)
		}
		hdr.State = b
	}
	var vars []*context.Variable
	for v := range ctx.IterVariables() {
		if onlyModel && !isModelVar(v.ScopeAndName()) {
			continue
		}
		vars = append(vars, v)
	}
	sort.Slice(vars, func(i, j int) bool { return vars[i].ScopeAndName() < vars[j].ScopeAndName() })
	var data bytes.Buffer
	for _, v := range vars {
		t, err := v.Value()
		if err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.ScopeAndName(), err)
		}
		start := int64(data.Len())
		if err := t.ConstBytes(func(b []byte) { data.Write(b) }); err != nil {
			return nil, fmt.Errorf("variable %s: %w", v.ScopeAndName(), err)
		}
		sh := t.Shape()
		hdr.Tensors = append(hdr.Tensors, TensorEntry{Name: v.ScopeAndName(), DType: sh.DType.String(), DTypeN: int32(sh.DType),
			Shape: append([]int{}, sh.Dimensions...), Offset: start, Bytes: int64(data.Len()) - start})
	}
	return &Checkpoint{Header: hdr, data: data.Bytes()}, nil
}

// writeCheckpointBytes writes the checkpoint framing around a JSON header and tensor data.
func writeCheckpointBytes(w io.Writer, header, data []byte) error {
	bw := bufio.NewWriter(w)
	bw.WriteString(checkpointMagic)
	binary.Write(bw, binary.LittleEndian, uint32(checkpointVersion))
	binary.Write(bw, binary.LittleEndian, uint64(len(header)))
	bw.Write(header)
	bw.Write(data)
	return bw.Flush()
}

func isModelVar(name string) bool {
	return len(name) >= len("/"+modelScope) && name[:len("/"+modelScope)] == "/"+modelScope
}

// Checkpoint is a decoded checkpoint file.
type Checkpoint struct {
	Header CheckpointHeader
	data   []byte
}

// ReadCheckpoint reads a checkpoint file.
func ReadCheckpoint(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read checkpoint: %w", err)
	}
	ck, err := ParseCheckpoint(b)
	if err != nil {
		return nil, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	return ck, nil
}

// ParseCheckpoint decodes checkpoint bytes (e.g. embedded weights).
func ParseCheckpoint(b []byte) (*Checkpoint, error) {
	pre := len(checkpointMagic) + 12
	if len(b) < pre || string(b[:len(checkpointMagic)]) != checkpointMagic {
		return nil, errors.New("not an acdtcm grader checkpoint (bad magic)")
	}
	ver := binary.LittleEndian.Uint32(b[len(checkpointMagic):])
	if ver != checkpointVersion {
		return nil, fmt.Errorf("unsupported checkpoint format version %d (want %d)", ver, checkpointVersion)
	}
	hl := binary.LittleEndian.Uint64(b[len(checkpointMagic)+4:])
	if uint64(len(b)-pre) < hl {
		return nil, errors.New("truncated checkpoint header")
	}
	ck := &Checkpoint{data: b[pre+int(hl):]}
	if err := json.Unmarshal(b[pre:pre+int(hl)], &ck.Header); err != nil {
		return nil, fmt.Errorf("decode checkpoint header: %w", err)
	}
	for _, t := range ck.Header.Tensors {
		if t.Offset < 0 || t.Bytes < 0 || t.Offset+t.Bytes > int64(len(ck.data)) {
			return nil, fmt.Errorf("tensor %s: byte range out of file (truncated checkpoint?)", t.Name)
		}
	}
	return ck, nil
}

// Save writes the checkpoint (its header as it is now, e.g. with a calibration added, and
// its tensors) atomically to path.
func (c *Checkpoint) Save(path string) error {
	hj, err := json.Marshal(c.Header)
	if err != nil {
		return fmt.Errorf("checkpoint %s: encode header: %w", path, err)
	}
	return fsutil.WriteAtomic(path, 0o644, func(w io.Writer) error {
		return writeCheckpointBytes(w, hj, c.data)
	})
}

// Tensor returns a stored tensor by its scoped name.
func (c *Checkpoint) Tensor(name string) (*tensors.Tensor, error) {
	for _, e := range c.Header.Tensors {
		if e.Name != name {
			continue
		}
		t := tensors.FromShape(shapes.Make(dtypes.DType(e.DTypeN), e.Shape...))
		var err error
		if mbErr := t.MutableBytes(func(dst []byte) {
			if int64(len(dst)) != e.Bytes {
				err = fmt.Errorf("tensor %s: %d bytes stored, shape %v needs %d", e.Name, e.Bytes, e.Shape, len(dst))
				return
			}
			copy(dst, c.data[e.Offset:e.Offset+e.Bytes])
		}); mbErr != nil {
			return nil, mbErr
		}
		if err != nil {
			return nil, err
		}
		return t, nil
	}
	return nil, fmt.Errorf("tensor %s not in checkpoint", name)
}

// Restore creates or overwrites the variables of ctx with every tensor of the checkpoint.
func (c *Checkpoint) Restore(ctx *context.Context) error {
	for _, e := range c.Header.Tensors {
		t, err := c.Tensor(e.Name)
		if err != nil {
			return err
		}
		scope, name := splitScopeName(e.Name)
		if v := ctx.GetVariableByScopeAndName(scope, name); v != nil {
			if !v.Shape().Equal(t.Shape()) {
				return fmt.Errorf("variable %s: checkpoint shape %s, model shape %s", e.Name, t.Shape(), v.Shape())
			}
			if err := v.SetValue(t); err != nil {
				return fmt.Errorf("variable %s: %w", e.Name, err)
			}
			continue
		}
		ctx.InAbsPath(scope).VariableWithValue(name, t)
	}
	return nil
}

// splitScopeName splits "/a/b/name" into ("/a/b", "name").
func splitScopeName(full string) (string, string) {
	for i := len(full) - 1; i >= 0; i-- {
		if full[i] == '/' {
			if i == 0 {
				return "/", full[1:]
			}
			return full[:i], full[i+1:]
		}
	}
	return "/", full
}
