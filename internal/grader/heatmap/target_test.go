package heatmap

import (
	"math"
	"testing"
)

func channelSum(m []float32, grid, types, t int) float64 {
	var s float64
	for i := 0; i < grid*grid; i++ {
		s += float64(m[i*types+t])
	}
	return s
}

func argmaxCell(m []float32, grid, types, t int) (int, int) {
	best, bi := float32(-1), 0
	for i := 0; i < grid*grid; i++ {
		if v := m[i*types+t]; v > best {
			best, bi = v, i
		}
	}
	return bi / grid, bi % grid
}

func TestTarget(t *testing.T) {
	tests := []struct {
		name      string
		boxes     []Box
		grid      int
		sigma     float64
		wantSums  []float64 // per type
		wantPeaks map[int][2]int
	}{
		{"empty", nil, 8, 1, []float64{0, 0, 0, 0}, nil},
		{"one box in cell (5,5)", []Box{{Type: 1, X0: 0.5, Y0: 0.5, X1: 0.6, Y1: 0.6}}, 10, 1, []float64{0, 1, 0, 0}, map[int][2]int{1: {5, 5}}},
		{"corner box keeps mass 1", []Box{{Type: 0, X0: 0, Y0: 0, X1: 0.02, Y1: 0.02}}, 16, 1.5, []float64{1, 0, 0, 0}, map[int][2]int{0: {0, 0}}},
		{"off-centre row and column", []Box{{Type: 3, X0: 0.76, Y0: 0.16, X1: 0.78, Y1: 0.18}}, 20, 1, []float64{0, 0, 0, 1}, map[int][2]int{3: {3, 15}}},
		{"two types two boxes", []Box{{Type: 2, X0: 0.1, Y0: 0.1, X1: 0.2, Y1: 0.2}, {Type: 2, X0: 0.6, Y0: 0.6, X1: 0.7, Y1: 0.7}, {Type: 0, X0: 0.4, Y0: 0.4, X1: 0.5, Y1: 0.5}}, 16, 1, []float64{1, 0, 2, 0}, nil},
		{"centre outside and bad type ignored", []Box{{Type: 0, X0: 1.2, Y0: 0.5, X1: 1.4, Y1: 0.6}, {Type: 7, X0: 0.5, Y0: 0.5, X1: 0.6, Y1: 0.6}}, 8, 1, []float64{0, 0, 0, 0}, nil},
		{"tiny sigma puts mass in one cell", []Box{{Type: 1, X0: 0.3, Y0: 0.3, X1: 0.4, Y1: 0.4}}, 10, 0.1, []float64{0, 1, 0, 0}, map[int][2]int{1: {3, 3}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := Target(tc.boxes, tc.grid, 4, tc.sigma)
			if len(m) != tc.grid*tc.grid*4 {
				t.Fatalf("len %d, want %d", len(m), tc.grid*tc.grid*4)
			}
			for ty, want := range tc.wantSums {
				if got := channelSum(m, tc.grid, 4, ty); math.Abs(got-want) > 1e-5 {
					t.Errorf("type %d: sum %v, want %v", ty, got, want)
				}
			}
			for ty, cell := range tc.wantPeaks {
				if r, c := argmaxCell(m, tc.grid, 4, ty); r != cell[0] || c != cell[1] {
					t.Errorf("type %d: peak at (%d,%d), want (%d,%d)", ty, r, c, cell[0], cell[1])
				}
			}
			for i, v := range m {
				if v < 0 || math.IsNaN(float64(v)) {
					t.Fatalf("cell %d = %v", i, v)
				}
			}
		})
	}
}

func TestPeaksRecoverTargets(t *testing.T) {
	boxes := []Box{
		{Type: 0, X0: 0.10, Y0: 0.10, X1: 0.14, Y1: 0.14},
		{Type: 0, X0: 0.70, Y0: 0.30, X1: 0.74, Y1: 0.34},
		{Type: 2, X0: 0.40, Y0: 0.80, X1: 0.44, Y1: 0.84},
	}
	const grid = 32
	m := Target(boxes, grid, 4, 1)
	peaks := Peaks(m, grid, 4, 0.3)
	if len(peaks) != 3 {
		t.Fatalf("got %d peaks %+v, want 3", len(peaks), peaks)
	}
	for _, b := range boxes {
		cr, cc := int((b.Y0+b.Y1)/2*grid), int((b.X0+b.X1)/2*grid)
		found := false
		for _, p := range peaks {
			if p.Type == b.Type && abs(p.Row-cr) <= 1 && abs(p.Col-cc) <= 1 {
				found = true
			}
		}
		if !found {
			t.Errorf("no peak of type %d near (%d,%d): %+v", b.Type, cr, cc, peaks)
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
