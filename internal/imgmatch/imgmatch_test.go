package imgmatch

import (
	"context"
	"errors"
	"image"
	"math"
	"reflect"
	"slices"
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

// referenceCandidates is the candidate search without blocks or a stored index: every
// table's correspondences at once, sorted and deduplicated together.
func referenceCandidates(feats []*Features, minVotes int) ([]candidate, []uint64) {
	type ent struct {
		id uint32
		d  *Descriptor
	}
	var ents []ent
	eachEntry(feats, func(id uint32, d *Descriptor) { ents = append(ents, ent{id, d}) })
	var corrs []uint64
	for t := range hashTables {
		keys := make([]uint64, len(ents))
		for i, e := range ents {
			keys[i] = substring(e.d, t)<<32 | uint64(i)
		}
		slices.Sort(keys)
		runs(keys, 32, func(s, e int) {
			if n := e - s; n > 1 && n <= maxBucket {
				for p := s; p < e; p++ {
					for q := p + 1; q < e; q++ {
						x, y := ents[uint32(keys[p])].id, ents[uint32(keys[q])].id
						if x>>10 == y>>10 {
							continue
						}
						if x > y {
							x, y = y, x
						}
						mir := uint64((x>>9)&1 ^ (y>>9)&1)
						corrs = append(corrs, uint64(x>>10)<<42|uint64(y>>10)<<20|mir<<18|uint64(x&511)<<9|uint64(y&511))
					}
				}
			}
		})
	}
	slices.Sort(corrs)
	corrs = slices.Compact(corrs)
	var cands []candidate
	var kept []uint64
	runs(corrs, 18, func(s, e int) {
		if e-s >= minVotes {
			c := corrs[s]
			cands = append(cands, candidate{int32(c >> 42), int32(c >> 20 & (1<<22 - 1)), c>>18&1 == 1, int32(len(kept)), int32(len(kept) + e - s)})
			kept = append(kept, corrs[s:e]...)
		}
	})
	return cands, kept
}

// TestCandidatesBlocks checks that gathering correspondences a block of images at a time,
// whatever the block size, proposes exactly the candidates of an all-at-once search.
func TestCandidatesBlocks(t *testing.T) {
	const size = 320
	a := imgmatchtest.Texture(20, size, size)
	var feats []*Features
	for i := range 6 {
		feats = append(feats, mustExtract(t, imgmatchtest.Warp(a, i%2 == 1, float64(3*i-8), 0, 0.9, 1, 0.001)))
		if i == 2 {
			feats = append(feats, nil, mustExtract(t, imgmatchtest.Texture(21, size, size)))
		}
	}
	wantC, wantCorrs := referenceCandidates(feats, defaultMinVotes)
	if len(wantC) < 10 {
		t.Fatalf("only %d reference candidates; the test needs more", len(wantC))
	}
	idx, err := buildIndex(context.Background(), feats)
	if err != nil {
		t.Fatal(err)
	}
	for _, block := range []int{1, 1000, 5000, corrBlock} {
		c, corrs, err := idx.candidates(context.Background(), len(feats), defaultMinVotes, block)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(c, wantC) || !slices.Equal(corrs, wantCorrs) {
			t.Errorf("block %d: %d candidates / %d correspondences, want %d / %d (the same)", block, len(c), len(corrs), len(wantC), len(wantCorrs))
		}
	}
}

// TestExtractPooled checks that the pooled working buffers leave no trace: an image's
// features are the same after other images of other sizes went through the pool.
func TestExtractPooled(t *testing.T) {
	img := imgmatchtest.Texture(30, 400, 300)
	first := mustExtract(t, img)
	mustExtract(t, imgmatchtest.Texture(31, 200, 500))
	mustExtract(t, imgmatchtest.Texture(32, 600, 600))
	again := mustExtract(t, img)
	if !reflect.DeepEqual(first, again) {
		t.Error("features differ after the pool served other images")
	}
	if got, want := first.Bytes(), len(first.Normal.Keypoints)*FeatureBytes; got != want {
		t.Errorf("Bytes() = %d, want %d (exactly sized)", got, want)
	}
}
