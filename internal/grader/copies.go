package grader

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"runtime"
	"slices"

	"github.com/acdtcm/acdtcm/internal/disjoint"
	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/imageio"
	"github.com/acdtcm/acdtcm/internal/imgmatch"
	"github.com/acdtcm/acdtcm/internal/parallel"
)

// CopyLinks maps source ids to the group of source ids whose photos are copies of one
// another (found by local-feature matching, as `acdtcm dataset validate`'s augmented check
// does): ACNE04's Roboflow export files a few photos under two source ids, so a split by
// source id alone can put one photo on both sides.
type CopyLinks struct {
	group map[string]string // source id -> the smallest source id of its group (linked sources only)
}

// Group returns the key of the group that source belongs to: the smallest linked source id,
// or source itself when no other source is linked to it.
func (l CopyLinks) Group(source string) string {
	if g, ok := l.group[source]; ok {
		return g
	}
	return source
}

// LinkedSources reports how many source ids share a group with another one.
func (l CopyLinks) LinkedSources() int { return len(l.group) }

// CopyLinksFile is the name of the file in which `acdtcm train --link-copies` records the
// links it found (WriteCopyLinks; `acdtcm dataset link-copies` writes the same file without
// training), so that another run (e.g. on resized copies of the same photos, where fewer
// copies match) can apply the same ones (`--copy-links FILE`).
const CopyLinksFile = "copy-links.json"

// copyLinksJSON is the on-disk form of CopyLinks.
type copyLinksJSON struct {
	Description   string     `json:"description"`
	LinkedSources int        `json:"linked_sources"`
	Groups        [][]string `json:"groups"`
}

// Groups returns the groups of linked source ids, each sorted, in order of their first id.
func (l CopyLinks) Groups() [][]string {
	bySmallest := map[string][]string{}
	for src, root := range l.group {
		bySmallest[root] = append(bySmallest[root], src)
	}
	groups := make([][]string, 0, len(bySmallest))
	for _, g := range bySmallest {
		slices.Sort(g)
		groups = append(groups, g)
	}
	slices.SortFunc(groups, func(a, b []string) int { return cmp.Compare(a[0], b[0]) })
	return groups
}

// NewCopyLinks builds links from groups of source ids that are copies of one another (as
// Groups returns them); the smallest id names each group. A group of fewer than two ids, an empty id or an id in two groups is
// an error.
func NewCopyLinks(groups [][]string) (CopyLinks, error) {
	links := CopyLinks{group: map[string]string{}}
	for i, g := range groups {
		if len(g) < 2 {
			return CopyLinks{}, fmt.Errorf("copy links: group %d has %d source ids, want at least 2", i+1, len(g))
		}
		root := slices.Min(g)
		for _, src := range g {
			if src == "" {
				return CopyLinks{}, fmt.Errorf("copy links: group %d has an empty source id", i+1)
			}
			if _, dup := links.group[src]; dup {
				return CopyLinks{}, fmt.Errorf("copy links: source %q is in two groups", src)
			}
			links.group[src] = root
		}
	}
	return links, nil
}

// WriteCopyLinks writes links to path as JSON, atomically.
func WriteCopyLinks(path string, links CopyLinks) error {
	data, err := json.MarshalIndent(copyLinksJSON{
		Description:   "ACNE04 source ids whose photos are copies of one another (found by acdtcm dataset link-copies or train --link-copies); apply with acdtcm train --copy-links",
		LinkedSources: links.LinkedSources(),
		Groups:        links.Groups(),
	}, "", " ")
	if err != nil {
		return fmt.Errorf("copy links %s: %w", path, err)
	}
	return fsutil.WriteFileAtomic(path, append(data, '\n'), 0o644)
}

// ReadCopyLinks reads links written by WriteCopyLinks.
func ReadCopyLinks(path string) (CopyLinks, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return CopyLinks{}, fmt.Errorf("copy links: %w", err)
	}
	var f copyLinksJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return CopyLinks{}, fmt.Errorf("copy links %s: %w", path, err)
	}
	links, err := NewCopyLinks(f.Groups)
	if err != nil {
		return CopyLinks{}, fmt.Errorf("%s: %w", path, err)
	}
	return links, nil
}

// LinkOptions tunes LinkCopies.
type LinkOptions struct {
	Workers    int // photos decoded and described in parallel (0: GOMAXPROCS)
	MinInliers int // fewest agreeing keypoints for two photos to match (0: imgmatch's default)
	// Progress, when set, is called from one goroutine after each photo is described, with
	// the number done and the total.
	Progress func(done, total int)
}

// LinkCopies decodes every sample's photo, describes it with imgmatch features and links the
// sources of matching photos. Photos that cannot be read or are too small for features take
// no part. Versions of one source are expected to match and change nothing.
func LinkCopies(ctx context.Context, samples []Sample, opts LinkOptions) (CopyLinks, error) {
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	feats := make([]*imgmatch.Features, len(samples))
	err := parallel.Each(ctx, len(samples), workers, func(i int) {
		if img, _, err := imageio.DecodeFile(samples[i].Path, imageio.DefaultLimits()); err == nil { // LoadPixels reports unreadable photos
			feats[i], _ = imgmatch.Extract(img, imgmatch.Options{})
		}
	}, opts.Progress)
	if err != nil {
		return CopyLinks{}, err
	}
	pairs, err := imgmatch.FindPairs(ctx, feats, imgmatch.GroupOptions{MinInliers: opts.MinInliers}) // nil features match nothing
	if err != nil {
		return CopyLinks{}, fmt.Errorf("linking copies: %w", err)
	}
	// Versions of one source are one set from the start; matching pairs merge sets.
	sets := disjoint.New(len(samples))
	firstOf := map[string]int{}
	for i, s := range samples {
		if j, ok := firstOf[s.Source]; ok {
			sets.Union(i, j)
		} else {
			firstOf[s.Source] = i
		}
	}
	for _, p := range pairs {
		sets.Union(p.A, p.B)
	}
	sourcesOf := map[int][]string{}
	for src, i := range firstOf {
		r := sets.Find(i)
		sourcesOf[r] = append(sourcesOf[r], src)
	}
	var groups [][]string
	for _, srcs := range sourcesOf {
		if len(srcs) > 1 {
			groups = append(groups, srcs)
		}
	}
	return NewCopyLinks(groups)
}

// SeparateCopies applies links to a training run's samples: train photos whose group holds
// a photo of the eval samples (a linked source, or the same source id) are dropped, being
// copies of photos the run will be scored on, and the others take their group as Source, so that SplitBySource keeps copies on one
// side of the holdout. It returns the kept train samples and the number dropped.
func SeparateCopies(train, eval []Sample, links CopyLinks) ([]Sample, int) {
	evalGroups := map[string]bool{}
	for _, s := range eval {
		evalGroups[links.Group(s.Source)] = true
	}
	var kept []Sample
	for _, s := range train {
		g := links.Group(s.Source)
		if evalGroups[g] {
			continue
		}
		s.Source = g
		kept = append(kept, s)
	}
	return kept, len(train) - len(kept)
}
