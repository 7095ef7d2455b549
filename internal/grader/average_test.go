package grader

import (
	gocontext "context"
	"math"
	"os"
	"path/filepath"
	"testing"
)

func TestAverageCheckpoints(t *testing.T) {
	samples, px := synthetic(12, 32, 3)
	c := tinyConfig(t.TempDir())
	tr, err := NewTrainer(c, testBackend(t), samples, px)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	var weights []map[string][]float32
	for i := range 3 {
		runSteps(t, tr, 1)
		p := filepath.Join(c.OutDir, "w"+string(rune('a'+i))+".ckpt")
		if err := SaveCheckpoint(p, tr.Context(), c.Model, tr.State, nil, true); err != nil {
			t.Fatal(err)
		}
		paths, weights = append(paths, p), append(weights, weightsOf(t, tr.Context()))
	}
	read := func(ps ...string) []*Checkpoint {
		var cks []*Checkpoint
		for _, p := range ps {
			ck, err := ReadCheckpoint(p)
			if err != nil {
				t.Fatal(err)
			}
			cks = append(cks, ck)
		}
		return cks
	}
	for _, tc := range []struct {
		name string
		idx  []int
	}{{"one", []int{1}}, {"two", []int{0, 2}}, {"three", []int{0, 1, 2}}} {
		t.Run(tc.name, func(t *testing.T) {
			var ps []string
			for _, i := range tc.idx {
				ps = append(ps, paths[i])
			}
			avg, err := AverageCheckpoints(read(ps...))
			if err != nil {
				t.Fatal(err)
			}
			if err := avg.Restore(tr.Context()); err != nil {
				t.Fatal(err)
			}
			got := weightsOf(t, tr.Context())
			if len(got) == 0 {
				t.Fatal("no model weights")
			}
			for name, g := range got {
				for j := range g {
					var want float64
					for _, i := range tc.idx {
						want += float64(weights[i][name][j])
					}
					want /= float64(len(tc.idx))
					if math.Abs(float64(g[j])-want) > 1e-6*(1+math.Abs(want)) {
						t.Fatalf("%s[%d] = %v, want the mean %v", name, j, g[j], want)
					}
				}
			}
		})
	}
	t.Run("mismatch", func(t *testing.T) {
		other := c
		other.Model.Layers = []Layer{{4, 2}, {8, 2}, {16, 1}}
		other.OutDir = t.TempDir()
		tr2, err := NewTrainer(other, testBackend(t), samples, px)
		if err != nil {
			t.Fatal(err)
		}
		runSteps(t, tr2, 1) // variables exist once the graph is built
		p := filepath.Join(other.OutDir, "x.ckpt")
		if err := SaveCheckpoint(p, tr2.Context(), other.Model, tr2.State, nil, true); err != nil {
			t.Fatal(err)
		}
		if _, err := AverageCheckpoints(read(paths[0], p)); err == nil {
			t.Fatal("checkpoints of different shapes averaged without an error")
		}
		if _, err := AverageCheckpoints(nil); err == nil {
			t.Fatal("no checkpoints averaged without an error")
		}
	})
}

func TestTrainingKeepsAndAveragesSnapshots(t *testing.T) {
	samples, px := synthetic(20, 32, 5)
	c := tinyConfig(t.TempDir())
	c.Epochs, c.AverageLast, c.Patience, c.Metric = 4, 2, 0, "count_spearman"
	tr, err := NewTrainer(c, testBackend(t), samples, px)
	if err != nil {
		t.Fatal(err)
	}
	tr.Log = t.Logf
	if err := tr.Run(gocontext.Background(), nil); err != nil {
		t.Fatal(err)
	}
	left, _ := filepath.Glob(filepath.Join(c.OutDir, snapshotDir, "*.ckpt"))
	if len(left) != 2 || filepath.Base(left[0]) != "epoch-003.ckpt" || filepath.Base(left[1]) != "epoch-004.ckpt" {
		t.Fatalf("snapshots kept: %v, want epochs 3 and 4", left)
	}
	bestPath := filepath.Join(c.OutDir, "best.ckpt")
	before, err := os.ReadFile(bestPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		best     float64 // the best single epoch's holdout value the average must beat
		replaced bool
	}{{"not better", 2, false}, {"better", -2, true}} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(bestPath, before, 0o644); err != nil {
				t.Fatal(err)
			}
			tr.State.Best = tc.best
			replaced, err := tr.averageSnapshots()
			if err != nil {
				t.Fatal(err)
			}
			if replaced != tc.replaced {
				t.Fatalf("best replaced = %v, want %v", replaced, tc.replaced)
			}
			avg, err := ReadCheckpoint(filepath.Join(c.OutDir, "averaged.ckpt"))
			if err != nil {
				t.Fatal(err)
			}
			if f, l, ok := avg.AveragedEpochs(); !ok || f != 3 || l != 4 {
				t.Errorf("averaged.ckpt records epochs %d-%d (%v), want 3-4", f, l, ok)
			}
			best, err := ReadCheckpoint(bestPath)
			if err != nil {
				t.Fatal(err)
			}
			if _, _, ok := best.AveragedEpochs(); ok != tc.replaced {
				t.Errorf("best.ckpt holds averaged weights: %v, want %v", ok, tc.replaced)
			}
		})
	}
}
