package grader

import (
	"errors"
	"fmt"
	"image"
	"sync"

	"github.com/gomlx/gomlx/backends"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/grader/heatmap"
	"github.com/acdtcm/acdtcm/internal/grader/weights"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
)

// Box is a lesion located from a density peak, in pixels of the input image.
type Box struct {
	Type           string
	X0, Y0, X1, Y1 float64
	Score          float64
}

// Prediction is the grader's output for one photo.
type Prediction struct {
	Probabilities []float64          // Hayashi grades 0..3
	Grade         int                // argmax of Probabilities
	LesionCounts  map[string]float64 // by dataset.LesionTypes, or the total as dataset.LesionUnspecified (ModelConfig.TypedCounts)
	Boxes         []Box              // lesion centres from density peaks, with a typical box size
}

// newPredictExec compiles (lazily, once per batch shape) the inference graph.
func newPredictExec(backend backends.Backend, ctx *context.Context, mc ModelConfig) (*context.Exec, error) {
	e, err := context.NewExec(backend, ctx.Reuse(), func(ctx *context.Context, images *Node) []*Node {
		out := BuildModel(ctx, mc, images)
		return []*Node{out.Density, out.Counts, Softmax(out.Logits, -1)}
	})
	if err != nil {
		return nil, fmt.Errorf("inference graph: %w", err)
	}
	return e, nil
}

// boxSide is the typical lesion box side relative to the image (ACNE04 median ~27/640 px).
const boxSide = 0.043

// predictRows runs the model on resized RGB rows (InputSize^2*3 bytes each), mirrored
// horizontally when flip is set (fillInput does it while building the input). With a
// calibration the grade probabilities come from the predicted total count (Calibration);
// without one, from the network's grade head.
func predictRows(exec *context.Exec, mc ModelConfig, cal *Calibration, rows [][]uint8, flip bool) ([]Prediction, error) {
	s, b, nc := mc.InputSize, len(rows), mc.inputChannels()
	img, err := fillInputs(mc, rows, flip)
	if err != nil {
		return nil, err
	}
	return runPredictExec(exec, mc, cal, b, tensors.FromFlatDataAndDimensions(img, b, s, s, nc))
}

// fillInputs builds the network inputs (fillInput) of resized RGB rows, mirrored when flip is set.
func fillInputs(mc ModelConfig, rows [][]uint8, flip bool) ([]float32, error) {
	s, nc := mc.InputSize, mc.inputChannels()
	img := make([]float32, len(rows)*s*s*nc)
	var scratch featureScratch
	for i, r := range rows {
		if len(r) != s*s*3 {
			return nil, fmt.Errorf("input %d: %d bytes, want %d", i, len(r), s*s*3)
		}
		fillInput(img[i*s*s*nc:(i+1)*s*s*nc], r, s, flip, 1, mc.HighPass, &scratch)
	}
	return img, nil
}

// runPredictExec runs an inference graph (density, counts, probabilities) on the input of b
// photos and decodes its outputs.
func runPredictExec(exec *context.Exec, mc ModelConfig, cal *Calibration, b int, input *tensors.Tensor) ([]Prediction, error) {
	outs, err := exec.Exec(input)
	if err != nil {
		return nil, fmt.Errorf("run grader: %w", err)
	}
	dens := tensors.MustCopyFlatData[float32](outs[0])
	counts := tensors.MustCopyFlatData[float32](outs[1])
	probs := tensors.MustCopyFlatData[float32](outs[2])
	return decodePredictions(mc, cal, b, dens, counts, probs), nil
}

// decodePredictions turns the network outputs of a batch of b (density, counts, grade-head
// probabilities) into predictions: counts by type, grade probabilities (from the
// calibration when there is one), boxes at density peaks in 0..1 coordinates.
func decodePredictions(mc ModelConfig, cal *Calibration, b int, dens, counts, probs []float32) []Prediction {
	grid := mc.Grid()
	nt := NumTypes
	preds := make([]Prediction, b)
	for i := range preds {
		p := Prediction{Probabilities: make([]float64, NumGrades), LesionCounts: map[string]float64{}}
		for g := 0; g < NumGrades; g++ {
			p.Probabilities[g] = float64(probs[i*NumGrades+g])
		}
		p.Grade = argmax(p.Probabilities)
		var total float64
		for t := range nt {
			total += float64(counts[i*nt+t])
		}
		if cal != nil {
			p.Probabilities = cal.Probabilities(total)
			p.Grade = argmax(p.Probabilities)
		}
		density, types, typeNames := dens[i*grid*grid*nt:(i+1)*grid*grid*nt], nt, dataset.LesionTypes
		if mc.TypedCounts {
			for t, name := range typeNames {
				p.LesionCounts[name] = float64(counts[i*nt+t])
			}
		} else {
			// The type channels mirror the training labels' grade, not lesion types: report the
			// total, with boxes at the peaks of the summed density.
			p.LesionCounts[dataset.LesionUnspecified] = total
			density, types, typeNames = sumChannels(density, nt), 1, []string{dataset.LesionUnspecified}
		}
		for _, pk := range heatmap.Peaks(density, grid, types, 0.3) {
			cx, cy := (float64(pk.Col)+0.5)/float64(grid), (float64(pk.Row)+0.5)/float64(grid)
			p.Boxes = append(p.Boxes, Box{Type: typeNames[pk.Type], X0: cx - boxSide/2, X1: cx + boxSide/2, Y0: cy - boxSide/2, Y1: cy + boxSide/2, Score: pk.Score})
		}
		preds[i] = p
	}
	return preds
}

// sumChannels adds up the c interleaved channels of a [cells][c] map into one [cells] map.
func sumChannels(m []float32, c int) []float32 {
	out := make([]float32, len(m)/c)
	for i := range out {
		var s float32
		for _, v := range m[i*c : (i+1)*c] {
			s += v
		}
		out[i] = s
	}
	return out
}

// Model is a loaded grader ready for inference. Predict is safe for concurrent use
// (calls are serialised; each call is one batched model run).
type Model struct {
	Config      ModelConfig
	Metrics     map[string]float64
	Calibration *Calibration // nil: grades from the network's grade head
	mu          sync.Mutex
	exec        *context.Exec
	native      *nativeNet // when set, inference runs on it instead of exec (see useNative)
	builtin     bool
}

// LoadBuiltin loads the weights embedded in the binary.
func LoadBuiltin() (*Model, error) {
	if len(weights.Grader) == 0 {
		return nil, errors.New("this binary has no built-in grader weights")
	}
	ck, err := ParseCheckpoint(weights.Grader)
	if err != nil {
		return nil, fmt.Errorf("built-in grader weights: %w", err)
	}
	m, err := fromCheckpoint(ck, "")
	if err != nil {
		return nil, err
	}
	m.builtin = true
	return m, nil
}

// Load loads a grader checkpoint file (best.ckpt, last.ckpt or exported weights).
func Load(path string) (*Model, error) {
	ck, err := ReadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	return fromCheckpoint(ck, "")
}

// LoadWithBackend is Load/LoadBuiltin (path "") on a chosen backend spec (see mlbackend.New).
func LoadWithBackend(path, backendSpec string) (*Model, error) {
	if path == "" {
		ck, err := ParseCheckpoint(weights.Grader)
		if err != nil {
			return nil, fmt.Errorf("built-in grader weights: %w", err)
		}
		m, err := fromCheckpoint(ck, backendSpec)
		if err != nil {
			return nil, err
		}
		m.builtin = true
		return m, nil
	}
	ck, err := ReadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	return fromCheckpoint(ck, backendSpec)
}

// FromCheckpoint is Load for a checkpoint already in memory (e.g. dequantized weights).
func FromCheckpoint(ck *Checkpoint, backendSpec string) (*Model, error) {
	return fromCheckpoint(ck, backendSpec)
}

func fromCheckpoint(ck *Checkpoint, backendSpec string) (*Model, error) {
	mc := ck.Header.Model
	if err := mc.Validate(); err != nil {
		return nil, err
	}
	native := useNative(backendSpec)
	if native {
		backendSpec = "go" // the GoMLX graph stays available (tests, the PyTorch fixture)
	}
	// mlbackend.New, not NewForInference: the grader's graph is many small convolutions that
	// gain from parallel ops (200 photos with --backend simplego: 46-49 s in parallel against
	// 62 s sequential, at 1.5 GB against 0.8 GB peak RSS; BENCHMARKS.md). The default native
	// engine does not use this backend to diagnose.
	backend, err := mlbackend.New(backendSpec)
	if err != nil {
		return nil, err
	}
	ctx := context.New()
	for _, e := range ck.Header.Tensors {
		if !isModelVar(e.Name) {
			continue
		}
		t, err := ck.Tensor(e.Name)
		if err != nil {
			return nil, err
		}
		scope, name := splitScopeName(e.Name)
		ctx.InAbsPath(scope).VariableWithValue(name, t)
	}
	exec, err := newPredictExec(backend, ctx, mc)
	if err != nil {
		return nil, err
	}
	m := &Model{Config: mc, Metrics: ck.Header.Metrics, Calibration: ck.Header.Calibration, exec: exec}
	if native {
		if m.native, err = newNativeNet(ck); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Preprocess stretches a photo to the model's input square (as the ACNE04 export does).
func (m *Model) Preprocess(img image.Image) []uint8 { return Resize(img, m.Config.InputSize) }

// Predict grades a batch of photos. Boxes are returned in pixels of each input image.
func (m *Model) Predict(images []image.Image) ([]Prediction, error) {
	rows := make([][]uint8, len(images))
	for i, img := range images {
		if img == nil || img.Bounds().Empty() {
			return nil, fmt.Errorf("image %d is empty", i)
		}
		rows[i] = m.Preprocess(img)
	}
	preds, err := m.PredictPreprocessed(rows)
	if err != nil {
		return nil, err
	}
	for i, img := range images {
		b := img.Bounds()
		w, h := float64(b.Dx()), float64(b.Dy())
		for k := range preds[i].Boxes {
			bx := &preds[i].Boxes[k]
			bx.X0, bx.X1 = float64(b.Min.X)+bx.X0*w, float64(b.Min.X)+bx.X1*w
			bx.Y0, bx.Y1 = float64(b.Min.Y)+bx.Y0*h, float64(b.Min.Y)+bx.Y1*h
		}
	}
	return preds, nil
}

// PredictPreprocessed grades photos already passed through Preprocess; box coordinates are
// normalised to 0..1.
// With a calibration fitted on flip-averaged counts (Calibration.FlipTTA), each photo is
// also run mirrored and the two passes' lesion counts are averaged before grading.
func (m *Model) PredictPreprocessed(rows [][]uint8) ([]Prediction, error) {
	cal := m.Calibration
	return m.predict(rows, cal, cal != nil && cal.FlipTTA)
}

// predict runs the network on rows and grades with cal (nil: the grade head); with flipTTA
// the mirrored photos are run too and counts (and, without cal, head probabilities) are the
// mean of both passes. Boxes come from the unmirrored pass.
func (m *Model) predict(rows [][]uint8, cal *Calibration, flipTTA bool) ([]Prediction, error) {
	if len(rows) == 0 {
		return nil, nil
	}
	preds, err := m.run(rows, cal, false)
	if err != nil || !flipTTA {
		return preds, err
	}
	mirrored, err := m.run(rows, nil, true)
	if err != nil {
		return nil, err
	}
	for i := range preds {
		p, q := &preds[i], mirrored[i]
		var total float64
		for k, c := range p.LesionCounts {
			p.LesionCounts[k] = (c + q.LesionCounts[k]) / 2
			total += p.LesionCounts[k]
		}
		if cal != nil {
			p.Probabilities = cal.Probabilities(total)
		} else {
			for g := range p.Probabilities {
				p.Probabilities[g] = (p.Probabilities[g] + q.Probabilities[g]) / 2
			}
		}
		p.Grade = argmax(p.Probabilities)
	}
	return preds, nil
}

// run is one batched pass of the network (native engine, or the GoMLX graph) on the photos,
// or on their mirror images with flip.
func (m *Model) run(rows [][]uint8, cal *Calibration, flip bool) ([]Prediction, error) {
	if m.native != nil {
		return predictRowsNative(m.native, m.Config, cal, rows, flip)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return predictRows(m.exec, m.Config, cal, rows, flip)
}
