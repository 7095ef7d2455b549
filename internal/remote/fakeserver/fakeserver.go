// Package fakeserver is a small OpenAI-compatible chat-completions server for tests of the
// openai backend: it serves GET /v1/models and POST /v1/chat/completions the way vLLM does
// for a vision model (image_url data URIs, logprobs with top_logprobs), checks that each
// request carries acdtcm's grading prompt and a training-sized image, grades the image with
// a deterministic function, and can inject faults per call (status codes with Retry-After,
// delays, malformed bodies, odd answers, hang-ups).
package fakeserver

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	_ "image/jpeg" // decode jpeg data URIs
	_ "image/png"  // decode png data URIs
	"math"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acdtcm/acdtcm/internal/qwen"
)

// Fault changes the answer to one call. The zero Fault answers normally.
type Fault struct {
	// Status, when not 0 or 200, answers this HTTP status with a JSON error body.
	Status int
	// RetryAfter is sent as the Retry-After header with Status.
	RetryAfter string
	// Delay waits before answering (or until the client gives up).
	Delay time.Duration
	// Body, when set, is sent raw with status 200 instead of a completion.
	Body string
	// ContentType goes with Body (default text/html).
	ContentType string
	// Answer replaces the graded answer text (logprobs then follow its characters).
	Answer string
	// NoLogprobs leaves logprobs out even when asked.
	NoLogprobs bool
	// Hangup closes the connection without answering (a server that died mid-request).
	Hangup bool
}

// Request is what the server received in one chat-completions call.
type Request struct {
	Call          int
	Model         string
	Auth          string
	System        string
	Question      string
	ImageFirst    bool
	Width, Height int
	Logprobs      bool
	TopLogprobs   int
	MaxTokens     int
	Temperature   float64
}

// Server is the fake. Set the fields before serving; read the counters through methods.
type Server struct {
	// Models are the served model ids (default ["acne"]).
	Models []string
	// APIKey, when set, is required as "Authorization: Bearer KEY".
	APIKey string
	// Grade returns the grade probabilities of an image (default: by mean red level, see
	// RedGrade).
	Grade func(img image.Image) []float64
	// Fault picks the fault for call n (1-based, counting chat-completions calls).
	Fault func(n int, req Request) Fault

	mu       sync.Mutex
	calls    int
	inFlight int
	maxIn    int
	served   int
	received []Request
}

// RedGrade is the default grader: grade = mean red / 64, with probability 0.7 on it and
// the rest spread evenly, so tests know the expected answer of a photo.
func RedGrade(img image.Image) []float64 {
	b := img.Bounds()
	var sum, n float64
	for y := b.Min.Y; y < b.Max.Y; y += 4 {
		for x := b.Min.X; x < b.Max.X; x += 4 {
			r, _, _, _ := img.At(x, y).RGBA()
			sum += float64(r >> 8)
			n++
		}
	}
	g := min(3, int(sum/n)/64)
	probs := []float64{0.1, 0.1, 0.1, 0.1}
	probs[g] = 0.7
	return probs
}

// Stats are the server's counters.
type Stats struct {
	// Calls counts chat-completions requests, Served those answered with a completion.
	Calls, Served int
	// MaxInFlight is the most requests handled at once.
	MaxInFlight int
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return Stats{Calls: s.calls, Served: s.served, MaxInFlight: s.maxIn}
}

// Received returns the requests received so far.
func (s *Server) Received() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.received...)
}

// ServeHTTP routes /v1/models and /v1/chat/completions.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if s.APIKey != "" && r.Header.Get("Authorization") != "Bearer "+s.APIKey {
		writeError(w, http.StatusUnauthorized, "invalid_api_key", "Incorrect API key provided")
		return
	}
	switch {
	case r.Method == http.MethodGet && r.URL.Path == "/v1/models":
		s.models(w)
	case r.Method == http.MethodPost && r.URL.Path == "/v1/chat/completions":
		s.completions(w, r)
	default:
		writeError(w, http.StatusNotFound, "not_found", "no route "+r.Method+" "+r.URL.Path)
	}
}

func (s *Server) modelIDs() []string {
	if len(s.Models) == 0 {
		return []string{"acne"}
	}
	return s.Models
}

func (s *Server) models(w http.ResponseWriter) {
	type entry struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		OwnedBy string `json:"owned_by"`
	}
	var data []entry
	for _, id := range s.modelIDs() {
		data = append(data, entry{ID: id, Object: "model", OwnedBy: "vllm"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, code int, typ, msg string) {
	writeJSON(w, code, map[string]any{"error": map[string]any{"message": msg, "type": typ, "code": code}})
}

// wire types of a request.
type (
	chatRequest struct {
		Model       string        `json:"model"`
		Messages    []chatMessage `json:"messages"`
		MaxTokens   int           `json:"max_tokens"`
		Temperature float64       `json:"temperature"`
		Logprobs    bool          `json:"logprobs"`
		TopLogprobs int           `json:"top_logprobs"`
	}
	chatMessage struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	}
	contentPart struct {
		Type     string `json:"type"`
		Text     string `json:"text"`
		ImageURL *struct {
			URL string `json:"url"`
		} `json:"image_url"`
	}
)

func (s *Server) completions(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.calls++
	n := s.calls
	s.inFlight++
	s.maxIn = max(s.maxIn, s.inFlight)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.inFlight--
		s.mu.Unlock()
	}()

	var cr chatRequest
	if err := json.NewDecoder(r.Body).Decode(&cr); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "body is not JSON: "+err.Error())
		return
	}
	req, img, err := s.check(n, r, cr)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", err.Error())
		return
	}
	s.mu.Lock()
	s.received = append(s.received, req)
	s.mu.Unlock()

	var f Fault
	if s.Fault != nil {
		f = s.Fault(n, req)
	}
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-r.Context().Done():
			return
		}
	}
	switch {
	case f.Hangup:
		hj, ok := w.(http.Hijacker)
		if !ok {
			panic(http.ErrAbortHandler)
		}
		conn, _, err := hj.Hijack()
		if err == nil {
			conn.Close()
		}
		return
	case f.Status != 0 && f.Status != http.StatusOK:
		if f.RetryAfter != "" {
			w.Header().Set("Retry-After", f.RetryAfter)
		}
		writeError(w, f.Status, "server_error", fmt.Sprintf("injected HTTP %d", f.Status))
		return
	case f.Body != "":
		ct := f.ContentType
		if ct == "" {
			ct = "text/html"
		}
		w.Header().Set("Content-Type", ct)
		w.Write([]byte(f.Body))
		return
	}

	grade := s.Grade
	if grade == nil {
		grade = RedGrade
	}
	probs := grade(img)
	best := 0
	for g, p := range probs {
		if p > probs[best] {
			best = g
		}
	}
	answer := f.Answer
	if answer == "" {
		answer = strconv.Itoa(best) + "\nSeverity: graded by the fake server."
	}
	choice := map[string]any{
		"index":         0,
		"message":       map[string]any{"role": "assistant", "content": answer},
		"finish_reason": "length",
	}
	if cr.Logprobs && !f.NoLogprobs {
		choice["logprobs"] = map[string]any{"content": tokenLogprobs(answer, probs, cr.TopLogprobs)}
	}
	s.mu.Lock()
	s.served++
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"id": fmt.Sprintf("chatcmpl-%d", n), "object": "chat.completion", "created": time.Now().Unix(),
		"model": cr.Model, "choices": []any{choice},
		"usage": map[string]int{"prompt_tokens": 100, "completion_tokens": len(answer), "total_tokens": 100 + len(answer)},
	})
}

// tokenLogprobs tokenises answer one character per token (digits are single tokens in
// Qwen's tokenizer). The first grade digit gets the grade distribution as top_logprobs,
// plus some non-grade tokens, so the client must pick the grade tokens out.
func tokenLogprobs(answer string, probs []float64, top int) []map[string]any {
	var out []map[string]any
	gradeDone := false
	for _, r := range answer {
		tok := string(r)
		entry := map[string]any{"token": tok, "logprob": 0.0, "bytes": []byte(tok)}
		var alts []map[string]any
		if !gradeDone && r >= '0' && r <= '9' && int(r-'0') < len(probs) {
			gradeDone = true
			// The model's full distribution: 90% on grades, 10% on other tokens.
			for g, p := range probs {
				alts = append(alts, map[string]any{"token": strconv.Itoa(g), "logprob": math.Log(0.9 * p)})
			}
			alts = append(alts, map[string]any{"token": "The", "logprob": math.Log(0.06)},
				map[string]any{"token": "**", "logprob": math.Log(0.04)})
			entry["logprob"] = math.Log(0.9 * probs[r-'0'])
		} else {
			alts = append(alts, map[string]any{"token": tok, "logprob": 0.0})
		}
		if top > 0 {
			if len(alts) > top {
				alts = alts[:top]
			}
			entry["top_logprobs"] = alts
		} else {
			entry["top_logprobs"] = []any{}
		}
		out = append(out, entry)
	}
	return out
}

// check validates a request against what acdtcm must send.
func (s *Server) check(n int, r *http.Request, cr chatRequest) (Request, image.Image, error) {
	req := Request{Call: n, Model: cr.Model, Auth: r.Header.Get("Authorization"), Logprobs: cr.Logprobs,
		TopLogprobs: cr.TopLogprobs, MaxTokens: cr.MaxTokens, Temperature: cr.Temperature}
	known := false
	for _, id := range s.modelIDs() {
		known = known || id == cr.Model
	}
	if !known {
		return req, nil, fmt.Errorf("the model `%s` does not exist", cr.Model)
	}
	if len(cr.Messages) != 2 || cr.Messages[0].Role != "system" || cr.Messages[1].Role != "user" {
		return req, nil, fmt.Errorf("want a system and a user message, got %d messages", len(cr.Messages))
	}
	if err := json.Unmarshal(cr.Messages[0].Content, &req.System); err != nil {
		return req, nil, fmt.Errorf("system content is not a string: %v", err)
	}
	var parts []contentPart
	if err := json.Unmarshal(cr.Messages[1].Content, &parts); err != nil {
		return req, nil, fmt.Errorf("user content is not a list of parts: %v", err)
	}
	var img image.Image
	for i, p := range parts {
		switch p.Type {
		case "text":
			req.Question = p.Text
		case "image_url":
			if p.ImageURL == nil {
				return req, nil, fmt.Errorf("image_url part without url")
			}
			req.ImageFirst = i == 0
			var err error
			if img, err = decodeDataURI(p.ImageURL.URL); err != nil {
				return req, nil, err
			}
			req.Width, req.Height = img.Bounds().Dx(), img.Bounds().Dy()
		default:
			return req, nil, fmt.Errorf("unknown content part type %q", p.Type)
		}
	}
	if img == nil {
		return req, nil, fmt.Errorf("no image in the user message")
	}
	if req.System != qwen.GradingSystemPrompt || req.Question != qwen.GradingQuestion {
		return req, nil, fmt.Errorf("the prompt is not acdtcm's grading prompt")
	}
	return req, img, nil
}

func decodeDataURI(u string) (image.Image, error) {
	rest, ok := strings.CutPrefix(u, "data:")
	if !ok {
		return nil, fmt.Errorf("image url is not a data URI")
	}
	meta, payload, ok := strings.Cut(rest, ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return nil, fmt.Errorf("image data URI is not base64")
	}
	data, err := base64.StdEncoding.DecodeString(payload)
	if err != nil {
		return nil, fmt.Errorf("image data URI: %v", err)
	}
	img, _, err := image.Decode(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("image data URI (%s): %v", meta, err)
	}
	return img, nil
}
