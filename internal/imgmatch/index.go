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
//
// Memory: besides feats, the index holds 4 bytes for every table in which a descriptor
// lands in a bucket of useful size, plus 4 per such bucket (5.5 bytes per descriptor of
// either view on ACNE04), and 5 bytes per descriptor while a table is bucketed; correspondences are gathered a block of
// images at a time (at most corrBlock of them, 8 bytes each) and only those of candidate
// pairs are kept.
func FindPairs(ctx context.Context, feats []*Features, opts GroupOptions) ([]Pair, error) {
	opts = opts.normalized()
	if len(feats) >= maxImages {
		return nil, fmt.Errorf("imgmatch: %d images exceed the index limit of %d", len(feats), maxImages)
	}
	idx, err := buildIndex(ctx, feats)
	if err != nil {
		return nil, err
	}
	cands, ccorrs, err := idx.candidates(ctx, len(feats), opts.MinVotes, corrBlock)
	if err != nil {
		return nil, err
	}
	keep := topCandidates(cands, len(feats))
	var pairs []Pair
	var cs []corr
	for ci, c := range cands {
		if !keep[ci] {
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		a, b := int(c.a), int(c.b)
		va, vb := &feats[a].Normal, &feats[b].Normal
		if c.mir {
			vb = &feats[b].Mirror
		}
		// Keep, per keypoint of a, its proposed partner with the closest descriptor.
		cs = cs[:0]
		bestD := -1
		for _, x := range ccorrs[c.s:c.e] { // sorted by keypoint of a
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
		m := verify(va, vb, cs, uint64(a)<<32|uint64(b))
		if m.Inliers < 3 {
			continue
		}
		m = guided(va, vb, feats[b].W, feats[b].H, m.Affine)
		m.Mirrored = c.mir
		if m.Inliers >= opts.MinInliers {
			pairs = append(pairs, Pair{A: a, B: b, Votes: int(c.e - c.s), Match: m})
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

// corrBlock is the most correspondences FindPairs gathers at once (2 MB; more only when
// one image alone has more).
const corrBlock = 1 << 18

// index is the multi-index hash: for every table, the buckets holding 2..maxBucket
// descriptors. A descriptor is named by its entry id, image<<10 | view<<9 | keypoint.
type index struct {
	members []uint32 // entry ids, bucket after bucket (all tables), ascending in a bucket
	ends    []uint32 // end of each bucket in members
}

// eachEntry calls fn for every descriptor of feats (both views) with its entry id.
func eachEntry(feats []*Features, fn func(id uint32, d *Descriptor)) {
	for i, f := range feats {
		if f == nil {
			continue
		}
		for v, view := range []*View{&f.Normal, &f.Mirror} {
			for k := range min(len(view.Descriptors), maxKeypoints) {
				fn(uint32(i)<<10|uint32(v)<<9|uint32(k), &view.Descriptors[k])
			}
		}
	}
}

// buildIndex hashes every descriptor of feats (both views) into hashTables tables keyed by
// hashBits-bit substrings and keeps the buckets of useful size.
func buildIndex(ctx context.Context, feats []*Features) (*index, error) {
	n := 0
	for _, f := range feats {
		if f != nil {
			n += min(len(f.Normal.Descriptors), maxKeypoints) + min(len(f.Mirror.Descriptors), maxKeypoints)
		}
	}
	// A table is bucketed by a counting sort on the substring's top slotBits bits, then
	// a small sort of each slot by its low bits (kept beside the ids, so the slot pass
	// reads no descriptor).
	const slotBits = 16
	const lowMask = 1<<(hashBits-slotBits) - 1
	idx := &index{}
	sorted := make([]uint32, n)
	low := make([]uint8, n)
	start := make([]int32, 1<<slotBits+1)
	next := make([]int32, 1<<slotBits)
	var keys []uint64
	for t := range hashTables {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		clear(start)
		eachEntry(feats, func(_ uint32, d *Descriptor) {
			start[substring(d, t)>>(hashBits-slotBits)+1]++
		})
		for s := 1; s < len(start); s++ {
			start[s] += start[s-1]
		}
		copy(next, start)
		eachEntry(feats, func(id uint32, d *Descriptor) {
			sub := substring(d, t)
			s := sub >> (hashBits - slotBits)
			sorted[next[s]], low[next[s]] = id, uint8(sub&lowMask)
			next[s]++
		})
		for s := range 1 << slotBits {
			if start[s+1]-start[s] < 2 {
				continue
			}
			keys = keys[:0]
			for i := start[s]; i < start[s+1]; i++ {
				keys = append(keys, uint64(low[i])<<32|uint64(sorted[i]))
			}
			slices.Sort(keys)
			runs(keys, 32, func(b, e int) {
				if n := e - b; n > 1 && n <= maxBucket {
					for _, k := range keys[b:e] {
						idx.members = append(idx.members, uint32(k))
					}
					idx.ends = append(idx.ends, uint32(len(idx.members)))
				}
			})
		}
	}
	return idx, nil
}

// runs calls fn(s, e) for every run keys[s:e] of equal keys>>shift (keys sorted).
func runs(keys []uint64, shift uint, fn func(s, e int)) {
	for s := 0; s < len(keys); {
		e := s + 1
		for e < len(keys) && keys[e]>>shift == keys[s]>>shift {
			e++
		}
		fn(s, e)
		s = e
	}
}

// each calls fn for every pair of entries sharing a bucket whose first image (the lower
// one; entries are ascending in a bucket) is in [lo, hi), with the two images distinct.
func (idx *index) each(lo, hi uint32, fn func(x, y uint32)) {
	s := uint32(0)
	for _, e := range idx.ends {
		bucket := idx.members[s:e]
		s = e
		if bucket[0]>>10 >= hi || bucket[len(bucket)-1]>>10 < lo {
			continue
		}
		for p, x := range bucket {
			a := x >> 10
			if a < lo {
				continue
			}
			if a >= hi {
				break
			}
			for _, y := range bucket[p+1:] {
				if y>>10 != a {
					fn(x, y)
				}
			}
		}
	}
}

// candidate is an image pair (a < b, b's view mirrored or not) with at least MinVotes
// distinct correspondences, ccorrs[s:e].
type candidate struct {
	a, b int32
	mir  bool
	s, e int32
}

// candidates gathers the distinct correspondences of every image pair, a block of first
// images (with at most block correspondences, unless one image has more) at a time, and returns the pairs with at least minVotes of them, ordered by
// (a, b, mirrored), with their correspondences. A correspondence is packed as
// a<<42 | b<<20 | mirrored<<18 | ka<<9 | kb, so sorting groups it by pair.
func (idx *index) candidates(ctx context.Context, n, minVotes, block int) ([]candidate, []uint64, error) {
	perImage := make([]int, n)
	idx.each(0, uint32(n), func(x, _ uint32) { perImage[x>>10]++ })
	var cands []candidate
	var ccorrs, corrs []uint64
	for lo := 0; lo < n; {
		if err := ctx.Err(); err != nil {
			return nil, nil, err
		}
		hi, total := lo+1, perImage[lo]
		for hi < n && total+perImage[hi] <= block {
			total += perImage[hi]
			hi++
		}
		if cap(corrs) < total {
			corrs = make([]uint64, 0, total)
		}
		corrs = corrs[:0]
		idx.each(uint32(lo), uint32(hi), func(x, y uint32) {
			mir := uint64((x>>9)&1 ^ (y>>9)&1)
			corrs = append(corrs, uint64(x>>10)<<42|uint64(y>>10)<<20|mir<<18|uint64(x&511)<<9|uint64(y&511))
		})
		slices.Sort(corrs)
		corrs = slices.Compact(corrs)
		runs(corrs, 18, func(s, e int) {
			if e-s >= minVotes {
				c := corrs[s]
				cands = append(cands, candidate{a: int32(c >> 42), b: int32(c >> 20 & (1<<22 - 1)), mir: c>>18&1 == 1,
					s: int32(len(ccorrs)), e: int32(len(ccorrs) + e - s)})
				ccorrs = append(ccorrs, corrs[s:e]...)
			}
		})
		lo = hi
	}
	return cands, ccorrs, nil
}

// topCandidates marks the candidates to verify: each image's topPartners best-voted
// ones (ties: the earlier candidate).
func topCandidates(cands []candidate, n int) []bool {
	start := make([]int32, n+1)
	for _, c := range cands {
		start[c.a+1]++
		start[c.b+1]++
	}
	for i := 1; i <= n; i++ {
		start[i] += start[i-1]
	}
	byImage := make([]int32, start[n])
	next := slices.Clone(start[:n])
	for ci, c := range cands {
		for _, i := range []int32{c.a, c.b} {
			byImage[next[i]] = int32(ci)
			next[i]++
		}
	}
	keep := make([]bool, len(cands))
	for i := range n {
		list := byImage[start[i]:start[i+1]]
		slices.SortFunc(list, func(x, y int32) int {
			vx, vy := cands[x].e-cands[x].s, cands[y].e-cands[y].s
			if vx != vy {
				return int(vy - vx)
			}
			return int(x - y)
		})
		for _, ci := range list[:min(len(list), topPartners)] {
			keep[ci] = true
		}
	}
	return keep
}
