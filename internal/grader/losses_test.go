package grader

import (
	"math"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // GoMLX's idiomatic dot-import.
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
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

// ordinalNLL is OrdinalCountLoss at its initial cuts and slope, computed with the
// calibration's ordinal model (the same model, float64): its cuts are slope × log1p(cut).
func ordinalNLL(totals []float64, grades []int) float64 {
	cal := Calibration{Slope: ordinalInitSlope}
	for k, cut := range hayashiCountCuts {
		cal.Cuts[k] = ordinalInitSlope * math.Log1p(cut)
	}
	var nll float64
	for i, c := range totals {
		nll -= math.Log(max(cal.Probabilities(c)[grades[i]], 1e-6))
	}
	return nll / float64(len(totals))
}

// TestOrdinalCountLoss checks the ordinal grade loss on the count against float64 arithmetic
// at its initial cuts (the Hayashi rule's boundaries), and its gradient with respect to the
// counts against central finite differences of that arithmetic: the gradient must reach the
// counter, pushing counts across a boundary towards their grade.
func TestOrdinalCountLoss(t *testing.T) {
	// Two types per photo, summed by the loss: totals 3, 12, 30, 80, 7 with grades on both
	// sides of their boundaries.
	counts := []float32{1, 2, 10, 2, 20, 10, 70, 10, 3, 4}
	grades := []int{0, 1, 1, 3, 0}
	totals := []float64{3, 12, 30, 80, 7}
	const b = 5
	ctx := context.New()
	exec, err := context.NewExec(testBackend(t), ctx, func(ctx *context.Context, c, g *Node) []*Node {
		loss := OrdinalCountLoss(ctx, c, g)
		return []*Node{loss, Gradient(loss, c)[0]}
	})
	if err != nil {
		t.Fatal(err)
	}
	g32 := make([]int32, b)
	for i, g := range grades {
		g32[i] = int32(g)
	}
	outs, err := exec.Exec(tensors.FromFlatDataAndDimensions(counts, b, 2), tensors.FromFlatDataAndDimensions(g32, b))
	if err != nil {
		t.Fatal(err)
	}
	want := ordinalNLL(totals, grades)
	if got := float64(tensors.ToScalar[float32](outs[0])); math.Abs(got-want) > 1e-5*math.Max(1, want) {
		t.Errorf("loss %.7f, want %.7f", got, want)
	}
	grad := tensors.MustCopyFlatData[float32](outs[1])
	for i := range totals {
		const h = 1e-4
		up, down := slices.Clone(totals), slices.Clone(totals)
		up[i] += h
		down[i] -= h
		fd := (ordinalNLL(up, grades) - ordinalNLL(down, grades)) / (2 * h)
		for k := range 2 { // d loss / d count of either type = d loss / d total
			if g := float64(grad[i*2+k]); math.Abs(g-fd) > 1e-3*math.Max(1e-2, math.Abs(fd)) {
				t.Errorf("photo %d type %d: gradient %.6g, finite difference %.6g", i, k, g, fd)
			}
		}
		// Photo 1 (12 lesions, grade 1) sits inside its band; photo 0 (3 lesions, grade 0) too;
		// photo 4 (7 lesions, grade 0) must be pushed down, photo 2 (30, grade 1) down, photo 3 (80, grade 3) up.
		if sign := map[int]float64{2: 1, 3: -1, 4: 1}[i]; sign != 0 && fd*sign <= 0 {
			t.Errorf("photo %d: gradient %.4g does not push its count towards grade %d", i, fd, grades[i])
		}
	}
	var names []string
	for v := range ctx.IterVariables() {
		names = append(names, v.ScopeAndName())
	}
	if len(names) != 3 || isModelVar(names[0]) {
		t.Errorf("variables %v, want the cuts and slope outside the model scope", names)
	}
}
