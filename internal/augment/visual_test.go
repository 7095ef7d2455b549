package augment

import (
	"encoding/xml"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/disintegration/imaging"

	"github.com/acdtcm/acdtcm/internal/dataset"
)

// sharedDir locates ../shared next to the repository root (the directory with go.mod).
func sharedDir(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// vocBoxes reads the boxes of a Pascal VOC file (test-only; the dataset importer owns the
// real conversion).
func vocBoxes(t *testing.T, path string) []dataset.Lesion {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Objects []struct {
			Name string `xml:"name"`
			Box  struct {
				XMin float64 `xml:"xmin"`
				XMax float64 `xml:"xmax"`
				YMin float64 `xml:"ymin"`
				YMax float64 `xml:"ymax"`
			} `xml:"bndbox"`
		} `xml:"object"`
	}
	if err := xml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var out []dataset.Lesion
	for _, o := range doc.Objects {
		b := dataset.Box{X0: o.Box.XMin, Y0: o.Box.YMin, X1: o.Box.XMax, Y1: o.Box.YMax}
		out = append(out, dataset.Lesion{Type: o.Name, Box: &b})
	}
	return out
}

func drawBoxes(dst draw.Image, off image.Point, lesions []dataset.Lesion, c color.Color) {
	for _, l := range lesions {
		if l.Box == nil {
			continue
		}
		x0, y0 := int(math.Floor(l.Box.X0)), int(math.Floor(l.Box.Y0))
		x1, y1 := int(math.Ceil(l.Box.X1))-1, int(math.Ceil(l.Box.Y1))-1
		for t := 0; t < 2; t++ { // 2 px outline
			for x := x0; x <= x1; x++ {
				dst.Set(off.X+x, off.Y+y0+t, c)
				dst.Set(off.X+x, off.Y+y1-t, c)
			}
			for y := y0; y <= y1; y++ {
				dst.Set(off.X+x0+t, off.Y+y, c)
				dst.Set(off.X+x1-t, off.Y+y, c)
			}
		}
	}
}

// centreError is the mean absolute RGB difference between the 5x5 patch around each source
// box centre and the 5x5 patch around where m puts that centre in out.
func centreError(src, out image.Image, lesions []dataset.Lesion, m Affine) (float64, int) {
	var sum float64
	n := 0
	ob := out.Bounds()
	for _, l := range lesions {
		cx, cy := (l.Box.X0+l.Box.X1)/2, (l.Box.Y0+l.Box.Y1)/2
		ox, oy := m.Apply(cx, cy)
		if ox < 3 || oy < 3 || ox > float64(ob.Dx()-3) || oy > float64(ob.Dy()-3) {
			continue
		}
		for dy := -2; dy <= 2; dy++ {
			for dx := -2; dx <= 2; dx++ {
				r1, g1, b1, _ := src.At(int(cx)+dx, int(cy)+dy).RGBA()
				r2, g2, b2, _ := out.At(int(ox)+dx, int(oy)+dy).RGBA()
				sum += math.Abs(float64(r1>>8)-float64(r2>>8)) + math.Abs(float64(g1>>8)-float64(g2>>8)) + math.Abs(float64(b1>>8)-float64(b2>>8))
				n += 3
			}
		}
	}
	if n == 0 {
		return 0, 0
	}
	return sum / float64(n), n / 75
}

// TestVisualACNE04 augments a real ACNE04 photo with its VOC boxes and writes the source
// and the copy side by side with their boxes to a PNG (ACDTCM_AUGMENT_VISUAL names the
// file; a temporary file otherwise) for a person to look at. It also checks, on the real
// photo, that the skin around each lesion centre lands where the box map says.
func TestVisualACNE04(t *testing.T) {
	valid := filepath.Join(sharedDir(t), "datasets", "acne04-detection", "valid")
	names, err := filepath.Glob(filepath.Join(valid, "levle2_*.jpg"))
	if err != nil || len(names) == 0 {
		t.Skipf("ACNE04 photos not found under %s (../shared absent): skipping the visual check", valid)
	}
	sort.Strings(names)
	photo := names[0]
	lesions := vocBoxes(t, strings.TrimSuffix(photo, ".jpg")+".xml")
	if len(lesions) < 3 {
		t.Fatalf("%s has only %d boxes", photo, len(lesions))
	}
	src, err := imaging.Open(photo)
	if err != nil {
		t.Fatal(err)
	}
	p := DefaultParams()
	ops := Ops{Rotate: true, Angle: 12, Crop: true, CropScale: 0.7, CropAspect: 1.1, CropX: 0.3, CropY: 0.6, FlipH: true}
	out, m, w, h := ops.Apply(p, src)
	kept, dropped := TransformLesions(lesions, m, w, h, p.MinVisible)
	t.Logf("%s: %d boxes, %d kept, %d dropped; ops: %v", filepath.Base(photo), len(lesions), len(kept), dropped, ops)
	if len(kept) == 0 {
		t.Fatal("every box was dropped")
	}

	errRight, n := centreError(src, out, lesions, m)
	// Control: the same map without the flip puts the centres in the wrong places.
	noFlip := ops
	noFlip.FlipH = false
	mWrong, _, _ := noFlip.Geometry(p, src.Bounds().Dx(), src.Bounds().Dy())
	errWrong, _ := centreError(src, out, lesions, mWrong)
	t.Logf("mean |ΔRGB| around %d lesion centres: %.1f with the box map, %.1f with a wrong (unflipped) map", n, errRight, errWrong)
	if n < 3 || errRight > 12 || errWrong < 2*errRight {
		t.Errorf("lesion centres do not follow the map: error %.1f (wrong map %.1f) over %d centres", errRight, errWrong, n)
	}

	sb := src.Bounds()
	canvas := image.NewNRGBA(image.Rect(0, 0, sb.Dx()+10+w, max(sb.Dy(), h)))
	draw.Draw(canvas, canvas.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	draw.Draw(canvas, sb.Sub(sb.Min), src, sb.Min, draw.Src)
	off := image.Pt(sb.Dx()+10, 0)
	draw.Draw(canvas, image.Rect(off.X, 0, off.X+w, h), out, image.Point{}, draw.Src)
	green := color.NRGBA{0, 255, 0, 255}
	drawBoxes(canvas, image.Point{}, lesions, green)
	drawBoxes(canvas, off, kept, green)
	file := os.Getenv("ACDTCM_AUGMENT_VISUAL")
	if file == "" {
		file = filepath.Join(t.TempDir(), "augment-visual.png")
	}
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := png.Encode(f, canvas); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", file)
}
