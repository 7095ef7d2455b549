package remote

import (
	"context"
	"fmt"
	"image"
	"math/rand/v2"
	"net/http/httptest"
	"testing"

	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/remote/fakeserver"
)

// noisyPhoto is a photo with per-pixel noise, so encoded sizes are realistic (a flat colour
// would compress to nothing).
func noisyPhoto(w, h int) *image.RGBA {
	img := photo(w, h, 120)
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < len(img.Pix); i += 4 {
		img.Pix[i] = uint8(100 + r.IntN(60))
		img.Pix[i+1] = uint8(60 + r.IntN(40))
		img.Pix[i+2] = uint8(50 + r.IntN(40))
	}
	return img
}

// BenchmarkPreprocess measures the client-side cost per photo: smart_resize (PIL bicubic) of
// a 2000x1500 photo to the default max_pixels and encoding it as a data URI.
func BenchmarkPreprocess(b *testing.B) {
	for _, format := range []string{"png", "jpeg"} {
		b.Run(format, func(b *testing.B) {
			m, err := Open(context.Background(), Config{Endpoint: "http://localhost:1/v1", Model: "acne", SkipCheck: true, ImageFormat: format})
			if err != nil {
				b.Fatal(err)
			}
			img := noisyPhoto(2000, 1500)
			b.ResetTimer()
			var size int
			for b.Loop() {
				in, err := m.Preprocess(img)
				if err != nil {
					b.Fatal(err)
				}
				size = len(in.(*Image).DataURI)
			}
			b.ReportMetric(float64(size)/1024, "KiB/request")
		})
	}
}

// BenchmarkRoundTrip measures one request through the client and the in-process fake
// server (JSON, base64, HTTP on loopback, log-probability parsing), 8 photos per Predict.
func BenchmarkRoundTrip(b *testing.B) {
	ts := httptest.NewServer(&fakeserver.Server{})
	defer ts.Close()
	m, err := Open(context.Background(), Config{Endpoint: ts.URL + "/v1", Model: "acne", MaxPixels: 200_000})
	if err != nil {
		b.Fatal(err)
	}
	in, err := m.Preprocess(noisyPhoto(640, 480))
	if err != nil {
		b.Fatal(err)
	}
	batch := []infer.Input{in, in, in, in, in, in, in, in}
	b.ResetTimer()
	for b.Loop() {
		if _, err := m.Predict(context.Background(), batch); err != nil {
			b.Fatal(fmt.Errorf("predict: %w", err))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N*len(batch)), "ms/photo")
}
