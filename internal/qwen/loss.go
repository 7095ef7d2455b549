package qwen

import (
	"fmt"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph-building code reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/tokenizer"
)

// IgnoreIndex marks label positions that do not contribute to the loss.
const IgnoreIndex = -100

// TrainSample is one chat rendered for training: the full conversation (ending with the
// assistant answer) and its images.
type TrainSample struct {
	Messages []tokenizer.Message
	Images   []ProcessedImage
	// Grade is the answer's grade (for the optional grade-token loss); -1 when absent.
	Grade int
}

// TrainBatch holds the host inputs of one right-padded training batch.
type TrainBatch struct {
	B, S     int
	IDs      []int32   // [B*S]
	Targets  []int32   // [B*S] next-token targets (0 where ignored)
	Weights  []float32 // [B*S] 1 where the target counts
	Mask     []bool    // [B*S*S] causal and padding mask
	Cos, Sin []float32 // [B*S*D]
	Src      []int32   // [B*S] image feature row per image token
	IsImage  []bool    // [B*S]
	// GradePos is the flat position whose logits predict the grade token (-1: none), and
	// GradeLabel the grade.
	GradePos   []int32
	GradeLabel []int32
	Images     []ProcessedImage
	Tokens     int // target tokens in the batch
}

// Labels returns the ids of a rendered conversation (the chat template, with the default
// system turn when none is given) and its labels: every token is ignored except the
// assistant turns' content and their closing <|im_end|>, as LLaMA-Factory and ms-swift label
// Qwen chats. Turns are encoded one by one: each starts with a special token, so the
// concatenation equals encoding the whole conversation.
func (m *Model) Labels(msgs []tokenizer.Message) (ids, labels []int) {
	if len(msgs) == 0 || msgs[0].Role != "system" {
		msgs = append([]tokenizer.Message{tokenizer.TextMessage("system", tokenizer.DefaultSystemPrompt)}, msgs...)
	}
	head := len(m.Tokenizer.Encode(tokenizer.ImStart + "assistant\n"))
	for _, msg := range msgs {
		turn := m.Tokenizer.Encode(tokenizer.RenderMessage(msg))
		ids = append(ids, turn...)
		for k, id := range turn {
			if msg.Role == "assistant" && k >= head && k < len(turn)-1 {
				labels = append(labels, id) // content and <|im_end|>, not the final "\n"
			} else {
				labels = append(labels, IgnoreIndex)
			}
		}
	}
	return ids, labels
}

// NewTrainBatch tokenizes samples, expands image pads, right-pads to the longest sequence
// and computes targets, masks and M-RoPE tables. gradeIDs (optional) locate the grade
// token in the answer for the classification loss.
func (m *Model) NewTrainBatch(samples []TrainSample, gradeIDs []int) (*TrainBatch, error) {
	cfg := m.Config
	D := cfg.Text.HeadDim()
	type seq struct {
		ids, labels []int
		grids       [][3]int
	}
	seqs := make([]seq, len(samples))
	b := &TrainBatch{B: len(samples)}
	for i, s := range samples {
		ids, labels := m.Labels(s.Messages)
		counts := make([]int, len(s.Images))
		grids := make([][3]int, len(s.Images))
		for k, im := range s.Images {
			counts[k] = im.Tokens(cfg.Vision.SpatialMergeSize)
			grids[k] = im.Grid
		}
		pad := cfg.ImageTokenID
		var eids, elabels []int
		k := 0
		for j, id := range ids {
			n := 1
			if id == pad && k < len(counts) {
				n = counts[k]
				k++
			}
			for r := 0; r < n; r++ {
				eids = append(eids, id)
				elabels = append(elabels, labels[j])
			}
		}
		if k != len(counts) {
			return nil, fmt.Errorf("sample %d: %d images but %d image placeholders", i, len(counts), k)
		}
		seqs[i] = seq{eids, elabels, grids}
		b.S = max(b.S, len(eids))
		b.Images = append(b.Images, s.Images...)
	}
	S := b.S
	b.IDs, b.Targets, b.Weights = make([]int32, b.B*S), make([]int32, b.B*S), make([]float32, b.B*S)
	b.Mask = make([]bool, b.B*S*S)
	b.Cos, b.Sin = make([]float32, b.B*S*D), make([]float32, b.B*S*D)
	b.Src, b.IsImage = make([]int32, b.B*S), make([]bool, b.B*S)
	row := 0
	for i, sq := range seqs {
		n := len(sq.ids)
		pos, _, err := RopeIndex(sq.ids, cfg.ImageTokenID, sq.grids, cfg.Vision.SpatialMergeSize)
		if err != nil {
			return nil, fmt.Errorf("sample %d: %w", i, err)
		}
		var padded [3][]int
		for a := range padded {
			padded[a] = make([]int, S)
			copy(padded[a], pos[a])
		}
		MRopeTables(cfg, padded, b.Cos[i*S*D:(i+1)*S*D], b.Sin[i*S*D:(i+1)*S*D])
		gradePos := int32(-1)
		for s := 0; s < S; s++ {
			flat := i*S + s
			if s < n {
				b.IDs[flat] = int32(sq.ids[s])
				if sq.ids[s] == cfg.ImageTokenID {
					b.Src[flat], b.IsImage[flat] = int32(row), true
					row++
				}
				for j := 0; j <= s; j++ {
					b.Mask[flat*S+j] = true
				}
			} else {
				b.IDs[flat] = int32(m.Generation.PadTokenID)
				b.Mask[flat*S+s] = true // padding attends to itself only; it carries no loss
			}
			if s+1 < n && sq.labels[s+1] != IgnoreIndex {
				b.Targets[flat], b.Weights[flat] = int32(sq.labels[s+1]), 1
				b.Tokens++
				if gradePos < 0 && gradeIDs != nil && samples[i].Grade >= 0 {
					gradePos = int32(flat)
				}
			}
		}
		if gradeIDs != nil {
			b.GradePos = append(b.GradePos, max(gradePos, 0))
			b.GradeLabel = append(b.GradeLabel, int32(max(samples[i].Grade, 0)))
		}
	}
	if b.Tokens == 0 {
		return nil, fmt.Errorf("batch has no assistant tokens to learn from")
	}
	return b, nil
}

// LossOptions weight the two training objectives.
type LossOptions struct {
	// GradeLossWeight adds a grade-token classification loss (softmax over the grade
	// digits at the answer's first position), with label smoothing and class weights.
	GradeLossWeight float64
	LabelSmoothing  float64
	ClassWeights    []float64
	GradeTokenIDs   []int
}

// TrainLoss builds the training loss graph: mean next-token cross-entropy over assistant
// tokens (transformers' ForCausalLMLoss), plus the optional grade loss.
func TrainLoss(ctx *context.Context, cfg *Config, in TextInputs, targets, weights, gradePos, gradeLabel *Node, opts LossOptions) *Node {
	x := Embed(ctx, cfg, in)
	h := TextForward(ctx, cfg, x, in).Hidden
	logits := Logits(ctx, cfg, h) // [B, S, V]
	B, S, V := logits.Shape().Dimensions[0], logits.Shape().Dimensions[1], logits.Shape().Dimensions[2]
	flat := Reshape(logits, B*S, V)
	logp := LogSoftmax(flat, -1)
	rows := Iota(flat.Graph(), shapes.Make(dtypes.Int32, B*S), 0)
	idx := Stack([]*Node{rows, ConvertDType(targets, dtypes.Int32)}, -1) // [B*S, 2]
	nll := Neg(Gather(logp, idx))                                        // [B*S]
	weights = ConvertDType(weights, nll.DType())
	loss := Div(ReduceAllSum(Mul(nll, weights)), Max(ReduceAllSum(weights), OnesLike(ReduceAllSum(weights))))
	if opts.GradeLossWeight > 0 && gradePos != nil {
		loss = Add(loss, MulScalar(gradeLoss(flat, gradePos, gradeLabel, opts), opts.GradeLossWeight))
	}
	return loss
}

// gradeLoss is a class-weighted, label-smoothed cross-entropy over the grade tokens'
// logits at each sample's grade position.
func gradeLoss(flat, gradePos, gradeLabel *Node, opts LossOptions) *Node {
	g := flat.Graph()
	K := len(opts.GradeTokenIDs)
	rowsAt := Gather(flat, ExpandAxes(gradePos, -1)) // [B, V]
	ids := make([]int32, K)
	for i, id := range opts.GradeTokenIDs {
		ids[i] = int32(id)
	}
	cols := Const(g, ids)
	gradeLogits := Gather(Transpose(rowsAt, 0, 1), ExpandAxes(cols, -1)) // [K, B]
	gradeLogits = Transpose(gradeLogits, 0, 1)                           // [B, K]
	logp := LogSoftmax(gradeLogits, -1)
	onehot := OneHot(gradeLabel, K, logp.DType())
	eps := opts.LabelSmoothing
	target := AddScalar(MulScalar(onehot, 1-eps), eps/float64(K))
	cw := make([]float64, K)
	for i := range cw {
		cw[i] = 1
		if i < len(opts.ClassWeights) {
			cw[i] = opts.ClassWeights[i]
		}
	}
	w := ReduceSum(Mul(onehot, ExpandAxes(ConvertDType(Const(g, cw), logp.DType()), 0)), -1) // weight of each sample's class
	per := Neg(ReduceSum(Mul(target, logp), -1))
	return Div(ReduceAllSum(Mul(per, w)), ReduceAllSum(w))
}

// BatchTensors converts a TrainBatch into the graph inputs of TrainLoss, running the vision
// tower first when the batch has images (its features are inputs, so nothing in the tower is
// trained; when LoRA adapts the tower, train with VisionBatchTensors and
// LossWithVisionFromInputs instead).
func (m *Model) BatchTensors(b *TrainBatch) ([]*tensors.Tensor, error) {
	var feat *tensors.Tensor
	if len(b.Images) > 0 {
		f, err := m.VisionFeatures(b.Images)
		if err != nil {
			return nil, err
		}
		feat = f
	}
	return m.BatchTensorsWith(b, feat), nil
}

// BatchTensorsWith is BatchTensors with the batch's vision features already computed
// ([Σ image tokens, H], images in batch order; nil when the batch has no image).
func (m *Model) BatchTensorsWith(b *TrainBatch, feat *tensors.Tensor) []*tensors.Tensor {
	D, H := m.Config.Text.HeadDim(), m.Config.Text.HiddenSize
	if feat == nil {
		feat = tensors.FromFlatDataAndDimensions(make([]float32, H), 1, H)
	}
	out := []*tensors.Tensor{
		tensors.FromFlatDataAndDimensions(b.IDs, b.B, b.S), feat,
		tensors.FromFlatDataAndDimensions(b.Src, b.B, b.S), tensors.FromFlatDataAndDimensions(b.IsImage, b.B, b.S),
		tensors.FromFlatDataAndDimensions(b.Cos, b.B, b.S, D), tensors.FromFlatDataAndDimensions(b.Sin, b.B, b.S, D),
		tensors.FromFlatDataAndDimensions(b.Mask, b.B, b.S, b.S),
		tensors.FromFlatDataAndDimensions(b.Targets, b.B*b.S), tensors.FromFlatDataAndDimensions(b.Weights, b.B*b.S),
	}
	if b.GradePos != nil {
		out = append(out, tensors.FromFlatDataAndDimensions(b.GradePos, b.B), tensors.FromFlatDataAndDimensions(b.GradeLabel, b.B))
	}
	return out
}

// LossFromInputs builds TrainLoss from BatchTensors' graph inputs (9, or 11 with grades).
func LossFromInputs(ctx *context.Context, cfg *Config, opts LossOptions, in []*Node) *Node {
	ti := TextInputs{IDs: in[0], ImageFeatures: in[1], ImageSource: in[2], IsImage: in[3], Cos: in[4], Sin: in[5], Mask: in[6]}
	var gp, gl *Node
	if len(in) == textInputsGraded {
		gp, gl = in[9], in[10]
	}
	return TrainLoss(ctx, cfg, ti, in[7], in[8], gp, gl, opts)
}

// Text inputs of LossFromInputs: 9, or 11 with the grade position and label. Neither count
// differs from the other by a multiple of visionInputsPerImage, so LossWithVisionFromInputs
// tells them apart by the number of inputs.
const (
	textInputs       = 9
	textInputsGraded = 11
)

// VisionBatchTensors converts a TrainBatch into the graph inputs of LossWithVisionFromInputs:
// BatchTensorsWith's inputs with no features, followed by the vision tower's inputs for each
// of the batch's images (7 per image, in batch order), so the tower runs inside the graph.
func (m *Model) VisionBatchTensors(b *TrainBatch) ([]*tensors.Tensor, error) {
	out := m.BatchTensorsWith(b, nil)
	for i, im := range b.Images {
		v, err := m.visionTensors(im)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		out = append(out, v...)
	}
	return out, nil
}

// LossWithVisionFromInputs builds TrainLoss with the vision tower inside the graph, from
// VisionBatchTensors' inputs: each image runs through the tower on its own (attention never
// crosses images, as in VisionFeatures) and the concatenated features replace the
// placeholder, so gradients reach LoRA adapters on the tower. Without images it is
// LossFromInputs.
func LossWithVisionFromInputs(ctx *context.Context, cfg *Config, opts LossOptions, in []*Node) *Node {
	n := textInputs
	if (len(in)-textInputs)%visionInputsPerImage != 0 {
		n = textInputsGraded
	}
	text, vision := in[:n:n], in[n:]
	if len(vision) > 0 {
		feats := make([]*Node, 0, len(vision)/visionInputsPerImage)
		for k := 0; k+visionInputsPerImage <= len(vision); k += visionInputsPerImage {
			feats = append(feats, visionFeaturesOf(ctx, cfg, vision[k:k+visionInputsPerImage]))
		}
		text = append([]*Node{text[0], Concatenate(feats, 0)}, text[2:]...)
	}
	return LossFromInputs(ctx, cfg, opts, text)
}
