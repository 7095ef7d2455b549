package serve

import (
	"context"
	"testing"
	"time"
)

func TestRunLoadMeasuresAFakeServer(t *testing.T) {
	h := newHarness(t, harnessOpts{model: &fakeModel{delay: 5 * time.Millisecond}, cfg: func(c *Config) {
		c.Batch = BatchOptions{MaxBatch: 4, MaxWait: 2 * time.Millisecond, QueueSize: 16}
	}})
	rep, err := RunLoad(context.Background(), LoadOptions{URL: h.ts.URL, Clients: 4, Duration: 500 * time.Millisecond,
		Photos: [][]byte{makeJPEG(t, 32, 32, 40), makeJPEG(t, 32, 32, 200)}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Requests == 0 || rep.Errors != 0 || rep.Throughput <= 0 || rep.P50 <= 0 || rep.P50 > rep.P99 || rep.P99 > rep.Max {
		t.Errorf("report %s", rep)
	}
	// A broken request (not an image) counts as an error with its status.
	rep, err = RunLoad(context.Background(), LoadOptions{URL: h.ts.URL, Clients: 1, Duration: 100 * time.Millisecond, Photos: [][]byte{[]byte("text")}})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Errors == 0 || rep.ErrorsByStatus[415] != rep.Errors {
		t.Errorf("errors %v", rep.ErrorsByStatus)
	}
	if _, err := RunLoad(context.Background(), LoadOptions{URL: h.ts.URL}); err == nil {
		t.Error("empty options accepted")
	}
}
