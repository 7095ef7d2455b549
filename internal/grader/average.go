package grader

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
)

// Weight averaging (stochastic weight averaging, Izmailov et al., "Averaging Weights Leads to
// Wider Optima and Better Generalization", UAI 2018): with TrainConfig.AverageLast = K, the
// trainer keeps a model-only snapshot of each of the last K epochs under
// OutDir/snapshots/; after training it averages them, scores the average on the holdout like
// any epoch, and uses it as the best weights when it beats the best single epoch. The grader
// normalises with GroupNorm (per-sample statistics), so averaged weights need no
// batch-statistics pass.

// snapshotDir holds the per-epoch model snapshots inside OutDir.
const snapshotDir = "snapshots"

// Checkpoint metrics that record which epochs averaged weights come from.
const (
	metricAveragedFirst = "averaged_first_epoch"
	metricAveragedLast  = "averaged_last_epoch"
)

// snapshotPath is the model-only snapshot of an epoch (1-based).
func snapshotPath(outDir string, epoch int) string {
	return filepath.Join(outDir, snapshotDir, fmt.Sprintf("epoch-%03d.ckpt", epoch))
}

// pruneSnapshots removes the snapshots of epochs before first.
func pruneSnapshots(outDir string, first int) error {
	paths, err := filepath.Glob(filepath.Join(outDir, snapshotDir, "epoch-*.ckpt"))
	if err != nil {
		return err
	}
	for _, p := range paths {
		n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(filepath.Base(p), "epoch-"), ".ckpt"))
		if err != nil || n >= first {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove old snapshot: %w", err)
		}
	}
	return nil
}

// AveragedEpochs returns the first and last epoch whose weights a checkpoint averages, or
// ok = false for the weights of a single epoch.
func (c *Checkpoint) AveragedEpochs() (first, last int, ok bool) {
	f, okF := c.Header.Metrics[metricAveragedFirst]
	l, okL := c.Header.Metrics[metricAveragedLast]
	if !okF || !okL {
		return 0, 0, false
	}
	return int(f), int(l), true
}

// AverageCheckpoints returns a checkpoint whose float32 tensors are the element-wise means of
// those of cks, which must hold the same tensors (names, dtypes, shapes). Other tensors, the
// model configuration and the training state are taken from the last checkpoint; metrics
// are left empty.
func AverageCheckpoints(cks []*Checkpoint) (*Checkpoint, error) {
	if len(cks) == 0 {
		return nil, errors.New("average checkpoints: none given")
	}
	last := cks[len(cks)-1]
	out := &Checkpoint{Header: last.Header, data: make([]byte, len(last.data))}
	out.Header.Metrics = map[string]float64{}
	out.Header.Calibration = nil
	copy(out.data, last.data)
	for i, ck := range cks {
		if len(ck.Header.Tensors) != len(last.Header.Tensors) {
			return nil, fmt.Errorf("average checkpoints: checkpoint %d has %d tensors, the last %d", i+1, len(ck.Header.Tensors), len(last.Header.Tensors))
		}
	}
	for _, e := range last.Header.Tensors {
		if dtypes.DType(e.DTypeN) != dtypes.Float32 {
			continue
		}
		n := int(e.Bytes / 4)
		sum := make([]float64, n)
		for i, ck := range cks {
			src, err := ck.entry(e.Name)
			if err != nil {
				return nil, fmt.Errorf("average checkpoints: checkpoint %d: %w", i+1, err)
			}
			if src.DTypeN != e.DTypeN || fmt.Sprint(src.Shape) != fmt.Sprint(e.Shape) || src.Bytes != e.Bytes {
				return nil, fmt.Errorf("average checkpoints: tensor %s is %s%v in checkpoint %d but %s%v in the last", e.Name, src.DType, src.Shape, i+1, e.DType, e.Shape)
			}
			b := ck.data[src.Offset : src.Offset+src.Bytes]
			for j := range sum {
				sum[j] += float64(math.Float32frombits(binary.LittleEndian.Uint32(b[4*j:])))
			}
		}
		dst := out.data[e.Offset : e.Offset+e.Bytes]
		for j, s := range sum {
			binary.LittleEndian.PutUint32(dst[4*j:], math.Float32bits(float32(s/float64(len(cks)))))
		}
	}
	return out, nil
}

// entry returns the header entry of a tensor.
func (c *Checkpoint) entry(name string) (TensorEntry, error) {
	for _, e := range c.Header.Tensors {
		if e.Name == name {
			return e, nil
		}
	}
	return TensorEntry{}, fmt.Errorf("tensor %s not in checkpoint", name)
}

// averageSnapshots averages the snapshots of the last AverageLast epochs, scores the average
// on the holdout, writes it to OutDir/averaged.ckpt and, when it beats the best single epoch
// on the selection metric (or when there is no holdout), to OutDir/best.ckpt too. It returns
// whether best.ckpt now holds the average. The trainer's model variables hold the averaged
// weights afterwards.
func (t *Trainer) averageSnapshots() (bool, error) {
	c, st := t.Cfg, &t.State
	first := max(1, st.Epoch-c.AverageLast+1)
	var cks []*Checkpoint
	var used []int
	for e := first; e <= st.Epoch; e++ {
		ck, err := ReadCheckpoint(snapshotPath(c.OutDir, e))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return false, err
		}
		cks, used = append(cks, ck), append(used, e)
	}
	if len(cks) < 2 {
		t.Log("weight averaging skipped: %d snapshot(s) of epochs %d-%d in %s", len(cks), first, st.Epoch, filepath.Join(c.OutDir, snapshotDir))
		return false, nil
	}
	avg, err := AverageCheckpoints(cks)
	if err != nil {
		return false, err
	}
	if err := avg.Restore(t.ctx); err != nil {
		return false, fmt.Errorf("averaged weights: %w", err)
	}
	m, _, err := Evaluate(t.predictHead, t.hold, t.pix, t.pixIdx, c.BatchSize)
	if err != nil {
		return false, fmt.Errorf("holdout evaluation of the averaged weights: %w", err)
	}
	avg.Header.Metrics = map[string]float64{}
	if !t.noHoldout() {
		avg.Header.Metrics = metricsMap("holdout", m)
	}
	avg.Header.Metrics[metricAveragedFirst], avg.Header.Metrics[metricAveragedLast] = float64(used[0]), float64(used[len(used)-1])
	if err := avg.Save(filepath.Join(c.OutDir, "averaged.ckpt")); err != nil {
		return false, err
	}
	if t.noHoldout() {
		t.Log("weights averaged over epochs %d-%d (%d snapshots); no holdout to compare them with: the average becomes the best weights",
			used[0], used[len(used)-1], len(used))
		return true, avg.Save(filepath.Join(c.OutDir, "best.ckpt"))
	}
	v := selectionValue(m, c.Metric)
	if v <= st.Best {
		t.Log("weights averaged over epochs %d-%d (%d snapshots): holdout %s %.4f, not above the best epoch's %.4f (epoch %d): keeping epoch %d",
			used[0], used[len(used)-1], len(used), c.Metric, v, st.Best, st.BestEpoch, st.BestEpoch)
		return false, nil
	}
	t.Log("weights averaged over epochs %d-%d (%d snapshots): holdout %s %.4f, above the best epoch's %.4f (epoch %d): the average becomes the best weights",
		used[0], used[len(used)-1], len(used), c.Metric, v, st.Best, st.BestEpoch)
	return true, avg.Save(filepath.Join(c.OutDir, "best.ckpt"))
}
