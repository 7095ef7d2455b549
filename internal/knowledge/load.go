package knowledge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/acdtcm/acdtcm/configs"
)

// EmbeddedName is the name of the built-in knowledge base inside configs.FS.
const EmbeddedName = "knowledge.yaml"

// embeddedLabel is how errors and KB.Files name the built-in base.
const embeddedLabel = "configs/knowledge.yaml (embedded)"

// Embedded returns the raw YAML of the built-in knowledge base.
func Embedded() ([]byte, error) {
	data, err := configs.FS.ReadFile(EmbeddedName)
	if err != nil {
		return nil, fmt.Errorf("read embedded knowledge base: %w", err)
	}
	return data, nil
}

// Load parses and validates the built-in knowledge base.
func Load() (*KB, error) {
	data, err := Embedded()
	if err != nil {
		return nil, err
	}
	kb, _, err := parse(data, embeddedLabel)
	if err != nil {
		return nil, err
	}
	kb.Files = []string{embeddedLabel}
	if err := kb.Validate(); err != nil {
		return nil, err
	}
	return kb, nil
}

// LoadFile loads the built-in base and merges the user's YAML file at path over it, then
// validates the result. The file uses the schema of configs/knowledge.yaml; every section is
// optional. Merge semantics:
//
//   - List sections (disclaimers, scales, reference_scales, lesion_types, western,
//     external_treatments, lifestyle, syndromes, rules, constitutions, referrals): an entry
//     whose id matches a built-in entry replaces it whole; an entry with a new id is appended.
//   - sources: entries are added or replace the built-in entry with the same id.
//   - engine: only the keys present in the file override the built-in values.
//   - remove: {section: [ids]} deletes built-in entries before the file's entries are merged
//     (e.g. remove: {rules: [prior_lung]}).
//
// Unknown fields, YAML syntax errors and failed semantic checks are errors naming the file
// and, where known, the line.
func LoadFile(path string) (*KB, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read knowledge file: %w", err)
	}
	return LoadOverride(data, path)
}

// LoadOverride is LoadFile for YAML already in memory; name labels it in errors.
func LoadOverride(data []byte, name string) (*KB, error) {
	base, err := Load()
	if err != nil {
		return nil, err
	}
	over, node, err := parse(data, name)
	if err != nil {
		return nil, err
	}
	if err := base.merge(over, node, name); err != nil {
		return nil, err
	}
	if err := base.Validate(); err != nil {
		return nil, fmt.Errorf("%s merged over the built-in base: %w", name, err)
	}
	return base, nil
}

// parse decodes one YAML document strictly (unknown fields are errors) and records where each
// entry sits in the file.
func parse(data []byte, name string) (*KB, *yaml.Node, error) {
	kb := &KB{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(kb); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, fmt.Errorf("%s: empty knowledge file", name)
		}
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return nil, nil, fmt.Errorf("%s: line %d: more than one YAML document", name, extra.Line)
	} else if !errors.Is(err, io.EOF) {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", name, err)
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	if root.Kind != yaml.MappingNode {
		return nil, nil, fmt.Errorf("%s: line %d: top level must be a mapping of sections", name, root.Line)
	}
	kb.locate(root, name)
	return kb, root, nil
}

// mapValue returns the value node of key in a mapping node, or nil.
func mapValue(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// items returns the element nodes of the sequence under key, or nil.
func items(m *yaml.Node, key string) []*yaml.Node {
	v := mapValue(m, key)
	if v == nil || v.Kind != yaml.SequenceNode {
		return nil
	}
	return v.Content
}

func at(nodes []*yaml.Node, i int, file string) pos {
	if i < len(nodes) {
		return pos{file: file, line: nodes[i].Line}
	}
	return pos{file: file}
}

// locate records the file and line of every entry.
func (kb *KB) locate(root *yaml.Node, file string) {
	n := items(root, "disclaimers")
	for i := range kb.Disclaimers {
		kb.Disclaimers[i].pos = at(n, i, file)
	}
	n = items(root, "scales")
	for i := range kb.Scales {
		kb.Scales[i].pos = at(n, i, file)
		var g []*yaml.Node
		if i < len(n) {
			g = items(n[i], "grades")
		}
		for j := range kb.Scales[i].Grades {
			kb.Scales[i].Grades[j].pos = at(g, j, file)
		}
	}
	n = items(root, "reference_scales")
	for i := range kb.ReferenceScales {
		kb.ReferenceScales[i].pos = at(n, i, file)
		var b []*yaml.Node
		if i < len(n) {
			b = items(n[i], "bands")
		}
		for j := range kb.ReferenceScales[i].Bands {
			kb.ReferenceScales[i].Bands[j].pos = at(b, j, file)
		}
	}
	n = items(root, "lesion_types")
	for i := range kb.LesionTypes {
		kb.LesionTypes[i].pos = at(n, i, file)
	}
	n = items(root, "western")
	for i := range kb.Western {
		kb.Western[i].pos = at(n, i, file)
	}
	n = items(root, "external_treatments")
	for i := range kb.External {
		kb.External[i].pos = at(n, i, file)
	}
	n = items(root, "lifestyle")
	for i := range kb.Lifestyle {
		kb.Lifestyle[i].pos = at(n, i, file)
	}
	n = items(root, "syndromes")
	for i := range kb.Syndromes {
		kb.Syndromes[i].pos = at(n, i, file)
	}
	n = items(root, "rules")
	for i := range kb.Rules {
		kb.Rules[i].pos = at(n, i, file)
	}
	n = items(root, "constitutions")
	for i := range kb.Constitutions {
		kb.Constitutions[i].pos = at(n, i, file)
	}
	n = items(root, "referrals")
	for i := range kb.Referrals {
		kb.Referrals[i].pos = at(n, i, file)
	}
}

// mergeByID replaces entries of base whose id matches an entry of over and appends the rest.
func mergeByID[T any](base, over []T, id func(*T) string) []T {
	index := make(map[string]int, len(base))
	for i := range base {
		index[id(&base[i])] = i
	}
	for i := range over {
		if j, ok := index[id(&over[i])]; ok {
			base[j] = over[i]
			continue
		}
		index[id(&over[i])] = len(base)
		base = append(base, over[i])
	}
	return base
}

// removeByID deletes the entries whose ids are listed and reports ids that were not found.
func removeByID[T any](base []T, ids []string, id func(*T) string) ([]T, []string) {
	drop := make(map[string]bool, len(ids))
	for _, x := range ids {
		drop[x] = true
	}
	out := base[:0]
	for i := range base {
		if drop[id(&base[i])] {
			delete(drop, id(&base[i]))
			continue
		}
		out = append(out, base[i])
	}
	var missing []string
	for _, x := range ids {
		if drop[x] {
			missing = append(missing, x)
		}
	}
	return out, missing
}

// merge applies an override file (already parsed) to kb; see LoadFile for the semantics.
func (kb *KB) merge(over *KB, root *yaml.Node, file string) error {
	if over.Version != 0 && over.Version != kb.Version {
		return fmt.Errorf("%s: version %d not supported (want %d)", file, over.Version, kb.Version)
	}
	if n := mapValue(root, "engine"); n != nil {
		if err := n.Decode(&kb.Engine); err != nil {
			return fmt.Errorf("%s: engine: %w", file, err)
		}
	}
	var problems []string
	for _, section := range slices.Sorted(maps.Keys(over.Remove)) {
		ids := over.Remove[section]
		var missing []string
		switch section {
		case "disclaimers":
			kb.Disclaimers, missing = removeByID(kb.Disclaimers, ids, func(x *Disclaimer) string { return x.ID })
		case "scales":
			kb.Scales, missing = removeByID(kb.Scales, ids, func(x *Scale) string { return x.ID })
		case "reference_scales":
			kb.ReferenceScales, missing = removeByID(kb.ReferenceScales, ids, func(x *ReferenceScale) string { return x.ID })
		case "lesion_types":
			kb.LesionTypes, missing = removeByID(kb.LesionTypes, ids, func(x *LesionType) string { return x.ID })
		case "western":
			kb.Western, missing = removeByID(kb.Western, ids, func(x *Western) string { return x.ID })
		case "external_treatments":
			kb.External, missing = removeByID(kb.External, ids, func(x *Item) string { return x.ID })
		case "lifestyle":
			kb.Lifestyle, missing = removeByID(kb.Lifestyle, ids, func(x *Item) string { return x.ID })
		case "syndromes":
			kb.Syndromes, missing = removeByID(kb.Syndromes, ids, func(x *Syndrome) string { return x.ID })
		case "rules":
			kb.Rules, missing = removeByID(kb.Rules, ids, func(x *Rule) string { return x.ID })
		case "constitutions":
			kb.Constitutions, missing = removeByID(kb.Constitutions, ids, func(x *Constitution) string { return x.ID })
		case "referrals":
			kb.Referrals, missing = removeByID(kb.Referrals, ids, func(x *ReferralRule) string { return x.ID })
		case "sources":
			for _, id := range ids {
				if _, ok := kb.Sources[id]; !ok {
					missing = append(missing, id)
				}
				delete(kb.Sources, id)
			}
		default:
			problems = append(problems, fmt.Sprintf("%s: remove: unknown section %q", file, section))
		}
		for _, id := range missing {
			problems = append(problems, fmt.Sprintf("%s: remove: %s has no entry %q", file, section, id))
		}
	}
	if len(problems) > 0 {
		return &ValidationError{Problems: problems}
	}
	kb.Disclaimers = mergeByID(kb.Disclaimers, over.Disclaimers, func(x *Disclaimer) string { return x.ID })
	kb.Scales = mergeByID(kb.Scales, over.Scales, func(x *Scale) string { return x.ID })
	kb.ReferenceScales = mergeByID(kb.ReferenceScales, over.ReferenceScales, func(x *ReferenceScale) string { return x.ID })
	kb.LesionTypes = mergeByID(kb.LesionTypes, over.LesionTypes, func(x *LesionType) string { return x.ID })
	kb.Western = mergeByID(kb.Western, over.Western, func(x *Western) string { return x.ID })
	kb.External = mergeByID(kb.External, over.External, func(x *Item) string { return x.ID })
	kb.Lifestyle = mergeByID(kb.Lifestyle, over.Lifestyle, func(x *Item) string { return x.ID })
	kb.Syndromes = mergeByID(kb.Syndromes, over.Syndromes, func(x *Syndrome) string { return x.ID })
	kb.Rules = mergeByID(kb.Rules, over.Rules, func(x *Rule) string { return x.ID })
	kb.Constitutions = mergeByID(kb.Constitutions, over.Constitutions, func(x *Constitution) string { return x.ID })
	kb.Referrals = mergeByID(kb.Referrals, over.Referrals, func(x *ReferralRule) string { return x.ID })
	if kb.Sources == nil {
		kb.Sources = map[string]Source{}
	}
	for id, s := range over.Sources {
		kb.Sources[id] = s
	}
	kb.Files = append(kb.Files, file)
	return nil
}

func itoa(i int) string { return strconv.Itoa(i) }

// Open returns the built-in knowledge base when path is empty, else the built-in base merged
// with the user's file at path (see LoadFile).
func Open(path string) (*KB, error) {
	if path == "" {
		return Load()
	}
	return LoadFile(path)
}
