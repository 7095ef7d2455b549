package train

import (
	"math"
	"testing"
)

// TestLearningRateSchedule checks warm-up and decay values at a few steps of a run of
// 10 epochs × 8 steps = 80 steps with 10 warm-up steps (decay over the remaining 70).
func TestLearningRateSchedule(t *testing.T) {
	const lr = 1e-3
	tests := []struct {
		schedule string
		maxSteps int
		step     int
		want     float64
	}{
		{"cosine", 0, 0, 0},
		{"cosine", 0, 5, lr / 2}, // half-way through warm-up
		{"cosine", 0, 10, lr},    // warm-up done
		{"cosine", 0, 31, lr * 0.5 * (1 + 0.5877852522924731)}, // progress 0.3: cos(0.3π) = 0.58779
		{"cosine", 0, 45, lr / 2},                              // progress 0.5
		{"cosine", 0, 80, 0},                                   // end of the run
		{"cosine", 20, 45, lr / 2},                             // a step budget pauses the run, the schedule spans it all
		{"linear", 0, 5, lr / 2},
		{"linear", 0, 31, lr * 0.7},
		{"linear", 0, 80, 0},
		{"constant", 0, 5, lr / 2},
		{"constant", 0, 79, lr},
	}
	for _, tc := range tests {
		c := DefaultLoRAConfig()
		c.LR, c.WarmupSteps, c.Schedule, c.Epochs, c.BatchSize, c.GradAccum, c.MaxSteps = lr, 10, tc.schedule, 10, 2, 1, tc.maxSteps
		tr := &LoRATrainer{Cfg: c, Train: make([]Sample, 16)}
		if got := tr.LearningRate(tc.step); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s (max steps %d) at step %d: lr %.10g, want %.10g", tc.schedule, tc.maxSteps, tc.step, got, tc.want)
		}
	}
}

// TestClipScale checks global-norm clipping over several parameters.
func TestClipScale(t *testing.T) {
	grads := [][]float32{{3, 0}, {4}} // global norm 5
	tests := []struct {
		maxNorm, wantScale float64
	}{
		{1, 1 / (5 + 1e-6)}, // as torch.nn.utils.clip_grad_norm_
		{10, 1},             // within the limit
		{0, 1},              // clipping off
	}
	for _, tc := range tests {
		norm, scale := clipScale(grads, tc.maxNorm)
		if norm != 5 || math.Abs(scale-tc.wantScale) > 1e-15 {
			t.Errorf("max norm %g: norm %g scale %.12g, want 5 and %.12g", tc.maxNorm, norm, scale, tc.wantScale)
		}
	}
}

// TestAdamWStep compares AdamW steps with hand computations.
func TestAdamWStep(t *testing.T) {
	c := LoRAConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
	near := func(name string, got float32, want float64) {
		t.Helper()
		if math.Abs(float64(got)-want) > 1e-6 {
			t.Errorf("%s = %.8f, want %.8f", name, got, want)
		}
	}

	// Second step with moments m=0.1, v=0.01, gradient 2, lr 0.01, weight decay 0.1:
	// m = 0.9·0.1 + 0.1·2 = 0.29, v = 0.999·0.01 + 0.001·4 = 0.01399,
	// bias corrections 1-0.9² = 0.19 and 1-0.999² = 0.001999,
	// w = 1·(1 - 0.01·0.1) - 0.01·(0.29/0.19)/(√(0.01399/0.001999) + 1e-8) = 0.99323045.
	c.WeightDecay = 0.1
	val, m, v := []float32{1}, []float32{0.1}, []float32{0.01}
	adamw(c, val, []float32{2}, m, v, 1, 0.01, 2)
	near("m", m[0], 0.29)
	near("v", v[0], 0.01399)
	near("w", val[0], 0.99323045)

	// First step of two parameters clipped to norm 1: gradients (3, 0) and (4) scale to
	// (0.6, 0) and (0.8); m = 0.1·g, v = 0.001·g², and the bias-corrected step is lr·sign(g).
	// lr 0.1, weight decay 0.01: w = w·0.999 - 0.1·sign(g).
	c.WeightDecay = 0.01
	grads := [][]float32{{3, 0}, {4}}
	vals := [][]float32{{1, -2}, {0.5}}
	_, scale := clipScale(grads, 1)
	wantW := [][]float64{{0.999 - 0.1, -2 * 0.999}, {0.5*0.999 - 0.1}}
	wantM := [][]float64{{0.06, 0}, {0.08}}
	wantV := [][]float64{{0.00036, 0}, {0.00064}}
	for i := range vals {
		m, v := make([]float32, len(vals[i])), make([]float32, len(vals[i]))
		adamw(c, vals[i], grads[i], m, v, scale, 0.1, 1)
		for k := range vals[i] {
			near("clipped w", vals[i][k], wantW[i][k])
			near("clipped m", m[k], wantM[i][k])
			near("clipped v", v[k], wantV[i][k])
		}
	}
}
