package grader

import (
	"math"
	"math/rand/v2"
	"path/filepath"
	"testing"
)

// sampleOrdinal draws photos from a known ordinal model: counts log-uniform on 0..150,
// grades from Calibration c.
func sampleOrdinal(c Calibration, n int, seed uint64) ([]float64, []int) {
	r := rand.New(rand.NewPCG(seed, 3))
	totals, grades := make([]float64, n), make([]int, n)
	for i := range totals {
		totals[i] = math.Expm1(r.Float64() * math.Log1p(150))
		p := c.Probabilities(totals[i])
		u, acc := r.Float64(), 0.0
		grades[i] = NumGrades - 1
		for k, pk := range p {
			acc += pk
			if u < acc {
				grades[i] = k
				break
			}
		}
	}
	return totals, grades
}

func TestFitCalibrationRecoversModel(t *testing.T) {
	tests := []struct {
		name string
		true Calibration
	}{
		{"hayashi thresholds", Calibration{Slope: 4, Cuts: [3]float64{4 * math.Log1p(5.5), 4 * math.Log1p(20.5), 4 * math.Log1p(50.5)}}},
		{"undercounting counter", Calibration{Slope: 3, Cuts: [3]float64{3 * math.Log1p(2.5), 3 * math.Log1p(8), 3 * math.Log1p(19)}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			totals, grades := sampleOrdinal(tc.true, 4000, 1)
			got, err := FitCalibration(totals, grades, "synthetic")
			if err != nil {
				t.Fatal(err)
			}
			if math.Abs(got.Slope-tc.true.Slope) > 0.15*tc.true.Slope {
				t.Errorf("slope %.3f, want %.3f", got.Slope, tc.true.Slope)
			}
			want, th := tc.true.CountThresholds(), got.CountThresholds()
			for k := range th {
				if math.Abs(math.Log1p(th[k])-math.Log1p(want[k])) > 0.15 {
					t.Errorf("threshold %d: %.2f lesions, want %.2f", k, th[k], want[k])
				}
			}
			if got.N != len(totals) || got.FittedOn != "synthetic" || !(got.NLL > 0) {
				t.Errorf("fit bookkeeping: %+v", got)
			}
		})
	}
}

func TestCalibrationProbabilities(t *testing.T) {
	c := Calibration{Slope: 3, Cuts: [3]float64{2, 6, 9}}
	prevMean := -1.0
	for _, total := range []float64{0, 1, 3, 8, 20, 60, 200} {
		p := c.Probabilities(total)
		var sum, mean float64
		for k, v := range p {
			if v < 0 {
				t.Fatalf("count %v: negative probability %v", total, p)
			}
			sum += v
			mean += float64(k) * v
		}
		if math.Abs(sum-1) > 1e-12 {
			t.Errorf("count %v: probabilities sum to %v", total, sum)
		}
		if mean <= prevMean {
			t.Errorf("count %v: expected grade %.3f does not grow with the count (previous %.3f)", total, mean, prevMean)
		}
		prevMean = mean
	}
}

func TestFitCalibrationRejectsBadInput(t *testing.T) {
	tests := []struct {
		name   string
		totals []float64
		grades []int
	}{
		{"empty", nil, nil},
		{"length mismatch", []float64{1, 2}, []int{0}},
		{"grade out of range", []float64{1, 2}, []int{0, 4}},
		{"one grade only", []float64{1, 2, 3}, []int{1, 1, 1}},
	}
	for _, tc := range tests {
		if _, err := FitCalibration(tc.totals, tc.grades, "x"); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// savedTinyModel trains the tiny test model for a few steps on synthetic photos and saves its
// weights as an inference checkpoint; it returns the path and the photos' pixels.
func savedTinyModel(t *testing.T, steps int) (string, *Pixels) {
	t.Helper()
	samples, px := synthetic(16, 32, 4)
	c := tinyConfig(t.TempDir())
	tr, err := NewTrainer(c, testBackend(t), samples, px)
	if err != nil {
		t.Fatal(err)
	}
	runSteps(t, tr, steps)
	path := filepath.Join(c.OutDir, "best.ckpt")
	if err := SaveCheckpoint(path, tr.Context(), tr.Cfg.Model, nil, nil, true); err != nil {
		t.Fatal(err)
	}
	return path, px
}

// TestCalibratedCheckpoint checks that a calibration saved in a checkpoint header is loaded
// with the model and decides its grade probabilities from the predicted counts.
func TestCalibratedCheckpoint(t *testing.T) {
	path, px := savedTinyModel(t, 1)
	ck, err := ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	cal := &Calibration{Slope: 2.5, Cuts: [3]float64{1, 3, 5}, FittedOn: "test", N: 3}
	ck.Header.Calibration = cal
	if err := ck.Save(path); err != nil {
		t.Fatal(err)
	}
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if m.Calibration == nil || *m.Calibration != *cal {
		t.Fatalf("loaded calibration %+v, want %+v", m.Calibration, cal)
	}
	preds, err := m.PredictPreprocessed(px.Data[:2])
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range preds {
		var total float64
		for _, c := range p.LesionCounts {
			total += c
		}
		want := cal.Probabilities(total)
		for k := range want {
			if math.Abs(p.Probabilities[k]-want[k]) > 1e-12 {
				t.Fatalf("photo %d: probabilities %v, want %v from count %.3f", i, p.Probabilities, want, total)
			}
		}
		if p.Grade != argmax(want) {
			t.Errorf("photo %d: grade %d, want %d", i, p.Grade, argmax(want))
		}
	}
}

func TestSpearman(t *testing.T) {
	tests := []struct {
		name string
		x, y []float64
		want float64
	}{
		{"same order", []float64{1, 2, 3, 4}, []float64{10, 20, 30, 40}, 1},
		{"reversed", []float64{1, 2, 3, 4}, []float64{4, 3, 2, 1}, -1},
		{"monotone but not linear", []float64{1, 2, 3, 4}, []float64{1, 4, 9, 100}, 1},
		{"ties share ranks", []float64{1, 1, 2, 3}, []float64{5, 5, 6, 7}, 1},
		{"constant", []float64{1, 1, 1}, []float64{1, 2, 3}, 0},
		// no ties: 1 - 6*sum(d^2)/(n(n^2-1)) = 1 - 6*8/120
		{"partial", []float64{3, 1, 2, 5, 4}, []float64{1, 2, 3, 4, 5}, 0.6},
	}
	for _, tc := range tests {
		if got := spearman(tc.x, tc.y); math.Abs(got-tc.want) > 1e-12 {
			t.Errorf("%s: spearman = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestAllVersionsEpochOrder checks that with AllVersions an epoch visits every training
// photo exactly once, deterministically.
func TestAllVersionsEpochOrder(t *testing.T) {
	samples, px := synthetic(16, 32, 4)
	c := tinyConfig(t.TempDir())
	c.AllVersions = true
	tr, err := NewTrainer(c, testBackend(t), samples, px)
	if err != nil {
		t.Fatal(err)
	}
	order := tr.epochOrder(2)
	if len(order) != len(tr.train) || tr.StepsPerEpoch() != len(tr.train)/c.BatchSize {
		t.Fatalf("epoch of %d photos, %d steps; %d training photos", len(order), tr.StepsPerEpoch(), len(tr.train))
	}
	seen := map[int]bool{}
	for _, i := range order {
		seen[i] = true
	}
	if len(seen) != len(tr.train) {
		t.Errorf("epoch visits %d distinct photos of %d", len(seen), len(tr.train))
	}
	again := tr.epochOrder(2)
	for i := range order {
		if order[i] != again[i] {
			t.Fatal("epoch order is not deterministic")
		}
	}
}

// mirrored returns horizontally mirrored copies of size x size RGB rows, written out by hand
// as the reference for the flip passes.
func mirrored(rows [][]uint8, size int) [][]uint8 {
	out := make([][]uint8, len(rows))
	for i, r := range rows {
		out[i] = make([]uint8, len(r))
		for y := 0; y < size; y++ {
			for x := 0; x < size; x++ {
				copy(out[i][(y*size+x)*3:(y*size+x)*3+3], r[(y*size+size-1-x)*3:(y*size+size-1-x)*3+3])
			}
		}
	}
	return out
}

// TestFlipRunsMirrorImage checks that a flipped pass equals a pass on the mirrored photos, on
// the native engine and on the GoMLX graph.
func TestFlipRunsMirrorImage(t *testing.T) {
	path, px := savedTinyModel(t, 2)
	for _, backend := range []string{"go", "simplego"} {
		m, err := LoadWithBackend(path, backend)
		if err != nil {
			t.Fatal(err)
		}
		rows := px.Data[:3]
		got, err := m.run(rows, nil, true)
		if err != nil {
			t.Fatal(err)
		}
		want, err := m.run(mirrored(rows, m.Config.InputSize), nil, false)
		if err != nil {
			t.Fatal(err)
		}
		plain, err := m.run(rows, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		differs := false
		for i := range rows {
			for k, c := range got[i].LesionCounts {
				if math.Abs(c-want[i].LesionCounts[k]) > 1e-9 {
					t.Fatalf("%s photo %d %s: flipped pass %v, mirrored photo %v", backend, i, k, c, want[i].LesionCounts[k])
				}
				differs = differs || math.Abs(c-plain[i].LesionCounts[k]) > 1e-9
			}
		}
		if !differs {
			t.Errorf("%s: the flipped pass equals the plain one: nothing was mirrored", backend)
		}
	}
}

// TestFlipTTAAveragesCounts checks that a FlipTTA calibration grades from the mean of the
// photo's and its mirror image's lesion counts.
func TestFlipTTAAveragesCounts(t *testing.T) {
	path, px := savedTinyModel(t, 2)
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	rows := px.Data[:3]
	plain, err := m.PredictPreprocessed(rows)
	if err != nil {
		t.Fatal(err)
	}
	mirror, err := m.PredictPreprocessed(mirrored(rows, m.Config.InputSize))
	if err != nil {
		t.Fatal(err)
	}
	m.Calibration = &Calibration{Slope: 2.5, Cuts: [3]float64{1, 3, 5}, FlipTTA: true}
	tta, err := m.PredictPreprocessed(rows)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		var total float64
		for k, got := range tta[i].LesionCounts {
			want := (plain[i].LesionCounts[k] + mirror[i].LesionCounts[k]) / 2
			if math.Abs(got-want) > 1e-9 {
				t.Fatalf("photo %d %s: count %v, want the mean %v", i, k, got, want)
			}
			total += got
		}
		want := m.Calibration.Probabilities(total)
		for g := range want {
			if math.Abs(tta[i].Probabilities[g]-want[g]) > 1e-12 {
				t.Fatalf("photo %d: probabilities %v, want %v", i, tta[i].Probabilities, want)
			}
		}
	}
}
