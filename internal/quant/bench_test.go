package quant

import (
	"math/rand/v2"
	"sort"
	"testing"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive

	"github.com/acdtcm/acdtcm/internal/mlbackend"
)

// BenchmarkQuantize measures quantizing a 512x512 weight on the CPU.
func BenchmarkQuantize(b *testing.B) {
	x := randomWeights(rand.New(rand.NewPCG(1, 1)), 512*512, 0.02)
	for _, m := range Methods {
		b.Run(string(m), func(b *testing.B) {
			b.SetBytes(4 * 512 * 512)
			for i := 0; i < b.N; i++ {
				if _, err := Quantize(m, x, []int{512, 512}, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDequantizeGraph measures the in-graph reconstruction of a 512x512 weight on
// simplego (what every forward pass of a quantized model pays per weight).
func BenchmarkDequantizeGraph(b *testing.B) {
	backend, err := mlbackend.New("go")
	if err != nil {
		b.Fatal(err)
	}
	x := randomWeights(rand.New(rand.NewPCG(1, 1)), 512*512, 0.02)
	for _, m := range Methods {
		b.Run(string(m), func(b *testing.B) {
			q, err := Quantize(m, x, []int{512, 512}, Options{})
			if err != nil {
				b.Fatal(err)
			}
			parts := q.GraphTensors()
			var names []string
			for k := range parts {
				names = append(names, k)
			}
			sort.Strings(names)
			exec, err := NewExec(backend, func(in []*Node) *Node {
				mp := map[string]*Node{}
				for i, k := range names {
					mp[k] = in[i]
				}
				return DequantizeGraph(m, []int{512, 512}, InputsFromParts(mp))
			})
			if err != nil {
				b.Fatal(err)
			}
			args := make([]any, len(names))
			for i, k := range names {
				args[i] = parts[k]
			}
			b.SetBytes(4 * 512 * 512)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				out, err := exec.Exec(args...)
				if err != nil {
					b.Fatal(err)
				}
				out[0].FinalizeAll()
			}
		})
	}
}
