package serve

import (
	"context"
	"errors"
	"image"
	"math"
	"sync"
	"time"

	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// fakeModel is a small deterministic test model: its input is the photo's mean red level
// (0..1), the grade probabilities are a softmax peaked at grade floor(4*mean), and lesion
// counts grow with the mean. It records the size of every batch it is given.
type fakeModel struct {
	delay time.Duration // per model call
	fail  bool
	panic bool

	mu      sync.Mutex
	batches []int
}

func (m *fakeModel) Info() infer.ModelInfo {
	return infer.ModelInfo{Name: "fake-grader", Version: "test-1", Backend: "go", Scale: severity.Hayashi,
		Metrics: map[string]float64{"accuracy": 0.5}}
}

func (m *fakeModel) MemoryBytes() int64 { return 1234 }

func (m *fakeModel) Preprocess(img image.Image) (infer.Input, error) {
	b := img.Bounds()
	if b.Empty() {
		return nil, errors.New("empty image")
	}
	var sum, n float64
	step := max(1, b.Dx()/32)
	for y := b.Min.Y; y < b.Max.Y; y += step {
		for x := b.Min.X; x < b.Max.X; x += step {
			r, _, _, _ := img.At(x, y).RGBA()
			sum += float64(r) / 0xffff
			n++
		}
	}
	return sum / n, nil
}

func (m *fakeModel) Predict(ctx context.Context, batch []infer.Input) ([]infer.Prediction, error) {
	m.mu.Lock()
	m.batches = append(m.batches, len(batch))
	m.mu.Unlock()
	if m.delay > 0 {
		time.Sleep(m.delay)
	}
	if m.panic {
		panic("fake model panic")
	}
	if m.fail {
		return nil, errors.New("fake failure")
	}
	out := make([]infer.Prediction, len(batch))
	for i, in := range batch {
		mean := in.(float64)
		g := min(3, int(mean*4))
		probs := make([]float64, 4)
		var z float64
		for k := range probs {
			probs[k] = math.Exp(-2 * math.Abs(float64(k-g)))
			z += probs[k]
		}
		for k := range probs {
			probs[k] /= z
		}
		out[i] = infer.Prediction{Probabilities: probs, LesionCounts: map[string]float64{
			"comedone": 10 * mean, "papule": 20 * mean, "pustule": 5 * mean, "nodule": math.Floor(2 * mean),
		}}
	}
	return out, nil
}

func (m *fakeModel) batchSizes() []int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int(nil), m.batches...)
}
