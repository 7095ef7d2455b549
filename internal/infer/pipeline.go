package infer

import (
	"context"
	"fmt"
	"image"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// Options tune a Run.
type Options struct {
	// BatchSize is the number of photos per model call (default 16).
	BatchSize int
	// Workers decode and preprocess photos in parallel (default runtime.NumCPU()).
	Workers int
	// Decode reads one photo; it must name the file in its errors.
	Decode func(path string) (image.Image, error)
	// Annotate adds knowledge-base analysis (treatments, TCM, referrals) to a result.
	Annotate func(res *result.DiagnosisResult, pred Prediction)
	// Now returns the current time (tests fix it).
	Now func() time.Time
}

// Summary counts what a Run did.
type Summary struct {
	Diagnosed int
	Failed    int
	Elapsed   time.Duration
}

type prepared struct {
	item      Item
	input     Input
	err       error
	decodeMS  float64
	prepMS    float64
	startedAt time.Time
}

// Run diagnoses every item from items with model and passes each result to emit in input
// order. A photo that cannot be read or preprocessed yields a result with Error set; a
// failing model call marks its whole batch failed (a model implementing ItemPredictor fails
// only the photos it names) and the run goes on. Run stops early only
// when ctx is done or emit returns an error.
func Run(ctx context.Context, model Model, items <-chan Item, opts Options, emit func(*result.DiagnosisResult) error) (Summary, error) {
	if opts.BatchSize <= 0 {
		opts.BatchSize = 16
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.NumCPU()
	}
	if opts.Decode == nil {
		return Summary{}, fmt.Errorf("infer: Options.Decode is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	start := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Stage 1 prepares the next batch while stage 2 runs the model on the current one.
	batches := make(chan []prepared, 1)
	go func() {
		defer close(batches)
		for {
			chunk := readChunk(ctx, items, opts.BatchSize)
			if len(chunk) == 0 {
				return
			}
			prep := prepare(model, chunk, opts)
			select {
			case batches <- prep:
			case <-ctx.Done():
				return
			}
		}
	}()

	var sum Summary
	info := model.Info()
	for batch := range batches {
		results := predictBatch(ctx, model, info, batch, opts)
		for _, res := range results {
			if res.Error != "" {
				sum.Failed++
			} else {
				sum.Diagnosed++
			}
			if err := emit(res); err != nil {
				return sum, err
			}
		}
	}
	sum.Elapsed = time.Since(start)
	return sum, ctx.Err()
}

func readChunk(ctx context.Context, items <-chan Item, n int) []Item {
	var chunk []Item
	for len(chunk) < n {
		select {
		case it, ok := <-items:
			if !ok {
				return chunk
			}
			chunk = append(chunk, it)
		case <-ctx.Done():
			return nil
		}
	}
	return chunk
}

func prepare(model Model, chunk []Item, opts Options) []prepared {
	out := make([]prepared, len(chunk))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < opts.Workers && w < len(chunk); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i] = prepareOne(model, chunk[i], opts)
			}
		}()
	}
	for i := range chunk {
		next <- i
	}
	close(next)
	wg.Wait()
	return out
}

func prepareOne(model Model, it Item, opts Options) prepared {
	p := prepared{item: it, startedAt: time.Now()}
	if it.Err != nil {
		p.err = it.Err
		return p
	}
	t0 := time.Now()
	img, err := opts.Decode(it.Path)
	p.decodeMS = ms(time.Since(t0))
	if err != nil {
		p.err = err
		return p
	}
	t1 := time.Now()
	p.input, err = model.Preprocess(img)
	p.prepMS = ms(time.Since(t1))
	if err != nil {
		p.err = fmt.Errorf("preprocess %s: %w", it.Path, err)
	}
	return p
}

func predictBatch(ctx context.Context, model Model, info ModelInfo, batch []prepared, opts Options) []*result.DiagnosisResult {
	var inputs []Input
	for _, p := range batch {
		if p.err == nil {
			inputs = append(inputs, p.input)
		}
	}
	var preds []Prediction
	var predErrs []error
	var modelMS float64
	if len(inputs) > 0 {
		t0 := time.Now()
		preds, predErrs = PredictItems(ctx, model, inputs)
		modelMS = ms(time.Since(t0)) / float64(len(inputs))
	}
	results := make([]*result.DiagnosisResult, len(batch))
	k := 0
	for i, p := range batch {
		res := &result.DiagnosisResult{
			ImageID:      imageID(p.item.Path),
			Image:        p.item.Path,
			ModelVersion: info.Version,
			CreatedAt:    opts.Now().UTC(),
		}
		results[i] = res
		switch {
		case p.err != nil:
			res.Error = p.err.Error()
			continue
		case predErrs[k] != nil:
			res.Error = fmt.Sprintf("model on %s: %v", p.item.Path, predErrs[k])
			k++
			continue
		}
		pred := preds[k]
		k++
		fill(res, info, pred)
		t0 := time.Now()
		if opts.Annotate != nil {
			opts.Annotate(res, pred)
		}
		res.Timing = result.Timing{
			DecodeMS:     p.decodeMS,
			PreprocessMS: p.prepMS,
			ModelMS:      modelMS,
			KnowledgeMS:  ms(time.Since(t0)),
		}
		res.Timing.TotalMS = ms(time.Since(p.startedAt))
	}
	return results
}

// fill turns a raw prediction into the result's grade, confidence and lesion findings.
func fill(res *result.DiagnosisResult, info ModelInfo, pred Prediction) {
	best := 0
	for i, p := range pred.Probabilities {
		if p > pred.Probabilities[best] {
			best = i
		}
	}
	res.Severity = severity.Grade{Value: best, Scale: info.Scale}
	res.Diagnosis = info.Scale.Label(best)
	res.Probabilities = append([]float64(nil), pred.Probabilities...)
	if len(pred.Probabilities) > 0 {
		res.Confidence = pred.Probabilities[best]
	}
	res.Lesions = LesionFindings(pred)
	if res.Disclaimer == "" {
		res.Disclaimer = result.Disclaimer
	}
}

// LesionFindings converts a prediction's counts and boxes into result findings in the
// canonical lesion-type order.
func LesionFindings(pred Prediction) []result.LesionFinding {
	var out []result.LesionFinding
	for _, typ := range dataset.ReportedLesionTypes {
		count, ok := pred.LesionCounts[typ]
		boxes := pred.Boxes[typ]
		if !ok && len(boxes) == 0 {
			continue
		}
		f := result.LesionFinding{Type: typ, Count: count}
		for _, b := range boxes {
			f.Boxes = append(f.Boxes, result.Box{X0: b.X0, Y0: b.Y0, X1: b.X1, Y1: b.Y1, Score: b.Score})
		}
		out = append(out, f)
	}
	return out
}

// imageID is the file name without its extension.
func imageID(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
