package grader

import (
	gocontext "context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/grader/pretrained"
	"github.com/acdtcm/acdtcm/internal/grader/weights"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
)

// Report summarises a training run.
type Report struct {
	TrainSources   int                `json:"train_sources"`
	HoldoutSources int                `json:"holdout_sources"`
	Epochs         int                `json:"epochs_done"`
	BestEpoch      int                `json:"best_epoch"`
	AveragedEpochs []int              `json:"averaged_epochs,omitempty"` // first and last epoch when the best weights are a weight average
	Holdout        float64            `json:"holdout_best"`
	Eval           *GradeMetrics      `json:"eval,omitempty"` // EvalSplit with the best weights
	EvalSplit      string             `json:"eval_split,omitempty"`
	TrainSeconds   float64            `json:"train_seconds"`
	Metrics        map[string]float64 `json:"metrics"`
	WeightsVersion string             `json:"weights_version"` // semantic version given to exported weights
}

// RunTraining is the whole `acdtcm train` job for the grader: load data, build the pixel
// cache, train (resuming from OutDir/last.ckpt when Resume is set), evaluate the best
// weights on EvalSplit and, when exportDir is not empty, export them for go:embed.
func RunTraining(ctx gocontext.Context, cfg TrainConfig, exportDir string, log func(string, ...any), progress Progress) (*Report, error) {
	if log == nil {
		log = func(string, ...any) {}
	}
	samples, skipped, err := LoadSamples(cfg.Data)
	if err != nil {
		return nil, err
	}
	trainS, evalS := SplitSamples(samples, cfg.TrainSplit, cfg.EvalSplit)
	log("data %s: %d photos (%d %s, %d %s), %d records skipped", cfg.Data, len(samples), len(trainS), cfg.TrainSplit, len(evalS), cfg.EvalSplit, skipped)
	if len(trainS) == 0 {
		return nil, fmt.Errorf("data %s: no %q photos", cfg.Data, cfg.TrainSplit)
	}
	if cfg.LinkCopies || cfg.CopyLinks != "" {
		t0 := time.Now()
		var links CopyLinks
		var how string
		if cfg.CopyLinks != "" {
			if links, err = ReadCopyLinks(cfg.CopyLinks); err != nil {
				return nil, err
			}
			how = "read from " + cfg.CopyLinks
		} else {
			if links, err = LinkCopies(ctx, append(append([]Sample(nil), trainS...), evalS...), LinkOptions{Workers: cfg.Workers}); err != nil {
				return nil, err
			}
			how = fmt.Sprintf("local-feature matching, %.0fs", time.Since(t0).Seconds())
			if !cfg.CalibrateOnly {
				path := filepath.Join(cfg.OutDir, CopyLinksFile)
				if err := WriteCopyLinks(path, links); err != nil {
					return nil, err
				}
				how += "; recorded in " + path
			}
		}
		var dropped int
		trainS, dropped = SeparateCopies(trainS, evalS, links)
		log("copies under other source ids (%s): %d sources linked; %d %s photos dropped as copies of %s photos, the other linked sources kept on one side of the holdout",
			how, links.LinkedSources(), dropped, cfg.TrainSplit, cfg.EvalSplit)
		if len(trainS) == 0 {
			return nil, fmt.Errorf("data %s: every %q photo is a copy of a %q photo", cfg.Data, cfg.TrainSplit, cfg.EvalSplit)
		}
	}
	if !cfg.CalibrateOnly {
		var why string
		cfg.Model.TypedCounts, why = typedLesionLabels(trainS)
		if !cfg.Model.TypedCounts {
			log("lesion types: %s; the model will report the total lesion count only", why)
		}
	}
	bestPath := filepath.Join(cfg.OutDir, "best.ckpt")
	var savedState TrainState // with CalibrateOnly: the state stored with the best weights
	if cfg.CalibrateOnly {
		ck, err := ReadCheckpoint(bestPath)
		if err != nil {
			return nil, fmt.Errorf("--calibrate-only needs the weights to calibrate in %s: %w", bestPath, err)
		}
		cfg.Model = ck.Header.Model
		if len(ck.Header.State) > 0 { // exported weights carry none
			_ = json.Unmarshal(ck.Header.State, &savedState)
		}
	}
	t0 := time.Now()
	pix, bad, err := LoadPixels(trainS, cfg.Model.InputSize, cfg.CacheDir, cfg.Workers)
	if err != nil {
		return nil, err
	}
	for _, e := range bad {
		log("skipping unreadable photo: %v", e)
	}
	log("pixels ready (%d x %dpx) in %.1fs", len(pix.Data), cfg.Model.InputSize, time.Since(t0).Seconds())
	backend, err := mlbackend.New(cfg.Backend)
	if err != nil {
		return nil, err
	}
	tr, err := NewTrainer(cfg, backend, trainS, pix)
	if err != nil {
		return nil, err
	}
	tr.Log = log
	log("split by source: %d train sources, %d holdout sources; %d steps/epoch of %d; ~%.0f MFLOP/photo forward",
		tr.NumTrain(), tr.NumHoldout(), tr.StepsPerEpoch(), cfg.BatchSize, float64(cfg.Model.FLOPs())/1e6)
	if tr.noHoldout() && !cfg.CalibrateOnly {
		log("no holdout (holdout_frac %g): a refit on every train source for %d epochs, without early stopping; the last epoch's weights are kept (or the average of the last %d)",
			cfg.HoldoutFrac, cfg.Epochs, cfg.AverageLast)
	}
	lastPath := filepath.Join(cfg.OutDir, "last.ckpt")
	if cfg.Resume && exists(lastPath) {
		if err := tr.LoadCheckpoint(lastPath); err != nil {
			return nil, err
		}
		log("resumed from %s at epoch %d step %d (global step %d)", lastPath, tr.State.Epoch+1, tr.State.StepInEpoch, tr.State.GlobalStep)
	} else if cfg.InitFrom != "" && !cfg.CalibrateOnly {
		ck, name := cfg.InitWeights, cfg.InitFrom
		if ck == nil {
			if ck, name, err = readInitCheckpoint(cfg.InitFrom); err != nil {
				return nil, err
			}
		}
		if err := tr.InitFromCheckpoint(ck, name); err != nil {
			return nil, err
		}
		log("initialised from %s (trained at %d px; this run: %d px)", name, ck.Header.Model.InputSize, cfg.Model.InputSize)
	}
	cj, _ := json.MarshalIndent(cfg, "", "  ")
	if err := fsutil.WriteFileAtomic(filepath.Join(cfg.OutDir, "config.json"), append(cj, '\n'), 0o644); err != nil {
		return nil, err
	}
	if !cfg.CalibrateOnly {
		if err := tr.Run(ctx, progress); err != nil {
			return nil, err
		}
		if cfg.AverageLast > 1 {
			if _, err := tr.averageSnapshots(); err != nil {
				return nil, err
			}
		}
	}
	st := tr.State
	if cfg.CalibrateOnly {
		st = savedState
	}
	rep := &Report{TrainSources: tr.NumTrain(), HoldoutSources: tr.NumHoldout(), Epochs: st.Epoch, BestEpoch: st.BestEpoch,
		Holdout: st.Best, TrainSeconds: st.Elapsed, Metrics: map[string]float64{}, WeightsVersion: cfg.WeightsVersion}
	if rep.WeightsVersion == "" {
		rep.WeightsVersion = "1.0.0"
	}
	if !exists(bestPath) {
		return rep, fmt.Errorf("no best checkpoint in %s (training stopped before the first epoch ended)", cfg.OutDir)
	}
	ck, err := ReadCheckpoint(bestPath)
	if err != nil {
		return rep, err
	}
	weightsOf := fmt.Sprintf("best weights of epoch %d", st.BestEpoch)
	if first, last, ok := ck.AveragedEpochs(); ok {
		rep.AveragedEpochs = []int{first, last}
		weightsOf = fmt.Sprintf("weights averaged over epochs %d-%d", first, last)
	}
	m, err := fromCheckpoint(ck, cfg.Backend)
	if err != nil {
		return rep, err
	}
	if cfg.Calibrate || cfg.CalibrateOnly {
		switch err := tr.calibrate(ck, m, log); {
		case err != nil && cfg.CalibrateOnly:
			return rep, err
		case err != nil: // e.g. a training set of one grade: keep the grade head
			log("calibration skipped, grades come from the network's grade head: %v", err)
		default:
			if err := ck.Save(bestPath); err != nil {
				return rep, err
			}
		}
	}
	for k, v := range ck.Header.Metrics {
		rep.Metrics[k] = v
	}
	if len(evalS) > 0 && cfg.SkipEval {
		log("%s (%d photos): not scored (skip-eval)", cfg.EvalSplit, len(evalS))
	} else if len(evalS) > 0 {
		epix, bad, err := LoadPixels(evalS, cfg.Model.InputSize, cfg.CacheDir, cfg.Workers)
		if err != nil {
			return rep, err
		}
		for _, e := range bad {
			log("skipping unreadable photo: %v", e)
		}
		idx := map[string]int{}
		for i, s := range evalS {
			idx[s.ID] = i
		}
		t1 := time.Now()
		gm, _, err := Evaluate(m.PredictPreprocessed, evalS, epix, idx, cfg.BatchSize)
		if err != nil {
			return rep, err
		}
		log("%s (%d photos, %s): accuracy %.4f macro-F1 %.4f kappa %.4f AUC %.4f count MAE %.2f; %.1f ms/photo forward",
			cfg.EvalSplit, gm.N, weightsOf, gm.Accuracy, gm.MacroF1, gm.Kappa, gm.MacroAUC, gm.CountMAE, 1000*time.Since(t1).Seconds()/float64(gm.N))
		rep.Eval, rep.EvalSplit = &gm, cfg.EvalSplit
		for k, v := range metricsMap(cfg.EvalSplit, gm) {
			rep.Metrics[k] = v
		}
		b, _ := json.MarshalIndent(gm, "", "  ")
		if err := fsutil.WriteFileAtomic(filepath.Join(cfg.OutDir, "eval-"+cfg.EvalSplit+".json"), append(b, '\n'), 0o644); err != nil {
			return rep, err
		}
	}
	if exportDir != "" {
		if err := Export(ck, rep, exportDir); err != nil {
			return rep, err
		}
		log("exported weights to %s", exportDir)
	}
	return rep, nil
}

// WeightsInfo is the JSON written beside exported weights (grader.json).
type WeightsInfo struct {
	Name      string      `json:"name"`
	Version   string      `json:"version"`
	Model     ModelConfig `json:"model"`
	Params    int64       `json:"params"`
	BestEpoch int         `json:"best_epoch"`
	// AveragedEpochs: the first and last epoch averaged, when the weights are an average.
	AveragedEpochs []int              `json:"averaged_epochs,omitempty"`
	Metrics        map[string]float64 `json:"metrics"`
	Command        string             `json:"command"` // the command line that exported these weights
	Licence        string             `json:"licence"`
}

// Export writes the model variables of a checkpoint (with metrics) as grader.ckpt and its
// description as grader.json into dir, atomically.
func Export(ck *Checkpoint, rep *Report, dir string) error {
	var buf []TensorEntry
	var data []byte
	var params int64
	for _, e := range ck.Header.Tensors {
		if !isModelVar(e.Name) {
			continue
		}
		ne := e
		ne.Offset = int64(len(data))
		data = append(data, ck.data[e.Offset:e.Offset+e.Bytes]...)
		buf = append(buf, ne)
		n := int64(1)
		for _, d := range e.Shape {
			n *= int64(d)
		}
		params += n
	}
	hdr := CheckpointHeader{FormatVersion: checkpointVersion, Model: ck.Header.Model, Metrics: rep.Metrics, Calibration: ck.Header.Calibration, Tensors: buf}
	if err := (&Checkpoint{Header: hdr, data: data}).Save(filepath.Join(dir, "grader.ckpt")); err != nil {
		return err
	}
	info := WeightsInfo{Name: "acdtcm-grader", Version: fmt.Sprintf("%s+%s", rep.WeightsVersion, time.Now().UTC().Format("20060102")), Model: ck.Header.Model,
		Params: params, BestEpoch: rep.BestEpoch, AveragedEpochs: rep.AveragedEpochs, Metrics: rep.Metrics,
		Command: "acdtcm " + strings.Join(os.Args[1:], " "),
		Licence: "trained on ACNE04 (Wu et al. 2019): free for academic use; other use needs the ACNE04 authors' permission"}
	if ck.Header.Model.Backbone == BackboneMobileNetV2 {
		info.Licence += "; backbone initialised from " + pretrained.MobileNetV2Source
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	return fsutil.WriteFileAtomic(filepath.Join(dir, "grader.json"), append(b, '\n'), 0o644)
}

// calibrate fits the count -> grade Calibration on the model's predictions for every
// training photo (all versions; never the holdout or the eval split), scores the holdout
// (if any) with it, and stores both in ck's header and in m.
func (t *Trainer) calibrate(ck *Checkpoint, m *Model, log func(string, ...any)) error {
	t0 := time.Now()
	tta := t.Cfg.FlipTTA
	rawCounts := func(rows [][]uint8) ([]Prediction, error) { return m.predict(rows, nil, tta) }
	_, preds, err := Evaluate(rawCounts, t.train, t.pix, t.pixIdx, t.Cfg.BatchSize)
	if err != nil {
		return fmt.Errorf("calibration predictions: %w", err)
	}
	totals, grades := make([]float64, len(preds)), make([]int, len(preds))
	for i, p := range preds {
		for _, c := range p.LesionCounts {
			totals[i] += c
		}
		grades[i] = t.train[i].Grade
	}
	which := "holdout excluded"
	if t.noHoldout() {
		which = "no holdout"
	}
	cal, err := FitCalibration(totals, grades, fmt.Sprintf("%d %s photos (%s)", len(preds), t.Cfg.TrainSplit, which))
	if err != nil {
		return err
	}
	cal.FlipTTA = tta
	th := cal.CountThresholds()
	if t.noHoldout() {
		log("calibration on %d training photos (flip TTA %v, %.0fs): slope %.3f, grade changes at %.1f / %.1f / %.1f predicted lesions; no holdout to score it on",
			cal.N, tta, time.Since(t0).Seconds(), cal.Slope, th[0], th[1], th[2])
		m.Calibration, ck.Header.Calibration = cal, cal
		return nil
	}
	headOnly := func(rows [][]uint8) ([]Prediction, error) { return m.predict(rows, nil, false) }
	head, _, err := Evaluate(headOnly, t.hold, t.pix, t.pixIdx, t.Cfg.BatchSize)
	if err != nil {
		return err
	}
	m.Calibration = cal
	hm, _, err := Evaluate(m.PredictPreprocessed, t.hold, t.pix, t.pixIdx, t.Cfg.BatchSize)
	if err != nil {
		return err
	}
	log("calibration on %d training photos (flip TTA %v, %.0fs): slope %.3f, grade changes at %.1f / %.1f / %.1f predicted lesions; holdout accuracy %.4f with it, %.4f with the grade head (count Spearman %.3f)",
		cal.N, tta, time.Since(t0).Seconds(), cal.Slope, th[0], th[1], th[2], hm.Accuracy, head.Accuracy, hm.CountSpearman)
	ck.Header.Calibration = cal
	if ck.Header.Metrics == nil {
		ck.Header.Metrics = map[string]float64{}
	}
	for k, v := range metricsMap("holdout", hm) {
		ck.Header.Metrics[k] = v
	}
	ck.Header.Metrics["holdout_head_accuracy"] = head.Accuracy
	return nil
}

// readInitCheckpoint reads the --init-from weights: "builtin" (the embedded ones) or a
// checkpoint file.
func readInitCheckpoint(spec string) (*Checkpoint, string, error) {
	if spec == "builtin" {
		if len(weights.Grader) == 0 {
			return nil, "", errors.New("--init-from builtin: this binary has no built-in grader weights")
		}
		ck, err := ParseCheckpoint(weights.Grader)
		if err != nil {
			return nil, "", fmt.Errorf("--init-from builtin: %w", err)
		}
		return ck, "the built-in weights", nil
	}
	if st, err := os.Stat(spec); err == nil && st.IsDir() {
		return nil, "", fmt.Errorf("--init-from %s: a directory, not a grader checkpoint (quantized grader directories are read by the acdtcm train command)", spec)
	}
	ck, err := ReadCheckpoint(spec)
	if err != nil {
		return nil, "", fmt.Errorf("--init-from: %w", err)
	}
	return ck, spec, nil
}
