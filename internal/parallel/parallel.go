// Package parallel runs independent, indexed pieces of work on a few goroutines.
package parallel

import (
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
