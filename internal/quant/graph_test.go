package quant

import (
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph-building code reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/tensors"

	"github.com/acdtcm/acdtcm/internal/mlbackend"
)

// TestDequantizeGraphMatchesGo runs the in-graph reconstruction on simplego and compares
// it with the Go reference, for shapes with and without a padded last block.
func TestDequantizeGraphMatchesGo(t *testing.T) {
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		m     Method
		opts  Options
		shape []int
	}{
		{Int8, Options{}, []int{5, 7}},
		{Q8_0, Options{}, []int{3, 40}},
		{Q4_0, Options{}, []int{3, 40}},
		{Q4_0, Options{}, []int{4, 32}},
		{NF4, Options{NoDoubleQuant: true}, []int{3, 50}},
		{NF4, Options{}, []int{600, 64}}, // 600 blocks: 3 double-quantization groups, the last partial
		{NF4, Options{}, []int{2, 3, 5, 7}},
	}
	for _, c := range cases {
		rng := rand.New(rand.NewPCG(9, uint64(numElements(c.shape))))
		x := randomWeights(rng, numElements(c.shape), 0.05)
		q, err := Quantize(c.m, x, c.shape, c.opts)
		if err != nil {
			t.Fatal(err)
		}
		want := q.Dequantize()
		parts := q.GraphTensors()
		var names []string
		for k := range parts {
			names = append(names, k)
		}
		sort.Strings(names)
		exec, err := NewExec(backend, func(in []*Node) *Node {
			m := map[string]*Node{}
			for i, k := range names {
				m[k] = in[i]
			}
			return DequantizeGraph(c.m, c.shape, InputsFromParts(m))
		})
		if err != nil {
			t.Fatal(err)
		}
		anyArgs := make([]any, len(names))
		for i, k := range names {
			anyArgs[i] = parts[k]
		}
		out, err := exec.Exec(anyArgs...)
		if err != nil {
			t.Fatalf("%s %v: %v", c.m, c.shape, err)
		}
		if got := out[0].Shape().Dimensions; len(got) != len(c.shape) {
			t.Fatalf("%s: graph shape %v, want %v", c.m, got, c.shape)
		}
		got, err := tensors.CopyFlatData[float32](out[0])
		if err != nil {
			t.Fatal(err)
		}
		maxDiff := 0.0
		for i := range want {
			maxDiff = math.Max(maxDiff, math.Abs(float64(got[i]-want[i])))
		}
		// Both compute code·scale in float32; double-quantized scales may differ by one
		// rounding of the multiply-add.
		if maxDiff > 1e-7 {
			t.Errorf("%s %v: graph and Go dequantization differ by %g", c.m, c.shape, maxDiff)
		}
	}
}
