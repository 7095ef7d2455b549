package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/knowledge"
	"github.com/acdtcm/acdtcm/internal/models"
	"github.com/acdtcm/acdtcm/internal/remote"
	"github.com/acdtcm/acdtcm/internal/serve"
)

func init() { register(newServeCmd) }

// serveOptions are the flags of acdtcm serve.
type serveOptions struct {
	Addr            string
	Model           string
	Adapter         string
	ComputeDType    string // a Qwen model's weight and compute dtype (--compute-dtype)
	Remote          remote.Flags
	Backend         string
	Knowledge       string
	DataDir         string
	DB              string
	KeepImages      bool
	ImageKeyFile    string
	Auth            string
	APIKeysFile     string
	CORSOrigins     []string
	MaxBatch        int
	MaxWait         time.Duration
	QueueSize       int
	ModelWorkers    int
	PadBatches      bool
	MaxBodyBytes    int64
	MaxPixels       int64
	ReadTimeout     time.Duration
	WriteTimeout    time.Duration
	HandlerTimeout  time.Duration
	ShutdownTimeout time.Duration
	RateLimit       float64
	RateBurst       int
	Retention       time.Duration

	// openModel loads the model (tests replace it); nil means models.Open.
	openModel func() (infer.Model, error)
	// ready receives the listening address once the server accepts connections (tests).
	ready func(addr string)
}

// Environment variables holding secrets (never flags: they would show in ps and shell history).
const (
	envAPIKeys  = "ACDTCM_API_KEYS"
	envImageKey = "ACDTCM_IMAGE_KEY"
)

func newServeCmd(app *App) *cobra.Command {
	opts := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the diagnosis HTTP service: JSON API, OpenAI-compatible route, web page, metrics",
		Long: `serve runs acdtcm as an HTTP service:

  POST /api/v1/diagnose            multipart: image (required), description, patient_age, patient_gender
  GET  /api/v1/health, /ready      liveness; readiness (503 until the model is loaded)
  GET  /api/v1/models              loaded model: name, version, backend, metrics, batching
  GET  /api/v1/diagnoses[/{id}]    history (from, to, severity, limit, offset); DELETE needs admin
  POST /v1/chat/completions        OpenAI-compatible (image as an image_url data: URI); the answer
                                   comes from the grading model, not a generative LLM
  GET  /v1/models                  OpenAI-compatible model list
  GET  /api/v1/openapi.json, /docs the API description and a readable page of it
  GET  /metrics                    Prometheus metrics
  GET  /                           web page (upload, result card, history, 中文/English)

The model is any that diagnose accepts: the built-in grader (default), a grader checkpoint,
a Qwen2.5-VL directory (+ --adapter), a quantized directory written by acdtcm quantize
(/api/v1/models then names its method), or --backend openai with --endpoint. While it loads,
/api/v1/ready answers 503; a load failure stops the server with an error.

Concurrent diagnoses are batched into one model call (--max-batch, --max-wait) behind a
bounded queue (--queue-size) that answers 503 when full; per-client rate limiting answers
429. Bodies (--max-body-bytes) and declared image pixels (--max-pixels, read from the
header before decoding) are limited; the format is sniffed from the bytes.

Authentication: --auth auto (default) serves without keys only on a loopback address and
refuses to start on any other address; --auth apikey reads "<role> <key>" lines from
--api-keys-file or "role:key,role:key" from $ACDTCM_API_KEYS (roles: viewer reads, doctor
also diagnoses, admin also deletes); --auth none turns authentication off explicitly.

Records: every diagnosis is stored with the SHA-256 of its inputs, the result, the model
version and the time, in SQLite at <data-dir>/acdtcm.db, or in PostgreSQL with
--db postgres://... (replicas may share it). Photos are kept content-addressed under
<data-dir>/images (--keep-images) and encrypted with AES-256-GCM when a key (64 hex digits
or base64 of 32 bytes) is in --image-key-file or $ACDTCM_IMAGE_KEY. --retention deletes
older records and their photos. Patient details are never logged or stored in clear.

SIGINT or SIGTERM stops accepting connections and finishes in-flight requests first.`,
		Example: `  acdtcm serve
  acdtcm serve --addr 127.0.0.1:9000 --max-batch 16 --max-wait 10ms
  ACDTCM_API_KEYS="admin:$(openssl rand -hex 24)" acdtcm serve --addr :8080 --auth apikey
  acdtcm serve --addr :8080 --auth apikey --api-keys-file /etc/acdtcm/keys --image-key-file /etc/acdtcm/image.key \
      --db postgres://acdtcm@db/acdtcm --retention 2160h --cors-origins https://clinic.example
  curl -F image=@face.jpg -F patient_age=24 -F patient_gender=female http://127.0.0.1:8080/api/v1/diagnose`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Backend = backendSpec(app, cmd, opts.Backend)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runServe(ctx, app, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Addr, "addr", "127.0.0.1:8080", "listen address (host:port)")
	f.StringVar(&opts.Model, "model", models.Builtin, "model: "+modelFlagKinds+"; with --backend openai the served model's name")
	f.StringVar(&opts.Adapter, "adapter", "", "PEFT LoRA adapter directory for a Qwen2.5-VL model")
	f.StringVar(&opts.ComputeDType, "compute-dtype", "float32", "with --model DIR: "+computeDTypeUsage)
	f.StringVar(&opts.Knowledge, "knowledge", "", "your own knowledge-base YAML merged over the built-in one")
	f.StringVar(&opts.DataDir, "data-dir", "acdtcm-data", "directory for the SQLite database and stored photos")
	f.StringVar(&opts.DB, "db", "", "database: empty for SQLite in --data-dir, or postgres://user@host/db")
	f.BoolVar(&opts.KeepImages, "keep-images", true, "keep uploaded photos (content-addressed) under --data-dir/images")
	f.StringVar(&opts.ImageKeyFile, "image-key-file", "", "file with the 32-byte AES key (hex or base64) that encrypts stored photos (else $"+envImageKey+")")
	f.StringVar(&opts.Auth, "auth", "auto", "authentication: auto (none on loopback, else refuse to start), none, or apikey")
	f.StringVar(&opts.APIKeysFile, "api-keys-file", "", `API keys, one "<role> <key>" per line (else $`+envAPIKeys+`)`)
	f.StringSliceVar(&opts.CORSOrigins, "cors-origins", nil, "origins allowed to call the API from a browser (* for any)")
	f.IntVar(&opts.MaxBatch, "max-batch", 8, "most photos per model call (1 disables dynamic batching)")
	f.DurationVar(&opts.MaxWait, "max-wait", 5*time.Millisecond, "how long a request waits for others to fill a batch")
	f.IntVar(&opts.QueueSize, "queue-size", 64, "requests that may wait for the model before new ones get 503")
	f.IntVar(&opts.ModelWorkers, "model-workers", 1, "concurrent model calls")
	f.BoolVar(&opts.PadBatches, "pad-batches", true, "pad batches to a power of two so the model compiles few batch shapes")
	f.Int64Var(&opts.MaxBodyBytes, "max-body-bytes", 20<<20, "largest request body")
	f.Int64Var(&opts.MaxPixels, "max-pixels", 40_000_000, "largest image (width*height, read from the header before decoding)")
	f.DurationVar(&opts.ReadTimeout, "read-timeout", 30*time.Second, "time to read a whole request")
	f.DurationVar(&opts.WriteTimeout, "write-timeout", 60*time.Second, "time to write a response")
	f.DurationVar(&opts.HandlerTimeout, "handler-timeout", 30*time.Second, "time a request may take in the server")
	f.DurationVar(&opts.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "time in-flight requests get to finish on shutdown")
	f.Float64Var(&opts.RateLimit, "rate-limit", 10, "API requests per second per client (0: unlimited)")
	f.IntVar(&opts.RateBurst, "rate-burst", 20, "burst of API requests per client")
	f.DurationVar(&opts.Retention, "retention", 0, "delete records and photos older than this, e.g. 2160h (0: keep)")
	addBackendFlag(cmd, &opts.Backend)
	remote.AddFlags(f, &opts.Remote)
	return cmd
}

// liveHeap is the live heap after a garbage collection; its growth while a model loads is
// the model's memory for models that do not report their own.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// isLoopback reports whether addr (host:port) listens on loopback only.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// resolveAuth applies --auth to the listen address and loads the keys.
func resolveAuth(opts *serveOptions) (*serve.Keys, error) {
	switch opts.Auth {
	case "auto":
		if opts.APIKeysFile != "" || os.Getenv(envAPIKeys) != "" {
			return serve.LoadKeys(opts.APIKeysFile, envAPIKeys)
		}
		if !isLoopback(opts.Addr) {
			return nil, fmt.Errorf("refusing to serve %s without authentication: use --auth apikey (or --auth none to accept the risk)", opts.Addr)
		}
		return nil, nil
	case "none":
		return nil, nil
	case "apikey":
		return serve.LoadKeys(opts.APIKeysFile, envAPIKeys)
	}
	return nil, fmt.Errorf("--auth must be auto, none or apikey, got %q", opts.Auth)
}

// imageKey reads the photo encryption key from --image-key-file or the environment.
func imageKey(opts *serveOptions) ([]byte, error) {
	text := os.Getenv(envImageKey)
	src := "$" + envImageKey
	if opts.ImageKeyFile != "" {
		b, err := os.ReadFile(opts.ImageKeyFile)
		if err != nil {
			return nil, fmt.Errorf("image key: %w", err)
		}
		text, src = string(b), opts.ImageKeyFile
	}
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	key, err := serve.ParseKey(text)
	if err != nil {
		return nil, fmt.Errorf("image key %s: %w", src, err)
	}
	return key, nil
}

func openStore(ctx context.Context, opts *serveOptions) (serve.Store, error) {
	if strings.HasPrefix(opts.DB, "postgres://") || strings.HasPrefix(opts.DB, "postgresql://") {
		return serve.OpenPostgres(ctx, opts.DB)
	}
	if opts.DB != "" {
		return nil, fmt.Errorf("--db must be empty (SQLite in --data-dir) or a postgres:// URL, got %q", opts.DB)
	}
	return serve.OpenSQLite(ctx, filepath.Join(opts.DataDir, "acdtcm.db"))
}

func runServe(ctx context.Context, app *App, opts *serveOptions) error {
	keys, err := resolveAuth(opts)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	key, err := imageKey(opts)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	kb, err := knowledge.Open(opts.Knowledge)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	store, err := openStore(ctx, opts)
	if err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	defer store.Close()
	var images *serve.ImageStore
	if opts.KeepImages {
		if images, err = serve.NewImageStore(filepath.Join(opts.DataDir, "images"), key); err != nil {
			return &ExitError{Code: 1, Err: err}
		}
	} else if key != nil {
		return &ExitError{Code: 2, Err: errors.New("an image key is set but --keep-images=false: nothing would be encrypted")}
	}
	if images != nil && !images.Encrypted() {
		app.Logger.Warn("stored photos are not encrypted; set $" + envImageKey + " or --image-key-file")
	}
	if keys == nil && opts.Auth == "none" && !isLoopback(opts.Addr) {
		app.Logger.Warn("serving without authentication on a non-loopback address", "addr", opts.Addr)
	}
	srv, err := serve.New(serve.Config{
		KB: kb, Store: store, Images: images, Keys: keys, CORSOrigins: opts.CORSOrigins,
		Batch:        serve.BatchOptions{MaxBatch: opts.MaxBatch, MaxWait: opts.MaxWait, QueueSize: opts.QueueSize, Workers: opts.ModelWorkers, PadToPowerOfTwo: opts.PadBatches},
		MaxBodyBytes: opts.MaxBodyBytes, MaxPixels: opts.MaxPixels,
		ReadTimeout: opts.ReadTimeout, WriteTimeout: opts.WriteTimeout, HandlerTimeout: opts.HandlerTimeout,
		ShutdownTimeout: opts.ShutdownTimeout, RateLimit: opts.RateLimit, RateBurst: opts.RateBurst,
		Retention: opts.Retention, Logger: app.Logger,
	})
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return &ExitError{Code: 1, Err: fmt.Errorf("listen: %w", err)}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	// The server answers health (and 503 on ready) while the model loads.
	open := opts.openModel
	if open == nil {
		open = func() (infer.Model, error) {
			return models.Open(models.Options{Model: opts.Model, Adapter: opts.Adapter, Backend: opts.Backend, ComputeDType: opts.ComputeDType, Remote: opts.Remote})
		}
	}
	go func() {
		start := time.Now()
		before := liveHeap()
		m, err := open()
		if err != nil {
			cancel(fmt.Errorf("load model %s: %w", opts.Model, err))
			return
		}
		mem := max(0, int64(liveHeap())-int64(before))
		if mr, ok := m.(serve.MemoryReporter); ok {
			mem = mr.MemoryBytes()
		}
		app.Logger.Info("model loaded", "seconds", time.Since(start).Seconds(), "memory_bytes", mem)
		srv.SetModelMemory(m, mem)
	}()
	if opts.ready != nil {
		opts.ready(ln.Addr().String())
	}
	if err := srv.Serve(ctx, ln); err != nil {
		return &ExitError{Code: 1, Err: err}
	}
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return &ExitError{Code: 1, Err: cause}
	}
	return nil
}
