package serve

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/acdtcm/acdtcm/internal/infer"
)

// ErrQueueFull is returned by Batcher.Submit when the bounded queue has no room; the API
// answers 503 with Retry-After instead of piling up work.
var ErrQueueFull = errors.New("inference queue is full")

// ErrClosed is returned by Batcher.Submit after Close.
var ErrClosed = errors.New("batcher is closed")

// BatchOptions configure dynamic batching.
type BatchOptions struct {
	// MaxBatch is the most inputs per model call (default 8; 1 disables batching).
	MaxBatch int
	// MaxWait is how long the first request of a batch waits for others (default 5ms).
	MaxWait time.Duration
	// QueueSize bounds requests waiting for the model (default 64).
	QueueSize int
	// Workers is the number of concurrent model calls (default 1).
	Workers int
	// PadToPowerOfTwo pads each batch (repeating its last input) to the next power of two
	// up to MaxBatch, so models that compile one program per batch shape (GoMLX) compile at
	// most log2(MaxBatch)+1 of them instead of MaxBatch. Padded predictions are dropped.
	PadToPowerOfTwo bool
}

func (o BatchOptions) normalized() BatchOptions {
	if o.MaxBatch <= 0 {
		o.MaxBatch = 8
	}
	if o.MaxWait < 0 {
		o.MaxWait = 0
	} else if o.MaxWait == 0 {
		o.MaxWait = 5 * time.Millisecond
	}
	if o.QueueSize <= 0 {
		o.QueueSize = 64
	}
	if o.Workers <= 0 {
		o.Workers = 1
	}
	return o
}

type job struct {
	ctx   context.Context
	input infer.Input
	done  chan jobResult
}

type jobResult struct {
	pred    infer.Prediction
	err     error
	modelMS float64
	batch   int
}

// BatchObserver receives batching events (metrics); any field may be nil.
type BatchObserver struct {
	QueueDepth func(n int)
	BatchSize  func(n int)
	ModelTime  func(d time.Duration, n int, err error)
}

// Batcher collects concurrent requests into one Model.Predict call: a worker takes the
// first waiting request, then up to MaxBatch-1 more that arrive within MaxWait, and runs
// the model once for all of them. Requests whose context ended while queued are dropped
// before the model call.
type Batcher struct {
	model infer.Model
	opts  BatchOptions
	obs   BatchObserver
	queue chan *job

	mu     sync.RWMutex
	closed bool
	wg     sync.WaitGroup
}

// NewBatcher starts the batching workers for model.
func NewBatcher(model infer.Model, opts BatchOptions, obs BatchObserver) *Batcher {
	opts = opts.normalized()
	b := &Batcher{model: model, opts: opts, obs: obs, queue: make(chan *job, opts.QueueSize)}
	for range opts.Workers {
		b.wg.Add(1)
		go b.worker()
	}
	return b
}

// Options returns the effective options.
func (b *Batcher) Options() BatchOptions { return b.opts }

// QueueDepth is the number of requests waiting for a worker.
func (b *Batcher) QueueDepth() int { return len(b.queue) }

// Submit queues one preprocessed input and waits for its prediction. It fails fast with
// ErrQueueFull when the queue is full and returns ctx.Err() when ctx ends first.
func (b *Batcher) Submit(ctx context.Context, in infer.Input) (infer.Prediction, float64, error) {
	j := &job{ctx: ctx, input: in, done: make(chan jobResult, 1)}
	b.mu.RLock()
	if b.closed {
		b.mu.RUnlock()
		return infer.Prediction{}, 0, ErrClosed
	}
	select {
	case b.queue <- j:
		b.mu.RUnlock()
	default:
		b.mu.RUnlock()
		return infer.Prediction{}, 0, ErrQueueFull
	}
	b.observeDepth()
	select {
	case r := <-j.done:
		return r.pred, r.modelMS, r.err
	case <-ctx.Done():
		return infer.Prediction{}, 0, ctx.Err()
	}
}

// Close stops accepting requests, lets the workers finish what is queued and waits for them.
func (b *Batcher) Close() {
	b.mu.Lock()
	if !b.closed {
		b.closed = true
		close(b.queue)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *Batcher) observeDepth() {
	if b.obs.QueueDepth != nil {
		b.obs.QueueDepth(len(b.queue))
	}
}

func (b *Batcher) worker() {
	defer b.wg.Done()
	for first := range b.queue {
		batch := []*job{first}
		if b.opts.MaxBatch > 1 {
			timer := time.NewTimer(b.opts.MaxWait)
		collect:
			for len(batch) < b.opts.MaxBatch {
				select {
				case j, ok := <-b.queue:
					if !ok {
						break collect
					}
					batch = append(batch, j)
				case <-timer.C:
					break collect
				}
			}
			timer.Stop()
		}
		b.observeDepth()
		b.run(batch)
	}
}

// run calls the model once for the live jobs of batch and answers each.
func (b *Batcher) run(batch []*job) {
	live := batch[:0]
	for _, j := range batch {
		if err := j.ctx.Err(); err != nil {
			j.done <- jobResult{err: err}
			continue
		}
		live = append(live, j)
	}
	if len(live) == 0 {
		return
	}
	n := len(live)
	if b.opts.PadToPowerOfTwo {
		n = min(b.opts.MaxBatch, nextPow2(n))
	}
	inputs := make([]infer.Input, n)
	for i := range inputs {
		inputs[i] = live[min(i, len(live)-1)].input
	}
	if b.obs.BatchSize != nil {
		b.obs.BatchSize(len(live))
	}
	t0 := time.Now()
	preds, errs := b.predict(inputs)
	d := time.Since(t0)
	var firstErr error
	for _, e := range errs {
		if e != nil {
			firstErr = e
			break
		}
	}
	if b.obs.ModelTime != nil {
		b.obs.ModelTime(d, len(live), firstErr)
	}
	per := float64(d.Microseconds()) / 1000 / float64(len(live))
	for i, j := range live {
		if errs[i] != nil {
			j.done <- jobResult{err: errs[i], batch: len(live)}
			continue
		}
		j.done <- jobResult{pred: preds[i], modelMS: per, batch: len(live)}
	}
}

// predict runs the model, turning a panic into an error so one bad batch cannot kill the
// server. The model call is not tied to any one request's context: it serves them all.
// Models implementing infer.ItemPredictor may fail single inputs; otherwise a model error
// fails the whole batch.
func (b *Batcher) predict(inputs []infer.Input) (preds []infer.Prediction, errs []error) {
	defer func() {
		if r := recover(); r != nil {
			preds = make([]infer.Prediction, len(inputs))
			errs = make([]error, len(inputs))
			for i := range errs {
				errs[i] = fmt.Errorf("model panicked: %v", r)
			}
		}
	}()
	return infer.PredictItems(context.Background(), b.model, inputs)
}

// nextPow2 is the smallest power of two >= n (n >= 1).
func nextPow2(n int) int {
	p := 1
	for p < n {
		p <<= 1
	}
	return p
}
