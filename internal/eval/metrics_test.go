package eval

import (
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// sklearnCase is one fixture written by scripts/sklearn_reference.py.
type sklearnCase struct {
	Name      string      `json:"name"`
	K         int         `json:"k"`
	YTrue     []int       `json:"y_true"`
	YPred     []int       `json:"y_pred"`
	Probs     [][]float64 `json:"probs"`
	CountTrue []float64   `json:"count_true"`
	CountPred []float64   `json:"count_pred"`
	Expected  struct {
		Accuracy          float64    `json:"accuracy"`
		Precision         []float64  `json:"precision"`
		Recall            []float64  `json:"recall"`
		F1                []float64  `json:"f1"`
		Support           []int      `json:"support"`
		MacroPrecision    float64    `json:"macro_precision"`
		MacroRecall       float64    `json:"macro_recall"`
		MacroF1           float64    `json:"macro_f1"`
		WeightedPrecision float64    `json:"weighted_precision"`
		WeightedRecall    float64    `json:"weighted_recall"`
		WeightedF1        float64    `json:"weighted_f1"`
		Confusion         [][]int    `json:"confusion"`
		Kappa             *float64   `json:"kappa"`
		MAE               float64    `json:"mae"`
		Sensitivity       []*float64 `json:"sensitivity"`
		Specificity       []*float64 `json:"specificity"`
		Youden            []*float64 `json:"youden"`
		AUC               []*float64 `json:"auc"`
		AUCUndefined      []int      `json:"auc_undefined"`
		MacroAUC          *float64   `json:"macro_auc"`
		ECENumpy          *float64   `json:"ece_numpy"`
		LesionCountMAE    *float64   `json:"lesion_count_mae"`
	} `json:"expected"`
}

type sklearnFixture struct {
	SklearnVersion string        `json:"sklearn_version"`
	Cases          []sklearnCase `json:"cases"`
	Percentile     struct {
		Values   []float64 `json:"values"`
		Q        []float64 `json:"q"`
		Expected []float64 `json:"expected"`
	} `json:"percentile"`
}

func loadFixture(t *testing.T) sklearnFixture {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "sklearn_reference.json"))
	if err != nil {
		t.Fatalf("read fixture (regenerate with /usr/bin/python3 scripts/sklearn_reference.py): %v", err)
	}
	var f sklearnFixture
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("parse fixture: %v", err)
	}
	if len(f.Cases) < 7 {
		t.Fatalf("fixture has %d cases, want at least 7", len(f.Cases))
	}
	return f
}

const tol = 1e-9

func near(t *testing.T, what string, got Num, want float64) {
	t.Helper()
	if !got.Defined() || math.Abs(float64(got)-want) > tol {
		t.Errorf("%s = %v, sklearn %v", what, float64(got), want)
	}
}

// nearOpt compares against an optional reference value: nil means undefined.
func nearOpt(t *testing.T, what string, got Num, want *float64) {
	t.Helper()
	if want == nil {
		if got.Defined() {
			t.Errorf("%s = %v, want undefined", what, float64(got))
		}
		return
	}
	near(t, what, got, *want)
}

func TestMetricsMatchSklearn(t *testing.T) {
	fx := loadFixture(t)
	for _, c := range fx.Cases {
		t.Run(c.Name, func(t *testing.T) {
			d := Data{K: c.K, True: c.YTrue, Pred: c.YPred, Probs: c.Probs, CountTrue: c.CountTrue, CountPred: c.CountPred}
			m, err := Compute(d)
			if err != nil {
				t.Fatal(err)
			}
			e := c.Expected
			near(t, "accuracy", m.Accuracy, e.Accuracy)
			near(t, "macro_precision", m.MacroPrecision, e.MacroPrecision)
			near(t, "macro_recall", m.MacroRecall, e.MacroRecall)
			near(t, "macro_f1", m.MacroF1, e.MacroF1)
			near(t, "weighted_precision", m.WeightedPrecision, e.WeightedPrecision)
			near(t, "weighted_recall", m.WeightedRecall, e.WeightedRecall)
			near(t, "weighted_f1", m.WeightedF1, e.WeightedF1)
			nearOpt(t, "kappa", m.Kappa, e.Kappa)
			near(t, "mae", m.MAE, e.MAE)
			if !slices.EqualFunc(m.Confusion, e.Confusion, slices.Equal[[]int]) {
				t.Errorf("confusion = %v, sklearn %v", m.Confusion, e.Confusion)
			}
			for k := 0; k < c.K; k++ {
				pc := m.PerClass[k]
				if pc.Support != e.Support[k] {
					t.Errorf("class %d support = %d, sklearn %d", k, pc.Support, e.Support[k])
				}
				near(t, "precision", pc.Precision, e.Precision[k])
				near(t, "recall", pc.Recall, e.Recall[k])
				near(t, "f1", pc.F1, e.F1[k])
				nearOpt(t, "sensitivity", pc.Sensitivity, e.Sensitivity[k])
				nearOpt(t, "specificity", pc.Specificity, e.Specificity[k])
				nearOpt(t, "youden", pc.Youden, e.Youden[k])
				if c.Probs != nil {
					nearOpt(t, "auc", pc.AUC, e.AUC[k])
				}
			}
			if c.Probs != nil {
				nearOpt(t, "macro_auc", m.MacroAUC, e.MacroAUC)
				nearOpt(t, "ece", m.ECE, e.ECENumpy)
				if !slices.Equal(m.AUCUndefined, e.AUCUndefined) && len(m.AUCUndefined)+len(e.AUCUndefined) > 0 {
					t.Errorf("auc_undefined = %v, want %v", m.AUCUndefined, e.AUCUndefined)
				}
			} else if m.MacroAUC.Defined() || m.ECE.Defined() {
				t.Errorf("macro_auc/ece defined without probabilities")
			}
			if c.CountTrue != nil {
				nearOpt(t, "lesion_count_mae", m.LesionCountMAE, e.LesionCountMAE)
				if m.LesionCountN != len(c.CountTrue) {
					t.Errorf("lesion_count_n = %d, want %d", m.LesionCountN, len(c.CountTrue))
				}
			}
		})
	}
}

func TestPercentileMatchesNumpy(t *testing.T) {
	p := loadFixture(t).Percentile
	for i, q := range p.Q {
		got := Percentile(p.Values, q/100)
		if math.Abs(got-p.Expected[i]) > tol {
			t.Errorf("percentile %v = %v, numpy %v", q, got, p.Expected[i])
		}
	}
}

func TestROCCurveTies(t *testing.T) {
	// Scores 0.8 (pos), 0.5 (pos), 0.5 (neg), 0.2 (neg): the tie at 0.5 is one point, so
	// the curve is (0,0) (0,.5) (.5,1) (1,1) and AUC 0.875 (a tie counts one half).
	fpr, tpr, ok := ROC([]float64{0.5, 0.8, 0.2, 0.5}, []bool{true, true, false, false})
	if !ok {
		t.Fatal("ROC undefined")
	}
	if want := []float64{0, 0, 0.5, 1}; !slices.Equal(fpr, want) {
		t.Errorf("fpr = %v, want %v", fpr, want)
	}
	if want := []float64{0, 0.5, 1, 1}; !slices.Equal(tpr, want) {
		t.Errorf("tpr = %v, want %v", tpr, want)
	}
	if auc := Trapezoid(fpr, tpr); auc != 0.875 {
		t.Errorf("auc = %v, want 0.875", auc)
	}
	if _, _, ok := ROC([]float64{0.1, 0.2}, []bool{true, true}); ok {
		t.Error("ROC with no negatives should be undefined")
	}
}

func TestValidateRejectsBadData(t *testing.T) {
	cases := []struct {
		name string
		d    Data
	}{
		{"one class", Data{K: 1, True: []int{0}, Pred: []int{0}}},
		{"length mismatch", Data{K: 2, True: []int{0, 1}, Pred: []int{0}}},
		{"empty", Data{K: 2}},
		{"label out of range", Data{K: 2, True: []int{0, 2}, Pred: []int{0, 1}}},
		{"probability row width", Data{K: 2, True: []int{0}, Pred: []int{0}, Probs: [][]float64{{1}}}},
	}
	for _, c := range cases {
		if _, err := Compute(c.d); err == nil {
			t.Errorf("%s: no error", c.name)
		}
	}
}

func TestBootstrapSeededAndBracketsPointEstimate(t *testing.T) {
	c := loadFixture(t).Cases[0]
	d := Data{K: c.K, True: c.YTrue, Pred: c.YPred, Probs: c.Probs, CountTrue: c.CountTrue, CountPred: c.CountPred}
	m, err := Compute(d)
	if err != nil {
		t.Fatal(err)
	}
	opts := BootstrapOptions{Resamples: 200, Seed: 42, Level: 0.95}
	a := Bootstrap(d, m, opts)
	b := Bootstrap(d, m, opts)
	if len(a) != len(HeadlineMetrics) {
		t.Fatalf("intervals for %d metrics, want %d: %v", len(a), len(HeadlineMetrics), a)
	}
	sum := m.Summary()
	for name, iv := range a {
		if iv != b[name] {
			t.Errorf("%s: same seed gave %v and %v", name, iv, b[name])
		}
		if iv.Valid != opts.Resamples {
			t.Errorf("%s: %d valid resamples, want %d", name, iv.Valid, opts.Resamples)
		}
		if !(iv.Lower < iv.Upper) || float64(sum[name]) < float64(iv.Lower) || float64(sum[name]) > float64(iv.Upper) {
			t.Errorf("%s: interval [%v, %v] does not bracket %v", name, iv.Lower, iv.Upper, sum[name])
		}
	}
	other := Bootstrap(d, m, BootstrapOptions{Resamples: 200, Seed: 7, Level: 0.95})
	if other["accuracy"] == a["accuracy"] && other["kappa"] == a["kappa"] {
		t.Error("different seeds gave identical intervals")
	}
	if Bootstrap(d, m, BootstrapOptions{}) != nil {
		t.Error("0 resamples should disable the bootstrap")
	}
}

func TestNumJSON(t *testing.T) {
	b, err := json.Marshal(map[string]Num{"a": 0.25, "b": Undefined})
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"a":0.25,"b":null}` {
		t.Errorf("marshal = %s", b)
	}
	var back map[string]Num
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back["a"] != 0.25 || back["b"].Defined() {
		t.Errorf("round trip = %v", back)
	}
}

func BenchmarkBootstrap1000(b *testing.B) {
	raw, err := os.ReadFile(filepath.Join("testdata", "sklearn_reference.json"))
	if err != nil {
		b.Fatal(err)
	}
	var fx sklearnFixture
	if err := json.Unmarshal(raw, &fx); err != nil {
		b.Fatal(err)
	}
	c := fx.Cases[0]
	d := Data{K: c.K, True: c.YTrue, Pred: c.YPred, Probs: c.Probs}
	m, err := Compute(d)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		Bootstrap(d, m, BootstrapOptions{Resamples: 1000, Seed: 1})
	}
}
