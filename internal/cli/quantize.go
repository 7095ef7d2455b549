package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/spf13/cobra"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/quant"
	"github.com/acdtcm/acdtcm/internal/qwen"
	"github.com/acdtcm/acdtcm/internal/tokenizer"
)

func init() { register(newQuantizeCmd) }

type quantizeOptions struct {
	Method        string
	Keep          []string
	NoDoubleQuant bool
	Report        string
	Bench         bool
	BenchOriginal bool
	BenchTokens   int
	Backend       string
	Worst         int
	EvalData      string
	EvalSplit     string
	CacheDir      string
	ComputeDType  string // Qwen bench: weight and compute dtype of both loaded models
}

func newQuantizeCmd(app *App) *cobra.Command {
	opts := &quantizeOptions{}
	cmd := &cobra.Command{
		Use:   "quantize --method int8|nf4|q8_0|q4_0 IN OUT",
		Short: "Quantize a Qwen2.5-VL checkpoint or the built-in grader to 8 or 4 bits",
		Long: `Quantizes the weights of a Qwen2.5-VL checkpoint directory IN (base or merged, float32,
bfloat16 or float16) and writes OUT: model.safetensors with the packed weights and their scales,
config.json with a quantization_config (method, block size, kept tensors), and the tokenizer,
processor and generation files copied. Every acdtcm command that loads a Qwen checkpoint reads
OUT transparently: weights stay packed in memory and are dequantized inside the graph.

Methods:
  int8   symmetric int8, one float32 scale per output channel
  nf4    4-bit NormalFloat (QLoRA), blocks of 64, block scales double-quantized to 8 bits
         in groups of 256 (--no-double-quant keeps them float32)
  q8_0   GGML q8_0: blocks of 32 int8 values with a float16 scale
  q4_0   GGML q4_0: blocks of 32 4-bit values with a float16 scale

--keep lists what stays in full precision: embeddings, norms, lm_head, vision (the whole
vision tower), "none", or tensor-name prefixes and patterns (model.layers.0.*). Rank-1
tensors (biases, norm weights) always stay.

A report is printed and, with --report, written as JSON: sizes, per-tensor error (relative
RMS, SNR) and, unless --bench=false, load time, weights in memory, peak Go heap, prompt and
generation speed and logit agreement of the original and the quantized model.

IN may also be a grader checkpoint file (internal/grader/weights/grader.ckpt, best.ckpt):
OUT then holds the grader's quantized weights (output channel first, so int8 scales are per
output channel, and no block of nf4, q8_0 or q4_0 spans two channels) and is loaded,
dequantized to float32, by diagnose, eval, serve and train --init-from. For a grader --keep
takes "heads" (its two output heads, density and grade_out; "lm_head" means the same),
"stem" (the pretrained layers that training kept frozen, MobileNetV2's Conv1..block_2 in the
built-in grader), "none", or variable-name prefixes and patterns (/model/conv0/*);
embeddings and vision do not apply. The default is heads,stem: quantizing the frozen stem
is where all of int8's accuracy cost on the built-in grader comes from, and at 4 bits it
makes the grader give one grade to every photo. config.json records the source
weights' version (source_version) and OUT's version (source version + "-" + method, e.g.
1.2.0+20261127-nf4); the source's metrics are kept as source_metrics only. --eval-data
scores both models (accuracy, macro F1, quadratic kappa) on --eval-split and stores the
quantized model's own metrics in config.json (metrics, metrics_from), which serve and
diagnose then report; the bench measures photos per second.`,
		Example: `  acdtcm model init --preset tiny --out models/tiny
  acdtcm quantize --method nf4 models/tiny models/tiny-nf4 --report reports/tiny-nf4.json
  acdtcm quantize --method int8 --keep embeddings,lm_head models/merged models/merged-int8
  acdtcm quantize --method q4_0 --keep none --bench=false models/tiny models/tiny-q4_0
  acdtcm quantize --method int8 --eval-data ../shared/datasets/acne04-detection internal/grader/weights/grader.ckpt models/grader-int8`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runQuantize(app, opts, args[0], args[1])
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Method, "method", "nf4", "quantization method: int8, nf4, q8_0 or q4_0")
	f.StringSliceVar(&opts.Keep, "keep", quant.DefaultKeep, "tensors kept in full precision: embeddings, norms, lm_head, vision, none, or name prefixes/patterns (grader: heads, stem, none, or name prefixes/patterns; default heads,stem)")
	f.BoolVar(&opts.NoDoubleQuant, "no-double-quant", false, "nf4: keep block scales in float32")
	f.StringVar(&opts.Report, "report", "", "also write the report as JSON to this file")
	f.BoolVar(&opts.Bench, "bench", true, "load both models and measure load time, memory, speed and logit agreement")
	f.BoolVar(&opts.BenchOriginal, "bench-original", true, "also measure the original checkpoint and compare logits (false: the quantized one only, e.g. when an earlier report has the original's numbers)")
	f.IntVar(&opts.BenchTokens, "bench-tokens", 8, "tokens generated per speed measurement")
	f.IntVar(&opts.Worst, "worst", 8, "tensors listed in the printed error table (worst relative RMS first; the JSON lists all)")
	f.StringVar(&opts.EvalData, "eval-data", "", "grader: labelled photos (manifest or ACNE04 VOC export) to score both models on")
	f.StringVar(&opts.EvalSplit, "eval-split", "valid", "grader: split of --eval-data to score")
	f.StringVar(&opts.ComputeDType, "compute-dtype", "float32", "Qwen bench: "+computeDTypeUsage+"; quantized weights are dequantized to it")
	f.StringVar(&opts.CacheDir, "cache-dir", "", "grader: resized-pixel cache directory for --eval-data (empty: none)")
	mlbackend.AddFlag(f, &opts.Backend)
	return cmd
}

// modelStats are the measurements of one loaded model.
type modelStats struct {
	LoadSeconds      float64 `json:"load_seconds"`
	WeightBytes      int64   `json:"weight_bytes_in_memory"` // bytes of every weight variable as held
	PeakHeapBytes    int64   `json:"peak_go_heap_bytes"`     // sampled every 2 ms from load to the end of generation
	PromptTokens     int     `json:"prompt_tokens"`
	PrefillTokPerSec float64 `json:"prefill_tokens_per_second"` // prompt tokens / time to generate 1 token (compiled)
	GenerateTokens   int     `json:"generate_tokens"`
	GenerateSeconds  float64 `json:"generate_seconds"`
	DecodeTokPerSec  float64 `json:"decode_tokens_per_second"` // (N-1) / (time for N tokens - time for 1 token)
}

// quantizeReport is what `acdtcm quantize` prints and writes.
type quantizeReport struct {
	Input   string `json:"input"`
	Output  string `json:"output"`
	Machine string `json:"machine"`
	Backend string `json:"backend,omitempty"`
	// ComputeDType is the Qwen bench's weight and compute dtype (float32 or bfloat16).
	ComputeDType string               `json:"compute_dtype,omitempty"`
	Convert      *quant.ConvertReport `json:"conversion"`
	Grader       *graderBench         `json:"grader,omitempty"`
	Original     *modelStats          `json:"original,omitempty"`
	Quantized    *modelStats          `json:"quantized,omitempty"`
	// Logits of the prompt (all positions): max |Δ| and RMS Δ over the original's standard
	// deviation, and the share of positions whose argmax agrees.
	LogitMaxDiffOverStd float64 `json:"logit_max_abs_diff_over_std,omitempty"`
	LogitRMSDiffOverStd float64 `json:"logit_rms_diff_over_std,omitempty"`
	ArgmaxAgreement     float64 `json:"argmax_agreement,omitempty"`
}

func runQuantize(app *App, opts *quantizeOptions, in, out string) error {
	m, err := quant.ParseMethod(opts.Method)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	if st, err := os.Stat(in); err == nil && st.Mode().IsRegular() {
		return runQuantizeGrader(app, opts, m, in, out)
	}
	if _, err := os.Stat(filepath.Join(in, "config.json")); err != nil {
		return &ExitError{Code: 2, Err: fmt.Errorf("%s is not a checkpoint directory (no config.json): %w", in, err)}
	}
	if opts.BenchTokens < 2 {
		return &ExitError{Code: 2, Err: fmt.Errorf("--bench-tokens must be at least 2, got %d", opts.BenchTokens)}
	}
	dtype, err := qwen.ParseComputeDType(opts.ComputeDType)
	if err != nil {
		return &ExitError{Code: 2, Err: fmt.Errorf("--compute-dtype: %w", err)}
	}
	cfg, err := qwen.LoadConfig(in)
	if err != nil {
		return err
	}
	rep := &quantizeReport{Input: in, Output: out, Machine: fmt.Sprintf("%s/%s, %d CPUs, %s", runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.Version())}
	conv, err := quant.ConvertCheckpoint(in, out, quant.ConvertOptions{Method: m, Keep: opts.Keep, Options: quant.Options{NoDoubleQuant: opts.NoDoubleQuant}, Canonical: qwen.CanonicalName})
	if err != nil {
		return err
	}
	rep.Convert = conv
	app.Logger.Info("quantized", "method", m, "tensors", conv.QuantizedCount, "kept", conv.KeptCount, "out", out)
	if opts.Bench {
		rep.Backend = opts.Backend
		rep.ComputeDType = strings.ToLower(dtype.String())
		// After each model, log its numbers and write the report so far: a benchmark cut short
		// (a time limit on a GPU machine) still leaves what was measured.
		measured := func(which string, st *modelStats) {
			app.Logger.Info("benchmarked "+which, "load_s", st.LoadSeconds, "weights_bytes", st.WeightBytes,
				"prompt_tokens", st.PromptTokens, "prefill_tok_s", st.PrefillTokPerSec, "decode_tok_s", st.DecodeTokPerSec)
			if err := writeQuantizeReport(opts.Report, rep); err != nil {
				app.Logger.Warn("partial report", "err", err)
			}
		}
		if err := benchQwen(rep, cfg, opts, measured); err != nil {
			return fmt.Errorf("benchmark (the quantized checkpoint %s was written): %w", out, err)
		}
	}
	if err := printQuantizeReport(app.Out, rep, opts.Worst); err != nil {
		return err
	}
	return writeQuantizeReport(opts.Report, rep)
}

// writeQuantizeReport writes the JSON report atomically when path is set.
func writeQuantizeReport(path string, rep any) error {
	if path != "" {
		data, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return fmt.Errorf("encode report: %w", err)
		}
		if err := fsutil.WriteFileAtomic(path, append(data, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// heapSampler records the peak of the Go heap (live and unswept objects) while running.
type heapSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak uint64
}

func startHeapSampler() *heapSampler {
	runtime.GC()
	s := &heapSampler{stop: make(chan struct{})}
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	read := func() {
		metrics.Read(sample)
		if sample[0].Value.Kind() == metrics.KindUint64 {
			s.peak = max(s.peak, sample[0].Value.Uint64())
		}
	}
	read()
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		t := time.NewTicker(2 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-s.stop:
				read()
				return
			case <-t.C:
				read()
			}
		}
	}()
	return s
}

func (s *heapSampler) Stop() int64 {
	close(s.stop)
	s.done.Wait()
	return int64(s.peak)
}

// BenchPrompt is the text prompt of the quantize benchmark (a user turn; the chat template
// adds the default system turn and the generation prompt). scripts/gpu/hf_bench.py sends
// transformers the same one.
const BenchPrompt = "Describe the acne lesions on this patient's face and grade their severity."

// benchQwen loads the original (unless --bench-original=false) and the quantized checkpoint
// one after the other and measures each, calling measured after each; the logits of both on
// the same text prompt are compared.
func benchQwen(rep *quantizeReport, cfg *qwen.Config, opts *quantizeOptions, measured func(which string, st *modelStats)) error {
	prompt := qwen.Prompt{Messages: []tokenizer.Message{tokenizer.TextMessage("user", BenchPrompt)}}
	var logits [2][]float32
	for i, dir := range []string{rep.Input, rep.Output} {
		if i == 0 && !opts.BenchOriginal {
			continue
		}
		st, lg, err := benchOne(dir, prompt, opts)
		if err != nil {
			return err
		}
		logits[i] = lg
		which := "original"
		if i == 0 {
			rep.Original = st
		} else {
			rep.Quantized, which = st, "quantized"
		}
		if measured != nil {
			measured(which, st)
		}
		runtime.GC()
	}
	if logits[0] != nil {
		rep.LogitMaxDiffOverStd, rep.LogitRMSDiffOverStd, rep.ArgmaxAgreement = compareLogits(logits[0], logits[1], cfg.Text.VocabSize)
	}
	return nil
}

func benchOne(dir string, prompt qwen.Prompt, opts *quantizeOptions) (*modelStats, []float32, error) {
	backend, err := mlbackend.NewForInference(opts.Backend)
	if err != nil {
		return nil, nil, err
	}
	st := &modelStats{}
	sampler := startHeapSampler()
	start := time.Now()
	dtype, err := qwen.ParseComputeDType(opts.ComputeDType)
	if err != nil {
		sampler.Stop()
		return nil, nil, err
	}
	m, err := qwen.LoadWith(dir, backend, qwen.LoadOptions{ComputeDType: dtype})
	if err != nil {
		sampler.Stop()
		return nil, nil, err
	}
	st.LoadSeconds = time.Since(start).Seconds()
	for v := range m.Ctx.IterVariables() {
		st.WeightBytes += int64(v.Shape().Memory())
	}
	logits, ids, err := m.Forward([]qwen.Prompt{prompt})
	if err != nil {
		sampler.Stop()
		return nil, nil, err
	}
	st.PromptTokens = len(ids[0])
	// Generation of 1 and of N tokens, each compiled by a first call and then timed (fastest
	// of 3): the 1-token run is the prompt's prefill, the difference is N-1 cached decode
	// steps (0 when timing noise hides it, as on tiny models).
	timeGenerate := func(n int) (float64, int, error) {
		gc := m.Generation
		gc.StopTokens, gc.DoSample, gc.MaxNewTokens = nil, false, n
		if _, err := m.Generate([]qwen.Prompt{prompt}, gc); err != nil {
			return 0, 0, err
		}
		best, tokens := math.Inf(1), 0
		for rep := 0; rep < 3; rep++ { // fastest of 3: the machine may be shared
			start := time.Now()
			gens, err := m.Generate([]qwen.Prompt{prompt}, gc)
			if err != nil {
				return 0, 0, err
			}
			best, tokens = math.Min(best, time.Since(start).Seconds()), len(gens[0].TokenIDs)
		}
		return best, tokens, nil
	}
	t1, _, err := timeGenerate(1)
	if err != nil {
		sampler.Stop()
		return nil, nil, err
	}
	tn, n, err := timeGenerate(opts.BenchTokens)
	if err != nil {
		sampler.Stop()
		return nil, nil, err
	}
	st.PrefillTokPerSec = float64(st.PromptTokens) / t1
	st.GenerateTokens, st.GenerateSeconds = n, tn
	if tn > t1 && n > 1 {
		st.DecodeTokPerSec = float64(n-1) / (tn - t1)
	}
	st.PeakHeapBytes = sampler.Stop()
	return st, logits, nil
}

// compareLogits returns max |Δ| / std, RMS Δ / std and the argmax agreement over positions.
func compareLogits(f, q []float32, vocab int) (maxRel, rmsRel, agree float64) {
	if len(f) == 0 || len(f) != len(q) {
		return 0, 0, 0
	}
	var mean, sq, maxD, sqD float64
	for _, v := range f {
		mean += float64(v)
	}
	mean /= float64(len(f))
	for i, v := range f {
		sq += (float64(v) - mean) * (float64(v) - mean)
		d := float64(v - q[i])
		maxD = math.Max(maxD, math.Abs(d))
		sqD += d * d
	}
	std := math.Sqrt(sq / float64(len(f)))
	same, n := 0, len(f)/vocab
	for p := 0; p < n; p++ {
		if argmaxF32(f[p*vocab:(p+1)*vocab]) == argmaxF32(q[p*vocab:(p+1)*vocab]) {
			same++
		}
	}
	return maxD / std, math.Sqrt(sqD/float64(len(f))) / std, float64(same) / float64(n)
}

func argmaxF32(v []float32) int {
	best := 0
	for i := range v {
		if v[i] > v[best] {
			best = i
		}
	}
	return best
}

func printQuantizeReport(w io.Writer, rep *quantizeReport, worst int) error {
	c := rep.Convert
	fmt.Fprintf(w, "quantized %s -> %s with %s (%d tensors quantized, %d kept: %s)\n", rep.Input, rep.Output, c.Method, c.QuantizedCount, c.KeptCount, strings.Join(c.Keep, ","))
	tw := tablewriter.NewWriter(w)
	tw.Header("measure", "original", "quantized")
	rows := [][]string{
		{"weights on disk", humanBytes(c.BytesBefore), fmt.Sprintf("%s (%.1f%%)", humanBytes(c.BytesAfter), 100*float64(c.BytesAfter)/float64(max(c.BytesBefore, 1)))},
		{"weight error (quantized tensors)", "", fmt.Sprintf("rel RMS %.4f, SNR %.1f dB; worst %s %.4f", c.OverallRelRMS, c.OverallSNRdB, c.WorstTensor, c.WorstRelRMS)},
	}
	if o, q := rep.Original, rep.Quantized; o == nil && q != nil {
		rows = append(rows,
			[]string{"load time", "(not measured)", fmt.Sprintf("%.2f s", q.LoadSeconds)},
			[]string{"weights in memory", "", humanBytes(q.WeightBytes)},
			[]string{"peak Go heap", "", humanBytes(q.PeakHeapBytes)},
			[]string{fmt.Sprintf("prefill (%d tokens)", q.PromptTokens), "", fmt.Sprintf("%.1f tok/s", q.PrefillTokPerSec)},
			[]string{fmt.Sprintf("decode (%d tokens)", q.GenerateTokens), "", fmt.Sprintf("%.1f tok/s", q.DecodeTokPerSec)},
		)
	} else if o != nil && q != nil {
		rows = append(rows,
			[]string{"load time", fmt.Sprintf("%.2f s", o.LoadSeconds), fmt.Sprintf("%.2f s", q.LoadSeconds)},
			[]string{"weights in memory", humanBytes(o.WeightBytes), humanBytes(q.WeightBytes)},
			[]string{"peak Go heap", humanBytes(o.PeakHeapBytes), humanBytes(q.PeakHeapBytes)},
			[]string{fmt.Sprintf("prefill (%d tokens)", o.PromptTokens), fmt.Sprintf("%.1f tok/s", o.PrefillTokPerSec), fmt.Sprintf("%.1f tok/s", q.PrefillTokPerSec)},
			[]string{fmt.Sprintf("decode (%d tokens)", o.GenerateTokens), fmt.Sprintf("%.1f tok/s", o.DecodeTokPerSec), fmt.Sprintf("%.1f tok/s", q.DecodeTokPerSec)},
			[]string{"logits vs original", "", fmt.Sprintf("max|Δ|/std %.4f, RMS Δ/std %.4f, argmax agreement %.1f%%", rep.LogitMaxDiffOverStd, rep.LogitRMSDiffOverStd, 100*rep.ArgmaxAgreement)},
		)
	}
	for _, r := range rows {
		tw.Append(r)
	}
	if err := tw.Render(); err != nil {
		return err
	}
	var qs []quant.TensorReport
	for _, t := range c.Tensors {
		if t.RelRMS != nil {
			qs = append(qs, t)
		}
	}
	sort.SliceStable(qs, func(i, j int) bool { return *qs[i].RelRMS > *qs[j].RelRMS })
	if worst > 0 && len(qs) > 0 {
		tt := tablewriter.NewWriter(w)
		tt.Header("tensor", "shape", "bytes", "rel_rms", "snr_db")
		for _, t := range qs[:min(worst, len(qs))] {
			snr := "exact"
			if t.SNRdB != nil {
				snr = fmt.Sprintf("%.1f", *t.SNRdB)
			}
			tt.Append([]string{t.Name, fmt.Sprint(t.Shape), fmt.Sprintf("%s -> %s", humanBytes(t.BytesBefore), humanBytes(t.BytesAfter)), fmt.Sprintf("%.4f", *t.RelRMS), snr})
		}
		fmt.Fprintf(w, "worst %d of %d quantized tensors:\n", min(worst, len(qs)), len(qs))
		return tt.Render()
	}
	return nil
}
