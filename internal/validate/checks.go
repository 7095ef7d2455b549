package validate

import (
	"fmt"
	"math"
	"math/bits"
	"slices"
	"sort"
	"strings"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/disjoint"
)

// Splits accepted in the split field; "val" is an alias of "valid", "dev" is a holdout carved from train.
var knownSplits = map[string]string{"train": "train", "dev": "dev", "valid": "valid", "val": "valid", "test": "test"}

// normSplit maps a split to its canonical name ("(none)" when empty, unchanged when unknown).
func normSplit(s string) string {
	if s == "" {
		return "(none)"
	}
	if c, ok := knownSplits[s]; ok {
		return c
	}
	return s
}

// checkRecords checks ids, paths and label values of every record.
func (v *validator) checkRecords() {
	ids := map[string]int{}
	paths := map[string]int{}
	for _, e := range v.entries {
		r := &e.rec
		if r.ImageID == "" {
			v.add(SevError, CheckSchema, e.line, e, "record has no image_id")
		} else if first, ok := ids[r.ImageID]; ok {
			v.add(SevError, CheckSchema, e.line, e, "duplicate image_id %q (first on line %d)", r.ImageID, first)
		} else {
			ids[r.ImageID] = e.line
		}
		if r.Image == "" {
			v.add(SevError, CheckSchema, e.line, e, "record has no image path")
		} else {
			p := v.man.ImagePath(r)
			if first, ok := paths[p]; ok {
				v.add(SevWarning, CheckSchema, e.line, e, "image %s is listed again (first on line %d)", r.Image, first)
			} else {
				paths[p] = e.line
			}
		}
		if r.Width < 0 || r.Height < 0 {
			v.add(SevError, CheckSchema, e.line, e, "negative image size %dx%d", r.Width, r.Height)
		}
		d := &r.Diagnosis
		if d.Severity != nil {
			if err := d.Severity.Validate(); err != nil {
				v.add(SevError, CheckLabel, e.line, e, "severity: %v", err)
			}
		}
		for i, l := range d.Lesions {
			if !slices.Contains(dataset.LesionTypes, l.Type) {
				v.add(SevError, CheckLabel, e.line, e, "lesion %d: unknown lesion type %q (want %s)", i+1, l.Type, strings.Join(dataset.LesionTypes, ", "))
			}
		}
		if c := d.LesionCount; c != nil && *c < 0 {
			v.add(SevError, CheckLabel, e.line, e, "negative lesion_count %d", *c)
		}
		if p := r.PatientInfo; p != nil {
			if p.Age != nil && (*p.Age < 0 || *p.Age > 120) {
				v.add(SevError, CheckLabel, e.line, e, "age %d outside 0..120", *p.Age)
			}
			if p.Gender != "" && p.Gender != "male" && p.Gender != "female" {
				v.add(SevError, CheckLabel, e.line, e, "gender %q (want male or female)", p.Gender)
			}
		}
		if r.Split == "" {
			v.add(SevInfo, CheckLabel, e.line, e, "record has no split")
		} else if _, ok := knownSplits[r.Split]; !ok {
			v.add(SevError, CheckLabel, e.line, e, "unknown split %q (want train, dev, valid, val or test)", r.Split)
		}
	}
}

// boxTolerance is how far (pixels) a box may overhang the image edge before it is an error
// rather than a warning: VOC-style 1-based coordinates put xmax one past the last pixel.
const boxTolerance = 1.0

// checkGeometry compares recorded sizes, boxes and lesion counts with the image.
func (v *validator) checkGeometry() {
	for _, e := range v.entries {
		r := &e.rec
		w, h := r.Width, r.Height
		decoded := e.checked && e.err == nil
		if decoded {
			if (r.Width != 0 || r.Height != 0) && (r.Width != e.cfg.Width || r.Height != e.cfg.Height) {
				v.add(SevError, CheckSize, e.line, e, "recorded size %dx%d but the image is %dx%d", r.Width, r.Height, e.cfg.Width, e.cfg.Height)
			}
			w, h = e.cfg.Width, e.cfg.Height
		}
		for i, l := range r.Diagnosis.Lesions {
			b := l.Box
			if b == nil {
				continue
			}
			if !(b.X0 < b.X1) || !(b.Y0 < b.Y1) {
				v.add(SevError, CheckBox, e.line, e, "lesion %d: empty or inverted box (%g,%g)-(%g,%g): need x0<x1 and y0<y1", i+1, b.X0, b.Y0, b.X1, b.Y1)
				continue
			}
			if w > 0 && h > 0 {
				over := max(-b.X0, -b.Y0, b.X1-float64(w), b.Y1-float64(h))
				switch {
				case over > boxTolerance:
					v.add(SevError, CheckBox, e.line, e, "lesion %d: box (%g,%g)-(%g,%g) outside the %dx%d image", i+1, b.X0, b.Y0, b.X1, b.Y1, w, h)
				case over > 0:
					v.add(SevWarning, CheckBox, e.line, e, "lesion %d: box (%g,%g)-(%g,%g) overhangs the %dx%d image by %gpx (1-based coordinates?)", i+1, b.X0, b.Y0, b.X1, b.Y1, w, h, over)
				}
			}
		}
		if c := r.Diagnosis.LesionCount; c != nil && *c >= 0 && len(r.Diagnosis.Lesions) > 0 {
			n := len(r.Diagnosis.Lesions)
			switch {
			case *c < n:
				v.add(SevError, CheckLesionCount, e.line, e, "lesion_count %d but %d lesions are listed", *c, n)
			case *c > n:
				v.add(SevWarning, CheckLesionCount, e.line, e, "lesion_count %d but only %d lesions are listed", *c, n)
			}
		}
	}
}

// hashDistance is the Hamming distance between two images' perceptual hashes, allowing one
// of them to be mirrored.
func hashDistance(a, b *entry) int {
	return min(bits.OnesCount64(a.hash^b.hash), bits.OnesCount64(a.hash^b.mirror))
}

// checkDuplicates groups byte-identical images and perceptual near-duplicates.
func (v *validator) checkDuplicates() {
	var ok []*entry
	for _, e := range v.entries {
		if e.checked && e.err == nil {
			ok = append(ok, e)
		}
	}
	// Exact duplicates: identical SHA-256 of the file bytes.
	bySum := map[[32]byte][]*entry{}
	var sums [][32]byte
	for _, e := range ok {
		if _, seen := bySum[e.sum]; !seen {
			sums = append(sums, e.sum)
		}
		bySum[e.sum] = append(bySum[e.sum], e)
	}
	for _, s := range sums {
		if g := bySum[s]; len(g) > 1 {
			v.addGroup("exact", g, 0)
		}
	}
	if v.opts.PHashThreshold < 0 {
		return
	}
	groups, maxD := nearGroups(ok, v.opts.PHashThreshold)
	for gi, g := range groups {
		distinct := map[[32]byte]bool{}
		for _, e := range g {
			distinct[e.sum] = true
		}
		if len(distinct) < 2 { // only byte-identical copies: already an exact group
			continue
		}
		v.addGroup("near", g, maxD[gi])
	}
	v.report.SourceRecovery = sourceRecovery(ok, groups)
}

// nearGroups links every pair of images whose hash distance (mirror included) is at most
// threshold and returns the connected groups of two or more images, in manifest order,
// with the largest linking distance of each.
func nearGroups(ok []*entry, threshold int) (groups [][]*entry, maxDist []int) {
	u := disjoint.New(len(ok))
	far := make([]int, len(ok))
	for i := range ok {
		for j := i + 1; j < len(ok); j++ {
			if d := hashDistance(ok[i], ok[j]); d <= threshold {
				u.Union(i, j)
				far[i] = max(far[i], d)
			}
		}
	}
	return linkedGroups(u, ok, far, maxInt)
}

func maxInt(a, b int) int { return max(a, b) }

// linkedGroups returns the connected groups of two or more images of u, in manifest order,
// each with its images' scores folded by combine.
func linkedGroups(u disjoint.Sets, ok []*entry, score []int, combine func(a, b int) int) (groups [][]*entry, scores []int) {
	index := map[int]int{}
	var all [][]*entry
	var allScores []int
	for i := range ok {
		r := u.Find(i)
		gi, seen := index[r]
		if !seen {
			gi = len(all)
			index[r] = gi
			all = append(all, nil)
			allScores = append(allScores, score[i])
		} else {
			allScores[gi] = combine(allScores[gi], score[i])
		}
		all[gi] = append(all[gi], ok[i])
	}
	for gi, g := range all {
		if len(g) > 1 {
			groups = append(groups, g)
			scores = append(scores, allScores[gi])
		}
	}
	return groups, scores
}

// sourceRecovery measures how well the near-duplicate groups reproduce the source_id
// groups: sources with two or more decoded images are "recovered" when all their images
// fall in one near-duplicate group.
func sourceRecovery(ok []*entry, groups [][]*entry) SourceRecovery {
	groupOf := map[*entry]int{}
	for gi, g := range groups {
		for _, e := range g {
			groupOf[e] = gi
		}
	}
	bySource := map[string][]*entry{}
	for _, e := range ok {
		if e.rec.SourceID != "" {
			bySource[e.rec.SourceID] = append(bySource[e.rec.SourceID], e)
		}
	}
	var sr SourceRecovery
	for _, members := range bySource {
		if len(members) < 2 {
			continue
		}
		sr.Sources++
		seen := map[int]int{}
		for _, e := range members {
			if gi, ok := groupOf[e]; ok {
				seen[gi]++
			} else {
				seen[-1-len(seen)]++ // ungrouped: its own singleton
			}
		}
		if len(seen) == 1 {
			sr.Full++
			continue
		}
		for gi, n := range seen {
			if gi >= 0 && n >= 2 {
				sr.Partial++
				break
			}
		}
	}
	for _, g := range groups {
		src := map[string]bool{}
		for _, e := range g {
			src[e.rec.SourceID] = true
		}
		if len(src) > 1 {
			sr.MixedGroups++
		}
	}
	return sr
}

// addGroup records a duplicate group and its finding; score is the largest hash distance
// of a "near" group or the fewest inliers of an "augmented" one.
func (v *validator) addGroup(kind string, g []*entry, score int) {
	dg := DuplicateGroup{Kind: kind}
	if kind == "augmented" {
		dg.MinInliers = score
	} else {
		dg.MaxDistance = score
	}
	splits := map[string]bool{}
	sources := map[string]bool{}
	for _, e := range g {
		dg.Members = append(dg.Members, Member{Line: e.line, ImageID: e.rec.ImageID, Image: e.rec.Image, Split: e.rec.Split, SourceID: e.rec.SourceID})
		splits[normSplit(e.rec.Split)] = true
		src := e.rec.SourceID
		if src == "" {
			src = "\x00" + e.rec.ImageID // no source: the image is its own source
		}
		sources[src] = true
	}
	for s := range splits {
		dg.Splits = append(dg.Splits, s)
	}
	grades := map[string]bool{}
	for _, e := range g {
		grades[gradeKey(&e.rec)] = true
	}
	for k := range grades {
		dg.Grades = append(dg.Grades, k)
	}
	sort.Strings(dg.Grades)
	sort.Strings(dg.Splits)
	dg.Sources = len(sources)
	dg.Leak = len(dg.Splits) > 1
	v.report.DuplicateGroups = append(v.report.DuplicateGroups, dg)

	var list []string
	for i, m := range dg.Members[1:] {
		if i == 5 {
			list = append(list, fmt.Sprintf("and %d more", len(dg.Members)-1-i))
			break
		}
		list = append(list, fmt.Sprintf("%s (line %d, %s)", m.Image, m.Line, normSplit(m.Split)))
	}
	first := g[0]
	what := "byte-identical to"
	switch kind {
	case "near":
		what = fmt.Sprintf("near-duplicate (perceptual hash distance up to %d, mirror included) of", score)
	case "augmented":
		what = fmt.Sprintf("same photo after crop/rotation/shear/mirror/brightness changes (local features, at least %d agreeing keypoints per linked pair) as", score)
	}
	msg := fmt.Sprintf("%s %s", what, strings.Join(list, ", "))
	if len(dg.Grades) > 1 {
		msg += fmt.Sprintf("; their severity grades differ: %s", strings.Join(dg.Grades, ", "))
	}
	sev := map[string]Severity{"exact": SevWarning, "near": SevInfo, "augmented": SevInfo}[kind]
	if dg.Leak {
		msg = fmt.Sprintf("leakage across splits %s: %s", strings.Join(dg.Splits, ", "), msg)
		sev = map[string]Severity{"exact": SevError, "near": SevWarning, "augmented": SevWarning}[kind]
	}
	check := map[string]string{"exact": CheckDuplicate, "near": CheckNearDuplicate, "augmented": CheckAugmented}[kind]
	v.add(sev, check, first.line, first, "%s", msg)
}

// checkSourceLeaks reports source_ids whose images sit in more than one split.
func (v *validator) checkSourceLeaks() {
	type src struct {
		first  *entry
		splits map[string]int
	}
	bySource := map[string]*src{}
	var order []string
	for _, e := range v.entries {
		id := e.rec.SourceID
		if id == "" {
			continue
		}
		s, ok := bySource[id]
		if !ok {
			s = &src{first: e, splits: map[string]int{}}
			bySource[id] = s
			order = append(order, id)
		}
		s.splits[normSplit(e.rec.Split)]++
	}
	for _, id := range order {
		s := bySource[id]
		if len(s.splits) < 2 {
			continue
		}
		v.report.SourceLeaks = append(v.report.SourceLeaks, SourceLeak{SourceID: id, Splits: s.splits})
		v.add(SevError, CheckSourceLeak, s.first.line, s.first, "source_id %q appears in several splits: %s", id, formatCounts(s.splits))
	}
}

// checkTypeGrade warns, once for the dataset, when the lesion types are a function of the
// grade (dataset.LesionTypesInformative): a model trained on them learns the grade again, not
// lesion types.
func (v *validator) checkTypeGrade() {
	photos := make([]dataset.GradeTypes, 0, len(v.entries))
	for _, e := range v.entries {
		sev := e.rec.Diagnosis.Severity
		if sev == nil || !sev.Scale.Valid(sev.Value) || len(e.rec.Diagnosis.Lesions) == 0 {
			continue // label errors are reported by checkRecords
		}
		p := dataset.GradeTypes{Grade: fmt.Sprintf("%s %s", sev.Scale, sev.Scale.Format(sev.Value))}
		for _, l := range e.rec.Diagnosis.Lesions {
			if slices.Contains(dataset.LesionTypes, l.Type) {
				p.Types = append(p.Types, l.Type)
			}
		}
		photos = append(photos, p)
	}
	if _, mirrors, why := dataset.LesionTypesInformative(photos); mirrors {
		v.add(SevWarning, CheckTypeGrade, 0, nil, "lesion types: %s; a model cannot learn lesion types from them (acdtcm's grader then reports untyped lesion counts)", why)
	}
}

// formatCounts renders a map as "a=1, b=2" in key order.
func formatCounts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, ", ")
}

// stats computes class balance per split and lesion statistics.
func (v *validator) stats() {
	splits := map[string]*SplitStats{}
	sources := map[string]map[string]bool{}
	var perImage []int
	var areas []float64
	ls := &v.report.Lesions
	ls.ByType = map[string]int{}
	for _, e := range v.entries {
		r := &e.rec
		name := normSplit(r.Split)
		s, ok := splits[name]
		if !ok {
			s = &SplitStats{Split: name, Grades: map[string]int{}}
			splits[name] = s
			sources[name] = map[string]bool{}
		}
		s.Images++
		src := r.SourceID
		if src == "" {
			src = "\x00" + r.ImageID + fmt.Sprint(e.line)
		}
		sources[name][src] = true
		s.Grades[gradeKey(r)]++
		if n := len(r.Diagnosis.Lesions); n > 0 {
			ls.ImagesWithLesions++
			ls.Lesions += n
			perImage = append(perImage, n)
			w, h := r.Width, r.Height
			if e.checked && e.err == nil {
				w, h = e.cfg.Width, e.cfg.Height
			}
			for _, l := range r.Diagnosis.Lesions {
				ls.ByType[l.Type]++
				if l.Box != nil {
					ls.Boxes++
					if w > 0 && h > 0 && l.Box.X1 > l.Box.X0 && l.Box.Y1 > l.Box.Y0 {
						areas = append(areas, (l.Box.X1-l.Box.X0)*(l.Box.Y1-l.Box.Y0)/float64(w*h))
					}
				}
			}
		}
	}
	for name, s := range splits {
		s.Sources = len(sources[name])
		v.report.Splits = append(v.report.Splits, *s)
	}
	rank := map[string]int{"train": 0, "valid": 1, "test": 2}
	sort.Slice(v.report.Splits, func(i, j int) bool {
		a, b := v.report.Splits[i].Split, v.report.Splits[j].Split
		ra, oka := rank[a]
		rb, okb := rank[b]
		if oka != okb {
			return oka
		}
		if oka && ra != rb {
			return ra < rb
		}
		return a < b
	})
	if len(perImage) > 0 {
		sort.Ints(perImage)
		ls.PerImageMean = round3(float64(ls.Lesions) / float64(len(perImage)))
		ls.PerImageMedian = median(perImage)
		ls.PerImageMax = perImage[len(perImage)-1]
	}
	if len(areas) > 0 {
		sort.Float64s(areas)
		m := areas[len(areas)/2]
		if len(areas)%2 == 0 {
			m = (areas[len(areas)/2-1] + areas[len(areas)/2]) / 2
		}
		ls.BoxAreaMedian = math.Round(m*1e6) / 1e6
	}
}

// gradeKey names a record's severity grade as "scale:value", or "(none)".
func gradeKey(r *dataset.Record) string {
	if g := r.Diagnosis.Severity; g != nil {
		return fmt.Sprintf("%s:%d", g.Scale, g.Value)
	}
	return "(none)"
}

func median(sorted []int) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return float64(sorted[n/2])
	}
	return float64(sorted[n/2-1]+sorted[n/2]) / 2
}

func round3(x float64) float64 { return math.Round(x*1000) / 1000 }

// finish sorts the findings (by line, then check order) and fills the summaries.
func (v *validator) finish() {
	order := map[string]int{}
	for i, c := range Checks {
		order[c] = i
	}
	sort.SliceStable(v.report.Findings, func(i, j int) bool {
		a, b := v.report.Findings[i], v.report.Findings[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return order[a.Check] < order[b.Check]
	})
	counts := map[string]*CheckCount{}
	for _, f := range v.report.Findings {
		c, ok := counts[f.Check]
		if !ok {
			c = &CheckCount{Check: f.Check}
			counts[f.Check] = c
		}
		switch f.Severity {
		case SevError:
			c.Errors++
			v.report.Summary.Errors++
		case SevWarning:
			c.Warnings++
			v.report.Summary.Warnings++
		default:
			c.Infos++
			v.report.Summary.Infos++
		}
	}
	for _, name := range Checks {
		if c, ok := counts[name]; ok {
			v.report.ByCheck = append(v.report.ByCheck, *c)
		}
	}
	if v.report.Findings == nil {
		v.report.Findings = []Finding{}
	}
	if v.report.DuplicateGroups == nil {
		v.report.DuplicateGroups = []DuplicateGroup{}
	}
	if v.report.SourceLeaks == nil {
		v.report.SourceLeaks = []SourceLeak{}
	}
}
