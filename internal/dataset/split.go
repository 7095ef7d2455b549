package dataset

import (
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
)

// SplitOptions configures Split.
type SplitOptions struct {
	Names  []string  // split names, e.g. train, valid, test
	Ratios []float64 // one per name, non-negative, summing to 1
	Seed   uint64
	Only   string // when set, re-split only the records of this split; others keep theirs
}

// DefaultSplitNames returns the conventional names for n splits (2: train, valid;
// 3: train, valid, test).
func DefaultSplitNames(n int) ([]string, error) {
	switch n {
	case 1:
		return []string{"train"}, nil
	case 2:
		return []string{"train", "valid"}, nil
	case 3:
		return []string{"train", "valid", "test"}, nil
	}
	return nil, fmt.Errorf("%d ratios need explicit split names", n)
}

func (o *SplitOptions) check() error {
	if len(o.Ratios) == 0 {
		return errors.New("no split ratios")
	}
	if len(o.Names) != len(o.Ratios) {
		return fmt.Errorf("%d split names for %d ratios", len(o.Names), len(o.Ratios))
	}
	seen := map[string]bool{}
	sum := 0.0
	for i, r := range o.Ratios {
		if math.IsNaN(r) || r < 0 {
			return fmt.Errorf("ratio %d is %v; ratios must be non-negative", i+1, r)
		}
		if o.Names[i] == "" || seen[o.Names[i]] {
			return fmt.Errorf("split name %q is empty or repeated", o.Names[i])
		}
		seen[o.Names[i]] = true
		sum += r
	}
	if math.Abs(sum-1) > 1e-6 {
		return fmt.Errorf("ratios sum to %g, want 1", sum)
	}
	return nil
}

// group is the records sharing one source.
type group struct {
	key     string
	members []int
	stratum string
}

// Split assigns every record a split, stratified by grade and grouped by source_id: all
// records of one source land in the same split, and records without source_id are their
// own group. Within each grade, groups are shuffled with a generator seeded from opts.Seed
// and the grade, then each is given to the split furthest below its target share of that
// grade's records. The result depends only on the records' image IDs, sources, grades and
// the seed, not on their order. A group whose records disagree on the grade is stratified
// by its most common grade (ties to the lowest key). With opts.Only, only that split's
// records are re-split. It returns a copy of records with Split set.
func Split(records []Record, opts SplitOptions) ([]Record, error) {
	if err := opts.check(); err != nil {
		return nil, err
	}
	if opts.Only != "" {
		found := false
		for i := range records {
			s := records[i].Split
			found = found || s == opts.Only
			if s == opts.Only {
				continue
			}
			for _, n := range opts.Names {
				if n == s {
					return nil, fmt.Errorf("new split %q would merge with the existing split %q that is not being re-split; choose other names", n, s)
				}
			}
		}
		if !found {
			return nil, fmt.Errorf("no record has split %q", opts.Only)
		}
	}
	groups := map[string]*group{}
	for i := range records {
		if opts.Only != "" && records[i].Split != opts.Only {
			continue
		}
		key := "source:" + records[i].SourceID
		if records[i].SourceID == "" {
			key = "image:" + records[i].ImageID + "\x00" + records[i].Image
		}
		g := groups[key]
		if g == nil {
			g = &group{key: key}
			groups[key] = g
		}
		g.members = append(g.members, i)
	}
	strata := map[string][]*group{}
	for _, g := range groups {
		votes := map[string]int{}
		for _, i := range g.members {
			votes[GradeKey(&records[i])]++
		}
		best := ""
		for _, k := range slices.Sorted(maps.Keys(votes)) {
			if best == "" || votes[k] > votes[best] {
				best = k
			}
		}
		g.stratum = best
		strata[best] = append(strata[best], g)
	}
	out := append([]Record(nil), records...)
	for _, stratum := range slices.Sorted(maps.Keys(strata)) {
		gs := strata[stratum]
		sort.Slice(gs, func(i, j int) bool { return gs[i].key < gs[j].key })
		h := fnv.New64a()
		h.Write([]byte(stratum))
		rng := rand.New(rand.NewPCG(opts.Seed, h.Sum64()))
		rng.Shuffle(len(gs), func(i, j int) { gs[i], gs[j] = gs[j], gs[i] })
		// Larger groups first (stable, so equal sizes keep the shuffled order) makes the
		// greedy fill closer to the targets.
		sort.SliceStable(gs, func(i, j int) bool { return len(gs[i].members) > len(gs[j].members) })
		total := 0
		for _, g := range gs {
			total += len(g.members)
		}
		filled := make([]int, len(opts.Ratios))
		for _, g := range gs {
			best := -1
			bestDeficit := math.Inf(-1)
			for s, r := range opts.Ratios {
				if r == 0 {
					continue
				}
				deficit := (r*float64(total) - float64(filled[s])) / r
				if deficit > bestDeficit+1e-9 {
					best, bestDeficit = s, deficit
				}
			}
			filled[best] += len(g.members)
			for _, i := range g.members {
				out[i].Split = opts.Names[best]
			}
		}
	}
	return out, nil
}
