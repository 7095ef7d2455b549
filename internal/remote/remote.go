// Package remote grades photos on an OpenAI-compatible chat-completions server (vLLM,
// SGLang, TGI, acdtcm serve itself) serving an acdtcm Qwen2.5-VL export or a base model with
// the acdtcm LoRA adapter. It sends exactly the grading prompt used in training
// (qwen.GradingSystemPrompt, qwen.GradingQuestion, image before question), resizes each
// photo with the training processor's smart_resize so the server sees the same image size,
// and reads the grade probabilities from the first answer token's log-probabilities when the
// server returns them (vLLM does with "logprobs": true, "top_logprobs": N).
//
// Requests run concurrently up to a limit, each with a timeout; 408, 429 (honouring
// Retry-After), 5xx and transport errors are retried with exponential backoff and jitter.
// Every photo of a batch succeeds or fails on its own (infer.ItemPredictor), so a server
// that dies mid-batch loses nothing: the photos it did not answer are reported failed.
package remote

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/qwen"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// BackendName is the --backend value that selects this package.
const BackendName = "openai"

// DefaultAPIKeyEnv is the environment variable read for the API key when none is named.
const DefaultAPIKeyEnv = "OPENAI_API_KEY"

// Config describes the server and how to talk to it. Zero fields take the defaults below.
type Config struct {
	// Endpoint is the API base URL, e.g. http://vllm:8000/v1 (required).
	Endpoint string
	// Model is the served model name: vLLM's --served-model-name, or the NAME of
	// --lora-modules NAME=PATH (required).
	Model string
	// APIKey is sent as "Authorization: Bearer KEY" when not empty.
	APIKey string
	// Concurrency is the most requests in flight at once, across all Predict calls (8).
	Concurrency int
	// Timeout bounds one request attempt (120s).
	Timeout time.Duration
	// Retries is how many times a retryable failure is retried (4; negative: none).
	Retries int
	// MinBackoff and MaxBackoff bound the exponential backoff between attempts (0.5s, 30s).
	// A Retry-After header is honoured up to MaxRetryAfter.
	MinBackoff, MaxBackoff time.Duration
	// MaxRetryAfter caps the wait a server may ask for with Retry-After (5m).
	MaxRetryAfter time.Duration
	// MinPixels and MaxPixels are the smart_resize limits used in training (Qwen2VL image
	// processor defaults 3136 and 1003520).
	MinPixels, MaxPixels int
	// ImageFormat encodes the resized photo: "png" (lossless, default) or "jpeg" (quality 95).
	ImageFormat string
	// TopLogprobs is the number of alternatives asked per token (20, vLLM's default maximum);
	// 0 or less asks for none and grades from the answer text only.
	TopLogprobs int
	// MaxTokens bounds the answer (16): the grade comes first, the rest is not needed.
	MaxTokens int
	// SkipCheck skips the GET /models check in Open.
	SkipCheck bool
	// HTTPClient sends the requests (a client without its own timeout by default).
	HTTPClient *http.Client
	// Logger receives retry and fallback notices (slog.Default()).
	Logger *slog.Logger
}

func (c *Config) defaults() {
	pc := qwen.DefaultProcessorConfig()
	defInt := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	defDur := func(p *time.Duration, v time.Duration) {
		if *p <= 0 {
			*p = v
		}
	}
	defInt(&c.Concurrency, 8)
	defDur(&c.Timeout, 120*time.Second)
	defInt(&c.Retries, 4)
	if c.Retries < 0 {
		c.Retries = 0
	}
	defDur(&c.MinBackoff, 500*time.Millisecond)
	defDur(&c.MaxBackoff, 30*time.Second)
	defDur(&c.MaxRetryAfter, 5*time.Minute)
	defInt(&c.MinPixels, pc.MinPixels)
	defInt(&c.MaxPixels, pc.MaxPixels)
	defInt(&c.TopLogprobs, 20)
	defInt(&c.MaxTokens, 16)
	if c.ImageFormat == "" {
		c.ImageFormat = "png"
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Model is an infer.Model (and infer.ItemPredictor) backed by a remote server.
type Model struct {
	cfg    Config
	base   *url.URL
	sem    chan struct{}
	factor int
	scale  severity.Scale
	// sleep waits between attempts (tests record the waits instead).
	sleep    func(ctx context.Context, d time.Duration) error
	warnOnce sync.Once
}

// Open validates cfg and, unless cfg.SkipCheck, asks the server for its models (GET
// /models) so that a wrong URL, a server that is not OpenAI-compatible or a model name it
// does not serve fail now with a clear message rather than on every photo.
func Open(ctx context.Context, cfg Config) (*Model, error) {
	cfg.defaults()
	if cfg.Endpoint == "" {
		return nil, errors.New("openai backend: --endpoint is required (e.g. http://localhost:8000/v1)")
	}
	if cfg.Model == "" {
		return nil, errors.New("openai backend: --model must name the served model (vLLM --served-model-name or the NAME of --lora-modules NAME=PATH)")
	}
	base, err := url.Parse(strings.TrimRight(cfg.Endpoint, "/"))
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("openai backend: endpoint %q is not an http(s) URL", cfg.Endpoint)
	}
	if cfg.ImageFormat != "png" && cfg.ImageFormat != "jpeg" {
		return nil, fmt.Errorf("openai backend: image format %q: want png or jpeg", cfg.ImageFormat)
	}
	if cfg.MinPixels <= 0 || cfg.MaxPixels < cfg.MinPixels {
		return nil, fmt.Errorf("openai backend: need 0 < min pixels (%d) <= max pixels (%d)", cfg.MinPixels, cfg.MaxPixels)
	}
	pc := qwen.DefaultProcessorConfig()
	m := &Model{cfg: cfg, base: base, sem: make(chan struct{}, cfg.Concurrency),
		factor: pc.PatchSize * pc.MergeSize, scale: severity.Hayashi, sleep: sleepCtx}
	if !cfg.SkipCheck {
		if err := m.check(ctx); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Info describes the remote model.
func (m *Model) Info() infer.ModelInfo {
	return infer.ModelInfo{Name: "openai:" + m.cfg.Model, Version: m.cfg.Model + "@" + m.base.Host,
		Backend: BackendName, Scale: m.scale}
}

// Image is a preprocessed photo: resized as in training and encoded as a data URI.
type Image struct {
	// Width and Height are the size sent to the server (multiples of 28).
	Width, Height int
	// DataURI is "data:image/png;base64,..." (or image/jpeg).
	DataURI string
}

// Preprocess applies the training processor's smart_resize (PIL bicubic) and encodes the
// result, so the server's own smart_resize leaves the size unchanged.
func (m *Model) Preprocess(img image.Image) (infer.Input, error) {
	b := img.Bounds()
	h, w, err := qwen.SmartResize(b.Dy(), b.Dx(), m.factor, m.cfg.MinPixels, m.cfg.MaxPixels)
	if err != nil {
		return nil, err
	}
	rgba := qwen.ToRGBA(img)
	if h != b.Dy() || w != b.Dx() {
		rgba = qwen.ResizeBicubicPIL(rgba, w, h)
	}
	var buf bytes.Buffer
	mime := "image/png"
	if m.cfg.ImageFormat == "jpeg" {
		mime = "image/jpeg"
		err = jpeg.Encode(&buf, rgba, &jpeg.Options{Quality: 95})
	} else {
		err = (&png.Encoder{CompressionLevel: png.BestSpeed}).Encode(&buf, rgba)
	}
	if err != nil {
		return nil, fmt.Errorf("encode %dx%d photo as %s: %w", w, h, mime, err)
	}
	return &Image{Width: w, Height: h, DataURI: "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(buf.Bytes())}, nil
}

// Predict grades a batch; it fails when any photo fails (infer.Run and servers that know
// infer.ItemPredictor use PredictItems and keep the photos that succeeded).
func (m *Model) Predict(ctx context.Context, batch []infer.Input) ([]infer.Prediction, error) {
	preds, errs := m.PredictItems(ctx, batch)
	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return nil, fmt.Errorf("%d of %d photos failed, first: %w", len(failed), len(batch), failed[0])
	}
	return preds, nil
}

// PredictItems grades every photo of batch in its own request (at most Concurrency at
// once) and returns one prediction and one error per photo.
func (m *Model) PredictItems(ctx context.Context, batch []infer.Input) ([]infer.Prediction, []error) {
	preds := make([]infer.Prediction, len(batch))
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	for i, in := range batch {
		img, ok := in.(*Image)
		if !ok {
			errs[i] = fmt.Errorf("openai backend: input %d is %T, not a preprocessed image", i, in)
			continue
		}
		select {
		case m.sem <- struct{}{}:
		case <-ctx.Done():
			errs[i] = ctx.Err()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-m.sem }()
			preds[i], errs[i] = m.grade(ctx, img)
		}()
	}
	wg.Wait()
	return preds, errs
}

// statusError is a non-2xx answer.
type statusError struct {
	code       int
	body       string
	retryAfter time.Duration
	hasRetry   bool
}

func (e *statusError) Error() string {
	return fmt.Sprintf("HTTP %d: %s", e.code, e.body)
}

func retryableStatus(code int) bool {
	return code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code >= 500
}

// grade sends one photo, retrying what may succeed on a later attempt.
func (m *Model) grade(ctx context.Context, img *Image) (infer.Prediction, error) {
	body, err := json.Marshal(m.request(img))
	if err != nil {
		return infer.Prediction{}, fmt.Errorf("openai backend: encode request: %w", err)
	}
	var lastErr error
	for attempt := 0; ; attempt++ {
		resp, err := m.post(ctx, body)
		if err == nil {
			pred, perr := m.parse(resp)
			if perr != nil {
				return infer.Prediction{}, perr // a well-formed but wrong answer is not retried
			}
			return pred, nil
		}
		lastErr = err
		if ctx.Err() != nil {
			return infer.Prediction{}, fmt.Errorf("openai backend: %w (last error: %v)", ctx.Err(), err)
		}
		var se *statusError
		retry := true
		wait := m.backoff(attempt)
		if errors.As(err, &se) {
			retry = retryableStatus(se.code)
			if se.hasRetry {
				wait = min(se.retryAfter, m.cfg.MaxRetryAfter)
			}
		}
		if !retry || attempt >= m.cfg.Retries {
			break
		}
		m.cfg.Logger.Debug("openai backend: retrying", "attempt", attempt+1, "wait", wait, "err", err)
		if err := m.sleep(ctx, wait); err != nil {
			return infer.Prediction{}, fmt.Errorf("openai backend: %w (last error: %v)", err, lastErr)
		}
	}
	return infer.Prediction{}, fmt.Errorf("openai backend: POST %s after %d attempt(s): %w", m.completionsURL(), m.attempts(lastErr), lastErr)
}

// attempts is how many attempts grade made before giving up with err.
func (m *Model) attempts(err error) int {
	var se *statusError
	if errors.As(err, &se) && !retryableStatus(se.code) {
		return 1 // not retried; the count is only used in messages
	}
	return m.cfg.Retries + 1
}

// backoff is the wait before retry attempt+1: exponential from MinBackoff, capped at
// MaxBackoff, with "equal jitter" (half fixed, half random) so clients spread out.
func (m *Model) backoff(attempt int) time.Duration {
	d := float64(m.cfg.MinBackoff) * math.Pow(2, float64(attempt))
	d = math.Min(d, float64(m.cfg.MaxBackoff))
	return time.Duration(d/2 + rand.Float64()*d/2)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// parseRetryAfter reads a Retry-After header: delay seconds or an HTTP date.
func parseRetryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(0, t.Sub(now)), true
	}
	return 0, false
}

func (m *Model) completionsURL() string { return m.base.String() + "/chat/completions" }

func (m *Model) newRequest(ctx context.Context, method, u string, body []byte) (*http.Request, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if m.cfg.APIKey != "" {
		req.Header.Set("Authorization", "Bearer "+m.cfg.APIKey)
	}
	return req, nil
}

// post sends one attempt and returns the whole 2xx body; transport errors, timeouts, a body
// cut short and non-2xx answers are errors.
func (m *Model) post(ctx context.Context, body []byte) (*rawResponse, error) {
	actx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	req, err := m.newRequest(actx, http.MethodPost, m.completionsURL(), body)
	if err != nil {
		return nil, err
	}
	resp, err := m.cfg.HTTPClient.Do(req)
	if err != nil {
		if errors.Is(actx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("no answer within %s: %w", m.cfg.Timeout, err)
		}
		return nil, err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		se := &statusError{code: resp.StatusCode, body: snippet(data)}
		se.retryAfter, se.hasRetry = parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		return nil, se
	}
	return &rawResponse{contentType: resp.Header.Get("Content-Type"), body: data}, nil
}

type rawResponse struct {
	contentType string
	body        []byte
}

func snippet(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// The chat-completions wire format (the subset used).
type (
	chatRequest struct {
		Model       string        `json:"model"`
		Messages    []chatMessage `json:"messages"`
		MaxTokens   int           `json:"max_tokens"`
		Temperature float64       `json:"temperature"`
		Logprobs    bool          `json:"logprobs,omitempty"`
		TopLogprobs int           `json:"top_logprobs,omitempty"`
	}
	chatMessage struct {
		Role    string `json:"role"`
		Content any    `json:"content"` // string or []contentPart
	}
	contentPart struct {
		Type     string    `json:"type"`
		Text     string    `json:"text,omitempty"`
		ImageURL *imageURL `json:"image_url,omitempty"`
	}
	imageURL struct {
		URL string `json:"url"`
	}
	chatResponse struct {
		Object  string       `json:"object"`
		Model   string       `json:"model"`
		Choices []chatChoice `json:"choices"`
	}
	chatChoice struct {
		Message struct {
			Content *string `json:"content"`
		} `json:"message"`
		Logprobs *struct {
			Content []tokenLogprob `json:"content"`
		} `json:"logprobs"`
		FinishReason string `json:"finish_reason"`
	}
	tokenLogprob struct {
		Token       string  `json:"token"`
		Logprob     float64 `json:"logprob"`
		TopLogprobs []struct {
			Token   string  `json:"token"`
			Logprob float64 `json:"logprob"`
		} `json:"top_logprobs"`
	}
)

// request is the grading chat of qwen.GradingMessages: system prompt, then a user turn with
// the image first and the question second; greedy decoding.
func (m *Model) request(img *Image) chatRequest {
	req := chatRequest{
		Model: m.cfg.Model,
		Messages: []chatMessage{
			{Role: "system", Content: qwen.GradingSystemPrompt},
			{Role: "user", Content: []contentPart{
				{Type: "image_url", ImageURL: &imageURL{URL: img.DataURI}},
				{Type: "text", Text: qwen.GradingQuestion},
			}},
		},
		MaxTokens: m.cfg.MaxTokens,
	}
	if m.cfg.TopLogprobs > 0 {
		req.Logprobs, req.TopLogprobs = true, m.cfg.TopLogprobs
	}
	return req
}

// parse turns a 2xx answer into a prediction.
func (m *Model) parse(resp *rawResponse) (infer.Prediction, error) {
	var cr chatResponse
	if err := json.Unmarshal(resp.body, &cr); err != nil {
		return infer.Prediction{}, fmt.Errorf("openai backend: %s did not answer with chat-completions JSON (Content-Type %q, %v): %s",
			m.completionsURL(), resp.contentType, err, snippet(resp.body))
	}
	if len(cr.Choices) == 0 || cr.Choices[0].Message.Content == nil {
		return infer.Prediction{}, fmt.Errorf("openai backend: %s answered without choices[0].message.content (object %q): not an OpenAI chat-completions response: %s",
			m.completionsURL(), cr.Object, snippet(resp.body))
	}
	ch := cr.Choices[0]
	answer := *ch.Message.Content
	grade, pos := ParseGrade(answer, m.scale)
	if grade < 0 {
		return infer.Prediction{}, fmt.Errorf("openai backend: answer %q does not start with a %s grade (0-%d)", shorten(answer), m.scale, m.scale.NumGrades()-1)
	}
	var probs []float64
	if ch.Logprobs != nil {
		probs = gradeProbabilities(ch.Logprobs.Content, pos, m.scale)
	}
	if probs == nil {
		if m.cfg.TopLogprobs > 0 {
			m.warnOnce.Do(func() {
				m.cfg.Logger.Warn("openai backend: the server returned no usable log-probabilities; grades come from the answer text and confidence is 1",
					"endpoint", m.base.String(), "model", m.cfg.Model)
			})
		}
		probs = make([]float64, m.scale.NumGrades())
		probs[grade] = 1
	}
	return infer.Prediction{Probabilities: probs}, nil
}

func shorten(s string) string {
	if r := []rune(s); len(r) > 80 {
		return string(r[:80]) + "..."
	}
	return s
}

// gradeProbabilities reads the distribution over grade tokens at the answer token that
// holds the grade digit, found by its byte offset in the answer (tokens concatenate to it). Like qwen.GradeProbabilities it
// is a softmax over the grade tokens only (exp(logprob) renormalised; logprob = logit -
// log Z, so this equals the local computation). Grades missing from top_logprobs get 0.
// It returns nil when that token is not a grade digit or no alternative is a grade.
func gradeProbabilities(content []tokenLogprob, offset int, scale severity.Scale) []float64 {
	end := 0
	for _, tl := range content {
		end += len(tl.Token)
		if end <= offset {
			continue
		}
		if digitGrade(strings.TrimSpace(tl.Token), scale) < 0 {
			return nil
		}
		lps := map[int]float64{}
		add := func(token string, lp float64) {
			g := digitGrade(strings.TrimSpace(token), scale)
			if g < 0 {
				return
			}
			if old, ok := lps[g]; ok { // " 2" and "2": log-sum-exp
				hi := math.Max(old, lp)
				lp = hi + math.Log(math.Exp(old-hi)+math.Exp(lp-hi))
			}
			lps[g] = lp
		}
		for _, alt := range tl.TopLogprobs {
			add(alt.Token, alt.Logprob)
		}
		if len(tl.TopLogprobs) == 0 {
			add(tl.Token, tl.Logprob)
		}
		if len(lps) == 0 {
			return nil
		}
		hi := math.Inf(-1)
		for _, lp := range lps {
			hi = math.Max(hi, lp)
		}
		probs := make([]float64, scale.NumGrades())
		sum := 0.0
		for g, lp := range lps {
			probs[g] = math.Exp(lp - hi)
			sum += probs[g]
		}
		for g := range probs {
			probs[g] /= sum
		}
		return probs
	}
	return nil
}

// digitGrade is the grade a token spells as a single digit, or -1.
func digitGrade(tok string, scale severity.Scale) int {
	if len(tok) != 1 || tok[0] < '0' || tok[0] > '9' {
		return -1
	}
	if g := int(tok[0] - '0'); scale.Valid(g) {
		return g
	}
	return -1
}
