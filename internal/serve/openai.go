package serve

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strings"
)

// The OpenAI-compatible routes let clients written for a vLLM-served Qwen2.5-VL talk to
// acdtcm. The answer comes from the grading model, not a generative language model: the
// assistant message states the grade, and with logprobs the first token is the grade digit
// with the model's probability for every grade as its top logprobs.

type chatRequest struct {
	Model       string        `json:"model"`
	Messages    []chatMessage `json:"messages"`
	Logprobs    bool          `json:"logprobs"`
	TopLogprobs *int          `json:"top_logprobs"`
	Stream      bool          `json:"stream"`
	MaxTokens   *int          `json:"max_tokens"`
	Temperature *float64      `json:"temperature"`
}

type chatMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type contentPart struct {
	Type     string `json:"type"`
	Text     string `json:"text"`
	ImageURL *struct {
		URL string `json:"url"`
	} `json:"image_url"`
}

type chatResponse struct {
	ID      string       `json:"id"`
	Object  string       `json:"object"`
	Created int64        `json:"created"`
	Model   string       `json:"model"`
	Choices []chatChoice `json:"choices"`
	Usage   chatUsage    `json:"usage"`
	// Diagnosis is acdtcm's full result (an extension OpenAI clients ignore).
	Diagnosis any `json:"diagnosis,omitempty"`
}

type chatChoice struct {
	Index        int             `json:"index"`
	Message      chatOutMessage  `json:"message"`
	Logprobs     *choiceLogprobs `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
}

type chatOutMessage struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type choiceLogprobs struct {
	Content []tokenLogprob `json:"content"`
}

type tokenLogprob struct {
	Token       string       `json:"token"`
	Logprob     float64      `json:"logprob"`
	Bytes       []int        `json:"bytes"`
	TopLogprobs []topLogprob `json:"top_logprobs"`
}

type topLogprob struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

type chatUsage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

// openAIError is OpenAI's error body; it also carries acdtcm's success/error/message keys
// so both kinds of clients can read it.
func writeOpenAIError(w http.ResponseWriter, err error) {
	var ae *apiError
	if !errors.As(err, &ae) {
		ae = &apiError{status: http.StatusInternalServerError, code: "internal_error", msg: err.Error()}
	}
	if ae.status == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", "1")
	}
	typ := "invalid_request_error"
	if ae.status >= 500 {
		typ = "server_error"
	}
	writeJSON(w, ae.status, map[string]any{
		"success": false, "error_code": ae.code, "message": ae.msg,
		"error": map[string]any{"message": ae.msg, "type": typ, "code": ae.code},
	})
}

func (s *Server) handleChat(w http.ResponseWriter, r *http.Request) {
	in, req, err := s.parseChat(r)
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			s.metrics.Rejected.WithLabelValues(ae.code).Inc()
		}
		writeOpenAIError(w, err)
		return
	}
	rec, err := s.diagnose(r.Context(), in)
	if err != nil {
		writeOpenAIError(w, err)
		return
	}
	res := rec.Result
	l := s.current()
	grade := res.Severity.Value
	content := fmt.Sprintf("%d", grade) + fmt.Sprintf(" — %s acne (%s), %s scale grade %d, confidence %.2f. ",
		res.Diagnosis.EN, res.Diagnosis.ZH, res.Severity.Scale, grade, res.Confidence) +
		"Answered by the acdtcm grading model (an image classifier, not a generative language model). " + res.Disclaimer
	choice := chatChoice{Message: chatOutMessage{Role: "assistant", Content: content}, FinishReason: "stop"}
	if req.Logprobs {
		top := len(res.Probabilities)
		if req.TopLogprobs != nil {
			top = min(top, *req.TopLogprobs)
		}
		tok := fmt.Sprint(grade)
		lp := tokenLogprob{Token: tok, Logprob: safeLog(res.Confidence), Bytes: tokenBytes(tok), TopLogprobs: []topLogprob{}}
		for _, g := range rankGrades(res.Probabilities)[:top] {
			t := fmt.Sprint(g)
			lp.TopLogprobs = append(lp.TopLogprobs, topLogprob{Token: t, Logprob: safeLog(res.Probabilities[g]), Bytes: tokenBytes(t)})
		}
		choice.Logprobs = &choiceLogprobs{Content: []tokenLogprob{lp}}
	}
	name := l.info.Name
	completion := len(strings.Fields(content))
	writeJSON(w, http.StatusOK, chatResponse{
		ID: "chatcmpl-" + rec.ID, Object: "chat.completion", Created: rec.CreatedAt.Unix(), Model: name,
		Choices: []chatChoice{choice}, Usage: chatUsage{CompletionTokens: completion, TotalTokens: completion},
		Diagnosis: res,
	})
}

func safeLog(p float64) float64 {
	if p <= 0 {
		return -9999
	}
	return math.Log(p)
}

func tokenBytes(t string) []int {
	out := make([]int, len(t))
	for i := range len(t) {
		out[i] = int(t[i])
	}
	return out
}

// rankGrades orders grade indices by descending probability.
func rankGrades(p []float64) []int {
	idx := make([]int, len(p))
	for i := range idx {
		idx[i] = i
	}
	for i := 1; i < len(idx); i++ {
		for j := i; j > 0 && p[idx[j]] > p[idx[j-1]]; j-- {
			idx[j], idx[j-1] = idx[j-1], idx[j]
		}
	}
	return idx
}

// parseChat reads the request: the image is the last data-URI image_url part of the user
// messages, the text parts become the description.
func (s *Server) parseChat(r *http.Request) (diagnoseInput, chatRequest, error) {
	var req chatRequest
	var in diagnoseInput
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(strings.ToLower(ct), "application/json") {
		return in, req, errf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send application/json")
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return in, req, bodyError(err, "read body")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		return in, req, errf(http.StatusBadRequest, "invalid_json", "request body: %v", err)
	}
	if req.Stream {
		return in, req, errf(http.StatusBadRequest, "stream_unsupported", "stream=true is not supported: the grader answers in one piece")
	}
	if req.TopLogprobs != nil && (*req.TopLogprobs < 0 || *req.TopLogprobs > 20) {
		return in, req, errf(http.StatusBadRequest, "invalid_parameter", "top_logprobs must be from 0 to 20")
	}
	if len(req.Messages) == 0 {
		return in, req, errf(http.StatusBadRequest, "invalid_parameter", "messages must not be empty")
	}
	var texts []string
	var imageURL string
	for i, m := range req.Messages {
		if m.Role != "user" {
			continue
		}
		var str string
		if err := json.Unmarshal(m.Content, &str); err == nil {
			texts = append(texts, str)
			continue
		}
		var parts []contentPart
		if err := json.Unmarshal(m.Content, &parts); err != nil {
			return in, req, errf(http.StatusBadRequest, "invalid_parameter", "messages[%d].content must be a string or an array of content parts", i)
		}
		for _, p := range parts {
			switch p.Type {
			case "text":
				texts = append(texts, p.Text)
			case "image_url":
				if p.ImageURL == nil || p.ImageURL.URL == "" {
					return in, req, errf(http.StatusBadRequest, "invalid_parameter", "messages[%d]: image_url part without url", i)
				}
				imageURL = p.ImageURL.URL
			}
		}
	}
	if imageURL == "" {
		return in, req, errf(http.StatusBadRequest, "missing_image", "no image_url content part in the user messages")
	}
	in.image, err = decodeDataURI(imageURL)
	if err != nil {
		return in, req, err
	}
	in.description = strings.Join(texts, "\n")
	if len(in.description) > maxDescription {
		in.description = in.description[:maxDescription]
	}
	return in, req, nil
}

// decodeDataURI decodes "data:<mime>;base64,<data>". Remote URLs are refused: the server
// never fetches from the network on a client's behalf.
func decodeDataURI(u string) ([]byte, error) {
	if !strings.HasPrefix(u, "data:") {
		return nil, errf(http.StatusBadRequest, "invalid_image_url", "image_url must be a data: URI (remote URLs are not fetched)")
	}
	meta, data, ok := strings.Cut(u[len("data:"):], ",")
	if !ok || !strings.HasSuffix(meta, ";base64") {
		return nil, errf(http.StatusBadRequest, "invalid_image_url", "image_url must be a base64 data: URI")
	}
	b, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, errf(http.StatusBadRequest, "invalid_image_url", "image_url: invalid base64: %v", err)
	}
	return b, nil
}

func (s *Server) handleOpenAIModels(w http.ResponseWriter, r *http.Request) {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	data := []model{}
	if l := s.current(); l != nil {
		data = append(data, model{ID: l.info.Name, Object: "model", Created: s.started.Unix(), OwnedBy: "acdtcm"})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}
