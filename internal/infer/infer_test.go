package infer

import (
	"context"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/result"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// brightnessModel grades a photo by its mean red value: a deterministic stand-in for a
// network that lets the pipeline be tested without weights.
type brightnessModel struct {
	failBatches map[int]bool
	calls       int
	batchSizes  []int
}

func (m *brightnessModel) Info() ModelInfo {
	return ModelInfo{Name: "test", Version: "test-1", Scale: severity.Hayashi}
}

func (m *brightnessModel) Preprocess(img image.Image) (Input, error) {
	r, _, _, _ := img.At(0, 0).RGBA()
	return int(r>>8) / 64, nil
}

func (m *brightnessModel) Predict(_ context.Context, batch []Input) ([]Prediction, error) {
	m.calls++
	m.batchSizes = append(m.batchSizes, len(batch))
	if m.failBatches[m.calls] {
		return nil, errors.New("device lost")
	}
	out := make([]Prediction, len(batch))
	for i, in := range batch {
		probs := []float64{0.1, 0.1, 0.1, 0.1}
		probs[in.(int)] = 0.7
		out[i] = Prediction{Probabilities: probs, LesionCounts: map[string]float64{"papule": float64(in.(int) * 10)}}
	}
	return out, nil
}

func writePNG(t *testing.T, path string, red uint8) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 4, 4))
	for i := 0; i < 16; i++ {
		img.Set(i%4, i/4, color.RGBA{red, 0, 0, 255})
	}
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

func collect(ch <-chan Item) (paths []string, errs []string) {
	for it := range ch {
		if it.Err != nil {
			errs = append(errs, it.Err.Error())
		} else {
			paths = append(paths, it.Path)
		}
	}
	return
}

func TestExpandInputs(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "a", "b"), 0o755)
	for _, p := range []string{"a/1.jpg", "a/b/2.PNG", "a/notes.txt", "3.webp"} {
		os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o644)
	}
	j := func(p string) string { return filepath.Join(dir, p) }
	tests := []struct {
		name      string
		args      []string
		stdin     string
		wantPaths []string
		wantErrs  int
	}{
		{"folder is recursive and skips non-images", []string{j("a")}, "", []string{j("a/1.jpg"), j("a/b/2.PNG")}, 0},
		{"file taken as is", []string{j("a/notes.txt")}, "", []string{j("a/notes.txt")}, 0},
		{"glob", []string{j("*.webp")}, "", []string{j("3.webp")}, 0},
		{"stdin list", []string{"-"}, j("3.webp") + "\n\n# comment\n" + j("a/b") + "\n", []string{j("3.webp"), j("a/b/2.PNG")}, 0},
		{"missing input reported, rest goes on", []string{j("nope.jpg"), j("3.webp")}, "", []string{j("3.webp")}, 1},
		{"glob without match", []string{j("*.gif")}, "", nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			paths, errs := collect(ExpandInputs(context.Background(), tc.args, strings.NewReader(tc.stdin)))
			if !slices.Equal(paths, tc.wantPaths) || len(errs) != tc.wantErrs {
				t.Errorf("got %v errs %v; want %v and %d errors", paths, errs, tc.wantPaths, tc.wantErrs)
			}
		})
	}
}

func TestRunOrderErrorsAndBatches(t *testing.T) {
	dir := t.TempDir()
	var args []string
	for i := 0; i < 7; i++ {
		p := filepath.Join(dir, fmt.Sprintf("p%d.png", i))
		writePNG(t, p, uint8(i*40))
		args = append(args, p)
	}
	broken := filepath.Join(dir, "p3.png")
	os.WriteFile(broken, []byte("\x89PNG\r\n\x1a\ntruncated"), 0o644)
	args = append(args, filepath.Join(dir, "missing.png"))

	tests := []struct {
		name        string
		batch       int
		failBatches map[int]bool
		wantFailed  int
		wantBatches []int
	}{
		{"batch 3", 3, nil, 2, []int{3, 2, 1}},
		{"batch 16", 16, nil, 2, []int{6}},
		{"failed model call marks only its batch", 3, map[int]bool{2: true}, 4, []int{3, 2, 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &brightnessModel{failBatches: tc.failBatches}
			var got []*result.DiagnosisResult
			sum, err := Run(context.Background(), m, ExpandInputs(context.Background(), args, nil),
				Options{BatchSize: tc.batch, Workers: 2, Decode: decodeFile},
				func(r *result.DiagnosisResult) error { got = append(got, r); return nil })
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(args) {
				t.Fatalf("got %d results for %d inputs", len(got), len(args))
			}
			for i, r := range got {
				if r.Image != args[i] {
					t.Errorf("result %d is %s, want input order %s", i, r.Image, args[i])
				}
			}
			if sum.Failed != tc.wantFailed || sum.Diagnosed != len(args)-tc.wantFailed {
				t.Errorf("summary %+v, want %d failed", sum, tc.wantFailed)
			}
			if !slices.Equal(m.batchSizes, tc.wantBatches) {
				t.Errorf("batch sizes %v, want %v", m.batchSizes, tc.wantBatches)
			}
			if !strings.Contains(got[3].Error, broken) {
				t.Errorf("broken image error %q does not name %s", got[3].Error, broken)
			}
			if tc.failBatches == nil {
				r := got[6] // red 240 -> grade 3
				if r.Severity.Value != 3 || r.Confidence != 0.7 || r.Diagnosis.EN != "very severe" || r.ModelVersion != "test-1" {
					t.Errorf("result for p6: %+v", r)
				}
				if len(r.Lesions) != 1 || r.Lesions[0].Type != "papule" || r.Lesions[0].Count != 30 {
					t.Errorf("lesions for p6: %+v", r.Lesions)
				}
			}
		})
	}
}

func TestRunStopsWhenEmitFails(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "a.png")
	writePNG(t, p, 10)
	stop := errors.New("disk full")
	_, err := Run(context.Background(), &brightnessModel{}, ExpandInputs(context.Background(), []string{p, p, p}, nil),
		Options{BatchSize: 1, Decode: decodeFile}, func(*result.DiagnosisResult) error { return stop })
	if !errors.Is(err, stop) {
		t.Fatalf("err = %v, want %v", err, stop)
	}
}
