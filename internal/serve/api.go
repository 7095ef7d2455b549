package serve

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/acdtcm/acdtcm/internal/imageio"
	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/knowledge"
	"github.com/acdtcm/acdtcm/internal/result"
)

// envelope is every JSON API response.
type envelope struct {
	Success bool   `json:"success"`
	Data    any    `json:"data,omitempty"`
	Error   string `json:"error,omitempty"`
	Message string `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeOK(w http.ResponseWriter, data any, msg string) {
	writeJSON(w, http.StatusOK, envelope{Success: true, Data: data, Message: msg})
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, envelope{Success: false, Error: code, Message: msg})
}

// apiError is a failure with its HTTP status and machine-readable code.
type apiError struct {
	status int
	code   string
	msg    string
}

func (e *apiError) Error() string { return e.msg }

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func writeAPIError(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		if ae.status == http.StatusServiceUnavailable || ae.status == http.StatusTooManyRequests {
			w.Header().Set("Retry-After", "1")
		}
		writeError(w, ae.status, ae.code, ae.msg)
		return
	}
	writeError(w, http.StatusInternalServerError, "internal_error", err.Error())
}

func (s *Server) handleHealth(w http.ResponseWriter, r *http.Request) {
	writeOK(w, map[string]any{"status": "ok", "uptime_seconds": int64(s.cfg.Now().Sub(s.started).Seconds())}, "alive")
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	l := s.current()
	if l == nil {
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusServiceUnavailable, "model_loading", "the model is not loaded yet")
		return
	}
	writeOK(w, map[string]any{"status": "ready", "model": l.info.Name, "model_version": l.info.Version}, "ready")
}

// modelView is one entry of GET /api/v1/models.
type modelView struct {
	infer.ModelInfo
	MemoryBytes int64 `json:"memory_bytes"`
	MaxBatch    int   `json:"max_batch"`
	MaxWaitMS   int64 `json:"max_wait_ms"`
	QueueSize   int   `json:"queue_size"`
}

func (s *Server) handleModels(w http.ResponseWriter, r *http.Request) {
	out := []modelView{}
	if l := s.current(); l != nil {
		o := l.batcher.Options()
		out = append(out, modelView{ModelInfo: l.info, MemoryBytes: l.memory, MaxBatch: o.MaxBatch, MaxWaitMS: o.MaxWait.Milliseconds(), QueueSize: o.QueueSize})
	}
	writeOK(w, out, fmt.Sprintf("%d model(s) loaded", len(out)))
}

// diagnoseInput is one photo with the patient's optional details.
type diagnoseInput struct {
	image       []byte
	description string
	age         *int
	gender      string
}

// hash is the SHA-256 of every input, so identical requests are recognisable without
// storing patient details.
func (in diagnoseInput) hash() string {
	h := sha256.New()
	h.Write(in.image)
	fmt.Fprintf(h, "\x00%s\x00", in.description)
	if in.age != nil {
		fmt.Fprintf(h, "%d", *in.age)
	}
	fmt.Fprintf(h, "\x00%s", in.gender)
	return hex.EncodeToString(h.Sum(nil))
}

const (
	maxDescription = 4000
	maxField       = 64
)

func (s *Server) handleDiagnose(w http.ResponseWriter, r *http.Request) {
	in, err := s.parseDiagnoseForm(r)
	if err != nil {
		s.reject(w, err)
		return
	}
	rec, err := s.diagnose(r.Context(), in)
	if err != nil {
		s.reject(w, err)
		return
	}
	writeOK(w, rec.Result, "diagnosed; decision support only, not a medical diagnosis")
}

// reject counts a refused request by its code and answers it.
func (s *Server) reject(w http.ResponseWriter, err error) {
	var ae *apiError
	if errors.As(err, &ae) {
		s.metrics.Rejected.WithLabelValues(ae.code).Inc()
	}
	writeAPIError(w, err)
}

// parseDiagnoseForm streams the multipart body: the image part is read up to the body
// limit, text fields up to small limits; unknown parts are skipped.
func (s *Server) parseDiagnoseForm(r *http.Request) (diagnoseInput, error) {
	var in diagnoseInput
	ct, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "multipart/form-data" || params["boundary"] == "" {
		return in, errf(http.StatusUnsupportedMediaType, "unsupported_media_type", "send multipart/form-data with an image part")
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	seenImage := false
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			return in, bodyError(err, "read multipart body")
		}
		name := part.FormName()
		switch name {
		case "image":
			if seenImage {
				return in, errf(http.StatusBadRequest, "invalid_field", "more than one image part")
			}
			seenImage = true
			in.image, err = io.ReadAll(part)
			if err != nil {
				return in, bodyError(err, "read image")
			}
		case "description", "patient_age", "patient_gender":
			limit := maxField
			if name == "description" {
				limit = maxDescription
			}
			v, err := io.ReadAll(io.LimitReader(part, int64(limit)+1))
			if err != nil {
				return in, bodyError(err, "read "+name)
			}
			if len(v) > limit {
				return in, errf(http.StatusBadRequest, "invalid_field", "%s is longer than %d bytes", name, limit)
			}
			if err := in.setField(name, strings.TrimSpace(string(v))); err != nil {
				return in, err
			}
		default:
			if _, err := io.Copy(io.Discard, part); err != nil {
				return in, bodyError(err, "read part "+name)
			}
		}
	}
	if !seenImage || len(in.image) == 0 {
		return in, errf(http.StatusBadRequest, "missing_image", "the image part is required")
	}
	return in, nil
}

func (in *diagnoseInput) setField(name, v string) error {
	switch name {
	case "description":
		in.description = v
	case "patient_age":
		if v == "" {
			return nil
		}
		age, err := strconv.Atoi(v)
		if err != nil || age < 0 || age > 130 {
			return errf(http.StatusBadRequest, "invalid_field", "patient_age must be a whole number of years from 0 to 130")
		}
		in.age = &age
	case "patient_gender":
		g := strings.ToLower(v)
		if g != "" && g != "male" && g != "female" {
			return errf(http.StatusBadRequest, "invalid_field", "patient_gender must be male or female")
		}
		in.gender = g
	}
	return nil
}

// bodyError maps body read failures: over the limit is 413, a timeout 408, the rest 400.
func bodyError(err error, what string) error {
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return errf(http.StatusRequestEntityTooLarge, "body_too_large", "request body exceeds the limit of %d bytes", mbe.Limit)
	}
	if errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "timeout") {
		return errf(http.StatusRequestTimeout, "timeout", "%s: timed out", what)
	}
	return errf(http.StatusBadRequest, "invalid_body", "%s: %v", what, err)
}

// decodeError maps imageio failures to client errors.
func decodeError(err error) error {
	switch {
	case errors.Is(err, imageio.ErrTooLarge):
		return errf(http.StatusRequestEntityTooLarge, "image_too_large", "%v", trimImageName(err))
	case errors.Is(err, imageio.ErrUnknownFormat):
		return errf(http.StatusUnsupportedMediaType, "unsupported_image", "the upload is not a supported image (JPEG, PNG, GIF, WebP or BMP)")
	case errors.Is(err, imageio.ErrTruncated):
		return errf(http.StatusUnprocessableEntity, "truncated_image", "the image data is truncated")
	default:
		return errf(http.StatusUnprocessableEntity, "invalid_image", "%v", trimImageName(err))
	}
}

func trimImageName(err error) string {
	var ie *imageio.Error
	if errors.As(err, &ie) {
		return ie.Err.Error()
	}
	return err.Error()
}

// diagnose checks, decodes and grades one photo, annotates and records the result.
func (s *Server) diagnose(ctx context.Context, in diagnoseInput) (*Record, error) {
	l := s.current()
	if l == nil {
		return nil, errf(http.StatusServiceUnavailable, "model_loading", "the model is not loaded yet")
	}
	start := time.Now()
	// Header first: format and declared pixels, before any pixel buffer exists.
	if _, err := imageio.DecodeConfig("upload", in.image, s.imageLimits()); err != nil {
		return nil, decodeError(err)
	}
	select {
	case s.decode <- struct{}{}:
	case <-ctx.Done():
		return nil, errf(http.StatusServiceUnavailable, "timeout", "timed out waiting to decode the image")
	}
	t0 := time.Now()
	img, _, err := imageio.Decode("upload", in.image, s.imageLimits())
	decodeMS := msSince(t0)
	var input infer.Input
	var prepMS float64
	if err == nil {
		t1 := time.Now()
		input, err = l.model.Preprocess(img)
		prepMS = msSince(t1)
		if err != nil {
			err = errf(http.StatusUnprocessableEntity, "invalid_image", "preprocess: %v", err)
		}
	} else {
		err = decodeError(err)
	}
	<-s.decode
	if err != nil {
		return nil, err
	}
	pred, modelMS, err := l.batcher.Submit(ctx, input)
	switch {
	case errors.Is(err, ErrQueueFull):
		return nil, errf(http.StatusServiceUnavailable, "overloaded", "the server is at capacity; retry shortly")
	case errors.Is(err, ErrClosed):
		return nil, errf(http.StatusServiceUnavailable, "shutting_down", "the server is shutting down")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return nil, errf(http.StatusServiceUnavailable, "timeout", "the diagnosis did not finish in time")
	case err != nil:
		return nil, errf(http.StatusInternalServerError, "model_error", "model: %v", err)
	}
	id := newID()
	now := s.cfg.Now().UTC()
	res := &result.DiagnosisResult{ImageID: id, ModelVersion: l.info.Version, CreatedAt: now}
	infer.Fill(res, l.info, pred)
	severityLabel := res.Diagnosis.EN
	if s.cfg.KB != nil {
		s.cfg.KB.Apply(res, knowledge.Input{Age: in.age, Gender: in.gender, Symptoms: in.description})
	}
	res.Timing.DecodeMS = decodeMS
	res.Timing.PreprocessMS = prepMS
	res.Timing.ModelMS = modelMS
	rec := &Record{
		ID: id, CreatedAt: now, InputHash: in.hash(), ModelName: l.info.Name, ModelVersion: l.info.Version,
		Severity: severityLabel, Referred: res.Referred(),
	}
	if s.cfg.Images != nil {
		addr, err := s.cfg.Images.Put(in.image)
		if err != nil {
			return nil, errf(http.StatusInternalServerError, "storage_error", "store image: %v", err)
		}
		rec.ImageHash = addr
	}
	res.Timing.TotalMS = msSince(start)
	rec.Result = *res
	if err := s.cfg.Store.Save(ctx, rec); err != nil {
		return nil, errf(http.StatusInternalServerError, "storage_error", "%v", err)
	}
	s.metrics.Diagnoses.WithLabelValues(severityLabel, l.info.Version).Inc()
	return rec, nil
}

func msSince(t time.Time) float64 { return float64(time.Since(t).Microseconds()) / 1000 }

// listView is the data of GET /api/v1/diagnoses.
type listView struct {
	Items  []Record `json:"items"`
	Total  int      `json:"total"`
	Limit  int      `json:"limit"`
	Offset int      `json:"offset"`
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	f, err := parseListFilter(r)
	if err != nil {
		s.reject(w, err)
		return
	}
	items, total, err := s.cfg.Store.List(r.Context(), f)
	if err != nil {
		writeAPIError(w, errf(http.StatusInternalServerError, "storage_error", "%v", err))
		return
	}
	writeOK(w, listView{Items: items, Total: total, Limit: f.Limit, Offset: f.Offset}, fmt.Sprintf("%d of %d diagnoses", len(items), total))
}

func parseListFilter(r *http.Request) (ListFilter, error) {
	q := r.URL.Query()
	f := ListFilter{Limit: 20, Severity: strings.TrimSpace(q.Get("severity"))}
	var err error
	if f.From, err = parseTimeParam(q.Get("from"), false); err != nil {
		return f, errf(http.StatusBadRequest, "invalid_parameter", "from: %v", err)
	}
	if f.To, err = parseTimeParam(q.Get("to"), true); err != nil {
		return f, errf(http.StatusBadRequest, "invalid_parameter", "to: %v", err)
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			return f, errf(http.StatusBadRequest, "invalid_parameter", "limit must be a whole number from 1 to 100")
		}
		f.Limit = n
	}
	if v := q.Get("offset"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return f, errf(http.StatusBadRequest, "invalid_parameter", "offset must be a whole number from 0")
		}
		f.Offset = n
	}
	return f, nil
}

// parseTimeParam accepts RFC 3339 or a date (YYYY-MM-DD, UTC); a date used as the end of a
// range includes the whole day.
func parseTimeParam(v string, end bool) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t, nil
	}
	t, err := time.Parse("2006-01-02", v)
	if err != nil {
		return time.Time{}, fmt.Errorf("want RFC 3339 time or YYYY-MM-DD, got %q", v)
	}
	if end {
		t = t.AddDate(0, 0, 1)
	}
	return t, nil
}

func (s *Server) handleGet(w http.ResponseWriter, r *http.Request) {
	rec, err := s.cfg.Store.Get(r.Context(), r.PathValue("id"))
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no diagnosis with id "+r.PathValue("id"))
		return
	}
	if err != nil {
		writeAPIError(w, errf(http.StatusInternalServerError, "storage_error", "%v", err))
		return
	}
	writeOK(w, rec, "found")
}

func (s *Server) handleDelete(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	hash, err := s.cfg.Store.Delete(r.Context(), id)
	if errors.Is(err, ErrNotFound) {
		writeError(w, http.StatusNotFound, "not_found", "no diagnosis with id "+id)
		return
	}
	if err != nil {
		writeAPIError(w, errf(http.StatusInternalServerError, "storage_error", "%v", err))
		return
	}
	imageDeleted, err := s.dropImageIfUnreferenced(r.Context(), hash)
	if err != nil {
		s.cfg.Logger.Error("delete image", "err", err)
	}
	writeOK(w, map[string]any{"id": id, "image_deleted": imageDeleted}, "deleted")
}
