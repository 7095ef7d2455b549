package train

import (
	"fmt"
	"math"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/graph"
	"github.com/gomlx/gomlx/pkg/core/tensors"
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

// adamwOnce runs adamwGraph once on the pure-Go backend for 1-D parameters and returns the
// new parameters, moments and the gradient norm.
func adamwOnce(t *testing.T, c LoRAConfig, params, grads, m, v [][]float32, lr float64, step int) (newP, newM, newV [][]float32, norm float64) {
	t.Helper()
	n := len(params)
	exec, err := graph.NewExec(mustBackend(t), func(in []*graph.Node) []*graph.Node {
		p, gr, mm, vv := in[0:n], in[n:2*n], in[2*n:3*n], in[3*n:4*n]
		np, nm, nv, norm := adamwGraph(c, p, gr, mm, vv, in[4*n])
		return append(append(append(np, nm...), nv...), norm)
	})
	if err != nil {
		t.Fatal(err)
	}
	var in []any
	for _, group := range [][][]float32{params, grads, m, v} {
		for _, x := range group {
			in = append(in, x)
		}
	}
	out, err := exec.Exec(append(in, adamwHyper(c, lr, step))...)
	if err != nil {
		t.Fatal(err)
	}
	flat := func(i int) []float32 { return tensors.MustCopyFlatData[float32](out[i]) }
	for i := 0; i < n; i++ {
		newP, newM, newV = append(newP, flat(i)), append(newM, flat(n+i)), append(newV, flat(2*n+i))
	}
	return newP, newM, newV, float64(out[3*n].Value().(float32))
}

// TestAdamWClipping checks global-norm clipping over several parameters through the
// update it makes: with zero moments, the first step moves each weight by lr·sign(g) for any
// gradient scale, so the clipping shows in m = (1-β1)·scale·g.
func TestAdamWClipping(t *testing.T) {
	tests := []struct {
		maxNorm, wantScale float64
	}{
		{1, 1 / (5 + 1e-6)}, // as torch.nn.utils.clip_grad_norm_
		{10, 1},             // within the limit
		{0, 1},              // clipping off
	}
	for _, tc := range tests {
		c := LoRAConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, ClipNorm: tc.maxNorm}
		grads := [][]float32{{3, 0}, {4}} // global norm 5
		_, m, _, norm := adamwOnce(t, c, [][]float32{{0, 0}, {0}}, grads, [][]float32{{0, 0}, {0}}, [][]float32{{0, 0}, {0}}, 0.1, 1)
		if math.Abs(norm-5) > 1e-6 {
			t.Errorf("max norm %g: norm %g, want 5", tc.maxNorm, norm)
		}
		for i := range grads {
			for k, g := range grads[i] {
				if want := 0.1 * tc.wantScale * float64(g); math.Abs(float64(m[i][k])-want) > 1e-7 {
					t.Errorf("max norm %g: m[%d][%d] = %.9g, want %.9g", tc.maxNorm, i, k, m[i][k], want)
				}
			}
		}
	}
}

// TestAdamWStep compares AdamW steps with hand computations.
func TestAdamWStep(t *testing.T) {
	near := func(name string, got float32, want float64) {
		t.Helper()
		if math.Abs(float64(got)-want) > 1e-6 {
			t.Errorf("%s = %.8f, want %.8f", name, got, want)
		}
	}

	// Second step with moments m=0.1, v=0.01, gradient 2, lr 0.01, weight decay 0.1, no
	// clipping: m = 0.9·0.1 + 0.1·2 = 0.29, v = 0.999·0.01 + 0.001·4 = 0.01399,
	// bias corrections 1-0.9² = 0.19 and 1-0.999² = 0.001999,
	// w = 1·(1 - 0.01·0.1) - 0.01·(0.29/0.19)/(√(0.01399/0.001999) + 1e-8) = 0.99323045.
	c := LoRAConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.1}
	w, m, v, _ := adamwOnce(t, c, [][]float32{{1}}, [][]float32{{2}}, [][]float32{{0.1}}, [][]float32{{0.01}}, 0.01, 2)
	near("m", m[0][0], 0.29)
	near("v", v[0][0], 0.01399)
	near("w", w[0][0], 0.99323045)

	// First step of two parameters clipped to norm 1: gradients (3, 0) and (4) scale to
	// (0.6, 0) and (0.8); m = 0.1·g, v = 0.001·g², and the bias-corrected step is lr·sign(g).
	// lr 0.1, weight decay 0.01: w = w·0.999 - 0.1·sign(g).
	c = LoRAConfig{Beta1: 0.9, Beta2: 0.999, Eps: 1e-8, WeightDecay: 0.01, ClipNorm: 1}
	zeros := [][]float32{{0, 0}, {0}}
	w, m, v, _ = adamwOnce(t, c, [][]float32{{1, -2}, {0.5}}, [][]float32{{3, 0}, {4}}, zeros, zeros, 0.1, 1)
	wantW := [][]float64{{0.999 - 0.1, -2 * 0.999}, {0.5*0.999 - 0.1}}
	wantM := [][]float64{{0.06, 0}, {0.08}}
	wantV := [][]float64{{0.00036, 0}, {0.00064}}
	for i := range w {
		for k := range w[i] {
			near("clipped w", w[i][k], wantW[i][k])
			near("clipped m", m[i][k], wantM[i][k])
			near("clipped v", v[i][k], wantV[i][k])
		}
	}
}

// TestTrainStepAppliesAdamW checks the trainer's on-device step against gradients() and
// AdamW computed here in float64: one step on one sample (dropout off), with the gradient
// taken once (GradAccum 1, one fused program) and as the mean of two identical micro-batches
// (GradAccum 2, accumulated in the graph, then the optimizer program), clipped or not.
func TestTrainStepAppliesAdamW(t *testing.T) {
	dir := t.TempDir()
	model, manifest := fixture(t, dir)
	tests := []struct {
		gradAccum int
		clip      float64
	}{
		{1, 0}, {1, 1e-3}, {2, 0}, {2, 1e-3},
	}
	for _, tc := range tests {
		c := testConfig(model, manifest, filepath.Join(dir, fmt.Sprintf("out-%d-%g", tc.gradAccum, tc.clip)))
		c.Dropout, c.BatchSize, c.GradAccum, c.ClipNorm = 0, 1, tc.gradAccum, tc.clip
		c.WarmupSteps, c.Schedule, c.LR, c.WeightDecay = 0, "constant", 1e-3, 0.01
		tr, err := NewLoRATrainer(c, mustBackend(t))
		if err != nil {
			t.Fatal(err)
		}
		var before [][]float32
		for _, p := range tr.Params() {
			before = append(before, tensors.MustCopyFlatData[float32](p.MustValue()))
		}
		_, grads, _, err := tr.gradients(tr.Train[:1], 0)
		if err != nil {
			t.Fatal(err)
		}
		_, gotNorm, _, err := tr.step([]int{0, 0})
		if err != nil {
			t.Fatal(err)
		}
		sq := 0.0
		for _, g := range grads {
			for _, x := range g {
				sq += float64(x) * float64(x)
			}
		}
		norm, scale := math.Sqrt(sq), 1.0
		if tc.clip > 0 {
			scale = math.Min(1, tc.clip/(norm+1e-6))
		}
		if math.Abs(gotNorm-norm) > 1e-5*norm {
			t.Errorf("grad accum %d, clip %g: gradient norm %.7g, want %.7g", tc.gradAccum, tc.clip, gotNorm, norm)
		}
		worst, moved := 0.0, 0.0
		for i, p := range tr.Params() {
			after := tensors.MustCopyFlatData[float32](p.MustValue())
			for k, w := range before[i] {
				g := float64(grads[i][k]) * scale
				m, v := (1-c.Beta1)*g, (1-c.Beta2)*g*g
				want := float64(w)*(1-c.LR*c.WeightDecay) - c.LR*(m/(1-c.Beta1))/(math.Sqrt(v/(1-c.Beta2))+c.Eps)
				worst = math.Max(worst, math.Abs(float64(after[k])-want))
				moved = math.Max(moved, math.Abs(float64(after[k])-float64(w)))
			}
		}
		// Each moving weight moves by ~lr (AdamW's first step is lr·sign(g)).
		if worst > 1e-6 || moved < 0.5*c.LR {
			t.Errorf("grad accum %d, clip %g: parameters differ from AdamW by up to %.3g (largest move %.3g)", tc.gradAccum, tc.clip, worst, moved)
		}
	}
}
