package lora

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/dlclark/regexp2"
)

// Patterns is PEFT's rank_pattern or alpha_pattern: regexes on module names mapped to a rank
// or alpha, in the key order of adapter_config.json. The order matters: PEFT
// (peft.utils.other.get_pattern_key, used by LoraModel._create_and_replace) takes the first
// key, in the dict's insertion order, that matches a module, so a Go map, whose iteration
// order is random, cannot represent it. A JSON object decodes in file order (a repeated key
// keeps its first position and its last value, as Python's json.loads does) and encodes in
// the same order, {} when empty: PEFT 0.15's PeftModel.from_pretrained fails on null there
// (it calls .keys() on them).
type Patterns[V int | float64] []Pattern[V]

// Pattern is one rank_pattern or alpha_pattern entry.
type Pattern[V int | float64] struct {
	Key   string
	Value V
}

// Lookup returns the value of the first key that matches module (under either transformers
// naming, see spellings), or def when none does. A key matches as in PEFT: the whole name or
// a "."-separated suffix of it is a full match of the regex, re.match(rf"(.*\.)?({key})$").
func (p Patterns[V]) Lookup(module string, def V) V {
	for _, e := range p {
		re, err := patternRegex(e.Key)
		if err != nil {
			continue // rejected by Config.compile
		}
		for _, name := range spellings(module) {
			if ok, _ := re.MatchString(name); ok {
				return e.Value
			}
		}
	}
	return def
}

// patternRegex is PEFT's get_pattern_key regex for a pattern key: Python's re.match anchors
// at the start, $ at the end.
func patternRegex(key string) (*regexp2.Regexp, error) {
	return regexp2.Compile(`^(.*\.)?(`+key+`)$`, regexp2.None)
}

// check reports a key that is not a valid regex (PEFT would raise re.error).
func (p Patterns[V]) check(field string) error {
	for _, e := range p {
		if _, err := patternRegex(e.Key); err != nil {
			return fmt.Errorf("%s key %q is not a valid regex: %w", field, e.Key, err)
		}
	}
	return nil
}

// MarshalJSON writes the patterns as a JSON object in their order ({} when empty).
func (p Patterns[V]) MarshalJSON() ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false) // keep regexes such as (?<!visual) readable
	buf.WriteByte('{')
	for i, e := range p {
		if i > 0 {
			buf.WriteByte(',')
		}
		if err := enc.Encode(e.Key); err != nil {
			return nil, err
		}
		buf.Truncate(buf.Len() - 1) // Encode's newline
		buf.WriteByte(':')
		if err := enc.Encode(e.Value); err != nil {
			return nil, err
		}
		buf.Truncate(buf.Len() - 1)
	}
	buf.WriteByte('}')
	return buf.Bytes(), nil
}

// UnmarshalJSON reads a JSON object (or null) keeping its key order.
func (p *Patterns[V]) UnmarshalJSON(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	if tok == nil {
		*p = nil
		return nil
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return fmt.Errorf("a pattern map must be a JSON object of regex: value, got %s", data)
	}
	var out Patterns[V]
	index := map[string]int{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key := tok.(string) // object keys are always strings
		var v V
		if err := dec.Decode(&v); err != nil {
			return fmt.Errorf("pattern %q: %w", key, err)
		}
		if i, dup := index[key]; dup {
			out[i].Value = v
			continue
		}
		index[key] = len(out)
		out = append(out, Pattern[V]{key, v})
	}
	if _, err := dec.Token(); err != nil { // the closing }
		return err
	}
	*p = out
	return nil
}
