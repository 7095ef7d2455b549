package grader

import (
	"encoding/json"
	"image"
	"image/color"
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/grader/weights"
)

func TestBuiltinWeights(t *testing.T) {
	if len(weights.Grader) == 0 {
		t.Skip("no built-in weights embedded (internal/grader/weights/grader.ckpt is empty)")
	}
	if len(weights.Grader) > 20<<20 {
		t.Errorf("built-in weights are %d bytes, over the 20 MB budget", len(weights.Grader))
	}
	var info WeightsInfo
	if err := json.Unmarshal(weights.Info, &info); err != nil {
		t.Fatalf("grader.json: %v", err)
	}
	if info.Version == "" || info.Params <= 0 || info.Metrics["valid_accuracy"] <= 0 {
		t.Errorf("grader.json lacks version, params or valid metrics: %+v", info)
	}
	m, err := LoadBuiltin()
	if err != nil {
		t.Fatal(err)
	}
	img := image.NewRGBA(image.Rect(0, 0, 300, 200))
	for y := 0; y < 200; y++ {
		for x := 0; x < 300; x++ {
			img.Set(x, y, color.RGBA{200, 150, 130, 255})
		}
	}
	preds, err := m.Predict([]image.Image{img, img})
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range preds {
		var sum float64
		for _, v := range p.Probabilities {
			sum += v
		}
		// The built-in weights were trained on ACNE04, whose lesion types mirror the grade: they
		// report the total only.
		if _, ok := p.LesionCounts[dataset.LesionUnspecified]; math.Abs(sum-1) > 1e-4 || len(p.LesionCounts) != 1 || !ok {
			t.Errorf("prediction %d: probabilities sum %v, counts %v (want the %s total only)", i, sum, p.LesionCounts, dataset.LesionUnspecified)
		}
		for _, b := range p.Boxes {
			if b.Type != dataset.LesionUnspecified {
				t.Errorf("box %+v: type %q, want %q", b, b.Type, dataset.LesionUnspecified)
			}
		}
		for _, b := range p.Boxes {
			if b.X0 < -50 || b.X1 > 350 || b.Y0 < -50 || b.Y1 > 250 {
				t.Errorf("box %+v far outside the 300x200 image", b)
			}
		}
	}
	if preds[0].Grade != preds[1].Grade || preds[0].Probabilities[0] != preds[1].Probabilities[0] {
		t.Error("identical photos in one batch got different predictions")
	}
}

// TestWeightsVersion: a copy of the built-in weights has the built-in version, an exported
// grader.ckpt the version of the grader.json beside it, anything else none.
func TestWeightsVersion(t *testing.T) {
	if len(weights.Grader) == 0 {
		t.Skip("no built-in weights embedded")
	}
	dir := t.TempDir()
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	other := append([]byte{}, weights.Grader...)
	other[len(other)-1] ^= 1
	info := []byte(`{"name": "acdtcm-grader", "version": "9.9.9+20300101"}`)
	write("export/grader.json", info)
	write("run/grader.json", info)
	tests := []struct {
		name, path, want string
	}{
		{"built-in copy", write("copy.ckpt", weights.Grader), BuiltinVersion()},
		{"exported", write("export/grader.ckpt", other), "9.9.9+20300101"},
		{"not the exported file", write("run/best.ckpt", other), ""},
		{"no grader.json", write("lone/grader.ckpt", other), ""},
		{"missing", filepath.Join(dir, "missing.ckpt"), ""},
	}
	if BuiltinVersion() == "" {
		t.Fatal("the built-in grader.json has no version")
	}
	for _, tc := range tests {
		if got := WeightsVersion(tc.path); got != tc.want {
			t.Errorf("%s: WeightsVersion = %q, want %q", tc.name, got, tc.want)
		}
	}
}
