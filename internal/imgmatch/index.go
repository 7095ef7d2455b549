package imgmatch

import (
	"context"
	"fmt"
	"slices"
)

// GroupOptions tunes FindPairs. The zero value means the defaults.
type GroupOptions struct {
	// MinInliers is the fewest keypoints that must agree with the fitted affine map
	// (within 2 working-image pixels and 16 descriptor bits) for a pair to match
	// (default DefaultMinInliers).
	MinInliers int
	// MinVotes is the fewest distinct shared-descriptor correspondences a pair needs
	// before it is verified (default 4).
	MinVotes int
}

// DefaultMinInliers is the default GroupOptions.MinInliers, chosen on ACNE04 (see the
// internal/validate README).
const DefaultMinInliers = 30

const (
	defaultMinVotes = 4
	hashBits        = 24 // bits of a descriptor substring used as one hash key
	hashTables      = 10 // substrings used (hashTables × hashBits ≤ 256)
	maxBucket       = 12 // buckets holding more descriptors are too generic to vote
	topPartners     = 5  // candidate partners verified per image, best voted first
	maxImages       = 1 << 22
	maxKeypoints    = 1 << 9
)

func (o GroupOptions) normalized() GroupOptions {
	if o.MinInliers <= 0 {
		o.MinInliers = DefaultMinInliers
	}
	if o.MinVotes <= 0 {
		o.MinVotes = defaultMinVotes
	}
	return o
}

// Pair is a verified match between images A < B (indices into FindPairs' input).
type Pair struct {
	A, B  int
	Votes int // distinct correspondences proposed by the index
	Match
}

// substring returns bits [t·hashBits, (t+1)·hashBits) of d.
func substring(d *Descriptor, t int) uint64 {
	lo := t * hashBits
	w, off := lo/64, lo%64
	v := d[w] >> off
	if off+hashBits > 64 && w+1 < len(d) {
		v |= d[w+1] << (64 - off)
	}
	return v & (1<<hashBits - 1)
}

// FindPairs returns the verified matching pairs among feats, ordered by (A, B). A nil
// entry is an image without features and matches nothing. Candidate pairs come from a
// multi-index hash of descriptor substrings: two descriptors that agree exactly on one of
// hashTables substrings propose a correspondence between their keypoints (either view, so
// mirrored copies are found), and pairs with MinVotes distinct correspondences are checked
// by fitting an affine map with RANSAC.
func FindPairs(ctx context.Context, feats []*Features, opts GroupOptions) ([]Pair, error) {
	opts = opts.normalized()
	if len(feats) >= maxImages {
		return nil, fmt.Errorf("imgmatch: %d images exceed the index limit of %d", len(feats), maxImages)
	}
	// Global descriptor list: entry = image<<10 | view<<9 | keypoint.
	var ids []uint32
	var descs []*Descriptor
	for i, f := range feats {
		if f == nil {
			continue
		}
		for v, view := range []*View{&f.Normal, &f.Mirror} {
			for k := range view.Descriptors {
				if k >= maxKeypoints {
					break
				}
				ids = append(ids, uint32(i)<<10|uint32(v)<<9|uint32(k))
				descs = append(descs, &view.Descriptors[k])
			}
		}
	}
	// Correspondence = a<<42 | b<<20 | mirrored<<18 | ka<<9 | kb (a < b), packed for sorting.
	var corrs []uint64
	keys := make([]uint64, len(ids))
	for t := range hashTables {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		for i := range ids {
			keys[i] = substring(descs[i], t)<<32 | uint64(i)
		}
		slices.Sort(keys)
		for s := 0; s < len(keys); {
			e := s + 1
			for e < len(keys) && keys[e]>>32 == keys[s]>>32 {
				e++
			}
			if n := e - s; n > 1 && n <= maxBucket {
				for p := s; p < e; p++ {
					ip := ids[uint32(keys[p])]
					for q := p + 1; q < e; q++ {
						iq := ids[uint32(keys[q])]
						a, b := ip>>10, iq>>10
						if a == b {
							continue
						}
						x, y := ip, iq
						if a > b {
							x, y, a, b = iq, ip, b, a
						}
						mir := uint64((x>>9)&1 ^ (y>>9)&1)
						corrs = append(corrs, uint64(a)<<42|uint64(b)<<20|mir<<18|uint64(x&511)<<9|uint64(y&511))
					}
				}
			}
			s = e
		}
	}
	slices.Sort(corrs)
	corrs = slices.Compact(corrs)
	// Votes per (a, b, orientation); each image keeps its topPartners best-voted partners.
	type cand struct {
		a, b int
		mir  bool
		s, e int // corrs[s:e]
	}
	var cands []cand
	for s := 0; s < len(corrs); {
		e := s + 1
		for e < len(corrs) && corrs[e]>>18 == corrs[s]>>18 {
			e++
		}
		if e-s >= opts.MinVotes {
			cands = append(cands, cand{a: int(corrs[s] >> 42), b: int(corrs[s] >> 20 & (1<<22 - 1)), mir: corrs[s]>>18&1 == 1, s: s, e: e})
		}
		s = e
	}
	byImage := make([][]int32, len(feats))
	for ci, c := range cands {
		byImage[c.a] = append(byImage[c.a], int32(ci))
		byImage[c.b] = append(byImage[c.b], int32(ci))
	}
	keep := make([]bool, len(cands))
	for _, list := range byImage {
		slices.SortFunc(list, func(x, y int32) int {
			vx, vy := cands[x].e-cands[x].s, cands[y].e-cands[y].s
			if vx != vy {
				return vy - vx
			}
			return int(x - y)
		})
		for _, ci := range list[:min(len(list), topPartners)] {
			keep[ci] = true
		}
	}
	var pairs []Pair
	var cs []corr
	for ci, c := range cands {
		if !keep[ci] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		va, vb := &feats[c.a].Normal, &feats[c.b].Normal
		if c.mir {
			vb = &feats[c.b].Mirror
		}
		// Keep, per keypoint of a, its proposed partner with the closest descriptor.
		cs = cs[:0]
		bestD := -1
		for _, x := range corrs[c.s:c.e] { // sorted by keypoint of a
			k := corr{int32(x >> 9 & 511), int32(x & 511)}
			d := va.Descriptors[k.a].Distance(&vb.Descriptors[k.b])
			if d > maxMatchDist {
				continue
			}
			if n := len(cs); n > 0 && cs[n-1].a == k.a {
				if d < bestD {
					cs[n-1], bestD = k, d
				}
				continue
			}
			cs, bestD = append(cs, k), d
		}
		m := verify(va, vb, cs, uint64(c.a)<<32|uint64(c.b))
		if m.Inliers < 3 {
			continue
		}
		m = guided(va, vb, feats[c.b].W, feats[c.b].H, m.Affine)
		m.Mirrored = c.mir
		if m.Inliers >= opts.MinInliers {
			pairs = append(pairs, Pair{A: c.a, B: c.b, Votes: c.e - c.s, Match: m})
		}
	}
	// A pair can be verified in both orientations; keep the better one.
	out := pairs[:0]
	for _, p := range pairs {
		if n := len(out); n > 0 && out[n-1].A == p.A && out[n-1].B == p.B {
			if p.Inliers > out[n-1].Inliers {
				out[n-1] = p
			}
			continue
		}
		out = append(out, p)
	}
	return out, nil
}
