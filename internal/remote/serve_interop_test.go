package remote_test

import (
	"context"
	"image"
	"io"
	"log/slog"
	"math"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/remote"
	"github.com/acdtcm/acdtcm/internal/serve"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// fixedModel answers the same grade distribution for every photo.
type fixedModel struct{ probs []float64 }

func (m *fixedModel) Info() infer.ModelInfo {
	return infer.ModelInfo{Name: "fixed-grader", Version: "t1", Backend: "go", Scale: severity.Hayashi}
}

func (m *fixedModel) Preprocess(img image.Image) (infer.Input, error) { return img.Bounds(), nil }

func (m *fixedModel) Predict(_ context.Context, batch []infer.Input) ([]infer.Prediction, error) {
	out := make([]infer.Prediction, len(batch))
	for i := range out {
		out[i] = infer.Prediction{Probabilities: append([]float64(nil), m.probs...)}
	}
	return out, nil
}

// TestRemoteAgainstAcdtcmServe uses a second, independent implementation of the contract:
// acdtcm serve's own /v1/chat/completions route. The grade distribution the served model
// computes must come back through the logprobs unchanged.
func TestRemoteAgainstAcdtcmServe(t *testing.T) {
	st, err := serve.OpenSQLite(context.Background(), filepath.Join(t.TempDir(), "acdtcm.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	srv, err := serve.New(serve.Config{Store: st, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{0.05, 0.15, 0.6, 0.2}
	srv.SetModel(&fixedModel{probs: want})
	ts := httptest.NewServer(srv.Handler())
	defer ts.Close()

	m, err := remote.Open(context.Background(), remote.Config{Endpoint: ts.URL + "/v1", Model: "fixed-grader", MaxPixels: 50_000})
	if err != nil {
		t.Fatal(err)
	}
	in, err := m.Preprocess(image.NewRGBA(image.Rect(0, 0, 300, 200)))
	if err != nil {
		t.Fatal(err)
	}
	preds, err := m.Predict(context.Background(), []infer.Input{in, in})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range preds {
		for g := range want {
			if math.Abs(p.Probabilities[g]-want[g]) > 1e-9 {
				t.Fatalf("probabilities %v, want %v", p.Probabilities, want)
			}
		}
	}
	if _, err := remote.Open(context.Background(), remote.Config{Endpoint: ts.URL + "/v1", Model: "acne"}); err == nil {
		t.Error("Open accepted a model name acdtcm serve does not serve")
	}
}
