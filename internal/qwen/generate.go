package qwen

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"

	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph-building code reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/shapes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// GenerationConfig controls decoding (generation_config.json plus acdtcm's own limits).
type GenerationConfig struct {
	DoSample          bool    `json:"do_sample"`
	Temperature       float64 `json:"temperature"`
	TopP              float64 `json:"top_p"`
	TopK              int     `json:"top_k"`
	RepetitionPenalty float64 `json:"repetition_penalty"`
	StopTokens        []int   `json:"-"`
	MaxNewTokens      int     `json:"max_new_tokens"`
	PadTokenID        int     `json:"pad_token_id"`
	Seed              uint64  `json:"-"`
}

// LoadGenerationConfig reads generation_config.json when present; stop tokens default to
// the config's eos and <|endoftext|>.
func LoadGenerationConfig(dir string, cfg *Config) (GenerationConfig, error) {
	gc := GenerationConfig{Temperature: 1, TopP: 1, RepetitionPenalty: 1, MaxNewTokens: 64, PadTokenID: cfg.BOSTokenID}
	path := filepath.Join(dir, "generation_config.json")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		gc.StopTokens = []int{cfg.EOSTokenID, cfg.BOSTokenID}
		return gc, nil
	} else if err != nil {
		return gc, fmt.Errorf("read generation config: %w", err)
	}
	var raw struct {
		GenerationConfig
		EOS json.RawMessage `json:"eos_token_id"`
	}
	raw.GenerationConfig = gc
	if err := json.Unmarshal(data, &raw); err != nil {
		return gc, fmt.Errorf("parse %s: %w", path, err)
	}
	gc = raw.GenerationConfig
	var one int
	var many []int
	switch {
	case json.Unmarshal(raw.EOS, &one) == nil:
		gc.StopTokens = []int{one}
	case json.Unmarshal(raw.EOS, &many) == nil:
		gc.StopTokens = many
	default:
		gc.StopTokens = []int{cfg.EOSTokenID, cfg.BOSTokenID}
	}
	if gc.MaxNewTokens <= 0 {
		gc.MaxNewTokens = 64
	}
	return gc, nil
}

// batch holds the host-side inputs of one left-padded batch.
type batch struct {
	B, S, T  int
	ids      [][]int
	pad      []int
	deltas   []int
	features *tensors.Tensor // [M, H] or nil
	src      []int32
	isImage  []bool
}

// newBatch tokenizes and left-pads prompts, runs the vision tower on their images and
// computes M-RoPE positions. capacity is the KV cache length T (>= S).
func (m *Model) newBatch(prompts []Prompt, extra int) (*batch, [][3][]int, error) {
	b := &batch{B: len(prompts)}
	var all []ProcessedImage
	perPrompt := make([][]ProcessedImage, len(prompts))
	for i, p := range prompts {
		ids, imgs, err := m.Encode(p)
		if err != nil {
			return nil, nil, fmt.Errorf("prompt %d: %w", i, err)
		}
		b.ids = append(b.ids, ids)
		b.S = max(b.S, len(ids))
		perPrompt[i] = imgs
		all = append(all, imgs...)
	}
	b.T = b.S + extra
	if len(all) > 0 {
		feat, err := m.VisionFeatures(all)
		if err != nil {
			return nil, nil, err
		}
		b.features = feat
	}
	positions := make([][3][]int, b.B)
	b.src = make([]int32, b.B*b.S)
	b.isImage = make([]bool, b.B*b.S)
	row := 0
	for i := range b.ids {
		pad := b.S - len(b.ids[i])
		b.pad = append(b.pad, pad)
		grids := make([][3]int, len(perPrompt[i]))
		for k, im := range perPrompt[i] {
			grids[k] = im.Grid
		}
		pos, _, err := RopeIndex(b.ids[i], m.Config.ImageTokenID, grids, m.Config.Vision.SpatialMergeSize)
		if err != nil {
			return nil, nil, fmt.Errorf("prompt %d: %w", i, err)
		}
		maxPos := 0
		for a := 0; a < 3; a++ {
			padded := make([]int, b.S)
			for s := 0; s < pad; s++ {
				padded[s] = 1 // transformers gives padding position 1; it is masked anyway
			}
			copy(padded[pad:], pos[a])
			for _, p := range pos[a] {
				maxPos = max(maxPos, p)
			}
			positions[i][a] = padded
		}
		b.deltas = append(b.deltas, maxPos+1-b.S)
		full := make([]int, b.S)
		for s := range full {
			full[s] = m.Generation.PadTokenID
		}
		copy(full[pad:], b.ids[i])
		b.ids[i] = full
		for s, id := range full {
			if s >= pad && id == m.Config.ImageTokenID {
				b.src[i*b.S+s] = int32(row)
				b.isImage[i*b.S+s] = true
				row++
			}
		}
	}
	return b, positions, nil
}

// textExecFor builds (once) the decoder executable returning logits of every position or
// of the last one only.
func (m *Model) textExecFor(allPositions bool) (*context.Exec, error) {
	if e := m.textExec[allPositions]; e != nil {
		return e, nil
	}
	e, err := context.NewExecAny(m.Backend, m.Ctx, func(ctx *context.Context, ids, feat, src, isImg, cos, sin, mask, ck, cv, write *Node) []*Node {
		in := TextInputs{IDs: ids, ImageFeatures: feat, ImageSource: src, IsImage: isImg, Cos: cos, Sin: sin, Mask: mask,
			Cache: &KVCache{K: ck, V: cv, Write: write}}
		x := Embed(ctx, m.Config, in)
		out := TextForward(ctx, m.Config, x, in)
		h := out.Hidden
		if !allPositions {
			S := h.Shape().Dimensions[1]
			h = SliceAxis(h, 1, AxisElem(S-1))
		}
		return []*Node{Logits(ctx, m.Config, h), out.K, out.V}
	})
	if err != nil {
		return nil, fmt.Errorf("build decoder graph: %w", err)
	}
	m.textExec[allPositions] = e
	return e, nil
}

// step runs the decoder on S new tokens per sequence written at cache slots [start, start+S).
func (m *Model) step(b *batch, ids [][]int, positions [][3][]int, start int, ck, cv *tensors.Tensor, allPositions, useImages bool) (logits, k, v *tensors.Tensor, err error) {
	cfg := m.Config
	S, D, T := len(ids[0]), cfg.Text.HeadDim(), b.T
	flatIDs := make([]int32, b.B*S)
	cos, sin := make([]float32, b.B*S*D), make([]float32, b.B*S*D)
	mask := make([]bool, b.B*S*T)
	for i := 0; i < b.B; i++ {
		for s := 0; s < S; s++ {
			flatIDs[i*S+s] = int32(ids[i][s])
			for j := b.pad[i]; j <= start+s && j < T; j++ {
				mask[(i*S+s)*T+j] = true
			}
		}
		MRopeTables(cfg, positions[i], cos[i*S*D:(i+1)*S*D], sin[i*S*D:(i+1)*S*D])
	}
	write := make([]float32, S*T)
	for s := 0; s < S; s++ {
		write[s*T+start+s] = 1
	}
	feat := b.features
	src, isImg := b.src, b.isImage
	if !useImages || feat == nil {
		feat = tensors.FromFlatDataAndDimensions(make([]float32, cfg.Text.HiddenSize), 1, cfg.Text.HiddenSize)
		src, isImg = make([]int32, b.B*S), make([]bool, b.B*S)
	}
	exec, err := m.textExecFor(allPositions)
	if err != nil {
		return nil, nil, nil, err
	}
	out, err := exec.Exec(
		tensors.FromFlatDataAndDimensions(flatIDs, b.B, S), feat,
		tensors.FromFlatDataAndDimensions(src, b.B, S), tensors.FromFlatDataAndDimensions(isImg, b.B, S),
		tensors.FromFlatDataAndDimensions(cos, b.B, S, D), tensors.FromFlatDataAndDimensions(sin, b.B, S, D),
		tensors.FromFlatDataAndDimensions(mask, b.B, S, T), ck, cv,
		tensors.FromFlatDataAndDimensions(write, S, T))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("run decoder: %w", err)
	}
	return out[0], out[1], out[2], nil
}

// emptyCache is a zero KV cache in the compute dtype (the decoder returns it in that dtype).
func (m *Model) emptyCache(b *batch) *tensors.Tensor {
	t := m.Config.Text
	return tensors.FromShape(shapes.Make(m.ComputeDType, t.NumHiddenLayers, b.B, t.NumKeyValueHeads, b.T, t.HeadDim()))
}

// Forward returns the logits [B, S, V] of every position of the (left-padded) prompts, plus
// the padded token ids: the model's full output for parity checks and scoring.
func (m *Model) Forward(prompts []Prompt) (logits []float32, ids [][]int, err error) {
	b, pos, err := m.newBatch(prompts, 0)
	if err != nil {
		return nil, nil, err
	}
	cache := m.emptyCache(b)
	out, _, _, err := m.step(b, b.ids, pos, 0, cache, cache, true, true)
	if err != nil {
		return nil, nil, err
	}
	logits, err = tensors.CopyFlatData[float32](out)
	return logits, b.ids, err
}

// Generation is the result of generating from one prompt.
type Generation struct {
	PromptIDs []int
	TokenIDs  []int
	Text      string
	// FirstLogits are the logits at the first generated position (for grade scoring).
	FirstLogits []float32
}

// Generate decodes up to MaxNewTokens per prompt with the KV cache (greedy unless DoSample).
func (m *Model) Generate(prompts []Prompt, gc GenerationConfig) ([]Generation, error) {
	b, pos, err := m.newBatch(prompts, gc.MaxNewTokens)
	if err != nil {
		return nil, err
	}
	rng := rand.New(rand.NewPCG(gc.Seed, 0x5eed))
	cache := m.emptyCache(b)
	logits, ck, cv, err := m.step(b, b.ids, pos, 0, cache, cache, false, true)
	if err != nil {
		return nil, err
	}
	V := m.Config.Text.VocabSize
	gens := make([]Generation, b.B)
	history := make([][]int, b.B)
	done := make([]bool, b.B)
	for i := range gens {
		gens[i].PromptIDs = b.ids[i][b.pad[i]:]
		history[i] = append([]int(nil), gens[i].PromptIDs...)
	}
	stop := map[int]bool{}
	for _, s := range gc.StopTokens {
		stop[s] = true
	}
	for t := 0; t < gc.MaxNewTokens; t++ {
		flat, err := tensors.CopyFlatData[float32](logits)
		if err != nil {
			return nil, err
		}
		next := make([][]int, b.B)
		nextPos := make([][3][]int, b.B)
		allDone := true
		for i := 0; i < b.B; i++ {
			row := flat[i*V : (i+1)*V]
			if t == 0 {
				gens[i].FirstLogits = append([]float32(nil), row...)
			}
			tok := gc.PadTokenID
			if !done[i] {
				tok = chooseToken(row, history[i], gc, rng)
				if stop[tok] {
					done[i] = true
				} else {
					gens[i].TokenIDs = append(gens[i].TokenIDs, tok)
					history[i] = append(history[i], tok)
				}
			}
			allDone = allDone && done[i]
			next[i] = []int{tok}
			p := b.S + t + b.deltas[i]
			nextPos[i] = [3][]int{{p}, {p}, {p}}
		}
		if allDone || t == gc.MaxNewTokens-1 {
			break
		}
		logits, ck, cv, err = m.step(b, next, nextPos, b.S+t, ck, cv, false, false)
		if err != nil {
			return nil, err
		}
	}
	for i := range gens {
		gens[i].Text = m.Tokenizer.Decode(gens[i].TokenIDs, true)
	}
	return gens, nil
}

// chooseToken applies repetition penalty, then greedy or temperature/top-k/top-p sampling.
func chooseToken(logits []float32, history []int, gc GenerationConfig, rng *rand.Rand) int {
	l := append([]float32(nil), logits...)
	if gc.RepetitionPenalty > 0 && gc.RepetitionPenalty != 1 {
		seen := map[int]bool{}
		for _, id := range history {
			if id < 0 || id >= len(l) || seen[id] {
				continue
			}
			seen[id] = true
			if l[id] > 0 {
				l[id] /= float32(gc.RepetitionPenalty)
			} else {
				l[id] *= float32(gc.RepetitionPenalty)
			}
		}
	}
	best := 0
	for i, v := range l {
		if v > l[best] {
			best = i
		}
	}
	if !gc.DoSample || gc.Temperature <= 0 || gc.TopK == 1 {
		return best
	}
	idx := make([]int, len(l))
	for i := range idx {
		idx[i] = i
	}
	sort.Slice(idx, func(a, b int) bool { return l[idx[a]] > l[idx[b]] })
	if gc.TopK > 0 && gc.TopK < len(idx) {
		idx = idx[:gc.TopK]
	}
	probs := make([]float64, len(idx))
	maxv := float64(l[idx[0]]) / gc.Temperature
	sum := 0.0
	for i, id := range idx {
		probs[i] = math.Exp(float64(l[id])/gc.Temperature - maxv)
		sum += probs[i]
	}
	if gc.TopP > 0 && gc.TopP < 1 {
		cum := 0.0
		for i := range probs {
			cum += probs[i] / sum
			if cum >= gc.TopP {
				idx, probs = idx[:i+1], probs[:i+1]
				break
			}
		}
		sum = 0
		for _, p := range probs {
			sum += p
		}
	}
	r := rng.Float64() * sum
	for i, p := range probs {
		r -= p
		if r <= 0 {
			return idx[i]
		}
	}
	return idx[len(idx)-1]
}
