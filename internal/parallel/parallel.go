// Package parallel runs independent, indexed pieces of work on a few goroutines.
package parallel

import (
	"context"
	"sync"
	"sync/atomic"
)

// For calls fn(worker, i) for every i in [0, n) on up to workers goroutines (the caller's
// included), handing out indices in increasing order; worker (0..workers-1) lets fn use
// per-worker buffers. It returns when every call has returned.
func For(n, workers int, fn func(worker, i int)) {
	workers = min(workers, n)
	if workers <= 1 {
		for i := 0; i < n; i++ {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	run := func(w int) {
		for {
			i := int(next.Add(1) - 1)
			if i >= n {
				return
			}
			fn(w, i)
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run(w)
		}()
	}
	run(0)
	wg.Wait()
}

// Each calls fn(i) for every i in [0, n) on workers goroutines, handing out indices in
// increasing order, and progress(done, n) (when non-nil) from the caller's goroutine after
// each call returns. Once ctx is cancelled no new index is handed out; Each returns after the
// calls already started have returned, with ctx's error.
func Each(ctx context.Context, n, workers int, fn func(i int), progress func(done, total int)) error {
	workers = max(1, min(workers, n))
	jobs := make(chan int)
	finished := make(chan struct{})
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				fn(i)
				finished <- struct{}{}
			}
		}()
	}
	go func() {
		defer close(jobs)
		for i := range n {
			select {
			case jobs <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() { wg.Wait(); close(finished) }()
	done := 0
	for range finished {
		done++
		if progress != nil {
			progress(done, n)
		}
	}
	return ctx.Err()
}
