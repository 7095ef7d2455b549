package eval

import (
	"fmt"
	"image/color"
	"io"
	"path/filepath"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/brewer"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/acdtcm/acdtcm/internal/fsutil"
)

// Plot file names written by WritePlots.
const (
	ConfusionPlot   = "confusion_matrix.png"
	ROCPlot         = "roc_curves.png"
	ReliabilityPlot = "reliability.png"
)

// WritePlots writes the confusion-matrix heat map and, when probabilities were available,
// the per-grade ROC curves and the reliability diagram into dir as PNG files (atomically),
// returning the paths written.
func WritePlots(dir string, r *Report) ([]string, error) {
	if r.Metrics == nil {
		return nil, nil
	}
	type job struct {
		name string
		make func(*Report) (*plot.Plot, error)
		w, h vg.Length
	}
	side := vg.Length(110+40*r.Metrics.K) * vg.Millimeter / 2
	jobs := []job{{ConfusionPlot, confusionPlot, side + 12*vg.Millimeter, side}}
	if r.Data.Probs != nil {
		jobs = append(jobs, job{ROCPlot, rocPlot, 150 * vg.Millimeter, 140 * vg.Millimeter},
			job{ReliabilityPlot, reliabilityPlot, 150 * vg.Millimeter, 140 * vg.Millimeter})
	}
	var written []string
	for _, j := range jobs {
		p, err := j.make(r)
		if err != nil {
			return written, fmt.Errorf("plot %s: %w", j.name, err)
		}
		wt, err := p.WriterTo(j.w, j.h, "png")
		if err != nil {
			return written, fmt.Errorf("render %s: %w", j.name, err)
		}
		path := filepath.Join(dir, j.name)
		if err := fsutil.WriteAtomic(path, 0o644, func(w io.Writer) error {
			_, err := wt.WriteTo(w)
			return err
		}); err != nil {
			return written, err
		}
		written = append(written, path)
	}
	return written, nil
}

func gradeName(r *Report, g int) string {
	return fmt.Sprintf("%s %s", r.Comparison.Scale.Format(g), r.Labels[g])
}

// confusionGrid colours each cell by its share of the true grade's row (recall view), so
// rare grades stay readable; row r of the grid is true grade K-1-r (grade 0 on top).
type confusionGrid struct {
	c [][]int
}

func (g confusionGrid) Dims() (int, int) { return len(g.c), len(g.c) }
func (g confusionGrid) X(c int) float64  { return float64(c) }
func (g confusionGrid) Y(r int) float64  { return float64(r) }
func (g confusionGrid) Min() float64     { return 0 }
func (g confusionGrid) Max() float64     { return 1 }
func (g confusionGrid) Z(c, r int) float64 {
	row := g.c[len(g.c)-1-r]
	total := 0
	for _, v := range row {
		total += v
	}
	if total == 0 {
		return 0
	}
	return float64(row[c]) / float64(total)
}

func confusionPlot(r *Report) (*plot.Plot, error) {
	m := r.Metrics
	k := m.K
	pal, err := brewer.GetPalette(brewer.TypeSequential, "Blues", 9)
	if err != nil {
		return nil, err
	}
	grid := confusionGrid{c: m.Confusion}
	hm := plotter.NewHeatMap(grid, pal)
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Confusion matrix (%s, n=%d; colour = share of true grade)", r.Comparison.Scale, m.N)
	p.X.Label.Text = "predicted grade"
	p.Y.Label.Text = "true grade"
	p.Add(hm)
	var xys plotter.XYs
	var labels []string
	var styles []text.Style
	for i := 0; i < k; i++ {
		for j := 0; j < k; j++ {
			rowIdx := k - 1 - i
			xys = append(xys, plotter.XY{X: float64(j), Y: float64(rowIdx)})
			labels = append(labels, fmt.Sprintf("%d\n%.0f%%", m.Confusion[i][j], 100*grid.Z(j, rowIdx)))
		}
	}
	lab, err := plotter.NewLabels(plotter.XYLabels{XYs: xys, Labels: labels})
	if err != nil {
		return nil, err
	}
	for i := range lab.TextStyle {
		st := lab.TextStyle[i]
		st.XAlign, st.YAlign = draw.XCenter, draw.YCenter
		st.Font.Size = vg.Points(12)
		st.Color = color.Black
		if grid.Z(int(xys[i].X), int(xys[i].Y)) > 0.55 {
			st.Color = color.White
		}
		styles = append(styles, st)
	}
	lab.TextStyle = styles
	p.Add(lab)
	var xt, yt plot.ConstantTicks
	for g := 0; g < k; g++ {
		xt = append(xt, plot.Tick{Value: float64(g), Label: gradeName(r, g)})
		yt = append(yt, plot.Tick{Value: float64(k - 1 - g), Label: gradeName(r, g)})
	}
	p.X.Tick.Marker, p.Y.Tick.Marker = xt, yt
	p.X.Min, p.X.Max = -0.5, float64(k)-0.5
	p.Y.Min, p.Y.Max = -0.5, float64(k)-0.5
	return p, nil
}

func rocPlot(r *Report) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("ROC curves, one-vs-rest (macro AUC %s)", fmtNum(r.Metrics.MacroAUC))
	p.X.Label.Text = "false positive rate (1 − specificity)"
	p.Y.Label.Text = "true positive rate (sensitivity)"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1
	p.Add(plotter.NewGrid())
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return nil, err
	}
	diag.Color = color.Gray{Y: 150}
	diag.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Add(diag)
	p.Legend.Top = false
	p.Legend.Left = false
	p.Legend.XOffs = -5 * vg.Millimeter
	p.Legend.YOffs = 5 * vg.Millimeter
	for _, pc := range r.Metrics.PerClass {
		name := gradeName(r, pc.Class)
		if pc.ROC == nil {
			p.Legend.Add(name + ": AUC undefined (absent from truth)")
			continue
		}
		xys := make(plotter.XYs, len(pc.ROC.FPR))
		for i := range xys {
			xys[i] = plotter.XY{X: pc.ROC.FPR[i], Y: pc.ROC.TPR[i]}
		}
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.Color = plotutil.Color(pc.Class)
		l.Width = vg.Points(1.8)
		p.Add(l)
		p.Legend.Add(fmt.Sprintf("%s (AUC %.3f, n=%d)", name, float64(pc.AUC), pc.Support), l)
	}
	return p, nil
}

func reliabilityPlot(r *Report) (*plot.Plot, error) {
	m := r.Metrics
	p := plot.New()
	p.Title.Text = fmt.Sprintf("Reliability diagram (%d bins, ECE %s)", ECEBins, fmtNum(m.ECE))
	p.X.Label.Text = "confidence (max predicted probability)"
	p.Y.Label.Text = "accuracy of the arg-max grade"
	p.X.Min, p.X.Max, p.Y.Min, p.Y.Max = 0, 1, 0, 1.32 // headroom above 1 for the legend
	p.Y.Tick.Marker = plot.ConstantTicks{{Value: 0, Label: "0"}, {Value: 0.25}, {Value: 0.5, Label: "0.5"}, {Value: 0.75}, {Value: 1, Label: "1"}}
	p.Add(plotter.NewGrid())
	diag, err := plotter.NewLine(plotter.XYs{{X: 0, Y: 0}, {X: 1, Y: 1}})
	if err != nil {
		return nil, err
	}
	diag.Color = color.Gray{Y: 40}
	diag.Width = vg.Points(1.2)
	diag.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	p.Legend.Add("perfect calibration", diag)
	var conf plotter.XYs
	var countXY plotter.XYs
	var counts []string
	var bars []*plotter.Polygon
	for _, b := range m.Calibration {
		if b.Count == 0 {
			continue
		}
		acc := float64(b.Accuracy)
		poly, err := plotter.NewPolygon(plotter.XYs{{X: b.Lower, Y: 0}, {X: b.Upper, Y: 0}, {X: b.Upper, Y: acc}, {X: b.Lower, Y: acc}})
		if err != nil {
			return nil, err
		}
		poly.Color = color.RGBA{R: 140, G: 180, B: 215, A: 255}
		poly.LineStyle.Color = color.White
		bars = append(bars, poly)
		conf = append(conf, plotter.XY{X: float64(b.Confidence), Y: acc})
		countXY = append(countXY, plotter.XY{X: (b.Lower + b.Upper) / 2, Y: acc + 0.01})
		counts = append(counts, fmt.Sprint(b.Count))
	}
	for _, b := range bars {
		p.Add(b)
	}
	p.Add(diag) // over the bars
	if len(bars) > 0 {
		p.Legend.Add("accuracy per bin (n above)", bars[0])
		sc, err := plotter.NewScatter(conf)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle.Color = color.RGBA{R: 200, G: 60, B: 40, A: 255}
		sc.GlyphStyle.Shape = draw.CircleGlyph{}
		sc.GlyphStyle.Radius = vg.Points(3)
		p.Add(sc)
		p.Legend.Add("(mean confidence, accuracy) per bin", sc)
		lab, err := plotter.NewLabels(plotter.XYLabels{XYs: countXY, Labels: counts})
		if err != nil {
			return nil, err
		}
		for i := range lab.TextStyle {
			lab.TextStyle[i].XAlign = draw.XCenter
			lab.TextStyle[i].Font.Size = vg.Points(8)
		}
		p.Add(lab)
	}
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = 5 * vg.Millimeter
	p.Legend.YOffs = -2 * vg.Millimeter
	return p, nil
}
