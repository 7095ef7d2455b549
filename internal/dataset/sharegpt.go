package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// ImageToken is the image placeholder LLaMA-Factory and ms-swift expect in message content.
const ImageToken = "<image>"

// ShareGPTMessage is one turn of a multimodal conversation.
type ShareGPTMessage struct {
	Role    string `json:"role"` // system, user or assistant
	Content string `json:"content"`
}

// ShareGPTSample is one multimodal conversation in the messages format LLaMA-Factory
// (formatting: sharegpt with role/content tags) and ms-swift accept: every <image> in the
// user content refers, in order, to one entry of Images.
type ShareGPTSample struct {
	Messages []ShareGPTMessage `json:"messages"`
	Images   []string          `json:"images"`
	Index    int               `json:"-"` // 1-based position in the parsed file (array index or line)
}

// SampleError reports a sample of a ShareGPT file that could not be used.
type SampleError struct {
	Index int // 1-based position in the JSON array, or line number for JSON Lines
	Err   error
}

// Error returns "sample N: problem".
func (e *SampleError) Error() string { return fmt.Sprintf("sample %d: %v", e.Index, e.Err) }

// Unwrap returns the sample's problem.
func (e *SampleError) Unwrap() error { return e.Err }

type rawTurn struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
	From    string          `json:"from"`
	Value   json.RawMessage `json:"value"`
}

type rawSample struct {
	Messages      []rawTurn `json:"messages"`
	Conversations []rawTurn `json:"conversations"`
	Images        []string  `json:"images"`
	System        string    `json:"system"`
}

// ParseShareGPT parses a ShareGPT file: a JSON array of samples, or JSON Lines with one
// sample per line. Each sample has "messages" ({role, content}) or LLaMA-Factory's
// "conversations" ({from: human/gpt/system, value}), and "images". Samples that cannot be
// decoded are returned as *SampleError and do not stop the others; the error is non-nil only
// when the file as a whole is not JSON.
func ParseShareGPT(data []byte) ([]ShareGPTSample, []error, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, nil, errors.New("empty ShareGPT file")
	}
	type chunk struct {
		index int
		raw   []byte
	}
	var chunks []chunk
	if trimmed[0] == '[' {
		var arr []json.RawMessage
		if err := json.Unmarshal(trimmed, &arr); err != nil {
			return nil, nil, fmt.Errorf("ShareGPT JSON array: %w", err)
		}
		for i, r := range arr {
			chunks = append(chunks, chunk{i + 1, r})
		}
	} else {
		sc := bufio.NewScanner(bytes.NewReader(trimmed))
		sc.Buffer(make([]byte, 0, 64<<10), maxLine)
		n := 0
		for sc.Scan() {
			n++
			line := bytes.TrimSpace(sc.Bytes())
			if len(line) == 0 {
				continue
			}
			chunks = append(chunks, chunk{n, append([]byte(nil), line...)})
		}
		if err := sc.Err(); err != nil {
			return nil, nil, fmt.Errorf("ShareGPT JSON Lines after line %d: %w", n, err)
		}
	}
	var samples []ShareGPTSample
	var errs []error
	for _, c := range chunks {
		s, err := decodeSample(c.raw)
		if err != nil {
			errs = append(errs, &SampleError{Index: c.index, Err: err})
			continue
		}
		s.Index = c.index
		samples = append(samples, s)
	}
	return samples, errs, nil
}

func decodeSample(raw []byte) (ShareGPTSample, error) {
	var r rawSample
	if err := json.Unmarshal(raw, &r); err != nil {
		return ShareGPTSample{}, fmt.Errorf("invalid sample: %w", err)
	}
	turns := r.Messages
	if len(turns) == 0 {
		turns = r.Conversations
	}
	if len(turns) == 0 {
		return ShareGPTSample{}, errors.New(`sample has no "messages" or "conversations"`)
	}
	s := ShareGPTSample{Images: r.Images}
	if r.System != "" {
		s.Messages = append(s.Messages, ShareGPTMessage{Role: "system", Content: r.System})
	}
	for i, t := range turns {
		role := t.Role
		content := t.Content
		if role == "" {
			role, content = t.From, t.Value
		}
		switch strings.ToLower(role) {
		case "user", "human":
			role = "user"
		case "assistant", "gpt", "model":
			role = "assistant"
		case "system":
			role = "system"
		default:
			return ShareGPTSample{}, fmt.Errorf("message %d: unknown role %q", i+1, role)
		}
		var text string
		if len(content) == 0 || json.Unmarshal(content, &text) != nil {
			return ShareGPTSample{}, fmt.Errorf("message %d: content is not a string", i+1)
		}
		s.Messages = append(s.Messages, ShareGPTMessage{Role: role, Content: text})
	}
	return s, nil
}

// Answer is what ParseAnswer recovers from an assistant answer.
type Answer struct {
	Grade       *severity.Grade
	LesionCount *int
	ByType      map[string]int // lesion counts per canonical type, when given
	TCM         *TCMSyndrome
}

var (
	reExportGrade = regexp.MustCompile(`(?i)severity:\s*grade\s+([0-9]+|[IVX]+|[ⅠⅡⅢⅣ])[^\n]*?\bon the (hayashi|clinical4|cn2019) scale`)
	reGradeNum    = regexp.MustCompile(`(?i)\b(?:grade|severity|level)\s*[:：=]?\s*([0-9]+|[IVX]+\b|[ⅠⅡⅢⅣ])`)
	reGradeWord   = regexp.MustCompile(`(?i)\b(?:grade|severity)\s*[:：=]\s*(very[ _-]?severe|severe|moderate|mild|normal)\b`)
	reLesionLine  = regexp.MustCompile(`(?im)^\s*lesions?\s*[:：]\s*(.*)$`)
	reLesionTotal = regexp.MustCompile(`^\s*([0-9]+)`)
	reLesionType  = regexp.MustCompile(`(?i)\b(comedone|papule|pustule|nodule)s?\s*[:=]?\s*([0-9]+)`)
	reTCMPattern  = regexp.MustCompile(`(?i)(?:TCM syndrome|TCM pattern|证型)\s*[:：]\s*([^\n;；。]+)`)
	reTCMConst    = regexp.MustCompile(`(?i)(?:TCM constitution|体质)\s*[:：]\s*([^\n;；。]+)`)
	chineseGrades = []string{"极重度", "重度", "中度", "轻度"}
)

// errNoGrade reports an answer without a recognisable grade.
var errNoGrade = errors.New("no severity grade found in the assistant answer")

// maxAnswerLesions bounds the lesions ParseAnswer materialises from per-type counts.
const maxAnswerLesions = 100000

// ParseAnswer extracts the grade, lesion counts and TCM syndrome from an assistant answer.
// It understands the answer FormatAnswer writes ("Severity: grade 2 (severe, 重度) on the
// hayashi scale."), plain "grade: N", "Grade N", "severity N" on scale def, English grade
// names after "grade:"/"severity:", and the Chinese 轻度/中度/重度/极重度. An answer without
// a recognisable grade is an error.
func ParseAnswer(text string, def severity.Scale) (Answer, error) {
	var a Answer
	if m := reExportGrade.FindStringSubmatch(text); m != nil {
		sc := severity.Scale(strings.ToLower(m[2]))
		if g, err := sc.ParseGrade(m[1]); err == nil {
			a.Grade = &severity.Grade{Value: g, Scale: sc}
		}
	}
	if a.Grade == nil {
		for _, m := range reGradeNum.FindAllStringSubmatch(text, -1) {
			if g, err := def.ParseGrade(m[1]); err == nil {
				a.Grade = &severity.Grade{Value: g, Scale: def}
				break
			}
		}
	}
	if a.Grade == nil {
		if m := reGradeWord.FindStringSubmatch(text); m != nil {
			if g, err := ParseGradeName(def, m[1]); err == nil {
				a.Grade = &severity.Grade{Value: g, Scale: def}
			}
		}
	}
	if a.Grade == nil {
		a.Grade = chineseGrade(text, def)
	}
	if a.Grade == nil {
		return Answer{}, errNoGrade
	}
	if m := reLesionLine.FindStringSubmatch(text); m != nil {
		if t := reLesionTotal.FindStringSubmatch(m[1]); t != nil {
			if n, err := strconv.Atoi(t[1]); err == nil && n <= 1e9 {
				a.LesionCount = &n
			}
		}
		for _, tm := range reLesionType.FindAllStringSubmatch(m[1], -1) {
			n, err := strconv.Atoi(tm[2])
			if err != nil || n > 1e9 {
				continue
			}
			if a.ByType == nil {
				a.ByType = map[string]int{}
			}
			a.ByType[strings.ToLower(tm[1])] = n
		}
	}
	tcm := &TCMSyndrome{}
	if m := reTCMPattern.FindStringSubmatch(text); m != nil {
		tcm.Pattern = trimSentence(m[1])
	}
	if m := reTCMConst.FindStringSubmatch(text); m != nil {
		tcm.Constitution = trimSentence(m[1])
	}
	if tcm.Pattern != "" || tcm.Constitution != "" {
		a.TCM = tcm
	}
	return a, nil
}

func trimSentence(s string) string {
	s = strings.TrimSpace(s)
	s = strings.TrimRight(s, ".。")
	return strings.TrimSpace(s)
}

// chineseGrade finds the earliest Chinese severity word. The words are the Hayashi labels,
// read on clinical4 when def is clinical4 (which shares 轻度/中度/重度) and on hayashi
// otherwise.
func chineseGrade(text string, def severity.Scale) *severity.Grade {
	best, bestPos := "", -1
	for _, w := range chineseGrades { // longest first, so 极重度 wins over 重度 at its own position
		if p := strings.Index(text, w); p >= 0 && (bestPos < 0 || p < bestPos) {
			best, bestPos = w, p
		}
	}
	if bestPos < 0 {
		return nil
	}
	sc := severity.Hayashi
	if def == severity.Clinical4 && best != "极重度" {
		sc = severity.Clinical4
	}
	for g := 0; g < sc.NumGrades(); g++ {
		if sc.Label(g).ZH == best {
			return &severity.Grade{Value: g, Scale: sc}
		}
	}
	return nil
}

// SampleRecord turns a ShareGPT sample into a record (without image path or size) and
// returns the sample's single image path as written in the file. The sample must have exactly
// one image and as many <image> placeholders in its user turns, and an assistant answer with
// a grade.
func SampleRecord(s ShareGPTSample, def severity.Scale) (Record, string, error) {
	if len(s.Images) != 1 {
		return Record{}, "", fmt.Errorf("sample has %d images; a record holds exactly one", len(s.Images))
	}
	tokens := 0
	answer := ""
	for _, m := range s.Messages {
		if m.Role == "user" {
			tokens += strings.Count(m.Content, ImageToken)
		}
		if m.Role == "assistant" && answer == "" {
			answer = m.Content
		}
	}
	if tokens != len(s.Images) {
		return Record{}, "", fmt.Errorf("%d %s placeholders in user turns for %d images", tokens, ImageToken, len(s.Images))
	}
	if strings.TrimSpace(s.Images[0]) == "" {
		return Record{}, "", errors.New("empty image path")
	}
	if answer == "" {
		return Record{}, "", errors.New("sample has no assistant answer")
	}
	a, err := ParseAnswer(answer, def)
	if err != nil {
		return Record{}, "", err
	}
	rec := Record{Diagnosis: Diagnosis{Severity: a.Grade, LesionCount: a.LesionCount}, TCMSyndrome: a.TCM}
	total := 0
	for _, n := range a.ByType {
		total += n
	}
	if total <= maxAnswerLesions {
		for _, t := range LesionTypes {
			for i := 0; i < a.ByType[t]; i++ {
				rec.Diagnosis.Lesions = append(rec.Diagnosis.Lesions, Lesion{Type: t})
			}
		}
	}
	if rec.Diagnosis.LesionCount == nil && a.ByType != nil {
		rec.Diagnosis.LesionCount = &total
	}
	return rec, s.Images[0], nil
}

// readShareGPT imports a ShareGPT JSON / JSON Lines file, or every *.json and *.jsonl file in
// a folder. Relative image paths are resolved against the file's folder, then against the
// working directory (ms-swift's convention). A file named after a split (train.json) sets
// the records' split.
func readShareGPT(src string, opts ImportOptions) ([]item, []Skip, error) {
	st, err := os.Stat(src)
	if err != nil {
		return nil, nil, fmt.Errorf("sharegpt source: %w", err)
	}
	files := []string{src}
	if st.IsDir() {
		files = nil
		ents, err := readDirSorted(src)
		if err != nil {
			return nil, nil, fmt.Errorf("sharegpt source %s: %w", src, err)
		}
		for _, e := range ents {
			ext := strings.ToLower(filepath.Ext(e.Name()))
			if !e.IsDir() && (ext == ".json" || ext == ".jsonl") {
				files = append(files, filepath.Join(src, e.Name()))
			}
		}
		if len(files) == 0 {
			return nil, nil, fmt.Errorf("sharegpt source %s has no .json or .jsonl files", src)
		}
	}
	var items []item
	var skips []Skip
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			skips = append(skips, Skip{File: f, Kind: SkipUnreadable, Reason: err.Error()})
			continue
		}
		samples, errs, err := ParseShareGPT(data)
		if err != nil {
			skips = append(skips, Skip{File: f, Kind: SkipBadAnnotation, Reason: err.Error()})
			continue
		}
		for _, e := range errs {
			skips = append(skips, Skip{File: f, Kind: SkipBadAnnotation, Reason: e.Error()})
		}
		split := splitNames[strings.ToLower(stem(f))]
		for _, s := range samples {
			rec, img, err := SampleRecord(s, opts.Scale)
			if err != nil {
				kind := SkipUnusable
				if errors.Is(err, errNoGrade) {
					kind = SkipNoGrade
				}
				skips = append(skips, Skip{File: f, Kind: kind, Reason: fmt.Sprintf("sample %d: %v", s.Index, err)})
				continue
			}
			p := filepath.FromSlash(img)
			if !filepath.IsAbs(p) {
				cand := filepath.Join(filepath.Dir(f), p)
				if _, err := os.Stat(cand); err != nil {
					if abs, err2 := filepath.Abs(p); err2 == nil {
						if _, err3 := os.Stat(abs); err3 == nil {
							cand = abs
						}
					}
				}
				p = cand
			}
			rec.ImageID = stem(p)
			rec.Split = split
			if _, source, ok := ParseACNE04Name(p); ok {
				rec.SourceID = source
			}
			items = append(items, item{rec: rec, img: p, file: fmt.Sprintf("%s (sample %d)", f, s.Index), needDim: true})
		}
	}
	return items, skips, nil
}

// DefaultSystemPrompt is the system message of exported conversations.
const DefaultSystemPrompt = "You are a dermatologist trained in both Western medicine and Traditional Chinese Medicine (TCM). You assess acne from facial photographs."

// Question returns the user question for a grade scale.
func Question(sc severity.Scale) string {
	var names []string
	for g := 0; g < sc.NumGrades(); g++ {
		names = append(names, sc.Format(g)+" "+sc.Label(g).EN)
	}
	return fmt.Sprintf("Grade the acne severity in this photo on the %s scale (%s), count the lesions by type, and give the TCM syndrome if one can be identified.", sc, strings.Join(names, ", "))
}

// FormatAnswer renders a record's annotation as the assistant answer ParseAnswer reads
// back: the grade with its label on its scale, the lesion counts by type when known, and the
// TCM syndrome and constitution when present.
func FormatAnswer(r *Record) (string, error) {
	g := r.Diagnosis.Severity
	if g == nil {
		return "", errors.New("record has no severity grade")
	}
	if err := g.Validate(); err != nil {
		return "", err
	}
	l := g.Scale.Label(g.Value)
	var b strings.Builder
	fmt.Fprintf(&b, "Severity: grade %s (%s, %s) on the %s scale.", g.Scale.Format(g.Value), l.EN, l.ZH, g.Scale)
	byType, total, known := LesionCounts(r)
	if known {
		parts := make([]string, len(LesionTypes))
		for i, t := range LesionTypes {
			parts[i] = fmt.Sprintf("%s %d", t, byType[t])
		}
		fmt.Fprintf(&b, "\nLesions: %d in total (%s).", total, strings.Join(parts, ", "))
	} else if r.Diagnosis.LesionCount != nil {
		fmt.Fprintf(&b, "\nLesions: %d in total.", *r.Diagnosis.LesionCount)
	}
	if t := r.TCMSyndrome; t != nil {
		if t.Pattern != "" {
			fmt.Fprintf(&b, "\nTCM syndrome: %s.", oneLine(t.Pattern))
		}
		if t.Constitution != "" {
			fmt.Fprintf(&b, "\nTCM constitution: %s.", oneLine(t.Constitution))
		}
	}
	return b.String(), nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// LesionCounts counts a record's lesions by type. known is false when the record lists no
// lesions (then total is lesion_count when present); a record with lesion_count 0 and no
// lesions counts as known zeros.
func LesionCounts(r *Record) (byType map[string]int, total int, known bool) {
	byType = map[string]int{}
	for _, l := range r.Diagnosis.Lesions {
		byType[l.Type]++
	}
	total = len(r.Diagnosis.Lesions)
	known = total > 0
	if c := r.Diagnosis.LesionCount; c != nil {
		if !known && *c == 0 {
			known = true
		}
		if !known {
			total = *c
		}
	}
	return byType, total, known
}

// ExportOptions configures ExportShareGPT.
type ExportOptions struct {
	OutFile      string         // the JSON file to write; relative image paths are relative to its folder
	AbsolutePath bool           // write absolute image paths instead
	Split        string         // export only records of this split (empty: all)
	Scale        severity.Scale // convert grades to this scale first (empty: keep each record's)
	System       string         // system prompt (empty: DefaultSystemPrompt)
}

// ExportShareGPT converts a manifest into ShareGPT samples, one per graded record. Records
// without a grade, or whose grade has no equivalent on opts.Scale, are skipped and reported.
func ExportShareGPT(m *Manifest, opts ExportOptions) ([]ShareGPTSample, []Skip, error) {
	outDir, err := filepath.Abs(filepath.Dir(opts.OutFile))
	if err != nil {
		return nil, nil, fmt.Errorf("output %s: %w", opts.OutFile, err)
	}
	system := opts.System
	if system == "" {
		system = DefaultSystemPrompt
	}
	var samples []ShareGPTSample
	var skips []Skip
	for i := range m.Records {
		r := m.Records[i]
		if opts.Split != "" && r.Split != opts.Split {
			continue
		}
		where := fmt.Sprintf("%s: record %q", m.Path, r.ImageID)
		if g := r.Diagnosis.Severity; g != nil && opts.Scale != "" && g.Scale != opts.Scale {
			v, ok := severity.Convert(g.Value, g.Scale, opts.Scale)
			if !ok {
				skips = append(skips, Skip{File: where, Kind: SkipNoGrade, Reason: fmt.Sprintf("%s grade %s has no %s equivalent", g.Scale, g.Scale.Format(g.Value), opts.Scale)})
				continue
			}
			r.Diagnosis.Severity = &severity.Grade{Value: v, Scale: opts.Scale}
		}
		answer, err := FormatAnswer(&r)
		if err != nil {
			skips = append(skips, Skip{File: where, Kind: SkipNoGrade, Reason: err.Error()})
			continue
		}
		img, err := filepath.Abs(m.ImagePath(&r))
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", where, err)
		}
		if !opts.AbsolutePath {
			img = relImage(outDir, img)
		}
		samples = append(samples, ShareGPTSample{
			Messages: []ShareGPTMessage{
				{Role: "system", Content: system},
				{Role: "user", Content: ImageToken + Question(r.Diagnosis.Severity.Scale)},
				{Role: "assistant", Content: answer},
			},
			Images: []string{filepath.ToSlash(img)},
		})
	}
	return samples, skips, nil
}

// WriteShareGPT writes samples to path atomically as an indented JSON array.
func WriteShareGPT(path string, samples []ShareGPTSample) error {
	if samples == nil {
		samples = []ShareGPTSample{}
	}
	return fsutil.WriteAtomic(path, 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(samples)
	})
}
