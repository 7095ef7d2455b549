package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/acdtcm/acdtcm/internal/grader"
	"github.com/acdtcm/acdtcm/internal/imgmatch"
)

func init() {
	registerDataset(newDatasetLinkCopiesCmd)
}

// datasetLinkCopiesOptions are the inputs of `acdtcm dataset link-copies`.
type datasetLinkCopiesOptions struct {
	Data         string // a manifest (file or directory) or an ACNE04 VOC export
	Out          string // the copy-links file to write
	TrainSplit   string // the split whose copies of EvalSplit photos train would drop
	EvalSplit    string
	MatchInliers int
	Workers      int
	NoProgress   bool
}

func newDatasetLinkCopiesCmd(app *App) *cobra.Command {
	opts := &datasetLinkCopiesOptions{}
	cmd := &cobra.Command{
		Use:   "link-copies DATA --out FILE",
		Short: "Find photos filed under two source ids and record them for train --copy-links",
		Long: `link-copies decodes every photo of DATA (a manifest, a directory holding manifest.jsonl, or
an ACNE04 VOC export), matches them by local features (as dataset validate's augmented check
does: copies after crop, rotation, shear, mirror and brightness changes) and writes the groups
of source ids whose photos are copies of one another to FILE, atomically.

acdtcm train --copy-links FILE then keeps each group on one side of its holdout and drops the
train photos that copy an eval-split photo, without matching again: the same split on resized
copies of the photos (where fewer copies match) or in a later run. train --link-copies does
the matching itself and records the same file in its --out directory.`,
		Example: `  acdtcm dataset link-copies data/acne04 --out configs/acne04-copy-links.json
  acdtcm train --config configs/train-grader-mobilenetv2.yaml --copy-links configs/acne04-copy-links.json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.Data = args[0]
			return runDatasetLinkCopies(cmd.Context(), app, opts)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&opts.Out, "out", "o", "", "the copy-links file to write (JSON)")
	f.StringVar(&opts.TrainSplit, "train-split", "train", "the split training runs on (for the summary of what train --copy-links drops)")
	f.StringVar(&opts.EvalSplit, "eval-split", "valid", "the split training runs are scored on")
	f.IntVar(&opts.MatchInliers, "match-inliers", imgmatch.DefaultMinInliers, "fewest keypoints agreeing with the fitted affine map for two photos to be copies")
	f.IntVar(&opts.Workers, "workers", 0, "photos decoded and described in parallel (0: one per CPU)")
	f.BoolVar(&opts.NoProgress, "no-progress", false, "never show the progress bar (shown on a terminal only)")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

// runDatasetLinkCopies finds the copy links of opts.Data, writes them to opts.Out and prints
// a summary.
func runDatasetLinkCopies(ctx context.Context, app *App, opts *datasetLinkCopiesOptions) error {
	if opts.MatchInliers <= 0 {
		return fmt.Errorf("--match-inliers %d: want a positive number of keypoints", opts.MatchInliers)
	}
	samples, skipped, err := grader.LoadSamples(opts.Data)
	if err != nil {
		return err
	}
	if len(samples) == 0 {
		return fmt.Errorf("%s: no photos with a grade and a source id", opts.Data)
	}
	t0 := time.Now()
	bar := newProgressBar(app.Err, len(samples), "describing photos", opts.NoProgress)
	links, err := grader.LinkCopies(ctx, samples, grader.LinkOptions{Workers: opts.Workers, MinInliers: opts.MatchInliers, Progress: func(done, total int) {
		if bar == nil {
			return
		}
		_ = bar.Set(done)
		if done == total { // the pair matching that follows reports nothing until it ends
			_ = bar.Finish()
			fmt.Fprintf(app.Err, "matching the features of %d photos...\n", total)
		}
	}})
	if err != nil {
		return fmt.Errorf("%s: %w", opts.Data, err)
	}
	if err := grader.WriteCopyLinks(opts.Out, links); err != nil {
		return err
	}
	sources := map[string]bool{}
	for _, s := range samples {
		sources[s.Source] = true
	}
	trainS, evalS := grader.SplitSamples(samples, opts.TrainSplit, opts.EvalSplit)
	_, dropped := grader.SeparateCopies(trainS, evalS, links)
	fmt.Fprintf(app.Out, "%s: %d photos of %d source ids (%d records skipped), matched in %.0fs\n",
		opts.Data, len(samples), len(sources), skipped, time.Since(t0).Seconds())
	fmt.Fprintf(app.Out, "%d source ids linked in %d groups of copies; train --copy-links drops %d %s photos as copies of %s photos (same source id or linked)\n",
		links.LinkedSources(), len(links.Groups()), dropped, opts.TrainSplit, opts.EvalSplit)
	fmt.Fprintf(app.Out, "wrote %s\n", opts.Out)
	return nil
}
