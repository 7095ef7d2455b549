package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"math"
	"net/http"
	"strings"
	"testing"
)

func TestChatCompletions(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	photo := makeJPEG(t, 40, 40, 160) // grade 2 with the fake model
	uri := "data:image/jpeg;base64," + base64.StdEncoding.EncodeToString(photo)
	chat := func(body string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodPost, h.ts.URL+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		return h.do(req)
	}
	msg := func(url string, extra string) string {
		return `{"model":"fake-grader","messages":[{"role":"system","content":"You are a dermatologist."},
			{"role":"user","content":[{"type":"image_url","image_url":{"url":"` + url + `"}},{"type":"text","text":"Grade this acne. 口干"}]}]` + extra + `}`
	}
	resp, body := chat(msg(uri, `,"logprobs":true,"top_logprobs":4`))
	if resp.StatusCode != 200 {
		t.Fatalf("chat: %d %s", resp.StatusCode, body)
	}
	var cr chatResponse
	if err := json.Unmarshal(body, &cr); err != nil {
		t.Fatal(err)
	}
	c := cr.Choices[0]
	if cr.Object != "chat.completion" || cr.Model != "fake-grader" || !strings.HasPrefix(c.Message.Content, "2 ") || c.FinishReason != "stop" {
		t.Errorf("completion %+v", cr)
	}
	if !strings.Contains(c.Message.Content, "not a generative language model") {
		t.Error("content does not say it comes from the grader")
	}
	lp := c.Logprobs.Content[0]
	if lp.Token != "2" || len(lp.TopLogprobs) != 4 || lp.TopLogprobs[0].Token != "2" {
		t.Errorf("logprobs %+v", lp)
	}
	var sum float64
	for _, x := range lp.TopLogprobs {
		sum += math.Exp(x.Logprob)
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("grade probabilities sum to %v", sum)
	}
	// The diagnosis is recorded like any other.
	if _, b := h.get("/api/v1/diagnoses", ""); !bytes.Contains(b, []byte(`"total":1`)) {
		t.Errorf("chat diagnosis not stored: %s", b)
	}

	bad := []struct {
		name, body string
		status     int
		code       string
	}{
		{"remote url", msg("https://example.com/a.jpg", ""), 400, "invalid_image_url"},
		{"bad base64", msg("data:image/jpeg;base64,!!!", ""), 400, "invalid_image_url"},
		{"not an image", msg("data:image/jpeg;base64,"+base64.StdEncoding.EncodeToString([]byte("plain text")), ""), 415, "unsupported_image"},
		{"stream", msg(uri, `,"stream":true`), 400, "stream_unsupported"},
		{"no image", `{"messages":[{"role":"user","content":"hello"}]}`, 400, "missing_image"},
		{"not json", `{"messages":`, 400, "invalid_json"},
		{"wrong content type", `{"messages":[{"role":"user","content":42}]}`, 400, "invalid_parameter"},
		{"top_logprobs too big", msg(uri, `,"logprobs":true,"top_logprobs":99`), 400, "invalid_parameter"},
	}
	for _, tc := range bad {
		resp, body := chat(tc.body)
		var e struct {
			Success bool
			Error   struct{ Code, Message, Type string }
		}
		json.Unmarshal(body, &e)
		if resp.StatusCode != tc.status || e.Error.Code != tc.code || e.Success || e.Error.Message == "" {
			t.Errorf("%s: %d %s", tc.name, resp.StatusCode, body)
		}
	}
	if resp, _ := h.get("/v1/models", ""); resp.StatusCode != 200 {
		t.Errorf("/v1/models: %d", resp.StatusCode)
	}
}
