package dataset

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/severity"
)

// syntheticRecords builds n sources per grade (imbalanced like ACNE04) with 1 to 3 records
// each, plus some records without source_id.
func syntheticRecords() []Record {
	rng := rand.New(rand.NewPCG(1, 2))
	var recs []Record
	for grade, sources := range []int{300, 400, 120, 90} {
		for s := 0; s < sources; s++ {
			copies := 1 + rng.IntN(3)
			for c := 0; c < copies; c++ {
				recs = append(recs, Record{
					ImageID:   fmt.Sprintf("g%d_s%d_c%d", grade, s, c),
					Image:     fmt.Sprintf("img/g%d_s%d_c%d.jpg", grade, s, c),
					Diagnosis: Diagnosis{Severity: &severity.Grade{Value: grade, Scale: severity.Hayashi}},
					SourceID:  fmt.Sprintf("%d_%d", grade, s),
				})
			}
		}
		for u := 0; u < 25; u++ {
			recs = append(recs, Record{ImageID: fmt.Sprintf("g%d_u%d", grade, u), Image: fmt.Sprintf("u/%d_%d.jpg", grade, u),
				Diagnosis: Diagnosis{Severity: &severity.Grade{Value: grade, Scale: severity.Hayashi}}})
		}
	}
	for u := 0; u < 10; u++ { // ungraded records form their own stratum
		recs = append(recs, Record{ImageID: fmt.Sprintf("none%d", u), Image: fmt.Sprintf("n/%d.jpg", u)})
	}
	return recs
}

func splitOf(recs []Record) map[string]string {
	m := map[string]string{}
	for _, r := range recs {
		m[r.ImageID] = r.Split
	}
	return m
}

func TestSplitDeterministicAndOrderIndependent(t *testing.T) {
	recs := syntheticRecords()
	opts := SplitOptions{Names: []string{"train", "valid", "test"}, Ratios: []float64{0.8, 0.1, 0.1}, Seed: 42}
	a, err := Split(recs, opts)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Split(recs, opts)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two splits with the same seed differ")
	}
	shuffled := append([]Record(nil), recs...)
	rand.New(rand.NewPCG(9, 9)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	c, _ := Split(shuffled, opts)
	if !reflect.DeepEqual(splitOf(a), splitOf(c)) {
		t.Fatal("the split depends on the order of the records")
	}
	opts.Seed = 43
	d, _ := Split(recs, opts)
	if reflect.DeepEqual(splitOf(a), splitOf(d)) {
		t.Fatal("seeds 42 and 43 gave the same split")
	}
	for i := range recs {
		if recs[i].Split != "" {
			t.Fatal("Split modified its input")
		}
	}
}

func TestSplitGroupsAndProportions(t *testing.T) {
	recs := syntheticRecords()
	tests := []struct {
		names  []string
		ratios []float64
	}{
		{[]string{"train", "valid", "test"}, []float64{0.8, 0.1, 0.1}},
		{[]string{"train", "valid"}, []float64{0.7, 0.3}},
		{[]string{"a", "b", "c"}, []float64{0.5, 0, 0.5}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.ratios), func(t *testing.T) {
			out, err := Split(recs, SplitOptions{Names: tc.names, Ratios: tc.ratios, Seed: 7})
			if err != nil {
				t.Fatal(err)
			}
			sourceSplit := map[string]string{}
			perGrade := map[string]map[string]int{}
			gradeTotal := map[string]int{}
			for _, r := range out {
				if r.Split == "" {
					t.Fatalf("%s got no split", r.ImageID)
				}
				if r.SourceID != "" {
					if s, ok := sourceSplit[r.SourceID]; ok && s != r.Split {
						t.Fatalf("source %s spans splits %s and %s", r.SourceID, s, r.Split)
					}
					sourceSplit[r.SourceID] = r.Split
				}
				g := GradeKey(&r)
				if perGrade[g] == nil {
					perGrade[g] = map[string]int{}
				}
				perGrade[g][r.Split]++
				gradeTotal[g]++
			}
			for g, counts := range perGrade {
				for i, name := range tc.names {
					got := float64(counts[name]) / float64(gradeTotal[g])
					// Groups hold up to 3 records, so a split can miss its target by a group.
					tol := 3.0/float64(gradeTotal[g]) + 1e-9
					if tc.ratios[i] == 0 && counts[name] != 0 {
						t.Errorf("grade %s: %d records in zero-ratio split %s", g, counts[name], name)
					}
					if math.Abs(got-tc.ratios[i]) > tol {
						t.Errorf("grade %s split %s: share %.3f, want %.3f ± %.3f", g, name, got, tc.ratios[i], tol)
					}
				}
			}
		})
	}
}

func TestSplitErrors(t *testing.T) {
	recs := syntheticRecords()[:5]
	tests := []struct {
		opts SplitOptions
		want string
	}{
		{SplitOptions{Names: []string{"a", "b"}, Ratios: []float64{0.5, 0.4}}, "sum to 0.9"},
		{SplitOptions{Names: []string{"a"}, Ratios: []float64{0.5, 0.5}}, "1 split names for 2 ratios"},
		{SplitOptions{Names: []string{"a", "a"}, Ratios: []float64{0.5, 0.5}}, "repeated"},
		{SplitOptions{Names: []string{"a", "b"}, Ratios: []float64{1.5, -0.5}}, "non-negative"},
		{SplitOptions{}, "no split ratios"},
	}
	for _, tc := range tests {
		if _, err := Split(recs, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Split(%+v) error %v, want %q", tc.opts, err, tc.want)
		}
	}
	if _, err := DefaultSplitNames(4); err == nil {
		t.Error("DefaultSplitNames(4) should ask for names")
	}
}

func TestRebaseImages(t *testing.T) {
	recs := []Record{{Image: "img/a.jpg"}, {Image: "/abs/b.jpg"}, {Image: "../c.jpg"}}
	got, err := RebaseImages(recs, "/data/set", "/data/out/split")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"../../set/img/a.jpg", "/abs/b.jpg", "../../c.jpg"}
	for i := range want {
		if got[i].Image != want[i] {
			t.Errorf("rebased %q = %q, want %q", recs[i].Image, got[i].Image, want[i])
		}
	}
	if recs[0].Image != "img/a.jpg" {
		t.Error("RebaseImages modified its input")
	}
}

func TestSplitOnly(t *testing.T) {
	recs := syntheticRecords()
	for i := range recs {
		recs[i].Split = "train"
		if i%7 == 0 && recs[i].SourceID == "" {
			recs[i].Split = "test"
		}
	}
	out, err := Split(recs, SplitOptions{Names: []string{"train", "valid"}, Ratios: []float64{0.9, 0.1}, Seed: 1, Only: "train"})
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for i := range out {
		if recs[i].Split == "test" && out[i].Split != "test" {
			t.Fatalf("%s moved out of test", out[i].ImageID)
		}
		n[out[i].Split]++
	}
	if n["valid"] == 0 || n["test"] == 0 || n["train"] < 8*n["valid"] {
		t.Errorf("counts %v", n)
	}
	tests := []struct {
		opts SplitOptions
		want string
	}{
		{SplitOptions{Names: []string{"train", "test"}, Ratios: []float64{0.9, 0.1}, Only: "train"}, `would merge with the existing split "test"`},
		{SplitOptions{Names: []string{"a", "b"}, Ratios: []float64{0.9, 0.1}, Only: "valid"}, `no record has split "valid"`},
	}
	for _, tc := range tests {
		if _, err := Split(recs, tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want %q", err, tc.want)
		}
	}
}
