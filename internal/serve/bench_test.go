package serve

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/acdtcm/acdtcm/internal/infer"
)

// BenchmarkDiagnoseOverhead measures the server's own cost per diagnosis (HTTP, multipart,
// header check, decode of a 640×480 JPEG, preprocess, batching, knowledge base, SQLite
// insert, content-addressed photo write) with a model that costs nothing.
func BenchmarkDiagnoseOverhead(b *testing.B) {
	h := newHarness(b, harnessOpts{})
	photo := makeJPEG(b, 640, 480, 120)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := h.ts.Client().Do(h.diagnoseReq(photo, nil, ""))
			if err != nil {
				b.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
}

// BenchmarkBatcher measures the batcher's queueing cost per request with a free model.
func BenchmarkBatcher(b *testing.B) {
	for _, mb := range []int{1, 8} {
		b.Run(fmt.Sprintf("max_batch_%d", mb), func(b *testing.B) {
			bt := NewBatcher(&fakeModel{}, BatchOptions{MaxBatch: mb, MaxWait: 100 * time.Microsecond, QueueSize: 1024}, BatchObserver{})
			defer bt.Close()
			var in infer.Input = 0.5
			b.SetParallelism(8) // 8 submitters per CPU
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, _, err := bt.Submit(context.Background(), in); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
