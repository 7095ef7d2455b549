package grader

import (
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/")

func TestCurvesSVGGolden(t *testing.T) {
	for _, tc := range []struct {
		name, golden string
		holdoutN     int // 0: a refit without a holdout, whose chart plots the loss alone
	}{{"with holdout", "curves.golden.svg", 99}, {"refit", "curves-refit.golden.svg", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			hist := []EpochMetrics{
				{Epoch: 1, TrainLoss: 30, Holdout: GradeMetrics{N: tc.holdoutN, Accuracy: 0.40}},
				{Epoch: 2, TrainLoss: 25, Holdout: GradeMetrics{N: tc.holdoutN, Accuracy: 0.55}},
				{Epoch: 3, TrainLoss: 22.5, Holdout: GradeMetrics{N: tc.holdoutN, Accuracy: 0.61}},
			}
			got := CurvesSVG(hist, "accuracy")
			path := filepath.Join("testdata", tc.golden)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("CurvesSVG differs from %s:\n%s", path, got)
			}
		})
	}
	if empty := CurvesSVG(nil, "accuracy"); len(empty) == 0 {
		t.Error("CurvesSVG(nil) is empty; want an empty chart")
	}
}
