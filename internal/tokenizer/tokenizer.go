// Package tokenizer implements the byte-level BPE tokenizer of Qwen2 / Qwen2.5 / Qwen2.5-VL
// from a checkpoint's own tokenizer.json: NFC normalisation, added (special) tokens matched
// verbatim first, the Split pre-tokenizer regex (with its \s+(?!\S) look-ahead, hence
// regexp2), GPT-2 byte-to-unicode mapping and lowest-rank-first merges. Encode and Decode
// match Hugging Face tokenizers; the chat template lives in chat.go.
package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/dlclark/regexp2"
	"golang.org/x/text/unicode/norm"
)

// DefaultPattern is Qwen2's pre-tokenizer regex, used when tokenizer.json names none.
const DefaultPattern = `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`

// AddedToken is a token matched verbatim in the input before BPE.
type AddedToken struct {
	ID      int    `json:"id"`
	Content string `json:"content"`
	Special bool   `json:"special"`
}

// Tokenizer encodes text to ids and back. It is safe for concurrent use.
type Tokenizer struct {
	vocab     map[string]int
	idToToken []string
	ranks     map[[2]string]int
	added     []AddedToken // sorted by descending content length for longest match
	addedByID map[int]AddedToken
	pattern   *regexp2.Regexp
	nfc       bool

	mu    sync.RWMutex
	cache map[string][]int
}

// tokenizerFile is the subset of tokenizer.json the BPE needs.
type tokenizerFile struct {
	AddedTokens  []AddedToken    `json:"added_tokens"`
	Normalizer   json.RawMessage `json:"normalizer"`
	PreTokenizer json.RawMessage `json:"pre_tokenizer"`
	Model        struct {
		Type   string            `json:"type"`
		Vocab  map[string]int    `json:"vocab"`
		Merges []json.RawMessage `json:"merges"`
	} `json:"model"`
}

// Load reads a Hugging Face tokenizer.json.
func Load(path string) (*Tokenizer, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokenizer: %w", err)
	}
	tok, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return tok, nil
}

// Parse builds a tokenizer from the contents of a tokenizer.json.
func Parse(data []byte) (*Tokenizer, error) {
	var f tokenizerFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("parse tokenizer.json: %w", err)
	}
	if f.Model.Type != "BPE" {
		return nil, fmt.Errorf("model type %q is not supported (want BPE)", f.Model.Type)
	}
	if len(f.Model.Vocab) == 0 {
		return nil, fmt.Errorf("model.vocab is empty")
	}
	t := &Tokenizer{
		vocab:     f.Model.Vocab,
		ranks:     make(map[[2]string]int, len(f.Model.Merges)),
		addedByID: map[int]AddedToken{},
		cache:     map[string][]int{},
		nfc:       strings.Contains(string(f.Normalizer), `"NFC"`),
	}
	maxID := -1
	for _, id := range t.vocab {
		maxID = max(maxID, id)
	}
	for _, a := range f.AddedTokens {
		maxID = max(maxID, a.ID)
	}
	t.idToToken = make([]string, maxID+1)
	for s, id := range t.vocab {
		t.idToToken[id] = s
	}
	for i, raw := range f.Model.Merges {
		pair, err := parseMerge(raw)
		if err != nil {
			return nil, fmt.Errorf("merge %d: %w", i, err)
		}
		if _, dup := t.ranks[pair]; !dup {
			t.ranks[pair] = i
		}
	}
	for _, a := range f.AddedTokens {
		if a.Content == "" {
			return nil, fmt.Errorf("added token %d has empty content", a.ID)
		}
		t.added = append(t.added, a)
		t.addedByID[a.ID] = a
		t.idToToken[a.ID] = a.Content
	}
	sort.SliceStable(t.added, func(i, j int) bool { return len(t.added[i].Content) > len(t.added[j].Content) })
	pattern, err := splitPattern(f.PreTokenizer)
	if err != nil {
		return nil, err
	}
	t.pattern, err = regexp2.Compile(pattern, regexp2.Unicode)
	if err != nil {
		return nil, fmt.Errorf("compile pre-tokenizer regex: %w", err)
	}
	return t, nil
}

func parseMerge(raw json.RawMessage) ([2]string, error) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		a, b, ok := strings.Cut(s, " ")
		if !ok {
			return [2]string{}, fmt.Errorf("merge %q has no space", s)
		}
		return [2]string{a, b}, nil
	}
	var pair []string
	if err := json.Unmarshal(raw, &pair); err != nil || len(pair) != 2 {
		return [2]string{}, fmt.Errorf("merge %s is neither \"a b\" nor [a, b]", raw)
	}
	return [2]string{pair[0], pair[1]}, nil
}

// splitPattern finds the Split regex in the pre_tokenizer (alone or inside a Sequence).
func splitPattern(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return DefaultPattern, nil
	}
	var node struct {
		Type          string            `json:"type"`
		Pattern       map[string]string `json:"pattern"`
		PreTokenizers []json.RawMessage `json:"pretokenizers"`
	}
	if err := json.Unmarshal(raw, &node); err != nil {
		return "", fmt.Errorf("parse pre_tokenizer: %w", err)
	}
	switch node.Type {
	case "Split":
		if re, ok := node.Pattern["Regex"]; ok {
			return re, nil
		}
		return "", fmt.Errorf("pre_tokenizer Split without a Regex pattern is not supported")
	case "Sequence":
		for _, p := range node.PreTokenizers {
			if pat, err := splitPattern(p); err != nil || pat != DefaultPattern {
				return pat, err
			}
		}
	}
	return DefaultPattern, nil
}

// VocabSize is the number of ids (vocabulary plus added tokens).
func (t *Tokenizer) VocabSize() int { return len(t.idToToken) }

// TokenID returns the id of a vocabulary or added token.
func (t *Tokenizer) TokenID(token string) (int, bool) {
	for _, a := range t.added {
		if a.Content == token {
			return a.ID, true
		}
	}
	id, ok := t.vocab[token]
	return id, ok
}

// Token returns the spelling of an id (added tokens verbatim, others byte-level).
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.idToToken) {
		return ""
	}
	return t.idToToken[id]
}

// Encode tokenizes text. Added tokens in the text are matched verbatim; no BOS is added.
func (t *Tokenizer) Encode(text string) []int {
	var ids []int
	for len(text) > 0 {
		pos, tok := t.nextAdded(text)
		segment := text[:pos]
		if t.nfc {
			segment = norm.NFC.String(segment)
		}
		ids = t.encodeOrdinary(segment, ids)
		if tok == nil {
			break
		}
		ids = append(ids, tok.ID)
		text = text[pos+len(tok.Content):]
	}
	return ids
}

// nextAdded finds the earliest (then longest) added token in text.
func (t *Tokenizer) nextAdded(text string) (int, *AddedToken) {
	best, bestPos := -1, len(text)
	for i := range t.added {
		if p := strings.Index(text[:min(len(text), bestPos+len(t.added[i].Content))], t.added[i].Content); p >= 0 && p < bestPos {
			best, bestPos = i, p
		}
	}
	if best < 0 {
		return len(text), nil
	}
	return bestPos, &t.added[best]
}

func (t *Tokenizer) encodeOrdinary(text string, ids []int) []int {
	if text == "" {
		return ids
	}
	m, err := t.pattern.FindStringMatch(text)
	for err == nil && m != nil {
		ids = append(ids, t.encodeWord(m.String())...)
		m, err = t.pattern.FindNextMatch(m)
	}
	return ids
}

// encodeWord applies BPE to one pre-token, with a cache.
func (t *Tokenizer) encodeWord(word string) []int {
	t.mu.RLock()
	cached, ok := t.cache[word]
	t.mu.RUnlock()
	if ok {
		return cached
	}
	runes := byteLevel(word)
	parts := make([]string, len(runes))
	for i, r := range runes {
		parts[i] = string(r)
	}
	for len(parts) > 1 {
		bestRank, bestIdx := -1, -1
		for i := 0; i+1 < len(parts); i++ {
			if r, ok := t.ranks[[2]string{parts[i], parts[i+1]}]; ok && (bestRank < 0 || r < bestRank) {
				bestRank, bestIdx = r, i
			}
		}
		if bestIdx < 0 {
			break
		}
		// Merge every occurrence of the best pair, left to right, as HF does.
		a, b := parts[bestIdx], parts[bestIdx+1]
		merged := parts[:0:0]
		for i := 0; i < len(parts); i++ {
			if i+1 < len(parts) && parts[i] == a && parts[i+1] == b {
				merged = append(merged, a+b)
				i++
			} else {
				merged = append(merged, parts[i])
			}
		}
		parts = merged
	}
	ids := make([]int, 0, len(parts))
	for _, p := range parts {
		if id, ok := t.vocab[p]; ok {
			ids = append(ids, id)
			continue
		}
		// Without byte_fallback an unknown piece is spelled byte by byte (every single byte
		// rune is in a byte-level vocabulary).
		for _, r := range p {
			if id, ok := t.vocab[string(r)]; ok {
				ids = append(ids, id)
			}
		}
	}
	t.mu.Lock()
	if len(t.cache) > 100_000 {
		t.cache = map[string][]int{}
	}
	t.cache[word] = ids
	t.mu.Unlock()
	return ids
}

// Decode turns ids back into text. Invalid UTF-8 is replaced with U+FFFD; special tokens
// are dropped when skipSpecial is set.
func (t *Tokenizer) Decode(ids []int, skipSpecial bool) string {
	var sb strings.Builder
	var pending []byte
	flush := func() {
		for len(pending) > 0 {
			r, size := utf8.DecodeRune(pending)
			sb.WriteRune(r) // RuneError for invalid bytes, as errors="replace"
			pending = pending[size:]
		}
	}
	for _, id := range ids {
		if a, ok := t.addedByID[id]; ok {
			if skipSpecial && a.Special {
				continue
			}
			flush()
			sb.WriteString(a.Content)
			continue
		}
		pending = fromByteLevel(t.Token(id), pending)
	}
	flush()
	return sb.String()
}
