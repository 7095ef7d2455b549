package mlbackend

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
	"github.com/gomlx/gomlx/pkg/ml/layers"
	"github.com/gomlx/gomlx/pkg/ml/layers/activations"
	"github.com/gomlx/gomlx/pkg/ml/layers/batchnorm"
	"github.com/gomlx/gomlx/pkg/ml/train"
	"github.com/gomlx/gomlx/pkg/ml/train/losses"
	"github.com/gomlx/gomlx/pkg/ml/train/optimizers"
)

// tinyCNN uses every building block the grader needs: Conv2D (both methods), batch norm (graph
// version), GroupNorm, ReLU, SiLU, Pool2D, a strided convolution, a Slice, global average
// pooling and Dense.
func tinyCNN(ctx *context.Context, _ any, inputs []*Node) []*Node {
	x := inputs[0] // [N, 16, 16, 3]
	x = Conv2DLayer(ctx.In("conv1"), x, 8, 3, false, ConvOptions{})
	x = batchnorm.New(ctx.In("bn1"), x, -1).UseBackendInference(false).Done()
	x = activations.Relu(x)
	x = Pool2D(x, PoolOptions{Kind: PoolMax})                                                   // 8x8
	x = Conv2DLayer(ctx.In("conv2"), x, 8, 3, true, ConvOptions{Stride: 2, Method: ConvNative}) // 4x4
	x = GroupNorm(ctx.In("gn2"), x, 2, 1e-5)
	x = activations.Swish(x)
	x = Slice(x, AxisRange(), AxisRange(0, 3), AxisRange(1, 4), AxisRange()) // exercises the Slice rule
	x = GlobalAvgPool2D(x)
	return []*Node{layers.Dense(ctx.In("head"), x, true, 3)}
}

// TestTinyModelTrains runs Adam steps of a small CNN on simplego with the default spec and
// checks that they finish (no deadlock) and that the loss on the fixed batch goes down.
func TestTinyModelTrains(t *testing.T) {
	backend := testBackend(t)
	rng := rand.New(rand.NewPCG(9, 10))
	const n = 6
	images := make([]float32, n*16*16*3)
	labels := make([]int32, n)
	for i := range n {
		labels[i] = int32(i % 3)
		for j := range 16 * 16 * 3 {
			// The class shifts the mean of one colour channel, so the batch is learnable.
			v := float32(rng.NormFloat64())
			if j%3 == int(labels[i]) {
				v += 1.5
			}
			images[i*16*16*3+j] = v
		}
	}
	xT := tensors.FromFlatDataAndDimensions(images, n, 16, 16, 3)
	yT := tensors.FromFlatDataAndDimensions(labels, n, 1)

	ctx := context.New()
	ctx.SetParam(context.ParamInitialSeed, int64(42))
	trainer := train.NewTrainer(backend, ctx, tinyCNN, losses.SparseCategoricalCrossEntropyLogits,
		optimizers.Adam().LearningRate(0.01).Done(), nil, nil)

	done := make(chan []float64, 1)
	errs := make(chan error, 1)
	go func() {
		var lossesSeen []float64
		for range 8 {
			m, err := trainer.TrainStep(nil, []*tensors.Tensor{xT}, []*tensors.Tensor{yT})
			if err != nil {
				errs <- err
				return
			}
			lossesSeen = append(lossesSeen, float64(tensors.ToScalar[float32](m[0])))
		}
		done <- lossesSeen
	}()
	select {
	case err := <-errs:
		t.Fatalf("train step: %v", err)
	case seen := <-done:
		first, last := seen[0], seen[len(seen)-1]
		t.Logf("losses: %v", seen)
		if math.IsNaN(last) || !(last < first) {
			t.Errorf("loss did not decrease over 8 Adam steps: %v", seen)
		}
	case <-time.After(3 * time.Minute):
		t.Fatal("8 train steps on simplego did not finish within 3 minutes (deadlock?)")
	}
}

// TestDefaultSpecNoDeadlock runs a graph of concurrent large batched matmuls and their
// gradients. With "go:ops_parallel" (simplego's parallel op scheduling) this graph hung for
// more than 100 s on a 2-core machine; the default spec must finish it.
func TestDefaultSpecNoDeadlock(t *testing.T) {
	if testing.Short() {
		t.Skip("large matmuls; skipped with -short")
	}
	backend := testBackend(t)
	rng := rand.New(rand.NewPCG(11, 12))
	x, w := randFloat32(rng, 4, 256, 512), randFloat32(rng, 4, 512, 512)
	exec := MustNewExec(backend, func(a, w *Node) []*Node {
		h2 := Einsum("bij,bjk->bik", Tanh(Einsum("bij,bjk->bik", a, w)), w)
		h3 := Einsum("bij,bjk->bik", a, Tanh(w))
		return Gradient(ReduceAllSum(Add(h2, h3)), a, w)
	})
	errs := make(chan error, 1)
	go func() {
		_, err := exec.Exec(x, w)
		errs <- err
	}()
	select {
	case err := <-errs:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("matmul graph on the default simplego spec did not finish in 2 minutes (deadlock?)")
	}
}
