package serve

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acdtcm/acdtcm/internal/result"
)

func TestRoutes(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	tests := []struct {
		method, path string
		status       int
		contentType  string
		contains     string
	}{
		{"GET", "/api/v1/health", 200, "application/json", `"status":"ok"`},
		{"GET", "/api/v1/ready", 200, "application/json", `"model":"fake-grader"`},
		{"GET", "/api/v1/models", 200, "application/json", `"memory_bytes":1234`},
		{"GET", "/api/v1/diagnoses", 200, "application/json", `"total":0`},
		{"GET", "/api/v1/diagnoses/nope", 404, "application/json", `"error":"not_found"`},
		{"DELETE", "/api/v1/diagnoses/nope", 404, "application/json", `"error":"not_found"`},
		{"GET", "/v1/models", 200, "application/json", `"id":"fake-grader"`},
		{"GET", "/api/v1/openapi.json", 200, "application/json", `"openapi": "3.0.3"`},
		{"GET", "/docs", 200, "text/html", `/static/docs.js`},
		{"GET", "/", 200, "text/html", `/static/app.js`},
		{"GET", "/static/app.js", 200, "text/javascript", `applyLang`},
		{"GET", "/static/app.css", 200, "text/css", `.grade`},
		{"GET", "/static/nothing.js", 404, "application/json", `"error":"not_found"`},
		{"GET", "/metrics", 200, "text/plain", `acdtcm_http_in_flight_requests`},
		{"GET", "/no/such/route", 404, "application/json", `"success":false`},
		{"GET", "/api/v1/diagnose", 405, "application/json", `"error":"method_not_allowed"`},
		{"PUT", "/api/v1/health", 405, "application/json", `"error":"method_not_allowed"`},
		{"GET", "/api/v1/diagnoses?limit=0", 400, "application/json", `"error":"invalid_parameter"`},
		{"GET", "/api/v1/diagnoses?limit=x", 400, "application/json", `"error":"invalid_parameter"`},
		{"GET", "/api/v1/diagnoses?from=yesterday", 400, "application/json", `"error":"invalid_parameter"`},
		{"GET", "/api/v1/diagnoses?offset=-1", 400, "application/json", `"error":"invalid_parameter"`},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, h.ts.URL+tc.path, nil)
			resp, body := h.do(req)
			if resp.StatusCode != tc.status {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, tc.contentType) {
				t.Errorf("Content-Type %q, want %s", ct, tc.contentType)
			}
			if !bytes.Contains(body, []byte(tc.contains)) {
				t.Errorf("body lacks %s: %.300s", tc.contains, body)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("missing X-Content-Type-Options: nosniff")
			}
		})
	}
}

func TestDiagnoseBadInput(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.MaxBodyBytes = 5 << 20 }})
	good := makeJPEG(t, 64, 48, 200)
	truncated := good[:len(good)/2]
	huge := func() *http.Request { // 100 MB declared in Content-Length
		req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/api/v1/diagnose", io.LimitReader(zeroReader{}, 100<<20))
		req.ContentLength = 100 << 20
		req.Header.Set("Content-Type", "multipart/form-data; boundary=x")
		return req
	}
	hugeChunked := func() *http.Request { // 100 MB streamed without Content-Length
		pr, pw := io.Pipe()
		go func() {
			mw := newMultipartTo(pw)
			fw, _ := mw.CreateFormFile("image", "big.jpg")
			fw.Write(good[:len(good)-2])
			io.Copy(fw, io.LimitReader(zeroReader{}, 100<<20))
			mw.Close()
			pw.Close()
		}()
		req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/api/v1/diagnose", pr)
		req.Header.Set("Content-Type", "multipart/form-data; boundary="+testBoundary)
		return req
	}
	jsonReq := func() *http.Request {
		req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/api/v1/diagnose", strings.NewReader(`{"image":"x"}`))
		req.Header.Set("Content-Type", "application/json")
		return req
	}
	tests := []struct {
		name   string
		req    func() *http.Request
		status int
		code   string
	}{
		{"not an image", func() *http.Request { return h.diagnoseReq([]byte("hello, this is text not a photo"), nil, "") }, 415, "unsupported_image"},
		{"html disguised as jpg", func() *http.Request { return h.diagnoseReq([]byte("<html><script>alert(1)</script></html>"), nil, "") }, 415, "unsupported_image"},
		{"truncated jpeg", func() *http.Request { return h.diagnoseReq(truncated, nil, "") }, 422, "truncated_image"},
		{"100 MB body", huge, 413, "body_too_large"},
		{"100 MB chunked body", hugeChunked, 413, "body_too_large"},
		{"decompression bomb png", func() *http.Request { return h.diagnoseReq(bombPNG(60000, 60000), nil, "") }, 413, "image_too_large"},
		{"age not a number", func() *http.Request { return h.diagnoseReq(good, map[string]string{"patient_age": "twenty"}, "") }, 400, "invalid_field"},
		{"age out of range", func() *http.Request { return h.diagnoseReq(good, map[string]string{"patient_age": "231"}, "") }, 400, "invalid_field"},
		{"age fractional", func() *http.Request { return h.diagnoseReq(good, map[string]string{"patient_age": "20.5"}, "") }, 400, "invalid_field"},
		{"gender unknown", func() *http.Request { return h.diagnoseReq(good, map[string]string{"patient_gender": "x"}, "") }, 400, "invalid_field"},
		{"description too long", func() *http.Request {
			return h.diagnoseReq(good, map[string]string{"description": strings.Repeat("a", 5000)}, "")
		}, 400, "invalid_field"},
		{"missing image", func() *http.Request { return h.diagnoseReq(nil, map[string]string{"description": "itchy"}, "") }, 400, "missing_image"},
		{"json instead of multipart", jsonReq, 415, "unsupported_media_type"},
		{"empty image", func() *http.Request { return h.diagnoseReq([]byte{}, nil, "") }, 400, "missing_image"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := h.do(tc.req())
			r := decode(t, body)
			if resp.StatusCode != tc.status || r.Error != tc.code || r.Success || r.Message == "" {
				t.Errorf("got %d %q (%s), want %d %q", resp.StatusCode, r.Error, r.Message, tc.status, tc.code)
			}
			// The server keeps serving.
			if resp, _ := h.get("/api/v1/health", ""); resp.StatusCode != 200 {
				t.Fatalf("health after %s: %d", tc.name, resp.StatusCode)
			}
		})
	}
	resp, body := h.do(h.diagnoseReq(good, nil, ""))
	if resp.StatusCode != 200 {
		t.Fatalf("good photo after the bad ones: %d %s", resp.StatusCode, body)
	}
	if got := len(h.model.batchSizes()); got != 1 {
		t.Errorf("the model ran %d times; bad inputs must never reach it", got)
	}
}

const testBoundary = "acdtcm-test-boundary"

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func TestDiagnoseAndHistory(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	// Red levels 0.1, 0.4, 0.6, 0.9 give grades 0, 1, 2, 3 with the fake model.
	reds := []uint8{25, 102, 153, 230}
	ids := make([]string, len(reds))
	for i, red := range reds {
		resp, body := h.do(h.diagnoseReq(makeJPEG(t, 80, 60, red), map[string]string{
			"description": "口干 便秘, oily skin", "patient_age": "19", "patient_gender": "female"}, ""))
		if resp.StatusCode != 200 {
			t.Fatalf("diagnose: %d %s", resp.StatusCode, body)
		}
		r := decode(t, body)
		var res result.DiagnosisResult
		if err := json.Unmarshal(r.Data, &res); err != nil {
			t.Fatal(err)
		}
		if res.Severity.Value != i || res.Severity.Scale != "hayashi" {
			t.Errorf("red %d: grade %+v, want %d on hayashi", red, res.Severity, i)
		}
		if res.ModelVersion != "test-1" || res.Disclaimer == "" || res.TCMAnalysis == nil || len(res.Recommendations) == 0 {
			t.Errorf("result incomplete: version %q, disclaimer %q, tcm %v, %d recommendations", res.ModelVersion, res.Disclaimer, res.TCMAnalysis, len(res.Recommendations))
		}
		if len(res.Probabilities) != 4 || len(res.Lesions) != 4 {
			t.Errorf("probabilities %v lesions %v", res.Probabilities, res.Lesions)
		}
		ids[i] = res.ImageID
		time.Sleep(2 * time.Millisecond) // distinct created_ms for a stable order
	}
	// nodules (floor(2*0.9)=1) must trigger the knowledge base's referral on the last one.
	resp, body := h.get("/api/v1/diagnoses/"+ids[3], "")
	if resp.StatusCode != 200 {
		t.Fatalf("get: %d %s", resp.StatusCode, body)
	}
	var rec Record
	json.Unmarshal(decode(t, body).Data, &rec)
	if rec.ID != ids[3] || rec.ModelName != "fake-grader" || len(rec.InputHash) != 64 || len(rec.ImageHash) != 64 || rec.Severity != "very severe" {
		t.Errorf("record %+v", rec)
	}
	if bytes.Contains(body, []byte("口干 便秘, oily skin")) {
		t.Logf("%s", body)
		t.Error("stored record keeps the patient's description verbatim")
	}

	list := func(q string) listView {
		resp, body := h.get("/api/v1/diagnoses"+q, "")
		if resp.StatusCode != 200 {
			t.Fatalf("list %s: %d %s", q, resp.StatusCode, body)
		}
		var lv listView
		json.Unmarshal(decode(t, body).Data, &lv)
		return lv
	}
	if lv := list(""); lv.Total != 4 || len(lv.Items) != 4 || lv.Items[0].ID != ids[3] {
		t.Errorf("list: total %d, %d items, first %s", lv.Total, len(lv.Items), firstID(lv))
	}
	if lv := list("?severity=moderate"); lv.Total != 1 || lv.Items[0].ID != ids[1] {
		t.Errorf("severity filter: total %d first %s, want %s", lv.Total, firstID(lv), ids[1])
	}
	if lv := list("?limit=2&offset=2"); lv.Total != 4 || len(lv.Items) != 2 || lv.Items[0].ID != ids[1] || lv.Items[1].ID != ids[0] {
		t.Errorf("page 2: %+v", lv)
	}
	tomorrow := time.Now().UTC().AddDate(0, 0, 1).Format("2006-01-02")
	if lv := list("?from=" + tomorrow); lv.Total != 0 {
		t.Errorf("from tomorrow: total %d", lv.Total)
	}
	if lv := list("?to=" + time.Now().UTC().Format("2006-01-02")); lv.Total != 4 {
		t.Errorf("to today: total %d", lv.Total)
	}
	// Delete (no auth configured: local admin), then it is gone.
	req, _ := http.NewRequest(http.MethodDelete, h.ts.URL+"/api/v1/diagnoses/"+ids[0], nil)
	if resp, body := h.do(req); resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"image_deleted":true`)) {
		t.Errorf("delete: %d %s", resp.StatusCode, body)
	}
	if resp, _ := h.get("/api/v1/diagnoses/"+ids[0], ""); resp.StatusCode != 404 {
		t.Errorf("after delete: %d", resp.StatusCode)
	}
}

func firstID(lv listView) string {
	if len(lv.Items) == 0 {
		return "<none>"
	}
	return lv.Items[0].ID
}

func TestReadyUntilModelLoaded(t *testing.T) {
	h := newHarness(t, harnessOpts{noModel: true})
	if resp, body := h.get("/api/v1/ready", ""); resp.StatusCode != 503 || !bytes.Contains(body, []byte("model_loading")) {
		t.Errorf("ready before load: %d %s", resp.StatusCode, body)
	}
	if resp, _ := h.get("/api/v1/health", ""); resp.StatusCode != 200 {
		t.Errorf("health while loading: %d", resp.StatusCode)
	}
	if resp, body := h.do(h.diagnoseReq(makeJPEG(t, 32, 32, 10), nil, "")); resp.StatusCode != 503 {
		t.Errorf("diagnose while loading: %d %s", resp.StatusCode, body)
	}
	if resp, body := h.get("/api/v1/models", ""); resp.StatusCode != 200 || !bytes.Contains(body, []byte(`"data":[]`)) {
		t.Errorf("models while loading: %d %s", resp.StatusCode, body)
	}
	h.srv.SetModel(h.model)
	if resp, _ := h.get("/api/v1/ready", ""); resp.StatusCode != 200 {
		t.Errorf("ready after load: %d", resp.StatusCode)
	}
}

func TestAuthRoles(t *testing.T) {
	keys, err := ParseKeys([]byte("# test keys\nadmin admin-key-0123456789\ndoctor:doctor-key-0123456789 dr-wang\nviewer viewer-key-0123456789\n"), "keys.txt")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.Keys = keys }})
	const admin, doctor, viewer = "admin-key-0123456789", "doctor-key-0123456789", "viewer-key-0123456789"
	photo := makeJPEG(t, 40, 40, 120)

	resp, body := h.do(h.diagnoseReq(photo, nil, doctor))
	if resp.StatusCode != 200 {
		t.Fatalf("doctor diagnose: %d %s", resp.StatusCode, body)
	}
	var res result.DiagnosisResult
	json.Unmarshal(decode(t, body).Data, &res)
	del := func(key string) int {
		req, _ := http.NewRequest(http.MethodDelete, h.ts.URL+"/api/v1/diagnoses/"+res.ImageID, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, _ := h.do(req)
		return resp.StatusCode
	}
	tests := []struct {
		name string
		got  func() int
		want int
	}{
		{"health is public", func() int { r, _ := h.get("/api/v1/health", ""); return r.StatusCode }, 200},
		{"metrics is public", func() int { r, _ := h.get("/metrics", ""); return r.StatusCode }, 200},
		{"history needs a key", func() int { r, _ := h.get("/api/v1/diagnoses", ""); return r.StatusCode }, 401},
		{"wrong key", func() int { r, _ := h.get("/api/v1/diagnoses", "admin-key-012345678X"); return r.StatusCode }, 401},
		{"viewer reads history", func() int { r, _ := h.get("/api/v1/diagnoses", viewer); return r.StatusCode }, 200},
		{"viewer cannot diagnose", func() int { r, _ := h.do(h.diagnoseReq(photo, nil, viewer)); return r.StatusCode }, 403},
		{"anonymous cannot diagnose", func() int { r, _ := h.do(h.diagnoseReq(photo, nil, "")); return r.StatusCode }, 401},
		{"doctor cannot delete", func() int { return del(doctor) }, 403},
		{"viewer cannot delete", func() int { return del(viewer) }, 403},
		{"anonymous cannot delete", func() int { return del("") }, 401},
		{"admin deletes", func() int { return del(admin) }, 200},
	}
	for _, tc := range tests {
		if got := tc.got(); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestParseKeysErrors(t *testing.T) {
	tests := []struct{ name, text, want string }{
		{"unknown role", "root key-0123456789abcdef", "unknown role"},
		{"short key", "admin short", "shorter than 16"},
		{"empty", "# nothing\n", "no API keys"},
		{"one field", "admin", "want"},
	}
	for _, tc := range tests {
		_, err := ParseKeys([]byte(tc.text), "k.txt")
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "k.txt") {
			t.Errorf("%s: error %v, want one naming k.txt and %q", tc.name, err, tc.want)
		}
	}
	t.Setenv("ACDTCM_TEST_KEYS", "admin:aaaaaaaaaaaaaaaaaaaa,viewer:bbbbbbbbbbbbbbbbbbbb")
	k, err := LoadKeys("", "ACDTCM_TEST_KEYS")
	if err != nil {
		t.Fatal(err)
	}
	if key, ok := k.Lookup("bbbbbbbbbbbbbbbbbbbb"); !ok || key.Role != RoleViewer {
		t.Errorf("env key lookup: %+v %v", key, ok)
	}
	if _, ok := k.Lookup(""); ok {
		t.Error("the empty key must not authenticate")
	}
}

func TestBatchingCombinesConcurrentRequests(t *testing.T) {
	tests := []struct {
		name     string
		maxBatch int
		wantMax  func(int) bool
	}{
		{"batch 8", 8, func(m int) bool { return m > 1 && m <= 8 }},
		{"batch 1", 1, func(m int) bool { return m == 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &fakeModel{delay: 40 * time.Millisecond}
			h := newHarness(t, harnessOpts{model: m, cfg: func(c *Config) {
				c.Batch = BatchOptions{MaxBatch: tc.maxBatch, MaxWait: 20 * time.Millisecond, QueueSize: 64}
			}})
			photo := makeJPEG(t, 32, 32, 100)
			const n = 16
			var wg sync.WaitGroup
			codes := make([]int, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, _ := h.do(h.diagnoseReq(photo, nil, ""))
					codes[i] = resp.StatusCode
				}()
			}
			wg.Wait()
			for i, c := range codes {
				if c != 200 {
					t.Errorf("request %d: %d", i, c)
				}
			}
			sizes := m.batchSizes()
			total, biggest := 0, 0
			for _, s := range sizes {
				total += s
				biggest = max(biggest, s)
			}
			if total != n || !tc.wantMax(biggest) {
				t.Errorf("batches %v: %d inputs, largest %d", sizes, total, biggest)
			}
			_, metrics := h.get("/metrics", "")
			if !bytes.Contains(metrics, []byte(fmt.Sprintf("acdtcm_inference_batch_size_count %d", len(sizes)))) {
				t.Errorf("metrics lack the batch count %d", len(sizes))
			}
		})
	}
}

func TestQueueFullAnswers503(t *testing.T) {
	m := &fakeModel{delay: 150 * time.Millisecond}
	h := newHarness(t, harnessOpts{model: m, cfg: func(c *Config) {
		c.Batch = BatchOptions{MaxBatch: 1, MaxWait: -1, QueueSize: 1}
	}})
	photo := makeJPEG(t, 32, 32, 100)
	const n = 8
	var wg sync.WaitGroup
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := h.do(h.diagnoseReq(photo, nil, ""))
			codes[i] = resp.StatusCode
			if resp.StatusCode == 503 && (!bytes.Contains(body, []byte("overloaded")) || resp.Header.Get("Retry-After") == "") {
				t.Errorf("503 without overloaded/Retry-After: %s", body)
			}
		}()
	}
	wg.Wait()
	ok, busy := 0, 0
	for _, c := range codes {
		switch c {
		case 200:
			ok++
		case 503:
			busy++
		default:
			t.Errorf("unexpected status %d", c)
		}
	}
	if ok == 0 || busy == 0 {
		t.Errorf("%d ok, %d overloaded; want some of each with a queue of 1", ok, busy)
	}
	if resp, _ := h.do(h.diagnoseReq(photo, nil, "")); resp.StatusCode != 200 {
		t.Errorf("after overload: %d", resp.StatusCode)
	}
}

func TestRateLimit(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.RateLimit = 0.5; c.RateBurst = 2 }})
	var codes []int
	for range 3 {
		resp, _ := h.get("/api/v1/diagnoses", "")
		codes = append(codes, resp.StatusCode)
	}
	if codes[0] != 200 || codes[1] != 200 || codes[2] != 429 {
		t.Errorf("codes %v, want [200 200 429]", codes)
	}
	if resp, _ := h.get("/api/v1/health", ""); resp.StatusCode != 200 {
		t.Errorf("health must not be rate limited: %d", resp.StatusCode)
	}
}

func TestRateLimiterRefills(t *testing.T) {
	l := NewRateLimiter(2, 1)
	now := time.Unix(1000, 0)
	l.now = func() time.Time { return now }
	if ok, _ := l.Allow("a"); !ok {
		t.Fatal("first request refused")
	}
	ok, wait := l.Allow("a")
	if ok || wait <= 0 || wait > 500*time.Millisecond {
		t.Fatalf("second: ok=%v wait=%v", ok, wait)
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Error("clients share a bucket")
	}
	now = now.Add(500 * time.Millisecond)
	if ok, _ := l.Allow("a"); !ok {
		t.Error("not refilled after 1/rate")
	}
}

func TestCORS(t *testing.T) {
	h := newHarness(t, harnessOpts{cfg: func(c *Config) { c.CORSOrigins = []string{"https://clinic.example"} }})
	req, _ := http.NewRequest(http.MethodOptions, h.ts.URL+"/api/v1/diagnose", nil)
	req.Header.Set("Origin", "https://clinic.example")
	req.Header.Set("Access-Control-Request-Method", "POST")
	resp, err := h.ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://clinic.example" {
		t.Errorf("preflight: %d %q", resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	req, _ = http.NewRequest(http.MethodGet, h.ts.URL+"/api/v1/health", nil)
	req.Header.Set("Origin", "https://evil.example")
	resp, _ = h.do(req)
	if resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Error("CORS allowed an unlisted origin")
	}
}

func TestAccessLogMasksPatientData(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.do(h.diagnoseReq(makeJPEG(t, 32, 32, 90), map[string]string{"description": "secret-symptom-xyz", "patient_age": "47", "patient_gender": "male"}, ""))
	h.get("/api/v1/diagnoses?severity=mild&description=secret-query-xyz", "")
	logs := h.logs.String()
	if !strings.Contains(logs, `"route":"POST /api/v1/diagnose"`) || !strings.Contains(logs, `"status":200`) {
		t.Errorf("access log lacks the diagnose request:\n%s", logs)
	}
	for _, secret := range []string{"secret-symptom-xyz", "secret-query-xyz", `"47"`} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains patient data %q", secret)
		}
	}
	if !strings.Contains(logs, "description=%2A%2A%2A") {
		t.Errorf("masked query not logged:\n%s", logs)
	}
}

func TestMetricsAfterDiagnosis(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	h.do(h.diagnoseReq(makeJPEG(t, 32, 32, 110), nil, ""))
	_, body := h.get("/metrics", "")
	for _, want := range []string{
		`acdtcm_diagnoses_total{model_version="test-1",severity="moderate"} 1`,
		`acdtcm_http_requests_total{code="200",method="POST",route="POST /api/v1/diagnose"} 1`,
		`acdtcm_http_request_duration_seconds_bucket{route="POST /api/v1/diagnose"`,
		`acdtcm_model_memory_bytes{model="fake-grader",version="test-1"} 1234`,
		`acdtcm_inference_queue_depth`,
		`acdtcm_inference_batch_size_bucket`,
		`go_goroutines`,
	} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestModelFailureIs500AndServerGoesOn(t *testing.T) {
	for _, m := range []*fakeModel{{fail: true}, {panic: true}} {
		h := newHarness(t, harnessOpts{model: m})
		resp, body := h.do(h.diagnoseReq(makeJPEG(t, 32, 32, 110), nil, ""))
		if resp.StatusCode != 500 || !bytes.Contains(body, []byte("model_error")) {
			t.Errorf("model failure (panic %v): %d %s", m.panic, resp.StatusCode, body)
		}
		if resp, _ := h.get("/api/v1/health", ""); resp.StatusCode != 200 {
			t.Error("server stopped after a model failure")
		}
		_, metrics := h.get("/metrics", "")
		if !bytes.Contains(metrics, []byte("acdtcm_inference_errors_total 1")) {
			t.Error("model error not counted")
		}
	}
}

func TestHandlerTimeoutAnswers503(t *testing.T) {
	m := &fakeModel{delay: 600 * time.Millisecond}
	h := newHarness(t, harnessOpts{model: m, cfg: func(c *Config) { c.HandlerTimeout = 100 * time.Millisecond }})
	start := time.Now()
	resp, body := h.do(h.diagnoseReq(makeJPEG(t, 32, 32, 110), nil, ""))
	if resp.StatusCode != 503 || !bytes.Contains(body, []byte(`"error":"timeout"`)) {
		t.Errorf("slow model: %d %s", resp.StatusCode, body)
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("answered after %v; the handler timeout is 100ms", d)
	}
}

func TestPaddedBatchesKeepResultsApart(t *testing.T) {
	m := &fakeModel{delay: 30 * time.Millisecond}
	h := newHarness(t, harnessOpts{model: m, cfg: func(c *Config) {
		c.Batch = BatchOptions{MaxBatch: 8, MaxWait: 30 * time.Millisecond, QueueSize: 32, PadToPowerOfTwo: true}
	}})
	reds := []uint8{25, 102, 153, 230, 25}
	var wg sync.WaitGroup
	for i, red := range reds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, body := h.do(h.diagnoseReq(makeJPEG(t, 32, 32, red), nil, ""))
			var res result.DiagnosisResult
			json.Unmarshal(decode(t, body).Data, &res)
			if want := []int{0, 1, 2, 3, 0}[i]; resp.StatusCode != 200 || res.Severity.Value != want {
				t.Errorf("request %d (red %d): %d grade %d, want %d", i, red, resp.StatusCode, res.Severity.Value, want)
			}
		}()
	}
	wg.Wait()
	total := 0
	for _, s := range m.batchSizes() {
		if s&(s-1) != 0 {
			t.Errorf("model got a batch of %d (not a power of two): %v", s, m.batchSizes())
		}
		total += s
	}
	if total < len(reds) {
		t.Errorf("batches %v cover fewer than %d inputs", m.batchSizes(), len(reds))
	}
}

func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	documented := map[string]bool{}
	for path, item := range h.doc.Paths.Map() {
		for method := range item.Operations() {
			documented[method+" "+path] = true
		}
	}
	for _, p := range h.srv.patterns {
		key := strings.Replace(p, "{$}", "", 1)
		if !documented[key] {
			t.Errorf("route %s is not in openapi.yaml", p)
		}
		delete(documented, key)
	}
	for k := range documented {
		t.Errorf("openapi.yaml documents %s, which the server does not serve", k)
	}
}
