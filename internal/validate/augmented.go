package validate

import (
	"context"
	"fmt"

	"github.com/acdtcm/acdtcm/internal/disjoint"
	"github.com/acdtcm/acdtcm/internal/imgmatch"
)

// checkAugmented groups images that local-feature matching links as copies of one photo
// (crop, rotation, shear, mirror, brightness, noise: the usual training augmentations),
// which the perceptual hash misses. Groups of byte-identical images only are left to the
// exact check.
func (v *validator) checkAugmented(ctx context.Context) error {
	if v.report.MatchInliers < 0 {
		return nil
	}
	var ok []*entry
	var feats []*imgmatch.Features
	for _, e := range v.entries {
		if e.checked && e.err == nil && e.feat != nil {
			ok = append(ok, e)
			feats = append(feats, e.feat)
		}
	}
	pairs, err := imgmatch.FindPairs(ctx, feats, imgmatch.GroupOptions{MinInliers: v.report.MatchInliers})
	if err != nil {
		return fmt.Errorf("augmented copies: %w", err)
	}
	u := disjoint.New(len(ok))
	weakest := make([]int, len(ok)) // fewest inliers of a pair linking the image (0: none)
	for _, p := range pairs {
		u.Union(p.A, p.B)
		for _, i := range []int{p.A, p.B} {
			if weakest[i] == 0 || p.Inliers < weakest[i] {
				weakest[i] = p.Inliers
			}
		}
	}
	// Fold the images' weakest links; 0 (no link) never wins.
	groups, minIn := linkedGroups(u, ok, weakest, func(a, b int) int {
		if a == 0 || (b != 0 && b < a) {
			return b
		}
		return a
	})
	for gi, g := range groups {
		distinct := map[[32]byte]bool{}
		for _, e := range g {
			distinct[e.sum] = true
		}
		if len(distinct) > 1 {
			v.addGroup("augmented", g, minIn[gi])
		}
	}
	v.report.AugmentedRecovery = sourceRecovery(ok, groups)
	return nil
}
