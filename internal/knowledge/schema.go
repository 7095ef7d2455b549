// Package knowledge holds acdtcm's clinical knowledge base (severity scales and their
// cross-walk, Western treatment by grade and lesion type, TCM syndromes, constitutions,
// referral triggers, disclaimers) and a transparent rule engine that turns a predicted grade,
// lesion counts and a free-text symptom description into recommendations, a scored TCM
// syndrome differentiation and referral flags.
//
// The built-in base is configs/knowledge.yaml (embedded); Load returns it and LoadFile merges
// a user's YAML over it. Every entry cites its sources and carries a confidence tag (V
// verified, S secondary, X synthesised) copied from the compiled reference. Formulas are
// reference names only: the loader rejects dose text, and the engine never builds an
// individual prescription.
package knowledge

// Text is a bilingual sentence or name.
type Text struct {
	ZH string `yaml:"zh" json:"zh"`
	EN string `yaml:"en" json:"en"`
}

// Meta is what every entry carries: its source ids, its confidence tag and an optional note.
type Meta struct {
	Sources    []string `yaml:"sources" json:"sources"`
	Confidence string   `yaml:"confidence" json:"confidence"`
	Note       string   `yaml:"note,omitempty" json:"note,omitempty"`
}

// KB is the knowledge base. Its YAML form is configs/knowledge.yaml.
type KB struct {
	Version         int                 `yaml:"version"`
	Engine          Engine              `yaml:"engine"`
	Disclaimers     []Disclaimer        `yaml:"disclaimers"`
	Scales          []Scale             `yaml:"scales"`
	ReferenceScales []ReferenceScale    `yaml:"reference_scales"`
	LesionTypes     []LesionType        `yaml:"lesion_types"`
	Western         []Western           `yaml:"western"`
	External        []Item              `yaml:"external_treatments"`
	Lifestyle       []Item              `yaml:"lifestyle"`
	Syndromes       []Syndrome          `yaml:"syndromes"`
	Rules           []Rule              `yaml:"rules"`
	Constitutions   []Constitution      `yaml:"constitutions"`
	Referrals       []ReferralRule      `yaml:"referrals"`
	Sources         map[string]Source   `yaml:"sources"`
	Remove          map[string][]string `yaml:"remove,omitempty"` // only meaningful in override files

	// Files lists the files the base was built from, embedded base first.
	Files []string `yaml:"-"`
}

// Engine holds the rule engine's settings.
type Engine struct {
	// SecondaryRatio: syndromes scoring at least this fraction of the best are co-existing.
	SecondaryRatio float64 `yaml:"secondary_ratio"`
	// WeakEvidenceBelow: a best score below this is reported as weak evidence.
	WeakEvidenceBelow float64 `yaml:"weak_evidence_below"`
	// LesionPresentMin: a lesion type is present when its count is at least this.
	LesionPresentMin float64 `yaml:"lesion_present_min"`
}

// Source is one entry of the source registry.
type Source struct {
	Title string `yaml:"title" json:"title"`
	URL   string `yaml:"url" json:"url"`
}

// Disclaimer is one safety statement; InResult ones are attached to every result.
type Disclaimer struct {
	ID       string `yaml:"id"`
	InResult bool   `yaml:"in_result,omitempty"`
	Text     `yaml:",inline"`
	Meta     `yaml:",inline"`
	pos      pos
}

// Scale describes one of the severity scales of internal/severity.
type Scale struct {
	ID          string       `yaml:"id"`
	Name        Text         `yaml:"name"`
	Description Text         `yaml:"description"`
	Grades      []ScaleGrade `yaml:"grades"`
	Meta        `yaml:",inline"`
	pos         pos
}

// ScaleGrade describes one grade of a scale. Crosswalk maps each other scale's id to the
// equivalent grade (or "none"); it must agree with severity.Convert.
type ScaleGrade struct {
	Grade     string            `yaml:"grade"`
	Label     Text              `yaml:"label"`
	Criterion Text              `yaml:"criterion"`
	CountMin  *int              `yaml:"count_min,omitempty"`
	CountMax  *int              `yaml:"count_max,omitempty"`
	Crosswalk map[string]string `yaml:"crosswalk"`
	Meta      `yaml:",inline"`
	value     int
	pos       pos
}

// ReferenceScale is a scale shown for reference only (GAGS, IGA, Pillsbury).
type ReferenceScale struct {
	ID          string `yaml:"id"`
	Name        Text   `yaml:"name"`
	Description Text   `yaml:"description"`
	Caveat      *Text  `yaml:"caveat,omitempty"`
	Bands       []Band `yaml:"bands"`
	Meta        `yaml:",inline"`
	pos         pos
}

// Band is one score range of a reference scale.
type Band struct {
	Range string `yaml:"range"`
	Label Text   `yaml:"label"`
	Meta  `yaml:",inline"`
	pos   pos
}

// LesionType describes a lesion type the model reports and the 中国指南 grade it defines.
type LesionType struct {
	ID           string `yaml:"id"`
	Name         Text   `yaml:"name"`
	Inflammatory bool   `yaml:"inflammatory"`
	CN2019       string `yaml:"cn2019"`
	// Clinical4, when set, is the clinical4 grade a lesion of this type forces.
	Clinical4 string `yaml:"clinical4,omitempty"`
	Meta      `yaml:",inline"`
	cn2019    int
	clinical4 int
	pos       pos
}

// Western is one Western treatment option or caution and the selectors that make it apply.
type Western struct {
	ID        string   `yaml:"id"`
	Guideline string   `yaml:"guideline"`
	Category  string   `yaml:"category"`
	Scale     string   `yaml:"scale,omitempty"`
	Grades    []string `yaml:"grades,omitempty"`
	Lesion    string   `yaml:"lesion,omitempty"`
	When      *Cond    `yaml:"when,omitempty"`
	Text      `yaml:",inline"`
	Meta      `yaml:",inline"`
	grades    []int
	pos       pos
}

// Item is an external treatment or a lifestyle advice.
type Item struct {
	ID   string `yaml:"id"`
	Name Text   `yaml:"name"`
	Text `yaml:",inline"`
	Meta `yaml:",inline"`
	pos  pos
}

// Syndrome is one TCM syndrome (证型) of acne.
type Syndrome struct {
	ID            string   `yaml:"id"`
	Name          Text     `yaml:"name"`
	Pinyin        string   `yaml:"pinyin,omitempty"`
	Aliases       []string `yaml:"aliases,omitempty"`
	Lesions       Text     `yaml:"lesions"`
	Signs         Text     `yaml:"signs"`
	Tongue        Text     `yaml:"tongue"`
	Pulse         Text     `yaml:"pulse"`
	Principle     Text     `yaml:"principle"`
	Formula       Text     `yaml:"formula"`
	Modifications []Text   `yaml:"modifications,omitempty"`
	External      []string `yaml:"external,omitempty"`
	Lifestyle     []string `yaml:"lifestyle,omitempty"`
	Meta          `yaml:",inline"`
	pos           pos
}

// Rule adds Weight to Syndrome's score when When holds.
type Rule struct {
	ID       string  `yaml:"id"`
	Syndrome string  `yaml:"syndrome"`
	Weight   float64 `yaml:"weight"`
	// Prior marks a rule that only breaks ties (frequency, demographics): a syndrome is
	// suggested only when a non-prior rule fired for it.
	Prior bool `yaml:"prior,omitempty"`
	When  Cond `yaml:"when,omitempty"`
	Meta  `yaml:",inline"`
	pos   pos
}

// Constitution is one of the nine constitution types (王琦, ZYYXH/T157-2009).
type Constitution struct {
	ID            string   `yaml:"id"`
	Code          string   `yaml:"code"`
	Name          Text     `yaml:"name"`
	Pinyin        string   `yaml:"pinyin,omitempty"`
	Aliases       []string `yaml:"aliases,omitempty"`
	Features      Text     `yaml:"features"`
	TonguePulse   Text     `yaml:"tongue_pulse"`
	Relevance     string   `yaml:"relevance"`
	AcneRelevance Text     `yaml:"acne_relevance"`
	Meta          `yaml:",inline"`
	pos           pos
}

// ReferralRule is a "seek care" trigger: it fires when any condition of WhenAny holds.
type ReferralRule struct {
	ID      string `yaml:"id"`
	Urgent  bool   `yaml:"urgent,omitempty"`
	WhenAny []Cond `yaml:"when_any"`
	Text    `yaml:",inline"`
	Meta    `yaml:",inline"`
	pos     pos
}

// Cond is a condition over the engine's input. Every field that is set must hold; an empty
// condition always holds. Keyword matching is case-insensitive, skips negated mentions ("no
// itching", "无口干") and, for Latin words, matches whole words with common suffixes.
type Cond struct {
	Keywords            []string           `yaml:"keywords,omitempty,flow"`
	AndKeywords         []string           `yaml:"and_keywords,omitempty,flow"`
	Gender              string             `yaml:"gender,omitempty"`
	MinAge              *int               `yaml:"min_age,omitempty"`
	MaxAge              *int               `yaml:"max_age,omitempty"`
	LesionMin           map[string]float64 `yaml:"lesion_min,omitempty,flow"`
	LesionMax           map[string]float64 `yaml:"lesion_max,omitempty,flow"`
	LesionShareMin      map[string]float64 `yaml:"lesion_share_min,omitempty,flow"`
	GradeMin            *GradeRef          `yaml:"grade_min,omitempty,flow"`
	Constitution        []string           `yaml:"constitution,omitempty,flow"`
	MaxProbabilityBelow *float64           `yaml:"max_probability_below,omitempty"`
}

// GradeRef names a grade on a scale, written as users write it ("2", "IV").
type GradeRef struct {
	Scale string `yaml:"scale"`
	Grade string `yaml:"grade"`
	value int
}

// pos is where an entry came from, for error messages.
type pos struct {
	file string
	line int
}

func (p pos) String() string {
	if p.line > 0 {
		return p.file + ":" + itoa(p.line)
	}
	return p.file
}

// lesionTypes are the lesion types the engine understands; they equal dataset.LesionTypes (a
// test checks this; the copy keeps this package independent of the dataset importers).
var lesionTypes = []string{"comedone", "papule", "pustule", "nodule"}

// untypedLesion is dataset.LesionUnspecified: lesions a model counted without telling their
// type. They add to the total (so type shares shrink) but meet no type condition.
const untypedLesion = "lesion"
