package cli

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"image"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"

	"github.com/acdtcm/acdtcm/internal/imageio"
	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/knowledge"
	"github.com/acdtcm/acdtcm/internal/models"
	"github.com/acdtcm/acdtcm/internal/remote"
	"github.com/acdtcm/acdtcm/internal/report"
	"github.com/acdtcm/acdtcm/internal/result"
)

func init() { register(newDiagnoseCmd) }

type diagnoseOptions struct {
	Inputs  []string
	Model   string
	Adapter string
	Backend string
	// ComputeDType is a Qwen model's weight and compute dtype (--compute-dtype).
	ComputeDType string
	Format       string
	Output       string
	Lang         string
	BatchSize    int
	Workers      int
	Description  string
	Age          int
	Gender       string
	Knowledge    string
	FailOnError  bool
	Progress     bool
	Shard        string
	Resume       bool
	RetryFailed  bool
	MaxPixels    int64
	Remote       remote.Flags
}

// modelFlagKinds lists what --model of diagnose, eval and serve accepts.
const modelFlagKinds = "builtin, a grader checkpoint file, a Qwen2.5-VL checkpoint directory, or a quantized grader or Qwen2.5-VL directory written by acdtcm quantize"

func newDiagnoseCmd(app *App) *cobra.Command {
	opts := &diagnoseOptions{}
	cmd := &cobra.Command{
		Use:   "diagnose [PHOTO|FOLDER|GLOB|-]...",
		Short: "Grade acne in photos and add treatment options and TCM syndrome differentiation",
		Long: `Diagnoses photos with the built-in grader (default), another grader checkpoint, or a
Qwen2.5-VL checkpoint (+ LoRA adapter), a quantized copy of either written by acdtcm
quantize, or a model on an OpenAI-compatible server such as
vLLM (--backend openai --endpoint URL --model NAME, API key in $OPENAI_API_KEY; see
docs/vllm.md). Inputs are files, folders (recursive), glob patterns and "-" (one path per
line on stdin). Photos are decoded and preprocessed in parallel and
batched through the model; results stream out in input order as a table, JSON, JSON Lines,
CSV or a self-contained HTML report. A photo that cannot be read is reported and skipped.
The exit status is non-zero only when nothing could be diagnosed, or with --fail-on-error.

--shard i/n keeps the inputs whose path hashes to shard i of n (0-based), so n workers (e.g.
a Kubernetes Indexed Job) split a folder without coordination; --resume with --output in
jsonl or csv skips photos already in that file and appends the rest.

Results are decision support, not a diagnosis or a prescription.`,
		Example: `  acdtcm diagnose testdata/samples
  acdtcm diagnose photos/ --format html --output report.html --lang zh
  find /data -name '*.jpg' | acdtcm diagnose - --format jsonl --output results.jsonl --resume
  acdtcm diagnose photo.jpg --description "口干 便秘, oily skin" --age 24 --gender female
  acdtcm diagnose --model models/tiny photo.jpg   # a Qwen2.5-VL checkpoint directory
  acdtcm diagnose --backend openai --endpoint http://vllm:8000/v1 --model acne photos/   # key in $OPENAI_API_KEY`,
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Inputs = args
			opts.Backend = backendSpec(app, cmd, opts.Backend)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt)
			defer stop()
			return runDiagnose(ctx, app, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Model, "model", models.Builtin, "model: "+modelFlagKinds)
	f.StringVar(&opts.Adapter, "adapter", "", "PEFT LoRA adapter directory for a Qwen2.5-VL model")
	f.StringVar(&opts.ComputeDType, "compute-dtype", "float32", "with --model DIR: "+computeDTypeUsage)
	f.StringVarP(&opts.Format, "format", "f", "table", "output format: "+strings.Join(report.Formats, ", "))
	f.StringVarP(&opts.Output, "output", "o", "", "write results to this file (default: stdout)")
	f.StringVar(&opts.Lang, "lang", "en", "language of the report: en or zh")
	f.IntVar(&opts.BatchSize, "batch-size", 4, "photos per model call (with the built-in grader on its native CPU engine, 4 peaks near 65 MB for any number of photos; larger batches are not faster there)")
	f.IntVar(&opts.Workers, "workers", 0, "decoding workers (0: one per CPU)")
	f.StringVar(&opts.Description, "description", "", "symptom description for the TCM analysis (Chinese or English)")
	f.IntVar(&opts.Age, "age", 0, "patient age in years (0: unknown)")
	f.StringVar(&opts.Gender, "gender", "", "patient gender: female or male")
	f.StringVar(&opts.Knowledge, "knowledge", "", "your own knowledge-base YAML merged over the built-in one")
	f.BoolVar(&opts.FailOnError, "fail-on-error", false, "exit 1 when any photo could not be diagnosed")
	f.BoolVar(&opts.Progress, "progress", false, "show a progress bar on stderr (default: when stderr is a terminal and output is not)")
	f.StringVar(&opts.Shard, "shard", "", "process only shard i of n of the inputs, as i/n (0-based)")
	f.BoolVar(&opts.Resume, "resume", false, "with --output (jsonl or csv): skip photos already in it and append")
	f.BoolVar(&opts.RetryFailed, "retry-failed", false, "with --resume: photos recorded with an error are tried again (a new record is appended; eval uses the later successful one)")
	f.Int64Var(&opts.MaxPixels, "max-pixels", imageio.DefaultMaxPixels, "refuse photos with more pixels (checked from the header)")
	addBackendFlag(cmd, &opts.Backend)
	remote.AddFlags(f, &opts.Remote)
	return cmd
}

// parseShard reads "i/n".
func parseShard(s string) (i, n int, err error) {
	if s == "" {
		return 0, 1, nil
	}
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil || n <= 0 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("--shard %q: want i/n with 0 <= i < n", s)
	}
	return i, n, nil
}

// InShard reports whether path belongs to shard i of n (FNV-1a hash of the path).
func InShard(path string, i, n int) bool {
	if n <= 1 {
		return true
	}
	h := fnv.New64a()
	h.Write([]byte(path))
	return int(h.Sum64()%uint64(n)) == i
}

// trimPartialLine cuts a file back to its last complete line: a run killed mid-write may
// leave half a record, which the resumed run rewrites in full.
func trimPartialLine(path string) error {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) || (err == nil && (len(data) == 0 || data[len(data)-1] == '\n')) {
		return nil
	} else if err != nil {
		return fmt.Errorf("--resume: %w", err)
	}
	keep := strings.LastIndexByte(string(data), '\n') + 1
	if err := os.Truncate(path, int64(keep)); err != nil {
		return fmt.Errorf("--resume: trim the partial last line of %s: %w", path, err)
	}
	return nil
}

// donePhotos reads the photos already present in a jsonl or csv output file and how many
// lines it holds (records, plus the CSV header). With retryFailed, photos whose records all carry an error are not done.
func donePhotos(path, format string, retryFailed bool) (done map[string]bool, records int, err error) {
	done = map[string]bool{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return done, 0, nil
	} else if err != nil {
		return nil, 0, fmt.Errorf("--resume: %w", err)
	}
	defer f.Close()
	mark := func(image, errText string) {
		records++
		if image != "" && (errText == "" || !retryFailed) {
			done[image] = true
		}
	}
	switch format {
	case "jsonl":
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 64<<20)
		for sc.Scan() {
			var r struct {
				Image string `json:"image"`
				Error string `json:"error"`
			}
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Image != "" {
				mark(r.Image, r.Error) // a line cut by a crash does not parse and is redone
			}
		}
		return done, records, sc.Err()
	case "csv":
		rows, err := csv.NewReader(f).ReadAll()
		if err != nil && len(rows) == 0 {
			return nil, 0, fmt.Errorf("--resume: read %s: %w", path, err)
		}
		errCol := -1
		if len(rows) > 0 {
			if want := report.CSVColumns(); !slices.Equal(rows[0], want) {
				return nil, 0, fmt.Errorf("--resume: %s has the columns %s, but this acdtcm writes %s (an older version wrote it?): write to a new file",
					path, strings.Join(rows[0], ","), strings.Join(want, ","))
			}
			errCol = slices.Index(rows[0], "error")
		}
		for i, row := range rows {
			if i > 0 && len(row) > 0 {
				errText := ""
				if errCol >= 0 && errCol < len(row) {
					errText = row[errCol]
				}
				mark(row[0], errText)
			}
		}
		return done, len(rows), nil // the header counts: it must not be written twice
	}
	return nil, 0, fmt.Errorf("--resume needs --format jsonl or csv (append-only formats)")
}

func runDiagnose(ctx context.Context, app *App, opts *diagnoseOptions) error {
	if len(opts.Inputs) == 0 {
		return &ExitError{Code: 2, Err: errors.New("no inputs: give photos, folders, globs or - for a list on stdin")}
	}
	shardI, shardN, err := parseShard(opts.Shard)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	if opts.Resume && opts.Output == "" {
		return &ExitError{Code: 2, Err: errors.New("--resume needs --output")}
	}
	if opts.RetryFailed && !opts.Resume {
		return &ExitError{Code: 2, Err: errors.New("--retry-failed needs --resume")}
	}
	kb, err := openKnowledge(opts.Knowledge)
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	model, err := models.Open(models.Options{Model: opts.Model, Adapter: opts.Adapter, Backend: opts.Backend, ComputeDType: opts.ComputeDType, Remote: opts.Remote})
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}
	info := model.Info()
	app.Logger.Debug("model loaded", "name", info.Name, "version", info.Version, "backend", info.Backend)

	// Output: stdout, an append-only file when resuming, or an atomic temp file + rename.
	var out io.Writer = app.Out
	var done map[string]bool
	var prevRecords int
	var commit func() error
	if opts.Output != "" {
		if opts.Resume {
			if err := trimPartialLine(opts.Output); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			if done, prevRecords, err = donePhotos(opts.Output, opts.Format, opts.RetryFailed); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			f, err := os.OpenFile(opts.Output, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("open output: %w", err)}
			}
			defer f.Close()
			out, commit = f, f.Sync
		} else {
			dir := filepath.Dir(opts.Output)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return &ExitError{Code: 2, Err: err}
			}
			tmp, err := os.CreateTemp(dir, "."+filepath.Base(opts.Output)+".tmp-*")
			if err != nil {
				return &ExitError{Code: 2, Err: fmt.Errorf("create output: %w", err)}
			}
			defer os.Remove(tmp.Name())
			defer tmp.Close()
			out = tmp
			commit = func() error {
				if err := tmp.Sync(); err != nil {
					return err
				}
				if err := tmp.Close(); err != nil {
					return err
				}
				os.Chmod(tmp.Name(), 0o644)
				return os.Rename(tmp.Name(), opts.Output)
			}
		}
	}
	bw := bufio.NewWriterSize(out, 64<<10)
	var sink io.Writer = bw
	if opts.Resume && opts.Format == "csv" && prevRecords > 0 {
		sink = &dropFirstLine{w: bw} // the file already has the CSV header
	}
	writer, err := report.New(opts.Format, sink, report.Options{Lang: opts.Lang, Generated: time.Now()})
	if err != nil {
		return &ExitError{Code: 2, Err: err}
	}

	// Inputs: expanded lazily, filtered by shard and by what the output already has.
	items := make(chan infer.Item, 64)
	expanded := infer.ExpandInputs(ctx, opts.Inputs, app.In)
	skipped := 0
	go func() {
		defer close(items)
		for it := range expanded {
			if it.Err == nil && (!InShard(it.Path, shardI, shardN) || done[it.Path]) {
				if done[it.Path] {
					skipped++
				}
				continue
			}
			select {
			case items <- it:
			case <-ctx.Done():
				return
			}
		}
	}()

	var bar *progressbar.ProgressBar
	if opts.Progress || (isTerminal(app.Err) && opts.Output != "") {
		bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(app.Err), progressbar.OptionSetDescription("diagnosing"),
			progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("photos"), progressbar.OptionClearOnFinish())
	}
	lim := imageio.Limits{MaxPixels: opts.MaxPixels, MaxBytes: imageio.DefaultMaxBytes}
	var age *int
	if opts.Age > 0 {
		age = &opts.Age
	}
	runOpts := infer.Options{
		BatchSize: opts.BatchSize,
		Workers:   opts.Workers,
		Decode: func(path string) (image.Image, error) {
			img, _, err := imageio.DecodeFile(path, lim)
			return img, err
		},
		Annotate: func(res *result.DiagnosisResult, pred infer.Prediction) {
			kb.Apply(res, knowledge.Input{Grade: res.Severity, Probabilities: res.Probabilities, Lesions: pred.LesionCounts,
				Age: age, Gender: opts.Gender, Symptoms: opts.Description})
		},
	}
	if err := writer.Begin(); err != nil {
		return err
	}
	sum, runErr := infer.Run(ctx, model, items, runOpts, func(res *result.DiagnosisResult) error {
		if res.Error != "" {
			app.Logger.Warn("skipped photo", "photo", res.Image, "error", res.Error)
		}
		if bar != nil {
			bar.Add(1)
		}
		if err := writer.Write(res); err != nil {
			return err
		}
		if opts.Resume {
			return bw.Flush() // each line reaches the file before the next photo
		}
		return nil
	})
	if bar != nil {
		bar.Finish()
	}
	if err := writer.Close(); err != nil && runErr == nil {
		runErr = err
	}
	if err := bw.Flush(); err != nil && runErr == nil {
		runErr = err
	}
	if runErr != nil {
		return runErr
	}
	if commit != nil {
		if err := commit(); err != nil {
			return fmt.Errorf("write %s: %w", opts.Output, err)
		}
	}
	app.Logger.Info("diagnose finished", "diagnosed", sum.Diagnosed, "failed", sum.Failed, "already_done", skipped,
		"seconds", fmt.Sprintf("%.2f", sum.Elapsed.Seconds()), "model", info.Name+" "+info.Version)
	switch {
	case sum.Diagnosed == 0 && sum.Failed > 0:
		return &ExitError{Code: 1, Err: fmt.Errorf("no photo could be diagnosed (%d failed)", sum.Failed)}
	case sum.Diagnosed == 0 && skipped == 0:
		return &ExitError{Code: 1, Err: errors.New("no photos found in the inputs")}
	case opts.FailOnError && sum.Failed > 0:
		return &ExitError{Code: 1, Err: fmt.Errorf("%d of %d photos could not be diagnosed", sum.Failed, sum.Failed+sum.Diagnosed)}
	}
	return nil
}

func openKnowledge(path string) (*knowledge.KB, error) {
	if path == "" {
		return knowledge.Load()
	}
	return knowledge.Open(path)
}

// dropFirstLine discards everything up to and including the first newline written to it.
type dropFirstLine struct {
	w       io.Writer
	dropped bool
}

func (d *dropFirstLine) Write(p []byte) (int, error) {
	if d.dropped {
		return d.w.Write(p)
	}
	i := strings.IndexByte(string(p), '\n')
	if i < 0 {
		return len(p), nil
	}
	d.dropped = true
	if _, err := d.w.Write(p[i+1:]); err != nil {
		return 0, err
	}
	return len(p), nil
}
