package serve

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"time"
)

// LoadOptions configure a closed-loop load test of POST /api/v1/diagnose.
type LoadOptions struct {
	// URL is the server's base URL, e.g. http://127.0.0.1:8080.
	URL string
	// Clients each send one request at a time, back to back.
	Clients int
	// Duration is how long the clients keep sending.
	Duration time.Duration
	// Photos are sent round-robin (at least one).
	Photos [][]byte
	// APIKey, when set, is sent as a bearer token.
	APIKey string
	// Client is the HTTP client (default: one with keep-alive for Clients connections).
	Client *http.Client
}

// LoadReport is what a load test measured.
type LoadReport struct {
	Clients        int
	Elapsed        time.Duration
	Requests       int
	Errors         int
	ErrorsByStatus map[int]int // status 0: transport errors
	Throughput     float64     // successful requests per second
	P50, P90, P99  time.Duration
	Max            time.Duration
	// HeapStart, HeapEnd and HeapMax sample this process's live heap once a second
	// (meaningful when the server runs in the same process).
	HeapStart, HeapEnd, HeapMax uint64
}

// String formats the report for a terminal.
func (r LoadReport) String() string {
	return fmt.Sprintf("%d clients, %.1fs: %d requests, %d errors %v, %.1f req/s, p50 %.1f ms, p90 %.1f ms, p99 %.1f ms, max %.1f ms, heap %.1f -> %.1f MiB (max %.1f)",
		r.Clients, r.Elapsed.Seconds(), r.Requests, r.Errors, r.ErrorsByStatus, r.Throughput,
		msf(r.P50), msf(r.P90), msf(r.P99), msf(r.Max),
		float64(r.HeapStart)/(1<<20), float64(r.HeapEnd)/(1<<20), float64(r.HeapMax)/(1<<20))
}

// liveHeapAfterGC collects twice (sync.Pool keeps a victim cache across one collection)
// and returns the live heap.
func liveHeapAfterGC() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func msf(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// RunLoad runs opts.Clients closed-loop clients against the diagnose route for
// opts.Duration and reports throughput, latency percentiles of successful requests and
// errors (any non-200 answer counts as one).
func RunLoad(ctx context.Context, opts LoadOptions) (LoadReport, error) {
	if opts.Clients <= 0 || opts.Duration <= 0 || len(opts.Photos) == 0 || opts.URL == "" {
		return LoadReport{}, errors.New("load test needs URL, Clients > 0, Duration > 0 and at least one photo")
	}
	client := opts.Client
	if client == nil {
		client = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: opts.Clients, MaxConnsPerHost: opts.Clients}, Timeout: time.Minute}
	}
	// Pre-encode one body per photo.
	type body struct {
		data []byte
		ct   string
	}
	bodies := make([]body, len(opts.Photos))
	for i, p := range opts.Photos {
		var buf bytes.Buffer
		mw := multipart.NewWriter(&buf)
		fw, _ := mw.CreateFormFile("image", fmt.Sprintf("photo%d.jpg", i))
		fw.Write(p)
		mw.Close()
		bodies[i] = body{buf.Bytes(), mw.FormDataContentType()}
	}
	rep := LoadReport{Clients: opts.Clients, ErrorsByStatus: map[int]int{}}
	rep.HeapStart = liveHeapAfterGC()
	rep.HeapMax = rep.HeapStart

	ctx, cancel := context.WithTimeout(ctx, opts.Duration)
	defer cancel()
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				var m runtime.MemStats
				runtime.ReadMemStats(&m)
				rep.HeapMax = max(rep.HeapMax, m.HeapAlloc)
			}
		}
	}()
	var (
		mu        sync.Mutex
		latencies []time.Duration
		wg        sync.WaitGroup
	)
	start := time.Now()
	for c := range opts.Clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			errs := map[int]int{}
			for i := c; ctx.Err() == nil; i += opts.Clients {
				b := bodies[i%len(bodies)]
				req, _ := http.NewRequest(http.MethodPost, opts.URL+"/api/v1/diagnose", bytes.NewReader(b.data))
				req.Header.Set("Content-Type", b.ct)
				if opts.APIKey != "" {
					req.Header.Set("Authorization", "Bearer "+opts.APIKey)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					errs[0]++
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					errs[resp.StatusCode]++
					continue
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			latencies = append(latencies, local...)
			for k, v := range errs {
				rep.ErrorsByStatus[k] += v
				rep.Errors += v
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	close(stopSampling)
	sampler.Wait()
	rep.HeapEnd = liveHeapAfterGC()
	rep.Requests = len(latencies) + rep.Errors
	rep.Throughput = float64(len(latencies)) / rep.Elapsed.Seconds()
	if len(latencies) > 0 {
		slices.Sort(latencies)
		pct := func(p float64) time.Duration { return latencies[min(len(latencies)-1, int(p*float64(len(latencies))))] }
		rep.P50, rep.P90, rep.P99, rep.Max = pct(0.50), pct(0.90), pct(0.99), latencies[len(latencies)-1]
	}
	return rep, nil
}
