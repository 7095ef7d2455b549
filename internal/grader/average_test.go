package grader

import (
	gocontext "context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

func TestRefitWithoutHoldout(t *testing.T) {
	samples, px := synthetic(20, 32, 5)
	for _, tc := range []struct {
		name        string
		averageLast int
		averaged    bool // best.ckpt holds the average of epochs 2-3 rather than epoch 3's weights
	}{{"last epoch", 0, false}, {"average of the last two", 2, true}} {
		t.Run(tc.name, func(t *testing.T) {
			c := tinyConfig(t.TempDir())
			c.HoldoutFrac, c.Patience, c.AverageLast, c.Metric = 0, 1, tc.averageLast, "count_spearman" // patience has nothing to watch
			tr, err := NewTrainer(c, testBackend(t), samples, px)
			if err != nil {
				t.Fatal(err)
			}
			tr.Log = t.Logf
			if tr.NumHoldout() != 0 || tr.NumTrain() != 20 {
				t.Fatalf("%d train / %d holdout sources, want all 20 training", tr.NumTrain(), tr.NumHoldout())
			}
			if err := tr.Run(gocontext.Background(), nil); err != nil {
				t.Fatal(err)
			}
			for _, e := range tr.State.History {
				if !e.Best || e.Holdout.N != 0 {
					t.Errorf("epoch %d: best %v, holdout n %d; want every epoch kept, none scored", e.Epoch, e.Best, e.Holdout.N)
				}
			}
			if tr.State.BestEpoch != c.Epochs {
				t.Errorf("best epoch %d, want the last, %d", tr.State.BestEpoch, c.Epochs)
			}
			lastWeights := weightsOf(t, tr.Context())
			if tc.averageLast > 0 {
				replaced, err := tr.averageSnapshots()
				if err != nil || !replaced {
					t.Fatalf("averageSnapshots: replaced %v, %v; want the average kept", replaced, err)
				}
			}
			best, err := ReadCheckpoint(filepath.Join(c.OutDir, "best.ckpt"))
			if err != nil {
				t.Fatal(err)
			}
			if f, l, ok := best.AveragedEpochs(); ok != tc.averaged || (ok && (f != 2 || l != 3)) {
				t.Errorf("best.ckpt averaged epochs %d-%d (%v), want averaged %v over 2-3", f, l, ok, tc.averaged)
			}
			if err := best.Restore(tr.Context()); err != nil {
				t.Fatal(err)
			}
			same := true
			for name, w := range weightsOf(t, tr.Context()) {
				for j := range w {
					same = same && w[j] == lastWeights[name][j]
				}
			}
			if same == tc.averaged {
				t.Errorf("best.ckpt equals the last epoch's weights: %v, want %v", same, !tc.averaged)
			}
			svg, err := os.ReadFile(filepath.Join(c.OutDir, "curves.svg"))
			if err != nil || !strings.Contains(string(svg), "no holdout") || strings.Contains(string(svg), "firebrick") {
				t.Errorf("curves.svg should plot the loss alone and say there is no holdout (%v)", err)
			}
			// A resumed refit runs on, shows no holdout value in its progress, and keeps its new last epoch.
			c2 := c
			c2.Epochs = c.Epochs + 1
			tr2, err := NewTrainer(c2, testBackend(t), samples, px)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr2.LoadCheckpoint(filepath.Join(c.OutDir, "last.ckpt")); err != nil {
				t.Fatal(err)
			}
			shown := 0
			err = tr2.Run(gocontext.Background(), func(_, _, _, _ int, _, metric float64, _ time.Duration) {
				shown++
				if !math.IsNaN(metric) {
					t.Errorf("progress shows holdout value %v for a refit, want NaN (shown as -)", metric)
				}
			})
			if err != nil || shown == 0 || tr2.State.BestEpoch != c2.Epochs {
				t.Errorf("resumed refit: err %v, %d progress calls, best epoch %d; want epoch %d kept", err, shown, tr2.State.BestEpoch, c2.Epochs)
			}
		})
	}
}
