package remote

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/qwen"
	"github.com/acdtcm/acdtcm/internal/remote/fakeserver"
	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// photo is a w x h image of one red level (fakeserver.RedGrade grades it red/64).
func photo(w, h int, red uint8) *image.RGBA {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = red, 40, 30, 255
	}
	return img
}

// sleeps records the waits between attempts instead of sleeping.
type sleeps struct {
	mu sync.Mutex
	d  []time.Duration
}

func (s *sleeps) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.d = append(s.d, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *sleeps) all() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.d...)
}

// start serves fs and opens a Model on it with fast test settings.
func start(t *testing.T, fs *fakeserver.Server, edit func(*Config)) (*Model, *httptest.Server, *sleeps) {
	t.Helper()
	ts := httptest.NewServer(fs)
	t.Cleanup(ts.Close)
	cfg := Config{Endpoint: ts.URL + "/v1", Model: "acne", APIKey: fs.APIKey, MaxPixels: 100_000,
		Timeout: 2 * time.Second, Retries: 3, MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond}
	if edit != nil {
		edit(&cfg)
	}
	m, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	sl := &sleeps{}
	m.sleep = sl.sleep
	return m, ts, sl
}

func prep(t *testing.T, m *Model, imgs ...image.Image) []infer.Input {
	t.Helper()
	var out []infer.Input
	for _, img := range imgs {
		in, err := m.Preprocess(img)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, in)
	}
	return out
}

func TestGradesWithTrainingPromptSizeAndLogprobs(t *testing.T) {
	fs := &fakeserver.Server{APIKey: "sk-test"}
	m, _, _ := start(t, fs, nil)
	// Sizes chosen to need down-scaling (1000x700) and up-scaling (40x30).
	sizes := [][2]int{{1000, 700}, {640, 480}, {40, 30}, {300, 900}}
	reds := []uint8{10, 70, 140, 250}
	var imgs []image.Image
	for i := range sizes {
		imgs = append(imgs, photo(sizes[i][0], sizes[i][1], reds[i]))
	}
	preds, err := m.Predict(context.Background(), prep(t, m, imgs...))
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range preds {
		want := []float64{0.1, 0.1, 0.1, 0.1}
		want[i] = 0.7
		for g := range want {
			if math.Abs(p.Probabilities[g]-want[g]) > 1e-9 {
				t.Errorf("photo %d: probabilities %v, want %v", i, p.Probabilities, want)
				break
			}
		}
	}
	got := fs.Received()
	if len(got) != len(imgs) {
		t.Fatalf("server received %d requests, want %d", len(got), len(imgs))
	}
	wantSizes := map[[2]int]bool{}
	for _, s := range sizes {
		h, w, err := qwen.SmartResize(s[1], s[0], 28, qwen.DefaultProcessorConfig().MinPixels, 100_000)
		if err != nil {
			t.Fatal(err)
		}
		wantSizes[[2]int{w, h}] = true
	}
	for _, r := range got {
		if !wantSizes[[2]int{r.Width, r.Height}] {
			t.Errorf("server saw a %dx%d image, not a smart_resize size of the inputs %v", r.Width, r.Height, wantSizes)
		}
		if r.Width*r.Height > 100_000 || r.Width%28 != 0 || r.Height%28 != 0 {
			t.Errorf("image %dx%d breaks the max_pixels/28 rules", r.Width, r.Height)
		}
		if !r.ImageFirst || r.Auth != "Bearer sk-test" || !r.Logprobs || r.TopLogprobs != 20 || r.Temperature != 0 || r.MaxTokens != 16 {
			t.Errorf("request %+v", r)
		}
	}
	if info := m.Info(); info.Backend != "openai" || info.Scale != severity.Hayashi || !strings.HasPrefix(info.Version, "acne@") {
		t.Errorf("info %+v", info)
	}
}

func TestOpenRejectsWrongServers(t *testing.T) {
	html := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Write([]byte("<html>Welcome to nginx!</html>"))
	}))
	defer html.Close()
	api := httptest.NewServer(&fakeserver.Server{Models: []string{"Qwen/Qwen2.5-VL-3B-Instruct"}, APIKey: "right"})
	defer api.Close()
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := dead.URL
	dead.Close()
	tests := []struct {
		name, endpoint, model, key, want string
	}{
		{"not an API", html.URL + "/v1", "acne", "", "is not an OpenAI-compatible API"},
		{"wrong base path", api.URL + "/api", "acne", "right", "answered HTTP 404"},
		{"model not served", api.URL + "/v1", "acne", "right", `does not serve model "acne" (it serves: Qwen/Qwen2.5-VL-3B-Instruct)`},
		{"bad key", api.URL + "/v1", "acne", "wrong", "refused the API key (HTTP 401)"},
		{"unreachable", deadURL + "/v1", "acne", "", "cannot reach"},
		{"not a URL", "localhost:8000", "acne", "", "is not an http(s) URL"},
		{"no model", api.URL + "/v1", "", "", "--model must name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(context.Background(), Config{Endpoint: tc.endpoint, Model: tc.model, APIKey: tc.key, Timeout: 2 * time.Second})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRetriesTimeoutsAndBackoff(t *testing.T) {
	date := time.Now().Add(3 * time.Second).UTC().Format(http.TimeFormat)
	tests := []struct {
		name      string
		faults    map[int]fakeserver.Fault
		timeout   time.Duration
		wantErr   string // empty: success
		wantCalls int
		check     func(t *testing.T, waits []time.Duration)
	}{
		{"429 with Retry-After seconds", map[int]fakeserver.Fault{1: {Status: 429, RetryAfter: "7"}}, 0, "", 2,
			func(t *testing.T, w []time.Duration) {
				if len(w) != 1 || w[0] != 7*time.Second {
					t.Errorf("waits %v, want [7s] from Retry-After", w)
				}
			}},
		{"429 with Retry-After date", map[int]fakeserver.Fault{1: {Status: 429, RetryAfter: date}}, 0, "", 2,
			func(t *testing.T, w []time.Duration) {
				if len(w) != 1 || w[0] <= time.Second || w[0] > 3*time.Second {
					t.Errorf("waits %v, want about 3s from a Retry-After date", w)
				}
			}},
		{"Retry-After capped", map[int]fakeserver.Fault{1: {Status: 503, RetryAfter: "86400"}}, 0, "", 2,
			func(t *testing.T, w []time.Duration) {
				if len(w) != 1 || w[0] != 5*time.Minute {
					t.Errorf("waits %v, want the 5m cap", w)
				}
			}},
		{"5xx then success, exponential backoff", map[int]fakeserver.Fault{1: {Status: 500}, 2: {Status: 502}, 3: {Status: 503}}, 0, "", 4,
			func(t *testing.T, w []time.Duration) {
				if len(w) != 3 {
					t.Fatalf("waits %v, want 3", w)
				}
				for k, d := range w { // equal jitter: [base*2^k/2, base*2^k], capped at 4ms
					hi := min(time.Millisecond<<k, 4*time.Millisecond)
					if d < hi/2 || d > hi {
						t.Errorf("wait %d = %v, want in [%v, %v]", k, d, hi/2, hi)
					}
				}
			}},
		{"retries exhausted", map[int]fakeserver.Fault{1: {Status: 503}, 2: {Status: 503}, 3: {Status: 503}, 4: {Status: 503}}, 0,
			"after 4 attempt(s): HTTP 503", 4, nil},
		{"400 is not retried", map[int]fakeserver.Fault{1: {Status: 400}}, 0, "after 1 attempt(s): HTTP 400", 1, nil},
		{"timeout then success", map[int]fakeserver.Fault{1: {Delay: 5 * time.Second}}, 100 * time.Millisecond, "", 2, nil},
		{"hang-up then success", map[int]fakeserver.Fault{1: {Hangup: true}}, 0, "", 2, nil},
		{"always too slow", map[int]fakeserver.Fault{1: {Delay: 5 * time.Second}, 2: {Delay: 5 * time.Second}, 3: {Delay: 5 * time.Second}, 4: {Delay: 5 * time.Second}},
			50 * time.Millisecond, "no answer within 50ms", 4, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := &fakeserver.Server{Fault: func(n int, _ fakeserver.Request) fakeserver.Fault { return tc.faults[n] }}
			m, _, sl := start(t, fs, func(c *Config) {
				if tc.timeout > 0 {
					c.Timeout = tc.timeout
				}
			})
			preds, errs := m.PredictItems(context.Background(), prep(t, m, photo(60, 60, 140)))
			if tc.wantErr == "" {
				if errs[0] != nil {
					t.Fatalf("error %v", errs[0])
				}
				if preds[0].Probabilities[2] < 0.69 {
					t.Errorf("probabilities %v, want grade 2", preds[0].Probabilities)
				}
			} else if errs[0] == nil || !strings.Contains(errs[0].Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", errs[0], tc.wantErr)
			}
			if c := fs.Stats().Calls; c != tc.wantCalls {
				t.Errorf("server got %d calls, want %d", c, tc.wantCalls)
			}
			if tc.check != nil {
				tc.check(t, sl.all())
			}
		})
	}
}

func TestMalformedAnswers(t *testing.T) {
	tests := []struct {
		name      string
		fault     fakeserver.Fault
		wantGrade int // -1: error
		wantErr   string
		oneHot    bool
	}{
		{"trained form", fakeserver.Fault{}, 1, "", false},
		{"markdown and label", fakeserver.Fault{Answer: "**Grade: 1** (moderate)"}, 1, "", false},
		{"leading blank line", fakeserver.Fault{Answer: "\n 1\nSeverity: moderate"}, 1, "", false},
		{"no logprobs: answer text only", fakeserver.Fault{NoLogprobs: true}, 1, "", true},
		{"refusal", fakeserver.Fault{Answer: "I cannot grade this photo."}, -1, "does not start with a hayashi grade", false},
		{"out of scale", fakeserver.Fault{Answer: "7"}, -1, "does not start with", false},
		{"a count, not a grade", fakeserver.Fault{Answer: "12 papules"}, -1, "does not start with", false},
		{"decimal", fakeserver.Fault{Answer: "1.5"}, -1, "does not start with", false},
		{"html page", fakeserver.Fault{Body: "<html>502 Bad Gateway</html>"}, -1, `did not answer with chat-completions JSON (Content-Type "text/html"`, false},
		{"json without choices", fakeserver.Fault{Body: `{"object":"error","message":"oops"}`, ContentType: "application/json"}, -1, "not an OpenAI chat-completions response", false},
		{"truncated json", fakeserver.Fault{Body: `{"choices":[{"message":{"content":"1`, ContentType: "application/json"}, -1, "did not answer with chat-completions JSON", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fs := &fakeserver.Server{Fault: func(int, fakeserver.Request) fakeserver.Fault { return tc.fault }}
			m, _, _ := start(t, fs, nil)
			preds, errs := m.PredictItems(context.Background(), prep(t, m, photo(60, 60, 70)))
			if tc.wantGrade < 0 {
				if errs[0] == nil || !strings.Contains(errs[0].Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", errs[0], tc.wantErr)
				}
				if c := fs.Stats().Calls; c != 1 {
					t.Errorf("a malformed answer was sent %d times, want 1 (not retried)", c)
				}
				return
			}
			if errs[0] != nil {
				t.Fatal(errs[0])
			}
			p := preds[0].Probabilities
			want := []float64{0.1, 0.7, 0.1, 0.1}
			if tc.oneHot {
				want = []float64{0, 1, 0, 0}
			}
			for g := range want {
				if math.Abs(p[g]-want[g]) > 1e-9 {
					t.Fatalf("probabilities %v, want %v", p, want)
				}
			}
		})
	}
}

func TestConcurrencyLimit(t *testing.T) {
	fs := &fakeserver.Server{Fault: func(int, fakeserver.Request) fakeserver.Fault { return fakeserver.Fault{Delay: 20 * time.Millisecond} }}
	m, _, _ := start(t, fs, func(c *Config) { c.Concurrency = 2 })
	var imgs []image.Image
	for i := 0; i < 6; i++ {
		imgs = append(imgs, photo(56, 56, uint8(i*40)))
	}
	// Two Predict calls at once share the limit.
	var wg sync.WaitGroup
	for k := 0; k < 2; k++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := m.Predict(context.Background(), prep(t, m, imgs...)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	st := fs.Stats()
	if st.Calls != 12 || st.MaxInFlight > 2 || st.MaxInFlight < 1 {
		t.Errorf("stats %+v: want 12 calls with at most 2 in flight", st)
	}
}

func writePNG(t *testing.T, path string, img image.Image) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, img); err != nil {
		t.Fatal(err)
	}
}

func decodeFile(path string) (image.Image, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	img, _, err := image.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w", path, err)
	}
	return img, nil
}

// TestServerDiesMidBatch runs the diagnose pipeline over 12 photos against a server that
// answers 5 requests and then dies (hangs up, stops listening): every photo gets exactly one
// result, the 5 answered are diagnosed, the other 7 are reported failed by name.
func TestServerDiesMidBatch(t *testing.T) {
	const total, answered = 12, 5
	var ts *httptest.Server
	var once sync.Once
	fs := &fakeserver.Server{Fault: func(n int, _ fakeserver.Request) fakeserver.Fault {
		if n <= answered {
			return fakeserver.Fault{}
		}
		once.Do(func() { ts.Listener.Close() })
		return fakeserver.Fault{Hangup: true}
	}}
	m, srv, _ := start(t, fs, func(c *Config) { c.Concurrency = 3 })
	ts = srv
	dir := t.TempDir()
	var paths []string
	for i := 0; i < total; i++ {
		p := filepath.Join(dir, fmt.Sprintf("face%02d.png", i))
		writePNG(t, p, photo(84, 84, uint8(i*20)))
		paths = append(paths, p)
	}
	seen := map[string]int{}
	var failed []*result.DiagnosisResult
	sum, err := infer.Run(context.Background(), m, infer.ExpandInputs(context.Background(), paths, nil),
		infer.Options{BatchSize: 8, Workers: 2, Decode: decodeFile},
		func(r *result.DiagnosisResult) error {
			seen[r.Image]++
			if r.Error != "" {
				failed = append(failed, r)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		if seen[p] != 1 {
			t.Errorf("%s has %d results, want 1", p, seen[p])
		}
	}
	if sum.Diagnosed != answered || sum.Failed != total-answered || fs.Stats().Served != answered {
		t.Errorf("summary %+v, server served %d; want %d diagnosed, %d failed", sum, fs.Stats().Served, answered, total-answered)
	}
	for _, r := range failed {
		if !strings.Contains(r.Error, r.Image) || !strings.Contains(r.Error, "attempt(s)") {
			t.Errorf("failure of %s does not name the photo and the attempts: %q", r.Image, r.Error)
		}
	}
}

func TestParseGrade(t *testing.T) {
	tests := []struct {
		answer string
		grade  int
		offset int
	}{
		{"2\nSeverity: severe", 2, 0},
		{"  3", 3, 2},
		{"**0**", 0, 2},
		{"Grade: 1", 1, 7},
		{"hayashi grade 2 (severe)", 2, 14},
		{"Severity grade is 3.", 3, 18},
		{"1. Moderate acne", 1, 0},
		{"10", -1, -1},
		{"2.5", -1, -1},
		{"4", -1, -1},
		{"moderate", -1, -1},
		{"", -1, -1},
	}
	for _, tc := range tests {
		g, off := ParseGrade(tc.answer, severity.Hayashi)
		if g != tc.grade || off != tc.offset {
			t.Errorf("ParseGrade(%q) = %d at %d, want %d at %d", tc.answer, g, off, tc.grade, tc.offset)
		}
	}
}
