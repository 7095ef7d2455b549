package grader

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/acdtcm/acdtcm/internal/disjoint"
	"github.com/acdtcm/acdtcm/internal/imageio"
	"github.com/acdtcm/acdtcm/internal/imgmatch"
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

// LinkCopies decodes every sample's photo, describes it with imgmatch features and links the
// sources of matching photos (at least minInliers agreeing keypoints; 0: the default). Photos
// that cannot be read or are too small for features take no part. Versions of one source
// are expected to match and change nothing.
func LinkCopies(ctx context.Context, samples []Sample, workers, minInliers int) (CopyLinks, error) {
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	feats := make([]*imgmatch.Features, len(samples))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				img, _, err := imageio.DecodeFile(samples[i].Path, imageio.DefaultLimits())
				if err != nil {
					continue // LoadPixels reports unreadable photos
				}
				feats[i], _ = imgmatch.Extract(img, imgmatch.Options{})
			}
		}()
	}
	for i := range samples {
		if ctx.Err() != nil {
			break
		}
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return CopyLinks{}, err
	}
	pairs, err := imgmatch.FindPairs(ctx, feats, imgmatch.GroupOptions{MinInliers: minInliers}) // nil features match nothing
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
	links := CopyLinks{group: map[string]string{}}
	for _, srcs := range sourcesOf {
		if len(srcs) < 2 {
			continue
		}
		root := slices.Min(srcs) // the smallest id names the group
		for _, src := range srcs {
			links.group[src] = root
		}
	}
	return links, nil
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
