package dataset

import (
	"reflect"
	"testing"

	"github.com/acdtcm/acdtcm/internal/severity"
)

func TestComputeStats(t *testing.T) {
	h := func(v int) *severity.Grade { return &severity.Grade{Value: v, Scale: severity.Hayashi} }
	les := func(types ...string) []Lesion {
		var out []Lesion
		for _, t := range types {
			out = append(out, Lesion{Type: t})
		}
		return out
	}
	recs := []Record{
		{ImageID: "a", Width: 640, Height: 640, Split: "train", SourceID: "s1", Diagnosis: Diagnosis{Severity: h(0), Lesions: les("papule", "papule", "comedone")}},
		{ImageID: "b", Width: 640, Height: 640, Split: "train", SourceID: "s1", Diagnosis: Diagnosis{Severity: h(0), Lesions: les("pustule")}},
		{ImageID: "c", Width: 320, Height: 240, Split: "valid", SourceID: "s2", Diagnosis: Diagnosis{Severity: h(2), LesionCount: intp(40)}},
		{ImageID: "d", Split: "valid", SourceID: "s1", Diagnosis: Diagnosis{Severity: h(0), LesionCount: intp(0)}},
		{ImageID: "e", Diagnosis: Diagnosis{}},
	}
	st := ComputeStats(recs)
	if st.Records != 5 || !reflect.DeepEqual(st.Splits, []string{"", "train", "valid"}) || !reflect.DeepEqual(st.Grades, []string{"hayashi:0", "hayashi:2", "none"}) {
		t.Fatalf("records %d splits %q grades %q", st.Records, st.Splits, st.Grades)
	}
	wantCounts := map[string]map[string]int{"": {"none": 1}, "train": {"hayashi:0": 2}, "valid": {"hayashi:2": 1, "hayashi:0": 1}}
	if !reflect.DeepEqual(st.Counts, wantCounts) {
		t.Errorf("counts %v, want %v", st.Counts, wantCounts)
	}
	// a, b and d have per-type counts (d: lesion_count 0); c only a total.
	wantLesions := []LesionStat{
		{Type: "comedone", Images: 3, Sum: 1, Mean: 1.0 / 3, Median: 0, Max: 1},
		{Type: "papule", Images: 3, Sum: 2, Mean: 2.0 / 3, Median: 0, Max: 2},
		{Type: "pustule", Images: 3, Sum: 1, Mean: 1.0 / 3, Median: 0, Max: 1},
		{Type: "nodule", Images: 3, Sum: 0, Mean: 0, Median: 0, Max: 0},
		{Type: "total", Images: 4, Sum: 44, Mean: 11, Median: 2, Max: 40},
	}
	if !reflect.DeepEqual(st.Lesions, wantLesions) {
		t.Errorf("lesions\n%+v\nwant\n%+v", st.Lesions, wantLesions)
	}
	wantSizes := []SizeCount{{"640x640", 2}, {"unknown", 2}, {"320x240", 1}}
	if !reflect.DeepEqual(st.Sizes, wantSizes) {
		t.Errorf("sizes %v, want %v", st.Sizes, wantSizes)
	}
	wantSources := []SourceStat{
		{Split: "", Records: 1, WithoutSources: 1},
		{Split: "train", Records: 2, Sources: 1, MaxPerSource: 2, SharedSources: 1},
		{Split: "valid", Records: 2, Sources: 2, MaxPerSource: 1, SharedSources: 1},
	}
	if !reflect.DeepEqual(st.Sources, wantSources) || st.SharedSrcs != 1 {
		t.Errorf("sources %+v (shared %d), want %+v (shared 1)", st.Sources, st.SharedSrcs, wantSources)
	}
}
