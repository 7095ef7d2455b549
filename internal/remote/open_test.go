package remote_test

import (
	"context"
	"image"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/models"
	"github.com/acdtcm/acdtcm/internal/remote"
	"github.com/acdtcm/acdtcm/internal/remote/fakeserver"
)

// TestModelsOpenSelectsRemote checks the models.Open path of --backend openai: the API key
// comes from the named environment variable, the model is an infer.ItemPredictor.
func TestModelsOpenSelectsRemote(t *testing.T) {
	fs := &fakeserver.Server{APIKey: "sk-env"}
	ts := httptest.NewServer(fs)
	defer ts.Close()
	t.Setenv("TEST_ACNE_KEY", "sk-env")

	tests := []struct {
		name    string
		opts    models.Options
		wantErr string
	}{
		{"key from env", models.Options{Backend: "openai", Model: "acne", Endpoint: ts.URL + "/v1", APIKeyEnv: "TEST_ACNE_KEY"}, ""},
		{"flags struct", models.Options{Backend: "openai", Model: "acne", Remote: remote.Flags{Endpoint: ts.URL + "/v1", APIKeyEnv: "TEST_ACNE_KEY"}}, ""},
		{"key missing", models.Options{Backend: "openai", Model: "acne", Endpoint: ts.URL + "/v1", APIKeyEnv: "TEST_NO_SUCH_KEY"}, "refused the API key"},
		{"no model name", models.Options{Backend: "openai", Endpoint: ts.URL + "/v1"}, "needs --model NAME"},
		{"adapter", models.Options{Backend: "openai", Model: "acne", Adapter: "a", Endpoint: ts.URL + "/v1"}, "--lora-modules"},
		{"no endpoint", models.Options{Backend: "openai", Model: "acne"}, "--endpoint is required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := models.Open(tc.opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.(infer.ItemPredictor); !ok || m.Info().Backend != "openai" {
				t.Fatalf("models.Open returned %T (%+v)", m, m.Info())
			}
			in, err := m.Preprocess(image.NewRGBA(image.Rect(0, 0, 64, 64)))
			if err != nil {
				t.Fatal(err)
			}
			preds, err := m.Predict(context.Background(), []infer.Input{in})
			if err != nil || preds[0].Probabilities[0] < 0.69 {
				t.Fatalf("predict: %v %v", preds, err)
			}
		})
	}
}
