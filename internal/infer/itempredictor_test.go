package infer

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/result"
)

// itemModel is a brightnessModel that fails the photos whose grade is in failGrades, one by
// one, through ItemPredictor (as a remote backend does).
type itemModel struct {
	brightnessModel
	failGrades map[int]bool
	short      bool // return too few entries
}

func (m *itemModel) PredictItems(ctx context.Context, batch []Input) ([]Prediction, []error) {
	preds, err := m.Predict(ctx, batch)
	errs := make([]error, len(batch))
	for i, in := range batch {
		if err != nil {
			errs[i] = err
		} else if m.failGrades[in.(int)] {
			errs[i] = fmt.Errorf("server answered 500 for grade %d", in.(int))
		}
	}
	if m.short {
		return preds[:len(preds)-1], errs
	}
	return preds, errs
}

func TestRunItemPredictorFailsOnlyItsPhotos(t *testing.T) {
	dir := t.TempDir()
	var args []string
	for i := 0; i < 4; i++ {
		p := filepath.Join(dir, fmt.Sprintf("p%d.png", i))
		writePNG(t, p, uint8(i*64)) // grade i
		args = append(args, p)
	}
	tests := []struct {
		name       string
		model      *itemModel
		wantFailed []bool
	}{
		{"one photo fails", &itemModel{failGrades: map[int]bool{1: true}}, []bool{false, true, false, false}},
		{"two photos fail", &itemModel{failGrades: map[int]bool{0: true, 3: true}}, []bool{true, false, false, true}},
		{"wrong count fails the batch", &itemModel{short: true}, []bool{true, true, true, true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []*result.DiagnosisResult
			sum, err := Run(context.Background(), tc.model, ExpandInputs(context.Background(), args, nil),
				Options{BatchSize: 4, Workers: 1, Decode: decodeFile},
				func(r *result.DiagnosisResult) error { got = append(got, r); return nil })
			if err != nil {
				t.Fatal(err)
			}
			nFailed := 0
			for i, r := range got {
				if (r.Error != "") != tc.wantFailed[i] {
					t.Errorf("photo %d: error %q, want failed=%v", i, r.Error, tc.wantFailed[i])
				}
				if r.Error != "" {
					nFailed++
					if !strings.Contains(r.Error, args[i]) {
						t.Errorf("error %q does not name %s", r.Error, args[i])
					}
				} else if r.Severity.Value != i {
					t.Errorf("photo %d graded %d", i, r.Severity.Value)
				}
			}
			if sum.Failed != nFailed || sum.Diagnosed != len(args)-nFailed {
				t.Errorf("summary %+v, want %d failed", sum, nFailed)
			}
		})
	}
}

func TestPredictItemsWithPlainModel(t *testing.T) {
	m := &brightnessModel{failBatches: map[int]bool{2: true}}
	batch := []Input{0, 2}
	preds, errs := PredictItems(context.Background(), m, batch)
	if errs[0] != nil || errs[1] != nil || preds[1].Probabilities[2] != 0.7 {
		t.Fatalf("first call: preds %v errs %v", preds, errs)
	}
	_, errs = PredictItems(context.Background(), m, batch)
	for i, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "device lost") {
			t.Errorf("input %d of a failed Predict: err %v", i, err)
		}
	}
}
