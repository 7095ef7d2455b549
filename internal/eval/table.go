package eval

import (
	"fmt"
	"io"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/olekukonko/tablewriter/tw"
)

// fmtNum formats a metric with 4 decimals, "n/a" when undefined.
func fmtNum(n Num) string {
	if !n.Defined() {
		return "n/a"
	}
	return fmt.Sprintf("%.4f", float64(n))
}

func newTable(w io.Writer, align tw.Alignment) *tablewriter.Table {
	return tablewriter.NewTable(w,
		tablewriter.WithHeaderAutoFormat(tw.Off),
		tablewriter.WithAlignment(align),
	)
}

func alignments(first tw.Align, n int, rest tw.Align) tw.Alignment {
	a := tw.Alignment{first}
	for i := 1; i < n; i++ {
		a = append(a, rest)
	}
	return a
}

// WriteTables renders the report as readable text tables: the comparison and counts, the
// summary metrics with confidence intervals, per-grade metrics, the confusion matrix, the
// regression gate (when run) and the skipped inputs.
func WriteTables(w io.Writer, r *Report) error {
	c := r.Counts
	fmt.Fprintf(w, "Evaluated %d of %d records on the %s scale; comparison: %s\n", c.Matched, c.Records, r.Comparison.Scale, r.Comparison.Describe())
	for _, n := range r.Comparison.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
	fmt.Fprintf(w, "Predictions: %d read, %d unparsable, %d matched (%d by image path), %d unmatched, %d duplicate, %d errored, %d invalid, %d unconvertible; records without truth: %d, without usable prediction: %d\n",
		c.Predictions, c.Unparsable, c.Matched, c.MatchedByPath, c.Unmatched, c.Duplicates, c.Errored, c.Invalid, c.Unconvertible, c.NoTruth, c.MissingPred)
	m := r.Metrics
	if m == nil {
		return nil
	}
	fmt.Fprintln(w)

	ciHeader := "CI"
	if r.Bootstrap != nil {
		ciHeader = fmt.Sprintf("%g%% CI (bootstrap ×%d, seed %d)", r.Bootstrap.Level*100, r.Bootstrap.Resamples, r.Bootstrap.Seed)
	}
	t := newTable(w, tw.Alignment{tw.AlignLeft, tw.AlignRight, tw.AlignRight})
	t.Header("Metric", "Value", ciHeader)
	rows := []struct {
		key, name string
	}{
		{"accuracy", "accuracy"},
		{"macro_precision", "macro precision"},
		{"macro_recall", "macro recall"},
		{"macro_f1", "macro F1"},
		{"weighted_precision", "weighted precision"},
		{"weighted_recall", "weighted recall"},
		{"weighted_f1", "weighted F1"},
		{"kappa", "quadratic kappa"},
		{"mae", "grade MAE"},
		{"macro_auc", "macro AUC (OvR)"},
		{"ece", fmt.Sprintf("ECE (%d bins)", ECEBins)},
		{"lesion_count_mae", fmt.Sprintf("lesion-count MAE (n=%d)", m.LesionCountN)},
	}
	for _, row := range rows {
		ci := ""
		if iv, ok := r.CI[row.key]; ok {
			ci = fmt.Sprintf("[%s, %s]", fmtNum(iv.Lower), fmtNum(iv.Upper))
		}
		if err := t.Append(row.name, fmtNum(r.Summary[row.key]), ci); err != nil {
			return fmt.Errorf("summary table: %w", err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("summary table: %w", err)
	}
	if len(m.AUCUndefined) > 0 {
		var names []string
		for _, g := range m.AUCUndefined {
			names = append(names, r.Comparison.Scale.Format(g))
		}
		fmt.Fprintf(w, "AUC undefined for grade %s (no positives or no negatives in the ground truth); macro AUC averages the other grades.\n", strings.Join(names, ", "))
	}
	fmt.Fprintln(w)

	t = newTable(w, append(tw.Alignment{tw.AlignLeft}, alignments(tw.AlignLeft, 10, tw.AlignRight)...))
	t.Header("Grade", "Label", "Support", "Predicted", "Precision", "Recall", "F1", "Sensitivity", "Specificity", "Youden", "AUC")
	for _, pc := range m.PerClass {
		if err := t.Append(r.Comparison.Scale.Format(pc.Class), pc.Label, fmt.Sprint(pc.Support), fmt.Sprint(pc.Predicted),
			fmtNum(pc.Precision), fmtNum(pc.Recall), fmtNum(pc.F1), fmtNum(pc.Sensitivity), fmtNum(pc.Specificity), fmtNum(pc.Youden), fmtNum(pc.AUC)); err != nil {
			return fmt.Errorf("per-grade table: %w", err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("per-grade table: %w", err)
	}
	fmt.Fprintln(w)

	fmt.Fprintln(w, "Confusion matrix (rows: true grade, columns: predicted grade)")
	t = newTable(w, alignments(tw.AlignLeft, m.K+1, tw.AlignRight))
	header := []any{"true \\ pred"}
	for g := 0; g < m.K; g++ {
		header = append(header, r.Comparison.Scale.Format(g))
	}
	t.Header(header...)
	for i, row := range m.Confusion {
		cells := []any{r.Comparison.Scale.Format(i)}
		for _, v := range row {
			cells = append(cells, fmt.Sprint(v))
		}
		if err := t.Append(cells...); err != nil {
			return fmt.Errorf("confusion table: %w", err)
		}
	}
	if err := t.Render(); err != nil {
		return fmt.Errorf("confusion table: %w", err)
	}

	if len(r.Gate) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "Regression gate (degradation = worse than baseline; error metrics count increases)")
		t = newTable(w, tw.Alignment{tw.AlignLeft, tw.AlignRight, tw.AlignRight, tw.AlignRight, tw.AlignRight, tw.AlignLeft})
		t.Header("Metric", "Baseline", "Current", "Degradation", "Allowed", "Result")
		for _, g := range r.Gate {
			res := "pass"
			if !g.Passed {
				res = "FAIL"
			}
			if err := t.Append(g.Metric, fmtNum(g.Baseline), fmtNum(g.Current), fmtNum(g.Degradation), fmtNum(g.Allowed), res); err != nil {
				return fmt.Errorf("gate table: %w", err)
			}
		}
		if err := t.Render(); err != nil {
			return fmt.Errorf("gate table: %w", err)
		}
	}

	if len(r.Problems) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "Skipped inputs (first %d):\n", len(r.Problems))
		for _, p := range r.Problems {
			id := p.ImageID
			if id == "" {
				id = p.Image
			}
			if id == "" {
				id = "-"
			}
			if p.Line > 0 {
				fmt.Fprintf(w, "  line %d %s: %s\n", p.Line, id, p.Reason)
			} else {
				fmt.Fprintf(w, "  %s: %s\n", id, p.Reason)
			}
		}
	}
	return nil
}
