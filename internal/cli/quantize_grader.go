package cli

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"

	"github.com/acdtcm/acdtcm/internal/grader"
	"github.com/acdtcm/acdtcm/internal/quant"
)

// graderModelBench are the measurements of one grader model.
type graderModelBench struct {
	LoadSeconds  float64              `json:"load_seconds"`
	PhotosPerSec float64              `json:"photos_per_second"` // batches of 16 preprocessed photos, compiled graph
	Eval         *grader.GradeMetrics `json:"eval,omitempty"`
}

// graderBench compares the float32 grader with its quantized copy.
type graderBench struct {
	Float          graderModelBench `json:"float32"`
	Quantized      graderModelBench `json:"quantized"`
	EvalData       string           `json:"eval_data,omitempty"`
	EvalSplit      string           `json:"eval_split,omitempty"`
	MaxProbDiff    float64          `json:"max_probability_diff"` // over the scored (or random) photos
	GradeAgreement float64          `json:"grade_agreement"`      // share of photos with the same predicted grade
}

func runQuantizeGrader(app *App, opts *quantizeOptions, m quant.Method, in, out string) error {
	var keep []string
	if !slices.Equal(opts.Keep, quant.DefaultKeep) {
		keep = opts.Keep
	}
	conv, err := quant.ConvertGrader(in, out, quant.ConvertOptions{Method: m, Keep: keep, Options: quant.Options{NoDoubleQuant: opts.NoDoubleQuant}})
	if err != nil {
		return err
	}
	rep := &quantizeReport{Input: in, Output: out, Convert: conv, Machine: fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())}
	if opts.Bench || opts.EvalData != "" {
		rep.Backend = opts.Backend
		if rep.Grader, err = benchGrader(opts, in, out); err != nil {
			return fmt.Errorf("benchmark (the quantized grader %s was written): %w", out, err)
		}
		if q := rep.Grader.Quantized.Eval; q != nil {
			// The quantized model's own metrics, so diagnose, eval and serve report them
			// rather than the float32 source's (kept in config.json as source_metrics).
			from := fmt.Sprintf("%s split of %s (%d photos), measured by acdtcm quantize", opts.EvalSplit, opts.EvalData, q.N)
			if err := quant.SetGraderMetrics(out, q.Map(opts.EvalSplit), from); err != nil {
				return err
			}
		}
	}
	if err := printQuantizeReport(app.Out, rep, opts.Worst); err != nil {
		return err
	}
	if rep.Grader != nil {
		if err := printGraderBench(app.Out, rep.Grader); err != nil {
			return err
		}
		warnGraderAgreement(app.Err, out, rep.Grader)
	}
	return writeQuantizeReport(opts.Report, rep)
}

// minGraderAgreement is the share of grades a quantized grader must keep below which
// quantize warns: the built-in grader keeps 96.8-99.6% with the default keep list, and
// 38% when its frozen stem is quantized to 4 bits.
const minGraderAgreement = 0.9

// warnGraderAgreement tells the user when the quantized grader out changes too many grades.
func warnGraderAgreement(w io.Writer, out string, b *graderBench) {
	if b.GradeAgreement >= minGraderAgreement {
		return
	}
	on := "64 random images"
	if b.EvalData != "" {
		on = fmt.Sprintf("the %s split of %s", b.EvalSplit, b.EvalData)
	}
	fmt.Fprintf(w, "warning: %s gives a different grade than the float32 grader for %.1f%% of %s; keep more of it in full precision (--keep %s, the default) or use an 8-bit method\n",
		out, 100*(1-b.GradeAgreement), on, strings.Join(quant.DefaultGraderKeep, ","))
}

func benchGrader(opts *quantizeOptions, in, out string) (*graderBench, error) {
	b := &graderBench{}
	start := time.Now()
	fm, err := grader.LoadWithBackend(in, opts.Backend)
	if err != nil {
		return nil, err
	}
	b.Float.LoadSeconds = time.Since(start).Seconds()
	start = time.Now()
	qm, err := quant.LoadGrader(out, opts.Backend)
	if err != nil {
		return nil, err
	}
	b.Quantized.LoadSeconds = time.Since(start).Seconds()
	size := fm.Config.InputSize
	var rows [][]uint8
	var samples []grader.Sample
	if opts.EvalData != "" {
		all, _, err := grader.LoadSamples(opts.EvalData)
		if err != nil {
			return nil, err
		}
		for _, s := range all {
			if s.Split == opts.EvalSplit {
				samples = append(samples, s)
			}
		}
		if len(samples) == 0 {
			return nil, fmt.Errorf("%s has no photos in split %q", opts.EvalData, opts.EvalSplit)
		}
		pix, errs, err := grader.LoadPixels(samples, size, opts.CacheDir, 0)
		if err != nil {
			return nil, err
		}
		if len(errs) > 0 {
			fmt.Fprintf(os.Stderr, "warning: %d photos failed to decode and were scored black (first: %v)\n", len(errs), errs[0])
		}
		rows = pix.Data
		b.EvalData, b.EvalSplit = opts.EvalData, opts.EvalSplit
	} else {
		rng := rand.New(rand.NewPCG(1, 2))
		rows = make([][]uint8, 64)
		for i := range rows {
			rows[i] = make([]uint8, size*size*3)
			for j := range rows[i] {
				rows[i][j] = uint8(rng.IntN(256))
			}
		}
	}
	var preds [2][]grader.Prediction
	for i, model := range []*grader.Model{fm, qm} {
		st := &b.Float
		if i == 1 {
			st = &b.Quantized
		}
		if _, err := model.PredictPreprocessed(rows[:min(16, len(rows))]); err != nil { // compile
			return nil, err
		}
		start := time.Now()
		for lo := 0; lo < len(rows); lo += 16 {
			p, err := model.PredictPreprocessed(rows[lo:min(len(rows), lo+16)])
			if err != nil {
				return nil, err
			}
			preds[i] = append(preds[i], p...)
		}
		st.PhotosPerSec = float64(len(rows)) / time.Since(start).Seconds()
		if samples != nil {
			probs := make([][]float64, len(samples))
			truth := make([]int, len(samples))
			pc, tc := make([]float64, len(samples)), make([]float64, len(samples))
			for k, p := range preds[i] {
				probs[k], truth[k] = p.Probabilities, samples[k].Grade
				for _, c := range p.LesionCounts {
					pc[k] += c
				}
				tc[k] = float64(len(samples[k].Boxes))
			}
			gm := grader.ComputeMetrics(probs, truth, pc, tc)
			st.Eval = &gm
		}
	}
	same := 0
	for k := range preds[0] {
		if preds[0][k].Grade == preds[1][k].Grade {
			same++
		}
		for c := range preds[0][k].Probabilities {
			b.MaxProbDiff = max(b.MaxProbDiff, abs64(preds[0][k].Probabilities[c]-preds[1][k].Probabilities[c]))
		}
	}
	b.GradeAgreement = float64(same) / float64(len(preds[0]))
	return b, nil
}

func abs64(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

func printGraderBench(w io.Writer, b *graderBench) error {
	tw := tablewriter.NewWriter(w)
	tw.Header("grader", "original", "quantized")
	rows := [][]string{
		{"load time", fmt.Sprintf("%.3f s", b.Float.LoadSeconds), fmt.Sprintf("%.3f s", b.Quantized.LoadSeconds)},
		{"photos/s", fmt.Sprintf("%.1f", b.Float.PhotosPerSec), fmt.Sprintf("%.1f", b.Quantized.PhotosPerSec)},
	}
	if f, q := b.Float.Eval, b.Quantized.Eval; f != nil && q != nil {
		rows = append(rows,
			[]string{fmt.Sprintf("accuracy (%s, n=%d)", b.EvalSplit, f.N), fmt.Sprintf("%.4f", f.Accuracy), fmt.Sprintf("%.4f", q.Accuracy)},
			[]string{"macro F1", fmt.Sprintf("%.4f", f.MacroF1), fmt.Sprintf("%.4f", q.MacroF1)},
			[]string{"quadratic kappa", fmt.Sprintf("%.4f", f.Kappa), fmt.Sprintf("%.4f", q.Kappa)},
		)
	}
	rows = append(rows, []string{"agreement with float32", "", fmt.Sprintf("grade %.1f%%, max |Δp| %.4f", 100*b.GradeAgreement, b.MaxProbDiff)})
	for _, r := range rows {
		tw.Append(r)
	}
	return tw.Render()
}
