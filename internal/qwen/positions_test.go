package qwen

import (
	"slices"
	"testing"
)

// The worked examples of qwen2_5_vl.md §4 and §5.2.
func TestVisionLayoutExamples(t *testing.T) {
	seq := func(a, b int) []int {
		var s []int
		for i := a; i < b; i++ {
			s = append(s, i)
		}
		return s
	}
	tests := []struct {
		name        string
		grids       [][3]int
		wantIndex   []int
		wantWindows []int
		wantFull    []int
	}{
		{"grid 1x8x12, empty padded window row", [][3]int{{1, 8, 12}},
			[]int{0, 1, 2, 3, 6, 7, 8, 9, 12, 13, 14, 15, 18, 19, 20, 21, 4, 5, 10, 11, 16, 17, 22, 23},
			[]int{0, 64, 96}, []int{0, 96}},
		{"grid 1x16x16", [][3]int{{1, 16, 16}}, nil, []int{0, 64, 128, 192, 256}, []int{0, 256}},
		{"two images", [][3]int{{1, 4, 4}, {1, 8, 8}}, seq(0, 20), []int{0, 16, 80}, []int{0, 16, 80}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lay, err := NewVisionLayout(tc.grids, 14, 2, 112)
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantIndex != nil && !slices.Equal(lay.WindowIndex, tc.wantIndex) {
				t.Errorf("window index %v, want %v", lay.WindowIndex, tc.wantIndex)
			}
			if !slices.Equal(lay.WindowSegments, tc.wantWindows) || !slices.Equal(lay.FullSegments, tc.wantFull) {
				t.Errorf("segments %v / %v, want %v / %v", lay.WindowSegments, lay.FullSegments, tc.wantWindows, tc.wantFull)
			}
			if len(lay.PatchRowCol) != lay.Patches {
				t.Errorf("%d rotary positions for %d patches", len(lay.PatchRowCol), lay.Patches)
			}
		})
	}
	lay, _ := NewVisionLayout([][3]int{{1, 4, 4}}, 14, 2, 112)
	want := [][2]int{{0, 0}, {0, 1}, {1, 0}, {1, 1}, {0, 2}, {0, 3}, {1, 2}, {1, 3}, {2, 0}, {2, 1}, {3, 0}, {3, 1}}
	if !slices.Equal(lay.PatchRowCol[:12], want) {
		t.Errorf("patch positions %v", lay.PatchRowCol[:12])
	}
}

func TestRopeIndexExample(t *testing.T) {
	const img = 99
	ids := []int{1, 2, 3, 50, img, img, img, img, img, img, 51, 4, 5}
	pos, delta, err := RopeIndex(ids, img, [][3]int{{1, 4, 6}}, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := [3][]int{
		{0, 1, 2, 3, 4, 4, 4, 4, 4, 4, 7, 8, 9},
		{0, 1, 2, 3, 4, 4, 4, 5, 5, 5, 7, 8, 9},
		{0, 1, 2, 3, 4, 5, 6, 4, 5, 6, 7, 8, 9},
	}
	for a := range want {
		if !slices.Equal(pos[a], want[a]) {
			t.Errorf("axis %d: %v, want %v", a, pos[a], want[a])
		}
	}
	if delta != -3 {
		t.Errorf("rope delta %d, want -3", delta)
	}
	if _, _, err := RopeIndex(ids[:7], img, [][3]int{{1, 4, 6}}, 2); err == nil {
		t.Error("a truncated image run should fail")
	}
	if _, _, err := RopeIndex(ids, img, nil, 2); err == nil {
		t.Error("image tokens without an image should fail")
	}
}
