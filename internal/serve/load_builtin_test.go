//go:build loadtest

package serve

import (
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/acdtcm/acdtcm/internal/grader"
)

// TestLoadBuiltinModel is the bounded loopback load test of BENCHMARKS.md: 32 closed-loop
// clients for 60 s (ACDTCM_LOAD_SECONDS overrides) against a server running the built-in
// grader, once with dynamic batching (max batch 8) and once with batch size 1.
// ACDTCM_LOAD_MODEL names another model (a grader checkpoint file) instead of the built-in.
//
//	CGO_ENABLED=0 go test -tags noxla,loadtest -run TestLoadBuiltinModel -v -timeout 30m ./internal/serve/
func TestLoadBuiltinModel(t *testing.T) {
	name, path := "builtin", os.Getenv("ACDTCM_LOAD_MODEL")
	if path != "" {
		name = path
	}
	g, err := grader.LoadWithBackend(path, "")
	if err != nil {
		t.Skipf("model %s unavailable: %v", name, err)
	}
	model := &grader.InferModel{M: g}
	seconds := 60
	if v := os.Getenv("ACDTCM_LOAD_SECONDS"); v != "" {
		seconds, _ = strconv.Atoi(v)
	}
	var photos [][]byte
	for _, p := range []string{"../report/testdata/acne04-levle1_11.jpg", "../report/testdata/acne04-levle3_62.jpg"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		photos = append(photos, b)
	}
	for _, maxBatch := range []int{8, 1} {
		store, err := OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "load.db"))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := New(Config{KB: testKB(t), Store: store, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
			Batch: BatchOptions{MaxBatch: maxBatch, MaxWait: 5 * time.Millisecond, QueueSize: 64, PadToPowerOfTwo: true}})
		if err != nil {
			t.Fatal(err)
		}
		srv.SetModel(model)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Serve(ctx, ln) }()
		url := "http://" + ln.Addr().String()
		// Warm up (the model compiles one program per batch shape), then measure.
		if _, err := RunLoad(context.Background(), LoadOptions{URL: url, Clients: 32, Duration: 5 * time.Second, Photos: photos}); err != nil {
			t.Fatal(err)
		}
		rep, err := RunLoad(context.Background(), LoadOptions{URL: url, Clients: 32,
			Duration: time.Duration(seconds) * time.Second, Photos: photos})
		cancel()
		<-done
		store.Close()
		if err != nil {
			t.Fatal(err)
		}
		mf, err := srv.Metrics().Registry.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var calls, photos uint64
		var modelSec float64
		for _, f := range mf {
			switch f.GetName() {
			case "acdtcm_inference_batch_size":
				h := f.GetMetric()[0].GetHistogram()
				calls, photos = h.GetSampleCount(), uint64(h.GetSampleSum())
			case "acdtcm_inference_batch_duration_seconds":
				modelSec = f.GetMetric()[0].GetHistogram().GetSampleSum()
			}
		}
		t.Logf("model %s, max batch %d: %s; model calls %d, mean batch %.2f, model time %.1f ms per photo (warm-up included)",
			name, maxBatch, rep, calls, float64(photos)/float64(max(calls, 1)), 1000*modelSec/float64(max(photos, 1)))
		if rep.Errors != 0 {
			t.Errorf("max batch %d: %d errors %v", maxBatch, rep.Errors, rep.ErrorsByStatus)
		}
	}
}
