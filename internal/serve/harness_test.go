package serve

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/knowledge"
)

// harness is a server on httptest with a fake model, a temporary SQLite store and an
// OpenAPI validator that checks every response.
type harness struct {
	t      testing.TB
	srv    *Server
	ts     *httptest.Server
	model  *fakeModel
	store  Store
	dir    string
	doc    *openapi3.T
	router routers.Router
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	kbOnce sync.Once
	kbVal  *knowledge.KB
	kbErr  error
)

func testKB(t testing.TB) *knowledge.KB {
	kbOnce.Do(func() { kbVal, kbErr = knowledge.Load() })
	if kbErr != nil {
		t.Fatalf("knowledge base: %v", kbErr)
	}
	return kbVal
}

type harnessOpts struct {
	cfg   func(*Config)
	model *fakeModel
	// real, when set, is served instead of the fake model.
	real    infer.Model
	noModel bool
	dir     string
}

func newHarness(t testing.TB, o harnessOpts) *harness {
	t.Helper()
	dir := o.dir
	if dir == "" {
		dir = t.TempDir()
	}
	store, err := OpenSQLite(context.Background(), filepath.Join(dir, "acdtcm.db"))
	if err != nil {
		t.Fatal(err)
	}
	images, err := NewImageStore(filepath.Join(dir, "images"), nil)
	if err != nil {
		t.Fatal(err)
	}
	logs := &syncBuffer{}
	cfg := Config{KB: testKB(t), Store: store, Images: images, Logger: slog.New(slog.NewJSONHandler(logs, nil)),
		Batch: BatchOptions{MaxBatch: 4, QueueSize: 32}}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m := o.model
	if m == nil {
		m = &fakeModel{}
	}
	switch {
	case o.real != nil:
		srv.SetModel(o.real)
	case !o.noModel:
		srv.SetModel(m)
	}
	ts := httptest.NewServer(srv.Handler())
	doc, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	doc.Servers = openapi3.Servers{{URL: ts.URL}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, srv: srv, ts: ts, model: m, store: store, dir: dir, doc: doc, router: router, logs: logs}
	t.Cleanup(func() {
		ts.Close()
		srv.closeModel()
		store.Close()
	})
	return h
}

// do sends req, validates the response against the OpenAPI document and returns it with
// its body.
func (h *harness) do(req *http.Request) (*http.Response, []byte) {
	h.t.Helper()
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		h.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		h.t.Fatalf("%s %s: read body: %v", req.Method, req.URL.Path, err)
	}
	h.validate(req, resp, body)
	return resp, body
}

// validate checks a response against the OpenAPI document: a documented route's status,
// headers and body; an undocumented path or method must answer the Error schema.
func (h *harness) validate(req *http.Request, resp *http.Response, body []byte) {
	h.t.Helper()
	vreq := req.Clone(context.Background())
	vreq.Body = http.NoBody
	route, params, err := h.router.FindRoute(vreq)
	if err != nil {
		if resp.StatusCode < 400 {
			h.t.Errorf("%s %s: %d for a route the OpenAPI document does not have", req.Method, req.URL.Path, resp.StatusCode)
		}
		var v any
		if err := json.Unmarshal(body, &v); err != nil {
			h.t.Errorf("%s %s: error body is not JSON: %v: %s", req.Method, req.URL.Path, err, body)
			return
		}
		if err := h.doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
			h.t.Errorf("%s %s: error body does not match the Error schema: %v", req.Method, req.URL.Path, err)
		}
		return
	}
	opts := &openapi3filter.Options{IncludeResponseStatus: true}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		opts.ExcludeResponseBody = true
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Options:                opts,
	}
	in.SetBodyBytes(body)
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		h.t.Errorf("%s %s -> %d: response does not match the OpenAPI document: %v\nbody: %.400s", req.Method, req.URL.Path, resp.StatusCode, err, body)
	}
}

func (h *harness) get(path, key string) (*http.Response, []byte) {
	req, _ := http.NewRequest(http.MethodGet, h.ts.URL+path, nil)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	return h.do(req)
}

// diagnoseReq builds a multipart diagnose request.
func (h *harness) diagnoseReq(img []byte, fields map[string]string, key string) *http.Request {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	if img != nil {
		fw, _ := mw.CreateFormFile("image", "photo.jpg")
		fw.Write(img)
	}
	for k, v := range fields {
		mw.WriteField(k, v)
	}
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/api/v1/diagnose", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	if key != "" {
		req.Header.Set("X-API-Key", key)
	}
	return req
}

type apiResp struct {
	Success bool            `json:"success"`
	Data    json.RawMessage `json:"data"`
	Error   string          `json:"error"`
	Message string          `json:"message"`
}

func decode(t *testing.T, body []byte) apiResp {
	t.Helper()
	var r apiResp
	if err := json.Unmarshal(body, &r); err != nil {
		t.Fatalf("response is not JSON: %v: %s", err, body)
	}
	return r
}

// makeJPEG encodes a w×h photo with the given red level.
func makeJPEG(t testing.TB, w, h int, red uint8) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{red, uint8(x), uint8(y), 255})
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// bombPNG is a tiny PNG whose header declares w×h pixels (a decompression bomb: decoding it
// would allocate w*h*3 bytes).
func bombPNG(w, h uint32) []byte {
	var buf bytes.Buffer
	buf.WriteString("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		binary.Write(&buf, binary.BigEndian, uint32(len(data)))
		c := crc32.NewIEEE()
		c.Write([]byte(typ))
		c.Write(data)
		buf.WriteString(typ)
		buf.Write(data)
		binary.Write(&buf, binary.BigEndian, c.Sum32())
	}
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 2 // 8-bit RGB
	chunk("IHDR", ihdr)
	// A zlib stream of zeros: a few hundred bytes that would inflate to gigabytes.
	chunk("IDAT", []byte{0x78, 0x9c, 0xed, 0xc1, 0x01, 0x0d, 0x00, 0x00, 0x00, 0xc2, 0xa0, 0xf7, 0x4f, 0x6d, 0x0e, 0x37, 0xa0, 0x00, 0x00})
	chunk("IEND", nil)
	return buf.Bytes()
}

func newMultipartTo(w io.Writer) *multipart.Writer {
	mw := multipart.NewWriter(w)
	mw.SetBoundary(testBoundary)
	return mw
}

// diagnoseReqTo is diagnoseReq against another base URL.
func (h *harness) diagnoseReqTo(base string, img []byte) *http.Request {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	fw, _ := mw.CreateFormFile("image", "photo.jpg")
	fw.Write(img)
	mw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/diagnose", &buf)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	return req
}
