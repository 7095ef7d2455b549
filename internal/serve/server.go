// Package serve is acdtcm's HTTP service: a JSON API for diagnosis, history and models, an
// OpenAI-compatible chat-completions route answered by the grading model, an embedded web
// page and API docs, and Prometheus metrics. Concurrent diagnoses are batched into single
// model calls behind a bounded queue; bodies, image pixels, time and per-client request
// rates are limited; every diagnosis is recorded (SQLite or PostgreSQL) with its photo kept
// content-addressed and, with a key, encrypted at rest.
package serve

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acdtcm/acdtcm/internal/imageio"
	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/knowledge"
)

// Config configures a Server. Zero durations and sizes mean the defaults in parentheses.
type Config struct {
	// KB annotates results (TCM, recommendations, referral); nil leaves them unannotated.
	KB *knowledge.KB
	// Store records diagnoses (required).
	Store Store
	// Images keeps uploaded photos; nil keeps none.
	Images *ImageStore
	// Keys authenticates API keys; nil turns authentication off (every caller is admin).
	Keys *Keys
	// CORSOrigins lists origins allowed to call the API from a browser ("*" for any).
	CORSOrigins []string
	// Batch configures dynamic batching.
	Batch BatchOptions
	// MaxBodyBytes bounds a request body (20 MiB).
	MaxBodyBytes int64
	// MaxPixels bounds an image's declared width*height, checked before decoding (40 MP).
	MaxPixels int64
	// ReadHeaderTimeout (5s), ReadTimeout (30s), WriteTimeout (60s), IdleTimeout (120s) and
	// HandlerTimeout (30s) bound each connection and request.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout, HandlerTimeout time.Duration
	// ShutdownTimeout bounds the wait for in-flight requests on shutdown (30s).
	ShutdownTimeout time.Duration
	// RateLimit is requests per second per client on the API (0 = unlimited); RateBurst
	// the burst (default 2*RateLimit, at least 1).
	RateLimit float64
	RateBurst int
	// Retention deletes records (and unreferenced photos) older than this; 0 keeps all.
	Retention time.Duration
	// DecodeWorkers bounds concurrent image decodes (runtime.NumCPU()).
	DecodeWorkers int
	// Logger receives access and event logs (slog.Default()).
	Logger *slog.Logger
	// Now returns the current time (time.Now).
	Now func() time.Time
}

func (c *Config) defaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	if c.MaxBodyBytes <= 0 {
		c.MaxBodyBytes = 20 << 20
	}
	if c.MaxPixels <= 0 {
		c.MaxPixels = 40_000_000
	}
	def(&c.ReadHeaderTimeout, 5*time.Second)
	def(&c.ReadTimeout, 30*time.Second)
	def(&c.WriteTimeout, 60*time.Second)
	def(&c.IdleTimeout, 120*time.Second)
	def(&c.HandlerTimeout, 30*time.Second)
	def(&c.ShutdownTimeout, 30*time.Second)
	if c.RateBurst <= 0 {
		c.RateBurst = max(1, int(2*c.RateLimit))
	}
	if c.DecodeWorkers <= 0 {
		c.DecodeWorkers = runtime.NumCPU()
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// loaded is the model and its batcher, set once the model is ready.
type loaded struct {
	model   infer.Model
	info    infer.ModelInfo
	memory  int64
	batcher *Batcher
}

// Server is the acdtcm HTTP service. Create it with New, give it a model with SetModel
// (until then /api/v1/ready answers 503) and run it with Serve.
type Server struct {
	cfg     Config
	metrics *Metrics
	limiter *RateLimiter
	decode  chan struct{}
	handler http.Handler
	routes  *http.ServeMux
	// patterns lists the registered routes ("GET /api/v1/health", ...).
	patterns []string
	model    atomic.Pointer[loaded]
	started  time.Time
	modelMu  sync.Mutex
}

// MemoryReporter is implemented by models that know how much memory their parameters hold.
type MemoryReporter interface {
	MemoryBytes() int64
}

// New builds a server from cfg. It does not listen yet.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("serve: Config.Store is required")
	}
	cfg.defaults()
	s := &Server{
		cfg:     cfg,
		metrics: NewMetrics(),
		limiter: NewRateLimiter(cfg.RateLimit, cfg.RateBurst),
		decode:  make(chan struct{}, cfg.DecodeWorkers),
		started: cfg.Now(),
	}
	s.handler = s.buildHandler()
	return s, nil
}

// Metrics returns the server's metrics.
func (s *Server) Metrics() *Metrics { return s.metrics }

// Handler returns the server's root handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.handler }

// SetModel installs the model and starts its batcher; the server becomes ready. Installing
// a second model replaces the first once its queued requests finish.
func (s *Server) SetModel(m infer.Model) {
	var mem int64
	if mr, ok := m.(MemoryReporter); ok {
		mem = mr.MemoryBytes()
	}
	s.SetModelMemory(m, mem)
}

// SetModelMemory is SetModel for a model whose memory the caller measured (bytes), e.g.
// as heap growth while loading it.
func (s *Server) SetModelMemory(m infer.Model, bytes int64) {
	s.modelMu.Lock()
	defer s.modelMu.Unlock()
	l := &loaded{model: m, info: m.Info(), memory: bytes, batcher: NewBatcher(m, s.cfg.Batch, s.metrics.observer())}
	s.metrics.ModelMemory.WithLabelValues(l.info.Name, l.info.Version).Set(float64(l.memory))
	if old := s.model.Swap(l); old != nil {
		go old.batcher.Close()
	}
	s.cfg.Logger.Info("model ready", "name", l.info.Name, "version", l.info.Version, "backend", l.info.Backend,
		"max_batch", l.batcher.Options().MaxBatch, "max_wait", l.batcher.Options().MaxWait)
}

func (s *Server) current() *loaded { return s.model.Load() }

// Serve answers requests on ln until ctx ends, then shuts down gracefully: it stops
// accepting connections, lets in-flight requests finish (up to ShutdownTimeout), drains the
// batcher and returns. The caller closes the Store.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.cfg.Logger.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	go s.retentionLoop(ctx)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.cfg.Logger.Info("serving", "addr", ln.Addr().String(), "auth", s.cfg.Keys != nil)
	select {
	case err := <-errc:
		s.closeModel()
		return fmt.Errorf("serve %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	s.cfg.Logger.Info("shutting down: finishing in-flight requests", "timeout", s.cfg.ShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	s.closeModel()
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	s.cfg.Logger.Info("stopped")
	return nil
}

func (s *Server) closeModel() {
	if l := s.current(); l != nil {
		l.batcher.Close()
	}
}

// retentionLoop deletes expired records hourly (and once at start).
func (s *Server) retentionLoop(ctx context.Context) {
	if s.cfg.Retention <= 0 {
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := s.ApplyRetention(ctx); err != nil {
			s.cfg.Logger.Error("retention", "err", err)
		} else if n > 0 {
			s.cfg.Logger.Info("retention", "deleted_images", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ApplyRetention deletes records older than the retention period and the photos no record
// references any more; it returns the number of photos deleted.
func (s *Server) ApplyRetention(ctx context.Context) (int, error) {
	if s.cfg.Retention <= 0 {
		return 0, nil
	}
	hashes, err := s.cfg.Store.DeleteBefore(ctx, s.cfg.Now().Add(-s.cfg.Retention))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, h := range hashes {
		ok, err := s.dropImageIfUnreferenced(ctx, h)
		if err != nil {
			return n, err
		}
		if ok {
			n++
		}
	}
	return n, nil
}

func (s *Server) dropImageIfUnreferenced(ctx context.Context, hash string) (bool, error) {
	if s.cfg.Images == nil || hash == "" {
		return false, nil
	}
	refs, err := s.cfg.Store.ImageRefs(ctx, hash)
	if err != nil || refs > 0 {
		return false, err
	}
	return true, s.cfg.Images.Delete(hash)
}

// imageLimits are the decode limits for uploads.
func (s *Server) imageLimits() imageio.Limits {
	return imageio.Limits{MaxPixels: s.cfg.MaxPixels, MaxBytes: s.cfg.MaxBodyBytes}
}
