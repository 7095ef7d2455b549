package grader

import (
	"math"
	"testing"

	"github.com/acdtcm/acdtcm/internal/grader/heatmap"
)

func TestCropResize(t *testing.T) {
	const s = 64
	src := make([]uint8, s*s*3)
	for y := range s {
		for x := range s {
			src[(y*s+x)*3], src[(y*s+x)*3+1], src[(y*s+x)*3+2] = uint8(4*x), uint8(4*y), 100
		}
	}
	for _, tc := range []struct {
		name string
		win  cropWindow
	}{
		{"identity", cropWindow{0, 0, 1}},
		{"centre half", cropWindow{0.25, 0.25, 0.5}},
		{"corner 0.8", cropWindow{0.2, 0, 0.8}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dst := make([]uint8, len(src))
			cropResize(src, s, tc.win, dst)
			for y := range s {
				for x := range s {
					// Source pixel coordinates of the output pixel centre; the ramps are linear in them.
					sx := tc.win.X0*s + (float64(x)+0.5)*tc.win.W - 0.5
					sy := tc.win.Y0*s + (float64(y)+0.5)*tc.win.W - 0.5
					sx, sy = math.Max(0, math.Min(s-1, sx)), math.Max(0, math.Min(s-1, sy))
					o := (y*s + x) * 3
					if math.Abs(float64(dst[o])-4*sx) > 0.51 || math.Abs(float64(dst[o+1])-4*sy) > 0.51 || dst[o+2] != 100 {
						t.Fatalf("pixel (%d,%d) = %v, want about (%.1f, %.1f, 100)", x, y, dst[o:o+3], 4*sx, 4*sy)
					}
				}
			}
		})
	}
}

func TestCropBoxes(t *testing.T) {
	win := cropWindow{X0: 0.2, Y0: 0.4, W: 0.5}
	near := func(a, b heatmap.Box) bool {
		return a.Type == b.Type && math.Abs(a.X0-b.X0) < 1e-12 && math.Abs(a.X1-b.X1) < 1e-12 && math.Abs(a.Y0-b.Y0) < 1e-12 && math.Abs(a.Y1-b.Y1) < 1e-12
	}
	for _, tc := range []struct {
		name string
		in   heatmap.Box
		want []heatmap.Box
	}{
		{"inside", heatmap.Box{Type: 1, X0: 0.3, X1: 0.4, Y0: 0.5, Y1: 0.6}, []heatmap.Box{{Type: 1, X0: 0.2, X1: 0.4, Y0: 0.2, Y1: 0.4}}},
		{"centre outside", heatmap.Box{Type: 0, X0: 0.05, X1: 0.15, Y0: 0.5, Y1: 0.6}, nil},
		{"clipped at the edge", heatmap.Box{Type: 2, X0: 0.15, X1: 0.35, Y0: 0.85, Y1: 0.95}, []heatmap.Box{{Type: 2, X0: 0, X1: 0.3, Y0: 0.9, Y1: 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := cropBoxes([]heatmap.Box{tc.in}, win)
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if !near(got[i], tc.want[i]) {
					t.Errorf("got %+v, want %+v", got[i], tc.want[i])
				}
			}
		})
	}
}

func TestJitteredBatches(t *testing.T) {
	samples, px := synthetic(12, 32, 4)
	plain := tinyConfig(t.TempDir())
	plain.HoldoutFrac = 0
	jit := plain
	jit.ScaleJitter, jit.ColorJitter = 0.25, 0.1
	trP, err := NewTrainer(plain, testBackend(t), samples, px)
	if err != nil {
		t.Fatal(err)
	}
	trJ, err := NewTrainer(jit, testBackend(t), samples, px)
	if err != nil {
		t.Fatal(err)
	}
	idx := []int{0, 1, 2, 3}
	bp, bj := trP.batchTensors(idx, 5), trJ.batchTensors(idx, 5)
	imgP, imgJ := bp[0].Value().([][][][]float32), bj[0].Value().([][][][]float32)
	differ := false
	for i := range imgP {
		for y := range imgP[i] {
			for x := range imgP[i][y] {
				for c := range imgP[i][y][x] {
					differ = differ || imgP[i][y][x][c] != imgJ[i][y][x][c]
				}
			}
		}
	}
	if !differ {
		t.Error("jittered inputs equal the plain ones")
	}
	// Counts of a crop never exceed the photo's, and the density target holds about one unit
	// of mass per counted lesion (less where a Gaussian is cut at the border).
	cp, cj, dj := bp[2].Value().([][]float32), bj[2].Value().([][]float32), bj[1].Value().([][][][]float32)
	for i := range cp {
		var nP, nJ, mass float64
		for k := range cp[i] {
			nP, nJ = nP+float64(cp[i][k]), nJ+float64(cj[i][k])
		}
		for _, row := range dj[i] {
			for _, cell := range row {
				for _, v := range cell {
					mass += float64(v)
				}
			}
		}
		if nJ > nP {
			t.Errorf("photo %d: %v lesions after cropping, %v before", i, nJ, nP)
		}
		if mass > nJ+1e-3 || mass < 0.5*nJ-1e-3 {
			t.Errorf("photo %d: density mass %.3f for %v counted lesions", i, mass, nJ)
		}
	}
	if _, err := trJ.Step(); err != nil {
		t.Fatal(err)
	}
}
