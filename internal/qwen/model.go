package qwen

import (
	"fmt"
	"image"
	"path/filepath"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/pkg/core/dtypes"
	. "github.com/gomlx/gomlx/pkg/core/graph" //nolint:revive // graph-building code reads best unqualified
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/lora"
	"github.com/acdtcm/acdtcm/internal/tokenizer"
)

// Model is a loaded Qwen2.5-VL checkpoint ready to run on a GoMLX backend.
type Model struct {
	Dir        string
	Config     *Config
	Processor  ProcessorConfig
	Tokenizer  *tokenizer.Tokenizer
	Generation GenerationConfig
	Backend    backends.Backend
	Ctx        *context.Context
	// ComputeDType is the dtype of the base weights and activations (LoadOptions).
	ComputeDType dtypes.DType

	visionExec *context.Exec
	textExec   map[bool]*context.Exec // keyed by "all positions" (true) or "last position only"
}

// Load reads config.json, preprocessor_config.json, tokenizer.json, generation_config.json
// (optional) and the safetensors weights of a checkpoint directory, computing in float32.
func Load(dir string, backend backends.Backend) (*Model, error) {
	return LoadWith(dir, backend, LoadOptions{})
}

// LoadWith is Load with options (the compute dtype).
func LoadWith(dir string, backend backends.Backend, opts LoadOptions) (*Model, error) {
	dtype, err := opts.computeDType()
	if err != nil {
		return nil, err
	}
	cfg, err := LoadConfig(dir)
	if err != nil {
		return nil, err
	}
	m := &Model{Dir: dir, Config: cfg, Backend: backend, Ctx: context.New(), ComputeDType: dtype, textExec: map[bool]*context.Exec{}}
	if m.Processor, err = checkpointProcessor(dir); err != nil {
		return nil, err
	}
	if m.Tokenizer, err = tokenizer.Load(filepath.Join(dir, "tokenizer.json")); err != nil {
		return nil, err
	}
	if m.Generation, err = LoadGenerationConfig(dir, cfg); err != nil {
		return nil, err
	}
	if err := loadWeights(m.Ctx, dir, cfg, dtype, backend); err != nil {
		return nil, err
	}
	return m, nil
}

// VisionFeatures runs the vision tower on processed images and returns the merged
// features [Σ tokens, H] as a float32 tensor. Images run one at a time: attention never
// crosses images, so batching them would only grow the N×N attention masks quadratically.
func (m *Model) VisionFeatures(images []ProcessedImage) (*tensors.Tensor, error) {
	if len(images) == 0 {
		return nil, fmt.Errorf("no images")
	}
	if len(images) == 1 {
		return m.visionOne(images[0])
	}
	var all []float32
	rows := 0
	for i, im := range images {
		t, err := m.visionOne(im)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i, err)
		}
		f, err := tensors.CopyFlatData[float32](t)
		if err != nil {
			return nil, err
		}
		all = append(all, f...)
		rows += t.Shape().Dimensions[0]
	}
	return tensors.FromFlatDataAndDimensions(all, rows, m.Config.Text.HiddenSize), nil
}

func (m *Model) visionOne(im ProcessedImage) (*tensors.Tensor, error) {
	in, err := m.visionTensors(im)
	if err != nil {
		return nil, err
	}
	if m.visionExec == nil {
		m.visionExec, err = context.NewExecAny(m.Backend, m.Ctx, func(ctx *context.Context, px, wi, ii, cos, sin, wm, fm *Node) *Node {
			return visionFeaturesOf(ctx, m.Config, []*Node{px, wi, ii, cos, sin, wm, fm})
		})
		if err != nil {
			return nil, fmt.Errorf("build vision graph: %w", err)
		}
	}
	args := make([]any, len(in))
	for i, x := range in {
		args[i] = x
	}
	out, err := m.visionExec.Exec(args...)
	if err != nil {
		return nil, fmt.Errorf("run vision tower: %w", err)
	}
	return out[0], nil
}

// visionInputsPerImage is the number of vision-tower graph inputs of one image.
const visionInputsPerImage = 7

// visionTensors are the vision tower's graph inputs for one image, in VisionInputs order:
// pixels, window and inverse index, rotary cos and sin, window and full attention masks.
func (m *Model) visionTensors(im ProcessedImage) ([]*tensors.Tensor, error) {
	tab, err := NewVisionTables(m.Config, [][3]int{im.Grid})
	if err != nil {
		return nil, err
	}
	N, hd := tab.Patches, tab.HeadDim
	return []*tensors.Tensor{
		tensors.FromFlatDataAndDimensions(im.PixelValues, N, im.PatchDim),
		tensors.FromFlatDataAndDimensions(tab.WindowIndex, tab.Units, 1),
		tensors.FromFlatDataAndDimensions(tab.InverseIndex, tab.Units, 1),
		tensors.FromFlatDataAndDimensions(tab.Cos, N, hd),
		tensors.FromFlatDataAndDimensions(tab.Sin, N, hd),
		tensors.FromFlatDataAndDimensions(tab.WindowMask, N, N),
		tensors.FromFlatDataAndDimensions(tab.FullMask, N, N),
	}, nil
}

// visionFeaturesOf runs the vision tower on one image's visionTensors graph inputs; the
// features leave as float32 whatever the compute dtype.
func visionFeaturesOf(ctx *context.Context, cfg *Config, in []*Node) *Node {
	vi := VisionInputs{Pixels: in[0], WindowIndex: in[1], InverseIndex: in[2], Cos: in[3], Sin: in[4], WindowMask: in[5], FullMask: in[6]}
	return upcast(VisionForward(ctx, cfg, vi))
}

// Prompt is one chat prompt with its images.
type Prompt struct {
	Messages []tokenizer.Message
	Images   []image.Image
}

// Encode renders the chat template (with generation prompt), processes the images and
// expands each <|image_pad|> to its token count.
func (m *Model) Encode(p Prompt) (ids []int, images []ProcessedImage, err error) {
	counts := make([]int, len(p.Images))
	for i, img := range p.Images {
		pi, err := m.Processor.ProcessImage(img)
		if err != nil {
			return nil, nil, fmt.Errorf("image %d: %w", i, err)
		}
		images = append(images, pi)
		counts[i] = pi.Tokens(m.Config.Vision.SpatialMergeSize)
	}
	text := tokenizer.RenderChat(p.Messages, true)
	ids = tokenizer.ExpandImagePads(m.Tokenizer.Encode(text), m.Config.ImageTokenID, counts)
	return ids, images, nil
}

// resetExecs drops compiled graphs (after adapters change which modules are adapted).
func (m *Model) resetExecs() {
	m.visionExec = nil
	m.textExec = map[bool]*context.Exec{}
}

// AttachLoRA adds fresh LoRA adapters (B = 0) to the modules cfg targets and returns their
// names.
func (m *Model) AttachLoRA(cfg *lora.Config, seed uint64) ([]string, error) {
	m.resetExecs()
	return lora.Attach(m.Ctx, cfg, m.Config.LinearModules(), seed)
}

// LoadAdapter loads a PEFT LoRA adapter directory onto the model.
func (m *Model) LoadAdapter(dir string) (*lora.Config, []string, error) {
	m.resetExecs()
	cfg, names, err := lora.Load(m.Ctx, dir, m.Config.LinearModules())
	if err != nil {
		return nil, nil, fmt.Errorf("adapter %s: %w", dir, err)
	}
	return cfg, names, nil
}
