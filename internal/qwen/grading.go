package qwen

import (
	"context"
	"fmt"
	"image"
	"math"
	"strconv"
	"strings"

	"github.com/acdtcm/acdtcm/internal/infer"
	"github.com/acdtcm/acdtcm/internal/severity"
	"github.com/acdtcm/acdtcm/internal/tokenizer"
)

// The grading prompt shared by training (LoRA data) and inference, so the model is asked
// exactly what it was taught. The answer starts with the grade digit, so the probability of
// each grade is read from the logits of the first answer token.
const (
	GradingSystemPrompt = "You are a dermatology assistant that grades acne severity from face photos and explains findings, including Traditional Chinese Medicine syndrome differentiation. You do not prescribe."
	GradingQuestion     = "Grade the acne severity in this photo on the Hayashi scale (0 mild, 1 moderate, 2 severe, 3 very severe). Answer with the grade number first, then the lesion findings."
)

// GradingMessages builds the chat for one photo, with an optional assistant answer (training).
func GradingMessages(answer string) []tokenizer.Message {
	msgs := []tokenizer.Message{
		tokenizer.TextMessage("system", GradingSystemPrompt),
		{Role: "user", Content: []tokenizer.Content{{Image: true}, {Text: GradingQuestion}}},
	}
	if answer != "" {
		msgs = append(msgs, tokenizer.TextMessage("assistant", answer))
	}
	return msgs
}

// GradeTokenIDs returns the token id of each grade digit of the scale ("0".."3").
func (m *Model) GradeTokenIDs(scale severity.Scale) ([]int, error) {
	ids := make([]int, scale.NumGrades())
	for g := range ids {
		enc := m.Tokenizer.Encode(strconv.Itoa(g))
		if len(enc) != 1 {
			return nil, fmt.Errorf("grade %d is not a single token in this tokenizer (%v)", g, enc)
		}
		ids[g] = enc[0]
	}
	return ids, nil
}

// GradeProbabilities turns first-answer-token logits into per-grade probabilities: a softmax
// over the grade tokens only (the model's distribution conditioned on answering a grade).
func GradeProbabilities(logits []float32, gradeIDs []int) []float64 {
	maxv := math.Inf(-1)
	for _, id := range gradeIDs {
		maxv = math.Max(maxv, float64(logits[id]))
	}
	probs := make([]float64, len(gradeIDs))
	sum := 0.0
	for i, id := range gradeIDs {
		probs[i] = math.Exp(float64(logits[id]) - maxv)
		sum += probs[i]
	}
	for i := range probs {
		probs[i] /= sum
	}
	return probs
}

// Grader adapts a Qwen2.5-VL model to infer.Model: it scores grades from the first answer
// token of the grading prompt. Predict batches photos into one left-padded prompt batch.
type Grader struct {
	Model   *Model
	Scale   severity.Scale
	Version string
	Backend string
	// Quantization is the method of a quantized checkpoint (e.g. "nf4"); empty for float weights.
	Quantization string
	gradeIDs     []int
}

// NewGrader prepares the grade tokens of a loaded model.
func NewGrader(m *Model, version, backend string) (*Grader, error) {
	ids, err := m.GradeTokenIDs(severity.Hayashi)
	if err != nil {
		return nil, err
	}
	return &Grader{Model: m, Scale: severity.Hayashi, Version: version, Backend: backend, gradeIDs: ids}, nil
}

// Info describes the model for results and the API.
func (g *Grader) Info() infer.ModelInfo {
	return infer.ModelInfo{Name: "qwen2.5-vl", Version: g.Version, Backend: g.Backend, Scale: g.Scale, Quantization: g.Quantization}
}

// Preprocess keeps the decoded photo; the processor runs inside Predict with the prompt.
func (g *Grader) Preprocess(img image.Image) (infer.Input, error) {
	b := img.Bounds()
	if _, _, err := SmartResize(b.Dy(), b.Dx(), g.Model.Processor.PatchSize*g.Model.Processor.MergeSize, g.Model.Processor.MinPixels, g.Model.Processor.MaxPixels); err != nil {
		return nil, err
	}
	return img, nil
}

// Predict scores a batch of photos.
func (g *Grader) Predict(_ context.Context, batch []infer.Input) ([]infer.Prediction, error) {
	prompts := make([]Prompt, len(batch))
	for i, in := range batch {
		img, ok := in.(image.Image)
		if !ok {
			return nil, fmt.Errorf("qwen grader: input %d is %T, not an image", i, in)
		}
		prompts[i] = Prompt{Messages: GradingMessages(""), Images: []image.Image{img}}
	}
	gc := g.Model.Generation
	gc.MaxNewTokens = 1
	gens, err := g.Model.Generate(prompts, gc)
	if err != nil {
		return nil, err
	}
	out := make([]infer.Prediction, len(gens))
	for i, gen := range gens {
		out[i] = infer.Prediction{Probabilities: GradeProbabilities(gen.FirstLogits, g.gradeIDs)}
	}
	return out, nil
}

// GradingAnswer is the assistant answer used to train the grading prompt: the grade digit
// first (what Grader scores), then the label, lesion counts by type when known and the TCM
// syndrome when annotated.
func GradingAnswer(grade int, scale severity.Scale, counts map[string]int, syndrome string) string {
	var sb strings.Builder
	label := scale.Label(grade)
	fmt.Fprintf(&sb, "%d\nSeverity: %s (%s) on the %s scale.", grade, label.EN, label.ZH, scale)
	if len(counts) > 0 {
		var parts []string
		for _, t := range []string{"comedone", "papule", "pustule", "nodule"} {
			parts = append(parts, fmt.Sprintf("%ss %d", t, counts[t]))
		}
		sb.WriteString("\nLesions: " + strings.Join(parts, ", ") + ".")
	}
	if syndrome != "" {
		sb.WriteString("\nTCM syndrome: " + syndrome + ".")
	}
	return sb.String()
}

// ParseLeadingGrade reads the grade digit an answer starts with (-1 when absent).
func ParseLeadingGrade(answer string, scale severity.Scale) int {
	a := strings.TrimSpace(answer)
	if a == "" || a[0] < '0' || a[0] > '9' {
		return -1
	}
	g := int(a[0] - '0')
	if !scale.Valid(g) || (len(a) > 1 && a[1] >= '0' && a[1] <= '9') {
		return -1
	}
	return g
}
