package qwen

import (
	"encoding/binary"
	"encoding/json"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

type imageprocCase struct {
	Name      string `json:"name"`
	MinPixels int    `json:"min_pixels"`
	MaxPixels int    `json:"max_pixels"`
	GridTHW   [3]int `json:"grid_thw"`
	Shape     [2]int `json:"shape"`
}

// TestProcessImageMatchesReference compares with pixel values computed by
// scripts/qwen-reference/image_processor.py (PIL bicubic + numpy, transformers' slow
// Qwen2VLImageProcessor steps) to 1e-5.
func TestProcessImageMatchesReference(t *testing.T) {
	dir := filepath.Join("testdata", "imageproc")
	data, err := os.ReadFile(filepath.Join(dir, "cases.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []imageprocCase
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for _, tc := range cases {
		t.Run(tc.Name, func(t *testing.T) {
			f, err := os.Open(filepath.Join(dir, tc.Name+".png"))
			if err != nil {
				t.Fatal(err)
			}
			img, err := png.Decode(f)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(filepath.Join(dir, tc.Name+".f32"))
			if err != nil {
				t.Fatal(err)
			}
			want := make([]float32, len(raw)/4)
			binary.Read(bytesReader(raw), binary.LittleEndian, want)

			cfg := DefaultProcessorConfig()
			cfg.MinPixels, cfg.MaxPixels = tc.MinPixels, tc.MaxPixels
			got, err := cfg.ProcessImage(img)
			if err != nil {
				t.Fatal(err)
			}
			if got.Grid != tc.GridTHW || got.Patches() != tc.Shape[0] || got.PatchDim != tc.Shape[1] {
				t.Fatalf("grid %v patches %d dim %d; want %v %v", got.Grid, got.Patches(), got.PatchDim, tc.GridTHW, tc.Shape)
			}
			maxDiff := 0.0
			for i := range want {
				maxDiff = math.Max(maxDiff, math.Abs(float64(got.PixelValues[i]-want[i])))
			}
			if maxDiff > 1e-5 {
				t.Errorf("max |diff| = %g, want <= 1e-5", maxDiff)
			}
		})
	}
}

func TestSmartResize(t *testing.T) {
	// Worked examples from qwen2_5_vl.md §3 (shipped max_pixels 12845056, class max 1003520).
	tests := []struct {
		h, w, min, max int
		wantH, wantW   int
		wantErr        bool
	}{
		{480, 640, 3136, 12845056, 476, 644, false},
		{1080, 1920, 3136, 12845056, 1092, 1932, false},
		{1080, 1920, 3136, 1003520, 728, 1316, false},
		{224, 224, 3136, 12845056, 224, 224, false},
		{50, 50, 3136, 12845056, 56, 56, false},
		{20, 500, 3136, 12845056, 0, 0, true},  // a side below 28
		{28, 6000, 3136, 12845056, 0, 0, true}, // aspect ratio above 200
	}
	for _, tc := range tests {
		h, w, err := SmartResize(tc.h, tc.w, 28, tc.min, tc.max)
		if (err != nil) != tc.wantErr || h != tc.wantH || w != tc.wantW {
			t.Errorf("SmartResize(%d, %d) = %d, %d, %v; want %d, %d", tc.h, tc.w, h, w, err, tc.wantH, tc.wantW)
		}
	}
}

func TestPatchOrder(t *testing.T) {
	// A 56x56 image whose pixel value encodes its patch: the rows of pixel_values must
	// follow the 2x2-merge raster order (0,0)(0,1)(1,0)(1,1)(0,2)... of qwen2_5_vl.md §3.
	img := image.NewRGBA(image.Rect(0, 0, 56, 56))
	for y := 0; y < 56; y++ {
		for x := 0; x < 56; x++ {
			i := (y*56 + x) * 4
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = uint8(y/14*16+x/14), 0, 0, 255
		}
	}
	cfg := DefaultProcessorConfig()
	got, err := cfg.ProcessImage(img)
	if err != nil {
		t.Fatal(err)
	}
	order := [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 0}, {2, 1}, {3, 0}, {3, 1}, {2, 2}, {2, 3}, {3, 2}, {3, 3}}
	for row, rc := range order {
		v := got.PixelValues[row*got.PatchDim] // channel 0, frame 0, pixel (0,0)
		code := float32(rc[0]*16 + rc[1])
		want := (float32(float64(code)/255) - float32(cfg.ImageMean[0])) / float32(cfg.ImageStd[0])
		if math.Abs(float64(v-want)) > 1e-6 {
			t.Errorf("row %d holds %v, want patch %v", row, v, rc)
		}
	}
	if got.Tokens(2) != 4 {
		t.Errorf("tokens = %d, want 4", got.Tokens(2))
	}
}

func TestLoadProcessorConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name, body       string
		wantMin, wantMax int
		wantErr          bool
	}{
		{"shipped", `{"min_pixels":3136,"max_pixels":12845056,"patch_size":14,"temporal_patch_size":2,"merge_size":2}`, 3136, 12845056, false},
		{"size spelling", `{"size":{"shortest_edge":6272,"longest_edge":200704}}`, 6272, 200704, false},
		{"empty keeps class defaults", `{}`, 3136, 1003520, false},
		{"bad json", `{`, 0, 0, true},
		{"bad mean", `{"image_mean":[0.5]}`, 0, 0, true},
	}
	for _, tc := range tests {
		p := filepath.Join(dir, tc.name+".json")
		os.WriteFile(p, []byte(tc.body), 0o644)
		cfg, err := LoadProcessorConfig(p)
		if (err != nil) != tc.wantErr || (!tc.wantErr && (cfg.MinPixels != tc.wantMin || cfg.MaxPixels != tc.wantMax)) {
			t.Errorf("%s: %+v, %v", tc.name, cfg, err)
		}
	}
}

func TestOverrideLimits(t *testing.T) {
	tests := []struct {
		name             string
		min, max         int
		wantMin, wantMax int
		wantErr          bool
	}{
		{"keep both", 0, 0, 3136, 50176, false},
		{"min only", 6272, 0, 6272, 50176, false},
		{"max only", 0, 40000, 3136, 40000, false},
		{"both", 1000, 2000, 1000, 2000, false},
		{"min above max", 90000, 40000, 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultProcessorConfig()
			c.MinPixels, c.MaxPixels = 3136, 50176
			err := c.OverrideLimits(tc.min, tc.max)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if !tc.wantErr && (c.MinPixels != tc.wantMin || c.MaxPixels != tc.wantMax) {
				t.Errorf("limits %d/%d, want %d/%d", c.MinPixels, c.MaxPixels, tc.wantMin, tc.wantMax)
			}
		})
	}
}
