package grader

import (
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/grader/heatmap"
)

// photo builds a sample of the given grade with one box per listed type index.
func photo(grade int, types ...int) Sample {
	s := Sample{Grade: grade}
	for _, t := range types {
		s.Boxes = append(s.Boxes, heatmap.Box{Type: t, X0: 0.1, X1: 0.2, Y0: 0.1, Y1: 0.2})
	}
	return s
}

// TestTypedLesionLabels checks the grader's use of dataset.LesionTypesInformative (whose
// cases are tested in the dataset package) on samples' type indices.
func TestTypedLesionLabels(t *testing.T) {
	tests := []struct {
		name    string
		samples []Sample
		typed   bool
		why     string // substring of the reason when not typed
	}{
		{"ACNE04 export: one type per grade", []Sample{photo(0, 0, 0), photo(1, 2, 2, 2), photo(2, 1), photo(3, 3, 3), photo(0)},
			false, "comedone in grade 0, nodule in grade 3, papule in grade 2, pustule in grade 1"},
		{"types mixed within a photo", []Sample{photo(0, 0, 1), photo(1, 2), photo(2, 1)}, true, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			typed, why := typedLesionLabels(tc.samples)
			if typed != tc.typed || !strings.Contains(why, tc.why) {
				t.Fatalf("typedLesionLabels = %v, %q; want %v, reason containing %q", typed, why, tc.typed, tc.why)
			}
		})
	}
}

func TestDecodePredictionsTypedAndUntyped(t *testing.T) {
	mc := ModelConfig{InputSize: 16, Patch: 4, Layers: []Layer{{Channels: 4, Stride: 1}}} // a 4x4 map
	grid, nt := mc.Grid(), NumTypes
	dens := make([]float32, grid*grid*nt)
	dens[(1*grid+1)*nt+1] = 0.9 // a papule-channel peak at cell (1,1)
	dens[(2*grid+3)*nt+3] = 0.8 // a nodule-channel peak at cell (2,3)
	counts := []float32{0.5, 1.5, 0, 2}
	probs := []float32{0.1, 0.6, 0.2, 0.1}
	for _, typedCounts := range []bool{true, false} {
		mc.TypedCounts = typedCounts
		p := decodePredictions(mc, nil, 1, dens, counts, probs)[0]
		var types []string
		for _, b := range p.Boxes {
			types = append(types, b.Type)
		}
		slices.Sort(types)
		if typedCounts {
			if p.LesionCounts[dataset.LesionPapule] != 1.5 || p.LesionCounts[dataset.LesionNodule] != 2 || len(p.LesionCounts) != nt {
				t.Errorf("typed counts %v, want the four channel counts", p.LesionCounts)
			}
			if !slices.Equal(types, []string{dataset.LesionNodule, dataset.LesionPapule}) {
				t.Errorf("typed box types %v, want nodule and papule", types)
			}
			continue
		}
		if got := slices.Collect(maps.Keys(p.LesionCounts)); len(got) != 1 || math.Abs(p.LesionCounts[dataset.LesionUnspecified]-4) > 1e-6 {
			t.Errorf("untyped counts %v, want only %s: 4", p.LesionCounts, dataset.LesionUnspecified)
		}
		if !slices.Equal(types, []string{dataset.LesionUnspecified, dataset.LesionUnspecified}) {
			t.Errorf("untyped box types %v, want two %s boxes", types, dataset.LesionUnspecified)
		}
		if p.Grade != 1 {
			t.Errorf("grade %d, want the head's argmax 1", p.Grade)
		}
	}
}

func TestInferModelInfoLesionTypes(t *testing.T) {
	tests := []struct {
		typed bool
		want  []string
	}{
		{false, []string{dataset.LesionUnspecified}},
		{true, dataset.LesionTypes},
	}
	for _, tc := range tests {
		m := &Model{Config: ModelConfig{TypedCounts: tc.typed}}
		if got := (&InferModel{M: m}).Info().LesionTypes; !slices.Equal(got, tc.want) {
			t.Errorf("typed counts %v: Info().LesionTypes = %v, want %v", tc.typed, got, tc.want)
		}
	}
}
