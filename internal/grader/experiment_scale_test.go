//go:build experiments

package grader

// An opt-in experiment (build tag "experiments"), not part of the test suite: it runs the
// built-in (or a given) grader checkpoint at several input sizes, with and without the mirror
// image, on every ACNE04 train and valid photo, and writes per photo as CSV the predicted
// lesion counts, the grade head's probabilities and summaries of the density map
// (densityFeatures). scripts/grader-experiments/scale_tta.py then fits the count calibration
// on the training photos and scores multi-scale test-time augmentation on the holdout;
// calibration_features.py scores calibrations on the other columns. See BENCHMARKS.md
// ("tried and not adopted").
//
//	go test -tags noxla,experiments ./internal/grader -run TestScaleExperiment -v \
//	    -exp-out /tmp/scale.csv [-exp-ckpt runs/grader/best.ckpt] [-exp-data DIR] [-exp-cache DIR] \
//	    [-exp-sizes 224,256,288,320]

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/grader/weights"
)

var (
	expOut   = flag.String("exp-out", "", "CSV of per-photo predicted counts (the experiment runs only when set)")
	expCkpt  = flag.String("exp-ckpt", "", "grader checkpoint (default: the built-in weights)")
	expData  = flag.String("exp-data", "../../../shared/datasets/acne04-detection", "the ACNE04 VOC export")
	expCache = flag.String("exp-cache", "", "resized-pixel cache directory")
	expSizes = flag.String("exp-sizes", "224,256,288,320", "comma-separated input sizes to run")
)

func TestScaleExperiment(t *testing.T) {
	if *expOut == "" {
		t.Skip("set -exp-out to run the experiment")
	}
	var sizes []int
	for _, f := range strings.Split(*expSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			t.Fatalf("-exp-sizes: bad size %q", f)
		}
		sizes = append(sizes, n)
	}
	b, all := experimentInputs(t)
	var trainS []Sample
	for _, s := range all {
		if s.Split == "train" {
			trainS = append(trainS, s)
		}
	}
	_, hold := SplitBySource(trainS, 0.1, 1) // the holdout of configs/train-grader.yaml
	isHold := map[string]bool{}
	for _, s := range hold {
		isHold[s.Source] = true
	}
	f, err := os.Create(*expOut)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fmt.Fprintln(f, "size,flip,split,hold,source,id,grade,gt,c0,c1,c2,c3,p0,p1,p2,p3,"+densityFeatureHeader)
	for _, size := range sizes {
		ck, err := ParseCheckpoint(b)
		if err != nil {
			t.Fatal(err)
		}
		ck.Header.Model.InputSize = size // fully convolutional: counts are density sums
		n, err := newNativeNet(ck)
		if err != nil {
			t.Fatal(err)
		}
		pix, _, err := LoadPixels(all, size, *expCache, 0)
		if err != nil {
			t.Fatal(err)
		}
		g2 := n.head.outH * n.head.outW * NumTypes
		for _, flip := range []bool{false, true} {
			for i0 := 0; i0 < len(all); i0 += 16 {
				i1 := min(len(all), i0+16)
				dens := make([]float32, (i1-i0)*g2)
				counts := make([]float32, (i1-i0)*NumTypes)
				probs := make([]float32, (i1-i0)*NumGrades)
				if err := n.forward(pix.Data[i0:i1], flip, dens, counts, probs); err != nil {
					t.Fatal(err)
				}
				for j := range i1 - i0 {
					s := all[i0+j]
					c := counts[j*NumTypes : (j+1)*NumTypes]
					p := probs[j*NumGrades : (j+1)*NumGrades]
					fmt.Fprintf(f, "%d,%v,%s,%v,%s,%s,%d,%d,%g,%g,%g,%g,%g,%g,%g,%g,%s\n", size, flip, s.Split, isHold[s.Source], s.Source, s.ID, s.Grade, len(s.Boxes),
						c[0], c[1], c[2], c[3], p[0], p[1], p[2], p[3], densityFeatures(dens[j*g2:(j+1)*g2], n.head.outH, n.head.outW))
				}
			}
		}
		t.Logf("size %d done", size)
	}
	t.Logf("wrote %s", filepath.Clean(*expOut))
}

// experimentInputs returns the experiments' checkpoint bytes (-exp-ckpt, or the built-in
// weights) and every photo of the ACNE04 export at -exp-data; it skips the test when the
// export is absent.
func experimentInputs(t *testing.T) ([]byte, []Sample) {
	t.Helper()
	b := weights.Grader
	if *expCkpt != "" {
		var err error
		if b, err = os.ReadFile(*expCkpt); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(*expData); errors.Is(err, os.ErrNotExist) {
		t.Skipf("ACNE04 export not found at %s", *expData)
	}
	all, _, err := LoadSamples(*expData)
	if err != nil {
		t.Fatal(err)
	}
	return b, all
}

// Thresholds of densityFeatures, in predicted lesions per density-map cell.
var (
	massThresholds = []float64{0.02, 0.05, 0.1, 0.2}
	peakThresholds = []float64{0.05, 0.1, 0.2, 0.3}
)

// densityFeatureHeader names densityFeatures' columns: m<t> is the density mass in cells
// above t, k<t> the number of local maxima (3x3) above t, max the largest cell.
var densityFeatureHeader = func() string {
	var cols []string
	for _, t := range massThresholds {
		cols = append(cols, fmt.Sprintf("m%g", t))
	}
	for _, t := range peakThresholds {
		cols = append(cols, fmt.Sprintf("k%g", t))
	}
	return strings.Join(append(cols, "max"), ",")
}()

// densityFeatures summarises one photo's density map (h x w cells x NumTypes, summed over
// the types) beyond its total: mass above thresholds and peak counts, as CSV fields.
func densityFeatures(dens []float32, h, w int) string {
	m := make([]float64, h*w)
	for i := range m {
		for t := range NumTypes {
			m[i] += float64(dens[i*NumTypes+t])
		}
	}
	var fields []string
	for _, t := range massThresholds {
		var sum float64
		for _, v := range m {
			if v > t {
				sum += v
			}
		}
		fields = append(fields, fmt.Sprintf("%g", sum))
	}
	isPeak := func(y, x int) bool {
		for dy := -1; dy <= 1; dy++ {
			for dx := -1; dx <= 1; dx++ {
				yy, xx := y+dy, x+dx
				if (dy != 0 || dx != 0) && yy >= 0 && yy < h && xx >= 0 && xx < w && m[yy*w+xx] > m[y*w+x] {
					return false
				}
			}
		}
		return true
	}
	var peaks []float64
	for y := range h {
		for x := range w {
			if isPeak(y, x) {
				peaks = append(peaks, m[y*w+x])
			}
		}
	}
	for _, t := range peakThresholds {
		k := 0
		for _, v := range peaks {
			if v > t {
				k++
			}
		}
		fields = append(fields, strconv.Itoa(k))
	}
	return strings.Join(append(fields, fmt.Sprintf("%g", slices.Max(m))), ",")
}
