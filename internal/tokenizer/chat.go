package tokenizer

import "strings"

// Special token spellings of the Qwen2.5-VL chat format.
const (
	ImStart     = "<|im_start|>"
	ImEnd       = "<|im_end|>"
	VisionStart = "<|vision_start|>"
	VisionEnd   = "<|vision_end|>"
	ImagePad    = "<|image_pad|>"
	EndOfText   = "<|endoftext|>"
)

// DefaultSystemPrompt is emitted when the first message is not a system message.
const DefaultSystemPrompt = "You are a helpful assistant."

// Content is one item of a message: text, or an image placeholder.
type Content struct {
	Text  string
	Image bool
}

// Message is one chat turn.
type Message struct {
	Role    string // system, user, assistant
	Content []Content
}

// TextMessage is a message with a single text item.
func TextMessage(role, text string) Message {
	return Message{Role: role, Content: []Content{{Text: text}}}
}

// RenderChat renders messages with the Qwen2-VL / Qwen2.5-VL chat template: a default
// system turn when none is given, each turn as <|im_start|>role\n...<|im_end|>\n, an image
// as <|vision_start|><|image_pad|><|vision_end|> (one pad; ExpandImagePads widens it), and
// <|im_start|>assistant\n when addGenerationPrompt is set.
func RenderChat(messages []Message, addGenerationPrompt bool) string {
	var sb strings.Builder
	if len(messages) == 0 || messages[0].Role != "system" {
		sb.WriteString(ImStart + "system\n" + DefaultSystemPrompt + ImEnd + "\n")
	}
	for _, m := range messages {
		sb.WriteString(RenderMessage(m))
	}
	if addGenerationPrompt {
		sb.WriteString(ImStart + "assistant\n")
	}
	return sb.String()
}

// ExpandImagePads replaces the k-th <|image_pad|> id with counts[k] copies of it: the
// number of merged vision tokens of image k (grid t*h*w / merge_size²).
func ExpandImagePads(ids []int, imagePadID int, counts []int) []int {
	out := make([]int, 0, len(ids))
	k := 0
	for _, id := range ids {
		if id == imagePadID && k < len(counts) {
			for i := 0; i < counts[k]; i++ {
				out = append(out, id)
			}
			k++
			continue
		}
		out = append(out, id)
	}
	return out
}

// RenderMessage renders one turn: <|im_start|>role\ncontent<|im_end|>\n.
func RenderMessage(m Message) string {
	var sb strings.Builder
	sb.WriteString(ImStart + m.Role + "\n")
	for _, c := range m.Content {
		if c.Image {
			sb.WriteString(VisionStart + ImagePad + VisionEnd)
		} else {
			sb.WriteString(c.Text)
		}
	}
	sb.WriteString(ImEnd + "\n")
	return sb.String()
}
