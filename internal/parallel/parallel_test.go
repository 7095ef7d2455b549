package parallel

import (
	"context"
	"errors"
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

func TestEach(t *testing.T) {
	for _, tc := range []struct{ n, workers int }{{0, 4}, {1, 4}, {7, 1}, {100, 3}, {5, 16}, {3, 0}} {
		seen := make([]atomic.Int32, tc.n)
		last := 0
		err := Each(context.Background(), tc.n, tc.workers, func(i int) { seen[i].Add(1) }, func(done, total int) {
			if done != last+1 || total != tc.n {
				t.Errorf("n=%d workers=%d: progress %d of %d after %d", tc.n, tc.workers, done, total, last)
			}
			last = done
		})
		if err != nil {
			t.Fatal(err)
		}
		for i := range seen {
			if c := seen[i].Load(); c != 1 {
				t.Errorf("n=%d workers=%d: index %d visited %d times", tc.n, tc.workers, i, c)
			}
		}
		if last != tc.n {
			t.Errorf("n=%d workers=%d: progress reached %d", tc.n, tc.workers, last)
		}
	}
}

func TestEachStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	var calls atomic.Int32
	err := Each(ctx, 1000, 2, func(i int) {
		if calls.Add(1) == 10 {
			cancel()
		}
	}, nil)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want context.Canceled", err)
	}
	if c := calls.Load(); c >= 1000 || c < 10 {
		t.Errorf("%d calls after cancelling at the 10th, want 10 plus at most the workers' in flight", c)
	}
}
