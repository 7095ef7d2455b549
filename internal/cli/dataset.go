package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
	"github.com/spf13/cobra"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// datasetChildren holds the constructors of the `dataset` subcommands. Command files append
// to it from init (see registerDataset); newDatasetCmd adds them all when the tree is built.
var datasetChildren []func(*App) *cobra.Command

// registerDataset adds a `dataset` subcommand constructor; call it from init.
func registerDataset(factory func(*App) *cobra.Command) {
	datasetChildren = append(datasetChildren, factory)
}

func init() {
	register(newDatasetCmd)
	registerDataset(newDatasetImportCmd)
	registerDataset(newDatasetExportCmd)
	registerDataset(newDatasetSplitCmd)
	registerDataset(newDatasetStatsCmd)
}

func newDatasetCmd(app *App) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dataset",
		Short: "Import, export, split, inspect and validate datasets (JSON Lines manifests)",
		Long: `A dataset is a manifest.jsonl: one JSON record per image (grade, lesions, TCM syndrome,
split, source), image paths relative to the manifest. Sources are never modified: every
command writes a new manifest, atomically.`,
		Example: `  acdtcm dataset import --format acne04-voc ../shared/datasets/acne04-detection --out data/acne04
  acdtcm dataset split data/acne04 --ratios 0.8,0.1,0.1 --seed 42 --out data/acne04-split
  acdtcm dataset stats data/acne04-split
  acdtcm dataset export --format sharegpt data/acne04-split --split train --out data/train.json`,
	}
	for _, f := range datasetChildren {
		cmd.AddCommand(f(app))
	}
	return cmd
}

// ---- import ----

type datasetImportOptions struct {
	Format   string
	Src      string
	Out      string
	Copy     bool
	Scale    string
	MaxShown int
}

func newDatasetImportCmd(app *App) *cobra.Command {
	opts := &datasetImportOptions{}
	cmd := &cobra.Command{
		Use:   "import --format FORMAT SRC --out DIR",
		Short: "Import a dataset into DIR/manifest.jsonl without modifying the source",
		Long: `Import reads SRC and writes DIR/manifest.jsonl and DIR/import-report.json. Formats:

  acne04-voc   ACNE04 Roboflow VOC export: SRC/train, SRC/valid (or one such folder) of
               levle<G>_<ID>_jpg.rf.<hash>.jpg + Pascal VOC XML; G = Hayashi grade,
               source_id = G_ID, boxes mapped to comedone/papule/pustule/nodule (in this
               export each photo's boxes carry the one type its grade dictates: see
               dataset validate's type_grade warning).
  imagefolder  SRC/<class>/*.jpg or SRC/<split>/<class>/*.jpg; class = grade number or
               name (mild, moderate, ...) on --scale.
  json         one annotation JSON (the manifest record schema) per image, beside the image
               or in a separate folder; SRC is a folder or one JSON file.
  sharegpt     LLaMA-Factory / ms-swift multimodal JSON or JSONL (messages + images); the grade,
               lesion counts and TCM syndrome are parsed from the assistant answer.

Images are referenced by paths relative to DIR unless --copy copies them into DIR/images.
Inputs that cannot be imported are reported and skipped; the command fails only when
nothing could be imported.`,
		Example: `  acdtcm dataset import --format acne04-voc ../shared/datasets/acne04-detection --out data/acne04
  acdtcm dataset import --format imagefolder photos/ --scale clinical4 --out data/photos --copy
  acdtcm dataset import --format sharegpt data/train.json --out data/from-sharegpt`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Src = args[0]
			return runDatasetImport(cmd.Context(), app, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Format, "format", "", "source format: "+strings.Join(dataset.ImportFormats, ", "))
	f.StringVar(&opts.Out, "out", "", "output dataset directory (receives manifest.jsonl)")
	f.BoolVar(&opts.Copy, "copy", false, "copy images into OUT/images instead of referencing them")
	f.StringVar(&opts.Scale, "scale", string(severity.Hayashi), "severity scale of grades given as numbers or names (imagefolder, sharegpt): hayashi, clinical4, cn2019")
	f.IntVar(&opts.MaxShown, "max-skipped-shown", 20, "skipped inputs listed in the summary (all are in import-report.json)")
	_ = cmd.MarkFlagRequired("format")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runDatasetImport(_ context.Context, app *App, opts *datasetImportOptions) error {
	scale, err := severity.ParseScale(opts.Scale)
	if err != nil {
		return fmt.Errorf("--scale: %w", err)
	}
	start := time.Now()
	res, err := dataset.Import(dataset.ImportOptions{Format: opts.Format, Src: opts.Src, OutDir: opts.Out, Copy: opts.Copy, Scale: scale})
	if res != nil {
		printSkips(app.Err, res.Skipped, opts.MaxShown)
	}
	if err != nil {
		if errors.Is(err, dataset.ErrNothingImported) {
			return &ExitError{Code: 1, Err: err}
		}
		return err
	}
	w := app.Out
	fmt.Fprintf(w, "imported %d records from %s (%s) into %s in %s\n", res.Imported, opts.Src, opts.Format, res.Manifest, time.Since(start).Round(time.Millisecond))
	fmt.Fprintf(w, "per split: %s\n", formatCounts(res.PerSplit))
	fmt.Fprintf(w, "per grade: %s\n", formatCounts(res.PerGrade))
	if res.Copied > 0 {
		fmt.Fprintf(w, "copied %d images into %s\n", res.Copied, filepath.Join(opts.Out, "images"))
	}
	if len(res.Warnings) > 0 {
		printSkips(app.Err, res.Warnings, opts.MaxShown)
		fmt.Fprintf(w, "%d warnings on imported records (see %s)\n", len(res.Warnings), dataset.ReportName)
	}
	if len(res.Renamed) > 0 {
		fmt.Fprintf(w, "renamed %d duplicate image IDs (see %s)\n", len(res.Renamed), dataset.ReportName)
	}
	fmt.Fprintf(w, "skipped %d inputs%s\n", len(res.Skipped), skipReasons(res.Skipped))
	return nil
}

// printSkips lists up to max skipped inputs on w.
func printSkips(w io.Writer, skips []dataset.Skip, max int) {
	for i, s := range skips {
		if i == max {
			fmt.Fprintf(w, "... and %d more\n", len(skips)-max)
			break
		}
		fmt.Fprintf(w, "%s %s\n", skipVerb(s), s)
	}
}

func skipVerb(s dataset.Skip) string {
	if s.Kind == "warning" {
		return "warning:"
	}
	return "skipped"
}

// skipReasons counts skipped inputs by kind for the summary line.
func skipReasons(skips []dataset.Skip) string {
	if len(skips) == 0 {
		return ""
	}
	counts := map[string]int{}
	for _, s := range skips {
		counts[s.Kind]++
	}
	return ": " + formatCounts(counts)
}

func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		name := k
		if name == "" {
			name = "(none)"
		}
		parts[i] = fmt.Sprintf("%s %d", name, m[k])
	}
	return strings.Join(parts, ", ")
}

// ---- export ----

type datasetExportOptions struct {
	Format   string
	Manifest string
	Out      string
	Absolute bool
	Split    string
	Scale    string
	System   string
	Info     string
}

func newDatasetExportCmd(app *App) *cobra.Command {
	opts := &datasetExportOptions{}
	cmd := &cobra.Command{
		Use:   "export --format sharegpt MANIFEST --out FILE.json",
		Short: "Export a manifest as multimodal training conversations (LLaMA-Factory, ms-swift)",
		Long: `Export writes one conversation per graded record: a system prompt, the user turn
"<image>" + a grading question, and the assistant answer (grade with its label on its scale,
lesion counts by type, TCM syndrome and constitution when present), with the image path.

Image paths are relative to the output file's folder by default (LLaMA-Factory resolves
them against its dataset_dir when the file lives there); --absolute writes absolute paths
(safest for ms-swift, which resolves relative paths against the working directory).
--dataset-info NAME adds the LLaMA-Factory entry for the file to dataset_info.json beside it
("formatting": "sharegpt", "columns": {"messages", "images"}, role/content tags).`,
		Example: `  acdtcm dataset export --format sharegpt data/acne04-split --split train --out data/train.json
  acdtcm dataset export --format sharegpt data/acne04/manifest.jsonl --absolute --scale cn2019 --out /tmp/acne04-cn.json
  acdtcm dataset export --format sharegpt data/acne04-split --split valid --dataset-info acne04_valid --out LLaMA-Factory/data/acne04_valid.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Manifest = args[0]
			return runDatasetExport(cmd.Context(), app, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Format, "format", dataset.FormatShareGPT, "export format (sharegpt)")
	f.StringVar(&opts.Out, "out", "", "output JSON file")
	f.BoolVar(&opts.Absolute, "absolute", false, "write absolute image paths instead of paths relative to the output file")
	f.StringVar(&opts.Split, "split", "", "export only records of this split")
	f.StringVar(&opts.Scale, "scale", "", "convert grades to this scale (hayashi, clinical4, cn2019); default: each record's own")
	f.StringVar(&opts.System, "system", "", "system prompt (default: a dermatologist/TCM prompt)")
	f.StringVar(&opts.Info, "dataset-info", "", "also register the file under this name in dataset_info.json beside it (LLaMA-Factory)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runDatasetExport(_ context.Context, app *App, opts *datasetExportOptions) error {
	if opts.Format != dataset.FormatShareGPT {
		return fmt.Errorf("--format %q: only sharegpt can be exported", opts.Format)
	}
	var scale severity.Scale
	if opts.Scale != "" {
		s, err := severity.ParseScale(opts.Scale)
		if err != nil {
			return fmt.Errorf("--scale: %w", err)
		}
		scale = s
	}
	m, err := dataset.ReadManifest(opts.Manifest)
	if err != nil {
		return err
	}
	samples, skips, err := dataset.ExportShareGPT(m, dataset.ExportOptions{OutFile: opts.Out, AbsolutePath: opts.Absolute, Split: opts.Split, Scale: scale, System: opts.System})
	if err != nil {
		return err
	}
	printSkips(app.Err, skips, 20)
	if len(samples) == 0 {
		return &ExitError{Code: 1, Err: fmt.Errorf("export %s: no record to export (%d skipped)", m.Path, len(skips))}
	}
	if err := dataset.WriteShareGPT(opts.Out, samples); err != nil {
		return err
	}
	fmt.Fprintf(app.Out, "exported %d conversations from %s to %s (skipped %d)\n", len(samples), m.Path, opts.Out, len(skips))
	if opts.Info != "" {
		info := filepath.Join(filepath.Dir(opts.Out), dataset.DatasetInfoName)
		if err := dataset.MergeDatasetInfo(info, opts.Info, filepath.Base(opts.Out)); err != nil {
			return err
		}
		fmt.Fprintf(app.Out, "registered %q in %s\n", opts.Info, info)
	}
	return nil
}

// ---- split ----

type datasetSplitOptions struct {
	Manifest string
	Out      string
	Ratios   []float64
	Names    []string
	Seed     uint64
	PerSplit bool
	Only     string
}

func newDatasetSplitCmd(app *App) *cobra.Command {
	opts := &datasetSplitOptions{}
	cmd := &cobra.Command{
		Use:   "split MANIFEST --out DIR",
		Short: "Assign train/valid/test splits, stratified by grade and grouped by source",
		Long: `Split writes DIR/manifest.jsonl with every record's split set (replacing any existing
split). The assignment is deterministic for a seed, stratified by grade (each grade is split
in the given ratios) and grouped by source_id: all records of one source (e.g. the three
augmented versions of an ACNE04 photo) land in the same split. Records without source_id
are their own group. Image paths are rewritten relative to DIR. --only SPLIT re-splits just
that split's records (e.g. ACNE04's train into train/dev, keeping its valid split as is).`,
		Example: `  acdtcm dataset split data/acne04 --ratios 0.8,0.1,0.1 --seed 42 --out data/acne04-split
  acdtcm dataset split data/acne04/manifest.jsonl --ratios 0.9,0.1 --names train,valid --per-split --out data/cv
  acdtcm dataset split data/acne04 --only train --ratios 0.85,0.15 --names train,dev --out data/acne04-dev`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Manifest = args[0]
			return runDatasetSplit(cmd.Context(), app, opts)
		},
	}
	f := cmd.Flags()
	f.StringVar(&opts.Out, "out", "", "output dataset directory")
	f.Float64SliceVar(&opts.Ratios, "ratios", []float64{0.8, 0.1, 0.1}, "split ratios, summing to 1")
	f.StringSliceVar(&opts.Names, "names", nil, "split names (default train,valid[,test])")
	f.Uint64Var(&opts.Seed, "seed", 42, "random seed")
	f.BoolVar(&opts.PerSplit, "per-split", false, "also write DIR/<split>.jsonl for each split")
	f.StringVar(&opts.Only, "only", "", "re-split only the records of this split, keeping the others")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runDatasetSplit(_ context.Context, app *App, opts *datasetSplitOptions) error {
	names := opts.Names
	if len(names) == 0 {
		n, err := dataset.DefaultSplitNames(len(opts.Ratios))
		if err != nil {
			return fmt.Errorf("--names: %w", err)
		}
		names = n
	}
	m, err := dataset.ReadManifest(opts.Manifest)
	if err != nil {
		return err
	}
	recs, err := dataset.Split(m.Records, dataset.SplitOptions{Names: names, Ratios: opts.Ratios, Seed: opts.Seed, Only: opts.Only})
	if err != nil {
		return fmt.Errorf("split %s: %w", m.Path, err)
	}
	recs, err = dataset.RebaseImages(recs, m.Dir, opts.Out)
	if err != nil {
		return err
	}
	out := filepath.Join(opts.Out, dataset.ManifestName)
	if abs, _ := filepath.Abs(out); abs == mustAbs(m.Path) {
		return fmt.Errorf("--out %s would overwrite the input manifest %s", opts.Out, m.Path)
	}
	if err := dataset.WriteManifest(out, recs); err != nil {
		return err
	}
	if opts.PerSplit {
		all, _ := dataset.SummaryCounts(recs)
		for name := range all {
			if name == "" {
				continue
			}
			if strings.ContainsAny(name, `/\`) || name == "." || name == ".." {
				return fmt.Errorf("--per-split: split name %q cannot be a file name", name)
			}
			var part []dataset.Record
			for _, r := range recs {
				if r.Split == name {
					part = append(part, r)
				}
			}
			if err := dataset.WriteManifest(filepath.Join(opts.Out, name+".jsonl"), part); err != nil {
				return err
			}
		}
	}
	perSplit, _ := dataset.SummaryCounts(recs)
	fmt.Fprintf(app.Out, "split %d records of %s into %s (seed %d): %s\n", len(recs), m.Path, out, opts.Seed, formatCounts(perSplit))
	return nil
}

func mustAbs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

// ---- stats ----

type datasetStatsOptions struct {
	Manifest string
	JSON     bool
}

func newDatasetStatsCmd(app *App) *cobra.Command {
	opts := &datasetStatsOptions{}
	cmd := &cobra.Command{
		Use:   "stats MANIFEST",
		Short: "Show counts per split and grade, lesion counts, image sizes and sources",
		Example: `  acdtcm dataset stats data/acne04
  acdtcm dataset stats data/acne04-split/manifest.jsonl --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Manifest = args[0]
			return runDatasetStats(cmd.Context(), app, opts)
		},
	}
	cmd.Flags().BoolVar(&opts.JSON, "json", false, "print the statistics as JSON")
	return cmd
}

func runDatasetStats(_ context.Context, app *App, opts *datasetStatsOptions) error {
	m, err := dataset.ReadManifest(opts.Manifest)
	if err != nil {
		return err
	}
	st := dataset.ComputeStats(m.Records)
	if opts.JSON {
		enc := json.NewEncoder(app.Out)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(st)
	}
	return renderStats(app.Out, m.Path, st)
}

func newStatsTable(w io.Writer) *tablewriter.Table {
	return tablewriter.NewTable(w, tablewriter.WithConfig(tablewriter.Config{
		Header: tw.CellConfig{Formatting: tw.CellFormatting{AutoFormat: tw.Off}, Alignment: tw.CellAlignment{Global: tw.AlignLeft}},
		Row:    tw.CellConfig{Alignment: tw.CellAlignment{Global: tw.AlignRight, PerColumn: []tw.Align{tw.AlignLeft}}},
		Footer: tw.CellConfig{Alignment: tw.CellAlignment{Global: tw.AlignRight, PerColumn: []tw.Align{tw.AlignLeft}}},
	}))
}

func splitName(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// renderStats prints the statistics as tables.
func renderStats(w io.Writer, path string, st *dataset.Stats) error {
	fmt.Fprintf(w, "%s: %d records\n\nRecords per split and grade\n", path, st.Records)
	t := newStatsTable(w)
	t.Header(append(append([]string{"split"}, st.Grades...), "total"))
	colTotals := make([]int, len(st.Grades))
	for _, s := range st.Splits {
		row := []string{splitName(s)}
		total := 0
		for i, g := range st.Grades {
			n := st.Counts[s][g]
			row = append(row, fmt.Sprint(n))
			total += n
			colTotals[i] += n
		}
		if err := t.Append(append(row, fmt.Sprint(total))); err != nil {
			return err
		}
	}
	foot := []string{"total"}
	for _, n := range colTotals {
		foot = append(foot, fmt.Sprint(n))
	}
	t.Footer(append(foot, fmt.Sprint(st.Records)))
	if err := t.Render(); err != nil {
		return fmt.Errorf("render stats: %w", err)
	}
	if len(st.Lesions) > 0 {
		fmt.Fprintln(w, "\nLesions per image")
		t = newStatsTable(w)
		t.Header("type", "images", "sum", "mean", "median", "max")
		for _, l := range st.Lesions {
			if err := t.Append(l.Type, fmt.Sprint(l.Images), fmt.Sprint(l.Sum), fmt.Sprintf("%.2f", l.Mean), fmt.Sprintf("%.1f", l.Median), fmt.Sprint(l.Max)); err != nil {
				return err
			}
		}
		if err := t.Render(); err != nil {
			return fmt.Errorf("render stats: %w", err)
		}
	}
	fmt.Fprintln(w, "\nImage sizes")
	t = newStatsTable(w)
	t.Header("size", "records")
	const maxSizes = 10
	for i, s := range st.Sizes {
		if i == maxSizes {
			rest := 0
			for _, r := range st.Sizes[maxSizes:] {
				rest += r.Count
			}
			if err := t.Append(fmt.Sprintf("%d other sizes", len(st.Sizes)-maxSizes), fmt.Sprint(rest)); err != nil {
				return err
			}
			break
		}
		if err := t.Append(s.Size, fmt.Sprint(s.Count)); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("render stats: %w", err)
	}
	fmt.Fprintln(w, "\nSources per split")
	t = newStatsTable(w)
	t.Header("split", "records", "sources", "without source", "max per source", "also in another split")
	for _, s := range st.Sources {
		if err := t.Append(splitName(s.Split), fmt.Sprint(s.Records), fmt.Sprint(s.Sources), fmt.Sprint(s.WithoutSources), fmt.Sprint(s.MaxPerSource), fmt.Sprint(s.SharedSources)); err != nil {
			return err
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("render stats: %w", err)
	}
	if st.SharedSrcs > 0 {
		fmt.Fprintf(w, "warning: %d sources occur in more than one split (leakage between splits)\n", st.SharedSrcs)
	}
	return nil
}
