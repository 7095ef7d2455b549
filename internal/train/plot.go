package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/acdtcm/acdtcm/internal/fsutil"
)

// WriteLossPlot draws the training loss per step and the validation loss per epoch from
// metrics.jsonl into a PNG (written atomically).
func WriteLossPlot(metricsPath, pngPath string) error {
	f, err := os.Open(metricsPath)
	if err != nil {
		return fmt.Errorf("plot: %w", err)
	}
	defer f.Close()
	var train, val plotter.XYs
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var rec struct {
			Type    string   `json:"type"`
			Step    int      `json:"step"`
			Loss    float64  `json:"loss"`
			ValLoss *float64 `json:"val_loss"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue
		}
		switch {
		case rec.Type == "step":
			train = append(train, plotter.XY{X: float64(rec.Step), Y: rec.Loss})
		case rec.Type == "eval" && rec.ValLoss != nil:
			val = append(val, plotter.XY{X: float64(rec.Step), Y: *rec.ValLoss})
		}
	}
	if len(train) == 0 {
		return nil
	}
	p := plot.New()
	p.Title.Text = "LoRA fine-tuning loss"
	p.X.Label.Text = "optimizer step"
	p.Y.Label.Text = "cross-entropy"
	line, err := plotter.NewLine(train)
	if err != nil {
		return err
	}
	p.Add(line)
	p.Legend.Add("train", line)
	if len(val) > 0 {
		vl, vp, err := plotter.NewLinePoints(val)
		if err != nil {
			return err
		}
		vl.LineStyle.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
		p.Add(vl, vp)
		p.Legend.Add("validation", vl, vp)
	}
	w, err := p.WriterTo(8*vg.Inch, 4.5*vg.Inch, "png")
	if err != nil {
		return err
	}
	return fsutil.WriteAtomic(pngPath, 0o644, func(out io.Writer) error {
		_, err := w.WriteTo(out)
		return err
	})
}
