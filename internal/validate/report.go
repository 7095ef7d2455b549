// Package validate checks a dataset manifest and its images without modifying anything:
// schema and value ranges, images that are missing, undecodable or too large, recorded
// sizes, boxes, lesion counts, exact and perceptual near-duplicate images, augmented copies
// of one photo (found by local-feature matching), and leakage of photos or sources across
// splits. Every problem becomes a Finding naming the manifest
// line and image; a bad record never stops the run.
package validate

// Severity ranks a finding.
type Severity string

// Finding severities, most serious first.
const (
	SevError   Severity = "error"
	SevWarning Severity = "warning"
	SevInfo    Severity = "info"
)

// Check names, stable identifiers used in reports and JSON.
const (
	CheckManifest      = "manifest"       // malformed manifest line
	CheckSchema        = "schema"         // missing or duplicate ids and paths
	CheckLabel         = "label"          // severity grade, lesion type, age, gender, split out of range
	CheckImage         = "image"          // missing, unreadable, undecodable or too large image
	CheckSize          = "size"           // recorded width/height differ from the image
	CheckBox           = "box"            // box outside the image or inverted
	CheckLesionCount   = "lesion_count"   // lesion_count inconsistent with the lesions listed
	CheckDuplicate     = "duplicate"      // byte-identical images
	CheckNearDuplicate = "near_duplicate" // perceptually near-identical images
	CheckAugmented     = "augmented"      // copies of one photo after crop, rotation, flip, ...
	CheckSourceLeak    = "source_leak"    // one source_id in several splits
	CheckTypeGrade     = "type_grade"     // lesion types that only mirror the grade
)

// Checks lists every check in report order.
var Checks = []string{CheckManifest, CheckSchema, CheckLabel, CheckImage, CheckSize, CheckBox,
	CheckLesionCount, CheckDuplicate, CheckNearDuplicate, CheckAugmented, CheckSourceLeak, CheckTypeGrade}

// Finding is one problem found in the dataset.
type Finding struct {
	Severity Severity `json:"severity"`
	Check    string   `json:"check"`
	File     string   `json:"file"`           // the manifest
	Line     int      `json:"line,omitempty"` // 1-based manifest line (0: dataset-wide)
	ImageID  string   `json:"image_id,omitempty"`
	Image    string   `json:"image,omitempty"` // image path as written in the manifest
	Message  string   `json:"message"`
}

// Report is the full outcome of a validation run.
type Report struct {
	Manifest        string           `json:"manifest"`
	Lines           int              `json:"lines"`   // non-blank manifest lines
	Records         int              `json:"records"` // lines that parsed as records
	ImagesChecked   int              `json:"images_checked"`
	ImagesOK        int              `json:"images_ok"` // decoded within limits
	Summary         Summary          `json:"summary"`
	ByCheck         []CheckCount     `json:"by_check"`
	Findings        []Finding        `json:"findings"`
	Splits          []SplitStats     `json:"splits"`
	Lesions         LesionStats      `json:"lesions"`
	DuplicateGroups []DuplicateGroup `json:"duplicate_groups"`
	SourceLeaks     []SourceLeak     `json:"source_leaks"`
	PHashThreshold  int              `json:"phash_threshold"`
	SourceRecovery  SourceRecovery   `json:"source_recovery"`
	// MatchInliers is the augmented-copy threshold used (-1: check off).
	MatchInliers      int            `json:"match_inliers"`
	AugmentedRecovery SourceRecovery `json:"augmented_recovery"` // as SourceRecovery, for augmented groups
}

// SourceRecovery compares the near-duplicate groups with the source_id groups (e.g. the
// augmented versions of one photo): how many multi-image sources ended up entirely in one
// group, partly grouped, and how many groups join several source_ids.
type SourceRecovery struct {
	Sources     int `json:"sources"`      // source_ids with two or more decoded images
	Full        int `json:"full"`         // all of a source's images in one near-duplicate group
	Partial     int `json:"partial"`      // two or more, but not all, in one group
	MixedGroups int `json:"mixed_groups"` // near-duplicate groups spanning several source_ids
}

// Summary counts findings by severity.
type Summary struct {
	Errors   int `json:"errors"`
	Warnings int `json:"warnings"`
	Infos    int `json:"infos"`
}

// CheckCount counts the findings of one check.
type CheckCount struct {
	Check    string `json:"check"`
	Errors   int    `json:"errors"`
	Warnings int    `json:"warnings"`
	Infos    int    `json:"infos"`
}

// SplitStats is the class balance of one split.
type SplitStats struct {
	Split   string         `json:"split"` // "(none)" for records without a split
	Images  int            `json:"images"`
	Sources int            `json:"sources"` // distinct source_id (images without one count alone)
	Grades  map[string]int `json:"grades"`  // "scale:value" → images; "(none)" when ungraded
}

// LesionStats summarizes the lesion annotations.
type LesionStats struct {
	ImagesWithLesions int            `json:"images_with_lesions"`
	Lesions           int            `json:"lesions"`
	Boxes             int            `json:"boxes"`
	ByType            map[string]int `json:"by_type"`
	PerImageMean      float64        `json:"per_image_mean"` // over images with a lesion list
	PerImageMedian    float64        `json:"per_image_median"`
	PerImageMax       int            `json:"per_image_max"`
	BoxAreaMedian     float64        `json:"box_area_median"` // fraction of the image area
}

// DuplicateGroup is a set of images that are byte-identical (Kind "exact"), whose
// perceptual hashes are within the threshold, mirror images included (Kind "near"), or
// that local-feature matching links as copies of one photo under crop, rotation, shear,
// mirror and brightness changes (Kind "augmented"; linked pairs chain into a group).
type DuplicateGroup struct {
	Kind        string   `json:"kind"`
	Members     []Member `json:"members"`
	Splits      []string `json:"splits"`
	Sources     int      `json:"sources"`               // distinct source_ids among members
	Leak        bool     `json:"leak"`                  // members in more than one split
	Grades      []string `json:"grades"`                // distinct severity grades ("scale:value") of members
	MaxDistance int      `json:"max_distance"`          // largest hash distance of a linking pair (near)
	MinInliers  int      `json:"min_inliers,omitempty"` // fewest agreeing keypoints of a linking pair (augmented)
}

// Member is one image of a duplicate group.
type Member struct {
	Line     int    `json:"line"`
	ImageID  string `json:"image_id"`
	Image    string `json:"image"`
	Split    string `json:"split,omitempty"`
	SourceID string `json:"source_id,omitempty"`
}

// SourceLeak is a source_id whose images appear in more than one split.
type SourceLeak struct {
	SourceID string         `json:"source_id"`
	Splits   map[string]int `json:"splits"` // split → images
}

// HasErrors reports whether the report has an error finding, or with strict a warning.
func (r *Report) HasErrors(strict bool) bool {
	return r.Summary.Errors > 0 || (strict && r.Summary.Warnings > 0)
}
