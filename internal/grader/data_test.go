package grader

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/imageio"
	"github.com/acdtcm/acdtcm/internal/severity"
)

func writeJPEG(t *testing.T, path string, w, h int, c color.RGBA) {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			img.Set(x, y, c)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := jpeg.Encode(f, img, &jpeg.Options{Quality: 95}); err != nil {
		t.Fatal(err)
	}
}

const vocXML = `<annotation><size><width>64</width><height>32</height><depth>3</depth></size>
<object><name>papules</name><bndbox><xmin>8</xmin><xmax>16</xmax><ymin>4</ymin><ymax>12</ymax></bndbox></object>
<object><name>nodules and cysts</name><bndbox><xmin>32</xmin><xmax>48</xmax><ymin>16</ymin><ymax>32</ymax></bndbox></object>
<object><name>freckle</name><bndbox><xmin>1</xmin><xmax>2</xmax><ymin>1</ymin><ymax>2</ymax></bndbox></object>
</annotation>`

func TestLoadVOCSamples(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"train/levle2_17_jpg.rf.aaa", "train/levle2_17_jpg.rf.bbb", "valid/levle0_5_jpg.rf.ccc", "train/notacne_1"} {
		writeJPEG(t, filepath.Join(dir, f+".jpg"), 64, 32, color.RGBA{200, 100, 90, 255})
		if err := os.WriteFile(filepath.Join(dir, f+".xml"), []byte(vocXML), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	samples, skipped, err := LoadSamples(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 3 || skipped != 1 {
		t.Fatalf("got %d samples, %d skipped; want 3 and 1", len(samples), skipped)
	}
	s := samples[0]
	if s.Split != "train" || s.Grade != 2 || s.Source != "2_17" || len(s.Boxes) != 2 {
		t.Fatalf("first sample %+v", s)
	}
	if b := s.Boxes[0]; b.Type != 1 || b.X0 != 8.0/64 || b.Y1 != 12.0/32 {
		t.Errorf("papule box %+v", b)
	}
	if s.Boxes[1].Type != 3 {
		t.Errorf("nodule type %d, want 3", s.Boxes[1].Type)
	}
	if samples[2].Split != "valid" || samples[2].Grade != 0 {
		t.Errorf("valid sample %+v", samples[2])
	}
}

func TestLoadManifestSamples(t *testing.T) {
	dir := t.TempDir()
	writeJPEG(t, filepath.Join(dir, "img", "a.jpg"), 40, 20, color.RGBA{180, 120, 100, 255})
	g := 1
	recs := []dataset.Record{
		{ImageID: "a", Image: "img/a.jpg", Width: 40, Height: 20, Split: "train", SourceID: "src1",
			Diagnosis: dataset.Diagnosis{Severity: &severity.Grade{Value: g, Scale: severity.Hayashi},
				Lesions: []dataset.Lesion{{Type: dataset.LesionPustule, Box: &dataset.Box{X0: 4, Y0: 2, X1: 8, Y1: 6}}}}},
		{ImageID: "b", Image: "img/a.jpg", Split: "train", Diagnosis: dataset.Diagnosis{Severity: &severity.Grade{Value: 2, Scale: severity.Clinical4}}},
	}
	var lines []string
	for _, r := range recs {
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	if err := os.WriteFile(filepath.Join(dir, dataset.ManifestName), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	samples, skipped, err := LoadSamples(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 1 || skipped != 1 {
		t.Fatalf("got %d samples, %d skipped; want 1 and 1 (clinical4 grade skipped)", len(samples), skipped)
	}
	s := samples[0]
	if s.Source != "src1" || s.Grade != 1 || len(s.Boxes) != 1 || s.Boxes[0].Type != 2 || s.Boxes[0].X1 != 0.2 || s.Boxes[0].Y1 != 0.3 {
		t.Errorf("sample %+v boxes %+v", s, s.Boxes)
	}
}

func TestSplitSamples(t *testing.T) {
	samples := []Sample{{ID: "a", Split: "train"}, {ID: "b", Split: "valid"}, {ID: "c", Split: "test"}, {ID: "d", Split: "train"}, {ID: "e", Split: ""}}
	ids := func(ss []Sample) (out []string) {
		for _, s := range ss {
			out = append(out, s.ID)
		}
		return out
	}
	for _, tc := range []struct {
		train, eval         string
		wantTrain, wantEval []string
	}{
		{"train", "valid", []string{"a", "d"}, []string{"b"}},
		{"train", "test", []string{"a", "d"}, []string{"c"}},
		{"valid", "train", []string{"b"}, []string{"a", "d"}},
		{"train", "none", []string{"a", "d"}, nil},
		{"holdout", "valid", nil, []string{"b"}},
	} {
		tr, ev := SplitSamples(samples, tc.train, tc.eval)
		if !slices.Equal(ids(tr), tc.wantTrain) || !slices.Equal(ids(ev), tc.wantEval) {
			t.Errorf("SplitSamples(%q, %q) = %v, %v; want %v, %v", tc.train, tc.eval, ids(tr), ids(ev), tc.wantTrain, tc.wantEval)
		}
	}
}

func TestSplitBySourceNoLeakage(t *testing.T) {
	samples, _ := synthetic(60, 8, 9)
	tr, val := SplitBySource(samples, 0.25, 3)
	if len(tr)+len(val) != len(samples) || len(val) == 0 {
		t.Fatalf("split %d + %d of %d", len(tr), len(val), len(samples))
	}
	inTrain := map[string]bool{}
	for _, s := range tr {
		inTrain[s.Source] = true
	}
	for _, s := range val {
		if inTrain[s.Source] {
			t.Fatalf("source %s is on both sides", s.Source)
		}
	}
	tr2, val2 := SplitBySource(samples, 0.25, 3)
	if len(tr2) != len(tr) || len(val2) != len(val) || val2[0].ID != val[0].ID {
		t.Error("split is not reproducible with the same seed")
	}
}

func TestResize(t *testing.T) {
	img := image.NewRGBA(image.Rect(0, 0, 4, 2))
	for y := 0; y < 2; y++ {
		for x := 0; x < 4; x++ {
			v := uint8(0)
			if x >= 2 {
				v = 200
			}
			img.Set(x, y, color.RGBA{v, v / 2, 10, 255})
		}
	}
	got := Resize(img, 2)
	want := []uint8{0, 0, 10, 200, 100, 10, 0, 0, 10, 200, 100, 10}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Resize = %v, want %v", got, want)
		}
	}
}

// TestResizeGolden pins the network input of the sample photos, byte for byte, to golden
// hashes made on amd64: run on another architecture (GOARCH=arm64 go test -exec
// qemu-aarch64 ...) it checks that preprocessing does not depend on the CPU (see Resize).
func TestResizeGolden(t *testing.T) {
	golden := filepath.Join("testdata", "resize224.sha256")
	data, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		want, name, ok := strings.Cut(line, "  ")
		if !ok {
			t.Fatalf("%s: bad line %q", golden, line)
		}
		t.Run(name, func(t *testing.T) {
			img, _, err := imageio.DecodeFile(filepath.Join("..", "..", "testdata", "samples", name), imageio.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprintf("%x", sha256.Sum256(Resize(img, 224))); got != want {
				t.Errorf("Resize(%s, 224) hashes to %s, want %s (%s)", name, got, want, golden)
			}
		})
		n++
	}
	if n != 4 {
		t.Errorf("%s: %d photos, want the 4 samples", golden, n)
	}
}

func TestMetrics(t *testing.T) {
	tests := []struct {
		name            string
		probs           [][]float64
		truth           []int
		acc, kappa, auc float64
		macroF1Positive bool
	}{
		{"perfect", [][]float64{{1, 0, 0, 0}, {0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}}, []int{0, 1, 2, 3}, 1, 1, 1, true},
		{"all wrong by one", [][]float64{{0, 1, 0, 0}, {0, 0, 1, 0}, {0, 0, 0, 1}, {0, 0, 1, 0}}, []int{0, 1, 2, 3}, 0, 0.5, math.NaN(), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := ComputeMetrics(tc.probs, tc.truth, nil, nil)
			if m.Accuracy != tc.acc {
				t.Errorf("accuracy %v, want %v", m.Accuracy, tc.acc)
			}
			if math.Abs(m.Kappa-tc.kappa) > 1e-9 {
				t.Errorf("kappa %v, want %v", m.Kappa, tc.kappa)
			}
			if !math.IsNaN(tc.auc) && math.Abs(m.MacroAUC-tc.auc) > 1e-9 {
				t.Errorf("AUC %v, want %v", m.MacroAUC, tc.auc)
			}
			if (m.MacroF1 > 0) != tc.macroF1Positive {
				t.Errorf("macro F1 %v", m.MacroF1)
			}
		})
	}
	// Count-rule accuracy rounds estimated counts before ACNE04's rule: 20.4 -> 20 -> grade 1.
	if m := ComputeMetrics([][]float64{{0, 1, 0, 0}}, []int{1}, []float64{20.4}, []float64{20}); m.CountAcc != 1 || math.Abs(m.CountMAE-0.4) > 1e-12 {
		t.Errorf("count metrics %+v", m)
	}
}

func TestFillInputHighPass(t *testing.T) {
	const s = 16
	src := make([]uint8, s*s*3)
	for i := 0; i < s*s; i++ {
		src[i*3], src[i*3+1], src[i*3+2] = 180, 120, 100
	}
	// One red pixel at (5, 9).
	src[(5*s+9)*3], src[(5*s+9)*3+1] = 250, 60
	dst := make([]float32, s*s*5)
	var sc featureScratch
	fillInput(dst, src, s, false, 1, true, &sc)
	at := func(y, x, c int) float32 { return dst[(y*s+x)*5+c] }
	if at(5, 9, 3) <= 0.5 {
		t.Errorf("redness high-pass at the red pixel = %v, want clearly positive", at(5, 9, 3))
	}
	if v := at(12, 2, 3); v < -0.05 || v > 0.05 {
		t.Errorf("redness high-pass far from the pixel = %v, want ~0", v)
	}
	if v := at(0, 0, 4); v < -0.05 || v > 0.05 {
		t.Errorf("darkness high-pass of flat skin = %v, want ~0", v)
	}
	if v, want := at(0, 0, 0), float32((180.0/255-0.5)/0.25); math.Abs(float64(v-want)) > 1e-6 {
		t.Errorf("normalised red = %v, want %v", v, want)
	}
	// Mirroring moves the spot to column s-1-9.
	fillInput(dst, src, s, true, 1, true, &sc)
	if at(5, s-1-9, 3) <= 0.5 {
		t.Errorf("mirrored spot missing: %v", at(5, s-1-9, 3))
	}
}
