package imageio

import (
	"bytes"
	"image"
	"image/draw"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// TestJPEGDecodesLikeLibjpeg compares Decode with the pixels PIL (libjpeg-turbo) gives for
// the same JPEGs (testdata/libjpeg, scripts/imageio-reference/jpeg_fixtures.py), and checks
// that Go's own conversion (box upsampling) is the further of the two. What remains is the
// IDCT's rounding: the bounds hold what was measured (max 3, mean ≤ 0.03 on the sample
// photos) with some headroom.
func TestJPEGDecodesLikeLibjpeg(t *testing.T) {
	tests := []struct {
		name      string
		subsample image.YCbCrSubsampleRatio
	}{
		{"s420-odd", image.YCbCrSubsampleRatio420},
		{"s420-even", image.YCbCrSubsampleRatio420},
		{"s422", image.YCbCrSubsampleRatio422},
		{"s444", image.YCbCrSubsampleRatio444},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join("testdata", "libjpeg")
			data, err := os.ReadFile(filepath.Join(dir, tc.name+".jpg"))
			if err != nil {
				t.Fatal(err)
			}
			want := readRGBA(t, filepath.Join(dir, tc.name+".png"))
			got, _, err := Decode(tc.name+".jpg", data, DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			goImg, err := jpeg.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if y, ok := goImg.(*image.YCbCr); !ok || y.SubsampleRatio != tc.subsample {
				t.Fatalf("fixture decodes to %T, want YCbCr %v", goImg, tc.subsample)
			}
			maxD, meanD := pixelDiff(t, toRGBA(got), want)
			goMax, goMean := pixelDiff(t, toRGBA(goImg), want)
			t.Logf("libjpeg-compatible: max %d, mean %.4f; Go's image/jpeg colours: max %d, mean %.4f", maxD, meanD, goMax, goMean)
			if maxD > 4 || meanD > 0.06 {
				t.Errorf("decoded pixels differ from libjpeg's by up to %d (mean %.4f)", maxD, meanD)
			}
			if tc.subsample != image.YCbCrSubsampleRatio444 && meanD >= goMean {
				t.Errorf("mean difference %.4f is not below Go's own conversion's %.4f", meanD, goMean)
			}
		})
	}
}

func readRGBA(t *testing.T, path string) *image.RGBA {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	return toRGBA(img)
}

func toRGBA(img image.Image) *image.RGBA {
	if r, ok := img.(*image.RGBA); ok {
		return r
	}
	out := image.NewRGBA(img.Bounds())
	draw.Draw(out, out.Rect, img, img.Bounds().Min, draw.Src)
	return out
}

// pixelDiff is the largest and the mean absolute difference over the R, G, B values.
func pixelDiff(t *testing.T, got, want *image.RGBA) (maxD int, mean float64) {
	t.Helper()
	if got.Rect.Size() != want.Rect.Size() {
		t.Fatalf("size %v, want %v", got.Rect.Size(), want.Rect.Size())
	}
	w, h := want.Rect.Dx(), want.Rect.Dy()
	sum := 0
	for y := range h {
		for x := range w {
			for c := range 3 {
				d := int(got.Pix[y*got.Stride+4*x+c]) - int(want.Pix[y*want.Stride+4*x+c])
				d = int(math.Abs(float64(d)))
				maxD = max(maxD, d)
				sum += d
			}
		}
	}
	return maxD, float64(sum) / float64(3*w*h)
}
