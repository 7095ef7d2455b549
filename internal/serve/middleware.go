package serve

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

// principal is the authenticated caller.
type principal struct {
	Role    Role
	KeyName string
}

type ctxKey int

const (
	principalKey ctxKey = iota
	routeKey
)

func principalFrom(ctx context.Context) *principal {
	p, _ := ctx.Value(principalKey).(*principal)
	return p
}

// routeInfo is filled by the per-route wrapper so the outer access log knows the route.
type routeInfo struct {
	route string
	role  string
}

// statusWriter records the status code and bytes written.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// access levels of routes.
const (
	public = RoleNone
)

// routeOpts describe how one route is guarded.
type routeOpts struct {
	role      Role // minimum role; RoleNone = public
	limited   bool // per-client rate limit
	body      bool // accepts a (limited) body
	timeout   bool // handler timeout applies
	sensitive bool // cache-control no-store
}

func (s *Server) buildHandler() http.Handler {
	mux := http.NewServeMux()
	s.routes = http.NewServeMux()
	handle := func(pattern string, o routeOpts, h http.HandlerFunc) {
		wrapped := s.wrap(pattern, o, h)
		mux.Handle(pattern, wrapped)
		s.routes.Handle(pattern, wrapped)
		s.patterns = append(s.patterns, pattern)
	}
	api := routeOpts{role: RoleViewer, limited: true, timeout: true, sensitive: true}
	diag := routeOpts{role: RoleDoctor, limited: true, body: true, timeout: true, sensitive: true}
	admin := routeOpts{role: RoleAdmin, limited: true, timeout: true, sensitive: true}

	handle("GET /api/v1/health", routeOpts{}, s.handleHealth)
	handle("GET /api/v1/ready", routeOpts{}, s.handleReady)
	handle("GET /api/v1/models", api, s.handleModels)
	handle("POST /api/v1/diagnose", diag, s.handleDiagnose)
	handle("GET /api/v1/diagnoses", api, s.handleList)
	handle("GET /api/v1/diagnoses/{id}", api, s.handleGet)
	handle("DELETE /api/v1/diagnoses/{id}", admin, s.handleDelete)
	handle("POST /v1/chat/completions", diag, s.handleChat)
	handle("GET /v1/models", api, s.handleOpenAIModels)
	handle("GET /api/v1/openapi.json", routeOpts{}, s.handleOpenAPI)
	handle("GET /docs", routeOpts{}, s.handleDocs)
	handle("GET /metrics", routeOpts{}, s.metrics.Handler().ServeHTTP)
	handle("GET /{$}", routeOpts{}, s.handleIndex)
	handle("GET /static/{file}", routeOpts{}, s.handleStatic)
	mux.Handle("/", s.wrap("unknown", routeOpts{}, s.handleUnknown))
	return s.outer(mux)
}

// outer applies to every request: panic recovery, request id, security headers, CORS,
// in-flight gauge and the access log.
func (s *Server) outer(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		ri := &routeInfo{route: "unknown"}
		rid := r.Header.Get("X-Request-ID")
		if rid == "" || len(rid) > 64 {
			rid = newID()[:16]
		}
		h := sw.Header()
		h.Set("X-Request-ID", rid)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Referrer-Policy", "no-referrer")
		s.metrics.InFlight.Inc()
		defer func() {
			if rec := recover(); rec != nil {
				s.cfg.Logger.Error("panic", "route", ri.route, "request_id", rid, "panic", fmt.Sprint(rec))
				if sw.status == 0 {
					writeError(sw, http.StatusInternalServerError, "internal_error", "internal server error")
				}
			}
			s.metrics.InFlight.Dec()
			d := time.Since(start)
			status := sw.status
			if status == 0 {
				status = http.StatusOK
			}
			s.metrics.observeRequest(ri.route, r.Method, status, d)
			s.cfg.Logger.Info("http",
				"method", r.Method, "route", ri.route, "path", maskURL(r.URL), "status", status,
				"bytes", sw.bytes, "duration_ms", float64(d.Microseconds())/1000,
				"client", clientIP(r), "role", ri.role, "request_id", rid)
		}()
		if s.cors(sw, r) {
			return
		}
		next.ServeHTTP(sw, r.WithContext(context.WithValue(r.Context(), routeKey, ri)))
	})
}

// cors sets CORS headers for allowed origins and answers preflight requests; it reports
// whether the request was fully handled.
func (s *Server) cors(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" || len(s.cfg.CORSOrigins) == 0 {
		return false
	}
	allowed := slices.Contains(s.cfg.CORSOrigins, "*") || slices.Contains(s.cfg.CORSOrigins, origin)
	if !allowed {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, X-API-Key, X-Request-ID")
		h.Set("Access-Control-Max-Age", "600")
		w.WriteHeader(http.StatusNoContent)
		return true
	}
	return false
}

// wrap guards one route: names it for logs and metrics, authenticates, rate-limits, bounds
// the body and the handler's time.
func (s *Server) wrap(route string, o routeOpts, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri, _ := r.Context().Value(routeKey).(*routeInfo)
		if ri != nil {
			ri.route = route
		}
		if o.sensitive {
			w.Header().Set("Cache-Control", "no-store")
		}
		p := &principal{Role: RoleAdmin}
		if s.cfg.Keys != nil && o.role != public {
			key, ok := s.cfg.Keys.Lookup(presentedKey(r))
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="acdtcm"`)
				writeError(w, http.StatusUnauthorized, "unauthorized", "a valid API key is required (Authorization: Bearer <key> or X-API-Key)")
				return
			}
			p = &principal{Role: key.Role, KeyName: key.Name}
			if key.Role < o.role {
				if ri != nil {
					ri.role = key.Role.String()
				}
				writeError(w, http.StatusForbidden, "forbidden", fmt.Sprintf("this route needs the %s role; your key has %s", o.role, key.Role))
				return
			}
		}
		if ri != nil && s.cfg.Keys != nil && o.role != public {
			ri.role = p.Role.String()
		}
		ctx := context.WithValue(r.Context(), principalKey, p)
		r = r.WithContext(ctx)
		if o.limited {
			if ok, wait := s.limiter.Allow(clientKey(r)); !ok {
				s.metrics.RateLimited.Inc()
				w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds())+1))
				writeError(w, http.StatusTooManyRequests, "rate_limited", "too many requests from this client; retry later")
				return
			}
		}
		if o.body {
			if r.ContentLength > s.cfg.MaxBodyBytes {
				s.metrics.Rejected.WithLabelValues("body_too_large").Inc()
				w.Header().Set("Connection", "close")
				writeError(w, http.StatusRequestEntityTooLarge, "body_too_large", fmt.Sprintf("request body of %d bytes exceeds the limit of %d bytes", r.ContentLength, s.cfg.MaxBodyBytes))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		if o.timeout {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.HandlerTimeout)
			defer cancel()
			r = r.WithContext(ctx)
		}
		h(w, r)
	})
}

// handleUnknown answers JSON 404 for unknown paths and 405 for a known path with another
// method.
func (s *Server) handleUnknown(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pat := s.routes.Handler(r2); pat != "" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", fmt.Sprintf("%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	writeError(w, http.StatusNotFound, "not_found", "no such route: "+r.URL.Path)
}

// patientFields are query or form keys whose values never reach the logs.
var patientFields = []string{"description", "patient_age", "patient_gender", "age", "gender", "name", "symptoms"}

// maskURL renders u for the access log with patient fields' values replaced by "***".
func maskURL(u *url.URL) string {
	if u.RawQuery == "" {
		return u.Path
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return u.Path + "?<unparsable query>"
	}
	for k := range q {
		if slices.Contains(patientFields, strings.ToLower(k)) {
			q[k] = []string{"***"}
		}
	}
	return u.Path + "?" + q.Encode()
}

func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// newID returns 32 random hex digits.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}
