package imgmatch

import (
	"context"
	"errors"
	"image"
	"math"
	"testing"

	"github.com/acdtcm/acdtcm/internal/imgmatch/imgmatchtest"
)

func mustExtract(t *testing.T, img image.Image) *Features {
	t.Helper()
	f, err := Extract(img, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestCompareAugmentedCopies(t *testing.T) {
	const size = 400
	orig := imgmatchtest.Texture(1, size, size)
	fo := mustExtract(t, orig)
	if n := len(fo.Normal.Keypoints); n < 100 || n != len(fo.Mirror.Keypoints) {
		t.Fatalf("%d normal / %d mirror keypoints, want 100+ and equal", n, len(fo.Mirror.Keypoints))
	}
	cases := []struct {
		name                          string
		flip                          bool
		deg, shear, keep, gain, noise float64
		match                         bool
	}{
		{"identical", false, 0, 0, 1, 1, 0, true},
		{"rotated 12°", false, 12, 0, 1, 1, 0, true},
		{"rotated -12° cropped 12%", false, -12, 0, 0.88, 1, 0, true},
		{"mirrored", true, 0, 0, 1, 1, 0, true},
		{"mirrored, rotated 8°, cropped 10%", true, 8, 0, 0.9, 1, 0, true},
		{"sheared 10°", false, 0, math.Tan(10 * math.Pi / 180), 1, 1, 0, true},
		{"brighter 15%", false, 0, 0, 1, 1.15, 0, true},
		{"darker, rotated, salt and pepper", false, 5, 0, 0.95, 0.85, 0.002, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fv := mustExtract(t, imgmatchtest.Warp(orig, c.flip, c.deg, c.shear, c.keep, c.gain, c.noise))
			m := Compare(fo, fv)
			if m.Inliers < DefaultMinInliers {
				t.Fatalf("%d inliers, want at least %d", m.Inliers, DefaultMinInliers)
			}
			if m.Mirrored != c.flip {
				t.Errorf("mirrored = %v, want %v", m.Mirrored, c.flip)
			}
		})
	}
	for seed := uint64(2); seed < 5; seed++ {
		other := mustExtract(t, imgmatchtest.Texture(seed, size, size))
		if m := Compare(fo, other); m.Inliers >= DefaultMinInliers {
			t.Errorf("unrelated image %d: %d inliers, want fewer than %d", seed, m.Inliers, DefaultMinInliers)
		}
	}
}

func TestFindPairs(t *testing.T) {
	const size = 320
	a, b := imgmatchtest.Texture(10, size, size), imgmatchtest.Texture(11, size, size)
	imgs := []image.Image{
		a, // 0
		imgmatchtest.Warp(a, true, 10, 0.1, 0.88, 1.1, 0.001), // 1
		b, // 2
		imgmatchtest.Warp(a, false, -10, 0, 0.88, 0.9, 0.001), // 3
		imgmatchtest.Texture(12, size, size),                  // 4: alone
		imgmatchtest.Warp(b, true, -6, 0, 0.9, 1, 0),          // 5
	}
	feats := make([]*Features, len(imgs)+1) // a trailing nil entry matches nothing
	for i, m := range imgs {
		feats[i] = mustExtract(t, m)
	}
	pairs, err := FindPairs(context.Background(), feats, GroupOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Linked pairs must connect exactly the copies of each photo (not necessarily every
	// pair of copies directly: an extreme copy may link through a milder one).
	root := []int{0, 1, 2, 3, 4, 5, 6}
	var find func(int) int
	find = func(x int) int {
		if root[x] != x {
			root[x] = find(root[x])
		}
		return root[x]
	}
	for _, p := range pairs {
		if p.A >= p.B {
			t.Errorf("pair %d-%d not ordered", p.A, p.B)
		}
		root[find(p.A)] = find(p.B)
	}
	group := []int{0, 0, 2, 0, 4, 2, 6} // the photo each image shows
	for i := range group {
		for j := i + 1; j < len(group); j++ {
			if same, want := find(i) == find(j), group[i] == group[j]; same != want {
				t.Errorf("images %d and %d: grouped = %v, want %v (pairs %+v)", i, j, same, want, pairs)
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := FindPairs(ctx, feats, GroupOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
}

func TestExtractEmpty(t *testing.T) {
	if _, err := Extract(image.NewRGBA(image.Rect(0, 0, 0, 0)), Options{}); !errors.Is(err, ErrEmpty) {
		t.Errorf("empty image: err = %v, want ErrEmpty", err)
	}
	if _, err := Extract(image.NewRGBA(image.Rect(0, 0, 30, 30)), Options{Size: 30}); !errors.Is(err, ErrEmpty) {
		t.Errorf("tiny image: err = %v, want ErrEmpty", err)
	}
}
