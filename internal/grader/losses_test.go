package grader

import (
	"math"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// TestLossesTotalAndPerType checks the density and count losses against float64 sums written
// out by hand, for the per-type losses of grader v1.0-v1.2 (weights unset) and for the
// total-lesion losses with per-type terms at relative weights.
func TestLossesTotalAndPerType(t *testing.T) {
	const b, grid, types = 2, 2, 4
	pred := make([]float32, b*grid*grid*types)
	gt := make([]float32, len(pred))
	for i := range pred {
		pred[i] = float32(0.05 + 0.3*math.Abs(math.Sin(float64(i)*1.7)))
		gt[i] = float32(0.4 * math.Abs(math.Cos(float64(i)*0.9)))
	}
	// Hand-computed terms, per image.
	var sseType, sseTotal, countType, countTotal float64
	for n := 0; n < b; n++ {
		pc, tc := make([]float64, types), make([]float64, types)
		for cell := 0; cell < grid*grid; cell++ {
			var ps, ts float64
			for k := 0; k < types; k++ {
				i := (n*grid*grid+cell)*types + k
				p, g := float64(pred[i]), float64(gt[i])
				sseType += (p - g) * (p - g)
				pc[k] += p
				tc[k] += g
				ps += p
				ts += g
			}
			sseTotal += (ps - ts) * (ps - ts)
		}
		var pt, tt float64
		for k := range pc {
			countType += math.Abs(math.Log1p(pc[k]) - math.Log1p(tc[k]))
			pt += pc[k]
			tt += tc[k]
		}
		countTotal += math.Abs(math.Log1p(pt) - math.Log1p(tt))
	}
	sseType, sseTotal, countType, countTotal = sseType/b, sseTotal/b, countType/b, countTotal/b
	f := func(v float64) *float64 { return &v }
	cases := []struct {
		name             string
		lw               LossWeights
		wantDens, wantCt float64
	}{
		{"per type (v1.0-v1.2)", LossWeights{Density: 1, Count: 1}, sseType, countType + countTotal},
		{"total only", LossWeights{Density: 1, Count: 1, TypeDensity: f(0), TypeCount: f(0)}, sseTotal, countTotal},
		{"total + 0.1 per type", LossWeights{Density: 1, Count: 1, TypeDensity: f(0.1), TypeCount: f(0.05)}, sseTotal + 0.1*sseType, countTotal + 0.05*countType},
	}
	backend := testBackend(t)
	predT := tensors.FromFlatDataAndDimensions(pred, b, grid, grid, types)
	gtT := tensors.FromFlatDataAndDimensions(gt, b, grid, grid, types)
	grades := tensors.FromFlatDataAndDimensions([]int32{0, 2}, b)
	weights := tensors.FromFlatDataAndDimensions([]float32{1, 1}, b)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			exec := MustNewExec(backend, func(p, g, grade, w *Node) []*Node {
				logits := Zeros(p.Graph(), shapes.Make(dtypes.Float32, b, NumGrades))
				out := Outputs{Density: p, Counts: ReduceSum(p, 1, 2), Logits: logits}
				_, dens, count, _ := Losses(out, g, ReduceSum(g, 1, 2), grade, w, tc.lw)
				return []*Node{dens, count}
			})
			outs, err := exec.Exec(predT, gtT, grades, weights)
			if err != nil {
				t.Fatal(err)
			}
			gotDens := float64(tensors.ToScalar[float32](outs[0]))
			gotCount := float64(tensors.ToScalar[float32](outs[1]))
			if math.Abs(gotDens-tc.wantDens) > 1e-5*math.Max(1, tc.wantDens) {
				t.Errorf("density loss %.7f, want %.7f", gotDens, tc.wantDens)
			}
			if math.Abs(gotCount-tc.wantCt) > 1e-5*math.Max(1, tc.wantCt) {
				t.Errorf("count loss %.7f, want %.7f", gotCount, tc.wantCt)
			}
		})
	}
}
