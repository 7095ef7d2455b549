package cli

import (
	"bytes"
	"context"
	"errors"
	"image"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// constModel always predicts grade 1 (a test model for the command's wiring).
type constModel struct{}

func (constModel) Info() infer.ModelInfo {
	return infer.ModelInfo{Name: "const", Version: "t", Backend: "go", Scale: severity.Hayashi}
}
func (constModel) Preprocess(image.Image) (infer.Input, error) { return 0, nil }
func (constModel) Predict(_ context.Context, b []infer.Input) ([]infer.Prediction, error) {
	out := make([]infer.Prediction, len(b))
	for i := range out {
		out[i] = infer.Prediction{Probabilities: []float64{0.1, 0.7, 0.1, 0.1}}
	}
	return out, nil
}

func TestResolveAuth(t *testing.T) {
	t.Setenv(envAPIKeys, "")
	tests := []struct {
		auth, addr string
		env        string
		wantKeys   bool
		wantErr    string
	}{
		{"auto", "127.0.0.1:8080", "", false, ""},
		{"auto", "localhost:8080", "", false, ""},
		{"auto", "[::1]:8080", "", false, ""},
		{"auto", ":8080", "", false, "refusing"},
		{"auto", "0.0.0.0:8080", "", false, "refusing"},
		{"auto", "0.0.0.0:8080", "admin:0123456789abcdef0123", true, ""},
		{"none", "0.0.0.0:8080", "", false, ""},
		{"apikey", "127.0.0.1:8080", "", false, "ACDTCM_API_KEYS"},
		{"apikey", "127.0.0.1:8080", "doctor:0123456789abcdef0123", true, ""},
		{"basic", "127.0.0.1:8080", "", false, "--auth must be"},
	}
	for _, tc := range tests {
		t.Setenv(envAPIKeys, tc.env)
		keys, err := resolveAuth(&serveOptions{Auth: tc.auth, Addr: tc.addr})
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s %s: error %v, want %q", tc.auth, tc.addr, err, tc.wantErr)
			}
			continue
		}
		if err != nil || (keys != nil) != tc.wantKeys {
			t.Errorf("%s %s: keys %v err %v", tc.auth, tc.addr, keys != nil, err)
		}
	}
}

// startServe runs `acdtcm serve` with opts (its ready hook replaced) until the model is
// loaded and /api/v1/ready answers 200; stop shuts it down and returns runServe's error.
func startServe(t *testing.T, app *App, opts *serveOptions) (addr string, stop func() error) {
	t.Helper()
	addrc := make(chan string, 1)
	opts.ready = func(a string) { addrc <- a }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, app, opts) }()
	select {
	case addr = <-addrc:
	case err := <-done:
		cancel()
		t.Fatalf("serve stopped: %v", err)
	}
	stop = func() error {
		cancel()
		return <-done
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/api/v1/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return addr, stop
			}
		}
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testServeOptions are serve options for tests: loopback on a free port, small limits.
func testServeOptions(t *testing.T) *serveOptions {
	return &serveOptions{
		Addr: "127.0.0.1:0", Auth: "auto", DataDir: t.TempDir(), KeepImages: true, MaxBatch: 4, MaxWait: time.Millisecond,
		QueueSize: 8, ModelWorkers: 1, MaxBodyBytes: 1 << 20, MaxPixels: 1e6, ShutdownTimeout: 5 * time.Second,
	}
}

func TestServeCommandServesAndStops(t *testing.T) {
	var logs bytes.Buffer
	app := &App{Out: io.Discard, Err: io.Discard, Logger: slog.New(slog.NewTextHandler(&logs, nil))}
	opts := testServeOptions(t)
	opts.openModel = func() (infer.Model, error) { return constModel{}, nil }
	_, stop := startServe(t, app, opts)
	if err := stop(); err != nil {
		t.Fatalf("serve: %v", err)
	}
	if !strings.Contains(logs.String(), "stopped") {
		t.Errorf("no shutdown log:\n%s", logs.String())
	}
}

func TestServeCommandReportsModelLoadFailure(t *testing.T) {
	app := &App{Out: io.Discard, Err: io.Discard, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	opts := &serveOptions{Addr: "127.0.0.1:0", Auth: "auto", DataDir: t.TempDir(), Model: "builtin",
		openModel: func() (infer.Model, error) { return nil, errors.New("no weights") }}
	err := runServe(context.Background(), app, opts)
	if err == nil || !strings.Contains(err.Error(), "no weights") {
		t.Errorf("error %v, want the model load failure", err)
	}
}

func TestServeHelpHasExample(t *testing.T) {
	var out bytes.Buffer
	if code := Execute([]string{"serve", "--help"}, nil, &out, &out); code != 0 {
		t.Fatalf("exit %d: %s", code, out.String())
	}
	for _, want := range []string{"--max-batch", "--auth", "acdtcm serve --addr", "/v1/chat/completions"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %s", want)
		}
	}
}

func TestServeCommandRefusesAMissingCheckpoint(t *testing.T) {
	app := &App{Out: io.Discard, Err: io.Discard, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	missing := t.TempDir() + "/none.ckpt"
	opts := &serveOptions{Addr: "127.0.0.1:0", Auth: "auto", DataDir: t.TempDir(), Model: missing}
	err := runServe(context.Background(), app, opts)
	if err == nil || !strings.Contains(err.Error(), "none.ckpt") {
		t.Errorf("error %v, want one naming the checkpoint", err)
	}
}
