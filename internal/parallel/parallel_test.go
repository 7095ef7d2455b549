package parallel

import (
	"sync/atomic"
	"testing"
)

func TestForVisitsEachIndexOnce(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{0, 4}, {1, 4}, {7, 1}, {100, 3}, {5, 16}} {
		seen := make([]atomic.Int32, tc.n)
		var badWorker atomic.Bool
		For(tc.n, tc.workers, func(w, i int) {
			if w < 0 || w >= max(1, tc.workers) {
				badWorker.Store(true)
			}
			seen[i].Add(1)
		})
		for i := range seen {
			if c := seen[i].Load(); c != 1 {
				t.Errorf("n=%d workers=%d: index %d visited %d times", tc.n, tc.workers, i, c)
			}
		}
		if badWorker.Load() {
			t.Errorf("n=%d workers=%d: worker index out of range", tc.n, tc.workers)
		}
	}
}
