package tokenizer

import (
	"slices"
	"testing"
)

func TestRenderChatAnchors(t *testing.T) {
	tok := sharedTokenizer(t)
	// The anchor ids from transformers' integration test (qwen2_5_vl.md §6.3).
	prompt := RenderChat([]Message{{Role: "user", Content: []Content{{Image: true}, {Text: "What kind of dog is this?"}}}}, true)
	wantText := "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|><|image_pad|><|vision_end|>What kind of dog is this?<|im_end|>\n<|im_start|>assistant\n"
	if prompt != wantText {
		t.Fatalf("RenderChat = %q", prompt)
	}
	pad, _ := tok.TokenID(ImagePad)
	ids := ExpandImagePads(tok.Encode(prompt), pad, []int{2})
	wantPrefix := []int{151644, 8948, 198, 2610, 525, 264, 10950, 17847, 13, 151645, 198, 151644, 872, 198, 151652, 151655, 151655, 151653}
	if !slices.Equal(ids[:len(wantPrefix)], wantPrefix) {
		t.Errorf("prompt ids start %v, want %v", ids[:len(wantPrefix)], wantPrefix)
	}
	if tail := ids[len(ids)-3:]; !slices.Equal(tail, []int{151644, 77091, 198}) {
		t.Errorf("generation prompt ids %v, want 151644 77091 198", tail)
	}
}

func TestRenderChatWithSystem(t *testing.T) {
	tests := []struct {
		name string
		msgs []Message
		gen  bool
		want string
	}{
		{"own system, answer", []Message{TextMessage("system", "S"), TextMessage("user", "Q"), TextMessage("assistant", "A")}, false,
			"<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n"},
		{"no messages", nil, true, "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>assistant\n"},
	}
	for _, tc := range tests {
		if got := RenderChat(tc.msgs, tc.gen); got != tc.want {
			t.Errorf("%s: got %q", tc.name, got)
		}
	}
}

func TestExpandImagePads(t *testing.T) {
	got := ExpandImagePads([]int{1, 9, 2, 9, 3}, 9, []int{3, 1})
	if want := []int{1, 9, 9, 9, 2, 9, 3}; !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
}
