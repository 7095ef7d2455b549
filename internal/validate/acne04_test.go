package validate

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/disjoint"
	"github.com/acdtcm/acdtcm/internal/imgmatch"
)

var acne04 = flag.Bool("acne04", false, "run the near-duplicate sweep on ../shared/datasets/acne04-detection (slow: decodes 3256 photos)")

// sharedDir locates ../shared beside the repository root (the directory holding go.mod).
func sharedDir(t testing.TB) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test directory")
		}
		dir = parent
	}
}

// TestACNE04 validates the real ACNE04 export (imported with the acne04-voc importer into a
// temporary manifest), checks the invariants the export documents, and logs how well the
// perceptual-hash grouping and the augmented-copy check (local features) recover each
// photo's three augmented train versions at a range of thresholds.
// Run: go test ./internal/validate -run TestACNE04 -acne04 -v
func TestACNE04(t *testing.T) {
	if !*acne04 {
		t.Skip("slow real-data check; enable with -acne04")
	}
	src := filepath.Join(sharedDir(t), "datasets", "acne04-detection")
	if _, err := os.Stat(src); err != nil {
		t.Skipf("ACNE04 export not available at %s (needs the shared data directory): %v", src, err)
	}
	out := t.TempDir()
	if _, err := dataset.Import(dataset.ImportOptions{Format: dataset.FormatACNE04VOC, Src: src, OutDir: out}); err != nil {
		t.Fatalf("import: %v", err)
	}
	start := time.Now()
	v, err := run(context.Background(), out, Options{PHashThreshold: DefaultPHashThreshold})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("validated %d images in %s", v.report.ImagesChecked, time.Since(start).Round(time.Millisecond))
	r := v.report
	if r.ImagesOK != 3256 || r.Records != 3256 {
		t.Errorf("decoded %d of %d records, want all 3256", r.ImagesOK, r.Records)
	}
	if len(r.SourceLeaks) != 0 {
		t.Errorf("%d source_ids span splits; the export keeps each photo in one split", len(r.SourceLeaks))
	}
	for _, c := range r.ByCheck {
		if c.Errors > 0 && c.Check != CheckBox {
			t.Errorf("%d unexpected %s errors", c.Errors, c.Check)
		}
	}
	var ok []*entry
	for _, e := range v.entries {
		if e.err == nil {
			ok = append(ok, e)
		}
	}
	var b strings.Builder
	fmt.Fprintln(&b, "threshold  groups  images  largest  cross-split  multi-source  triples full/partial (of 991 train sources)")
	for _, th := range []int{0, 2, 4, 6, 8, 10, 12, 14, 16} {
		groups, _ := nearGroups(ok, th)
		images, largest, cross := groupStats(groups)
		sr := sourceRecovery(ok, groups)
		if sr.Sources != 991 {
			t.Errorf("%d multi-image sources, want the 991 train photos", sr.Sources)
		}
		fmt.Fprintf(&b, "%9d  %6d  %6d  %7d  %11d  %12d  %d/%d\n", th, len(groups), images, largest, cross, sr.MixedGroups, sr.Full, sr.Partial)
	}
	t.Logf("perceptual-hash grouping on ACNE04 (pHash 64 bits, mirror included, single linkage):\n%s", b.String())

	// Augmented copies (local-feature matching) at the default threshold, as reported.
	ar := r.AugmentedRecovery
	augGroups, augCross := 0, 0
	for _, g := range r.DuplicateGroups {
		if g.Kind == "augmented" {
			augGroups++
			if g.Leak {
				augCross++
			}
		}
	}
	t.Logf("augmented check (--match-inliers %d): %d groups, triples fully grouped %d / partly %d (of %d), groups with several source_ids %d, cross-split groups %d",
		r.MatchInliers, augGroups, ar.Full, ar.Partial, ar.Sources, ar.MixedGroups, augCross)
	if ar.Full < 900 {
		t.Errorf("augmented check fully groups %d of 991 train triples, want at least 900", ar.Full)
	}
	// Threshold sweep: pairs found once at the lowest threshold, then filtered.
	var feats []*imgmatch.Features
	var fe []*entry
	for _, e := range ok {
		if e.feat != nil {
			feats = append(feats, e.feat)
			fe = append(fe, e)
		}
	}
	start = time.Now()
	pairs, err := imgmatch.FindPairs(context.Background(), feats, imgmatch.GroupOptions{MinInliers: 20})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("FindPairs over %d images: %s", len(feats), time.Since(start).Round(time.Millisecond))
	b.Reset()
	fmt.Fprintln(&b, "min inliers  groups  images  largest  cross-split  multi-source  triples full/partial (of 991 train sources)")
	for _, th := range []int{20, 25, 30, 35, 40, 50, 60} {
		u := disjoint.New(len(fe))
		for _, p := range pairs {
			if p.Inliers >= th {
				u.Union(p.A, p.B)
			}
		}
		groups, _ := linkedGroups(u, fe, make([]int, len(fe)), maxInt)
		images, largest, cross := groupStats(groups)
		sr := sourceRecovery(fe, groups)
		fmt.Fprintf(&b, "%11d  %6d  %6d  %7d  %11d  %12d  %d/%d\n", th, len(groups), images, largest, cross, sr.MixedGroups, sr.Full, sr.Partial)
	}
	t.Logf("augmented-copy grouping on ACNE04 (local features, single linkage):\n%s", b.String())
}

// groupStats counts the images in groups, the largest group and the groups spanning splits.
func groupStats(groups [][]*entry) (images, largest, cross int) {
	for _, g := range groups {
		images += len(g)
		largest = max(largest, len(g))
		splits := map[string]bool{}
		for _, e := range g {
			splits[e.rec.Split] = true
		}
		if len(splits) > 1 {
			cross++
		}
	}
	return images, largest, cross
}
