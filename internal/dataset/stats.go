package dataset

import (
	"fmt"
	"maps"
	"slices"
	"sort"
)

// Stats summarises a manifest.
type Stats struct {
	Records    int                       `json:"records"`
	Splits     []string                  `json:"splits"` // sorted; "" is shown as "(none)"
	Grades     []string                  `json:"grades"` // GradeKey values, sorted
	Counts     map[string]map[string]int `json:"counts"` // split → grade → records
	Lesions    []LesionStat              `json:"lesions"`
	Sizes      []SizeCount               `json:"image_sizes"` // most common first
	Sources    []SourceStat              `json:"sources"`     // per split
	SharedSrcs int                       `json:"sources_in_several_splits"`
}

// LesionStat summarises per-image lesion counts of one type (or "total") over the records
// whose lesions are annotated.
type LesionStat struct {
	Type   string  `json:"type"`
	Images int     `json:"images"` // records with known counts
	Sum    int     `json:"sum"`
	Mean   float64 `json:"mean"`
	Median float64 `json:"median"`
	Max    int     `json:"max"`
}

// SizeCount is how many records have one image size ("unknown" when not recorded).
type SizeCount struct {
	Size  string `json:"size"`
	Count int    `json:"count"`
}

// SourceStat counts the records and distinct sources of one split.
type SourceStat struct {
	Split          string `json:"split"`
	Records        int    `json:"records"`
	Sources        int    `json:"sources"`          // distinct source_id values
	WithoutSources int    `json:"without_source"`   // records without source_id
	MaxPerSource   int    `json:"max_per_source"`   // largest number of records of one source
	SharedSources  int    `json:"shared_elsewhere"` // sources that also occur in another split
}

// ComputeStats summarises records: counts per split × grade, lesion counts per type,
// image sizes and sources per split.
func ComputeStats(records []Record) *Stats {
	st := &Stats{Records: len(records), Counts: map[string]map[string]int{}}
	grades := map[string]bool{}
	sizes := map[string]int{}
	perType := map[string][]int{}
	srcSplits := map[string]map[string]int{} // source → split → records
	for i := range records {
		r := &records[i]
		g := GradeKey(r)
		grades[g] = true
		if st.Counts[r.Split] == nil {
			st.Counts[r.Split] = map[string]int{}
		}
		st.Counts[r.Split][g]++
		size := "unknown"
		if r.Width > 0 && r.Height > 0 {
			size = fmt.Sprintf("%dx%d", r.Width, r.Height)
		}
		sizes[size]++
		if byType, total, known := LesionCounts(r); known {
			for _, t := range LesionTypes {
				perType[t] = append(perType[t], byType[t])
			}
			perType["total"] = append(perType["total"], total)
		} else if c := r.Diagnosis.LesionCount; c != nil {
			perType["total"] = append(perType["total"], *c)
		}
		if r.SourceID != "" {
			if srcSplits[r.SourceID] == nil {
				srcSplits[r.SourceID] = map[string]int{}
			}
			srcSplits[r.SourceID][r.Split]++
		}
	}
	st.Splits = slices.Sorted(maps.Keys(st.Counts))
	st.Grades = slices.Sorted(maps.Keys(grades))
	for _, t := range append(append([]string(nil), LesionTypes...), "total") {
		if v := perType[t]; len(v) > 0 {
			st.Lesions = append(st.Lesions, summarise(t, v))
		}
	}
	for _, k := range slices.Sorted(maps.Keys(sizes)) {
		st.Sizes = append(st.Sizes, SizeCount{k, sizes[k]})
	}
	sort.SliceStable(st.Sizes, func(i, j int) bool { return st.Sizes[i].Count > st.Sizes[j].Count })
	for _, s := range st.Splits {
		ss := SourceStat{Split: s}
		for _, n := range st.Counts[s] {
			ss.Records += n
		}
		st.Sources = append(st.Sources, ss)
	}
	idx := map[string]int{}
	for i, s := range st.Splits {
		idx[s] = i
	}
	withSource := make([]int, len(st.Splits))
	for _, splits := range srcSplits {
		if len(splits) > 1 {
			st.SharedSrcs++
		}
		for s, n := range splits {
			ss := &st.Sources[idx[s]]
			ss.Sources++
			withSource[idx[s]] += n
			if n > ss.MaxPerSource {
				ss.MaxPerSource = n
			}
			if len(splits) > 1 {
				ss.SharedSources++
			}
		}
	}
	for i := range st.Sources {
		st.Sources[i].WithoutSources = st.Sources[i].Records - withSource[i]
	}
	return st
}

func summarise(t string, v []int) LesionStat {
	s := append([]int(nil), v...)
	sort.Ints(s)
	ls := LesionStat{Type: t, Images: len(s), Max: s[len(s)-1]}
	for _, x := range s {
		ls.Sum += x
	}
	ls.Mean = float64(ls.Sum) / float64(len(s))
	if n := len(s); n%2 == 1 {
		ls.Median = float64(s[n/2])
	} else {
		ls.Median = float64(s[n/2-1]+s[n/2]) / 2
	}
	return ls
}
