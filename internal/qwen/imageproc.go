package qwen

import (
	"encoding/json"
	"fmt"
	"image"
	"math"
	"os"
)

// ProcessorConfig is preprocessor_config.json of a Qwen2-VL / Qwen2.5-VL checkpoint.
type ProcessorConfig struct {
	MinPixels         int       `json:"min_pixels"`
	MaxPixels         int       `json:"max_pixels"`
	PatchSize         int       `json:"patch_size"`
	TemporalPatchSize int       `json:"temporal_patch_size"`
	MergeSize         int       `json:"merge_size"`
	ImageMean         []float64 `json:"image_mean"`
	ImageStd          []float64 `json:"image_std"`
	// Size is the newer spelling of min/max pixels: shortest_edge = min, longest_edge = max.
	Size *struct {
		ShortestEdge int `json:"shortest_edge"`
		LongestEdge  int `json:"longest_edge"`
	} `json:"size,omitempty"`
}

// DefaultProcessorConfig returns Qwen2VLImageProcessor's class defaults (used only when a
// checkpoint has no preprocessor_config.json; shipped configs raise max_pixels).
func DefaultProcessorConfig() ProcessorConfig {
	return ProcessorConfig{
		MinPixels: 56 * 56, MaxPixels: 28 * 28 * 1280, PatchSize: 14, TemporalPatchSize: 2, MergeSize: 2,
		ImageMean: []float64{0.48145466, 0.4578275, 0.40821073},
		ImageStd:  []float64{0.26862954, 0.26130258, 0.27577711},
	}
}

// LoadProcessorConfig reads preprocessor_config.json; fields it lacks keep class defaults.
func LoadProcessorConfig(path string) (ProcessorConfig, error) {
	cfg := DefaultProcessorConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read processor config: %w", err)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return cfg, fmt.Errorf("parse %s: %w", path, err)
	}
	if cfg.Size != nil {
		if cfg.Size.ShortestEdge > 0 {
			cfg.MinPixels = cfg.Size.ShortestEdge
		}
		if cfg.Size.LongestEdge > 0 {
			cfg.MaxPixels = cfg.Size.LongestEdge
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// Validate checks the fields the pipeline relies on.
func (c ProcessorConfig) Validate() error {
	switch {
	case c.PatchSize <= 0 || c.MergeSize <= 0 || c.TemporalPatchSize <= 0:
		return fmt.Errorf("patch_size, merge_size and temporal_patch_size must be positive")
	case len(c.ImageMean) != 3 || len(c.ImageStd) != 3:
		return fmt.Errorf("image_mean and image_std need 3 values each")
	case c.MinPixels <= 0 || c.MaxPixels < c.MinPixels:
		return fmt.Errorf("need 0 < min_pixels (%d) <= max_pixels (%d)", c.MinPixels, c.MaxPixels)
	}
	return nil
}

// SmartResize returns the target height and width: multiples of factor, aspect ratio kept as
// well as possible, pixel count within [minPixels, maxPixels] (transformers' smart_resize,
// with Python's round-half-to-even).
func SmartResize(height, width, factor, minPixels, maxPixels int) (int, int, error) {
	if height < factor || width < factor {
		return 0, 0, fmt.Errorf("image %dx%d is smaller than %d pixels on a side", width, height, factor)
	}
	if float64(max(height, width))/float64(min(height, width)) > 200 {
		return 0, 0, fmt.Errorf("image %dx%d has an aspect ratio above 200", width, height)
	}
	f := float64(factor)
	h := int(math.RoundToEven(float64(height)/f)) * factor
	w := int(math.RoundToEven(float64(width)/f)) * factor
	switch {
	case h*w > maxPixels:
		beta := math.Sqrt(float64(height*width) / float64(maxPixels))
		h = max(factor, int(math.Floor(float64(height)/beta/f))*factor)
		w = max(factor, int(math.Floor(float64(width)/beta/f))*factor)
	case h*w < minPixels:
		beta := math.Sqrt(float64(minPixels) / float64(height*width))
		h = int(math.Ceil(float64(height)*beta/f)) * factor
		w = int(math.Ceil(float64(width)*beta/f)) * factor
	}
	return h, w, nil
}

// ProcessedImage is the vision tower's input for one image.
type ProcessedImage struct {
	// PixelValues is [Patches, PatchDim] row-major, PatchDim = 3*temporal*patch*patch.
	PixelValues []float32
	// Grid is image_grid_thw: temporal, height and width in patches (before merging).
	Grid     [3]int
	PatchDim int
}

// Patches is the number of rows of PixelValues.
func (p ProcessedImage) Patches() int { return p.Grid[0] * p.Grid[1] * p.Grid[2] }

// Tokens is the number of <|image_pad|> tokens the image occupies after 2x2 merging.
func (p ProcessedImage) Tokens(mergeSize int) int { return p.Patches() / (mergeSize * mergeSize) }

// ProcessImage runs Qwen2VLImageProcessor's pipeline on one still image: RGB, smart_resize,
// PIL bicubic resize, rescale 1/255, normalise, repeat to temporal_patch_size frames and
// flatten patches in the (t, bh, bw, mh, mw | c, tp, py, px) order.
func (c ProcessorConfig) ProcessImage(img image.Image) (ProcessedImage, error) {
	b := img.Bounds()
	factor := c.PatchSize * c.MergeSize
	h, w, err := SmartResize(b.Dy(), b.Dx(), factor, c.MinPixels, c.MaxPixels)
	if err != nil {
		return ProcessedImage{}, err
	}
	rgba := ToRGBA(img)
	if h != b.Dy() || w != b.Dx() {
		rgba = ResizeBicubicPIL(rgba, w, h)
	}
	// transformers' arithmetic: rescale multiplies in float64 and casts to float32, then
	// normalize computes (x - mean) / std in float32.
	const scale = 1.0 / 255.0
	var mean, std [3]float32
	for ch := 0; ch < 3; ch++ {
		mean[ch], std[ch] = float32(c.ImageMean[ch]), float32(c.ImageStd[ch])
	}
	p, m, tp := c.PatchSize, c.MergeSize, c.TemporalPatchSize
	gh, gw := h/p, w/p
	dim := 3 * tp * p * p
	out := ProcessedImage{Grid: [3]int{1, gh, gw}, PatchDim: dim, PixelValues: make([]float32, gh*gw*dim)}
	row := 0
	for bh := 0; bh < gh/m; bh++ {
		for bw := 0; bw < gw/m; bw++ {
			for mh := 0; mh < m; mh++ {
				for mw := 0; mw < m; mw++ {
					py0, px0 := (bh*m+mh)*p, (bw*m+mw)*p
					dst := out.PixelValues[row*dim : (row+1)*dim]
					i := 0
					for ch := 0; ch < 3; ch++ {
						for t := 0; t < tp; t++ { // every temporal frame is the same still image
							for py := 0; py < p; py++ {
								pix := rgba.Pix[(py0+py)*rgba.Stride+px0*4:]
								for px := 0; px < p; px++ {
									v := float32(float64(pix[px*4+ch]) * scale)
									dst[i] = (v - mean[ch]) / std[ch]
									i++
								}
							}
						}
					}
					row++
				}
			}
		}
	}
	return out, nil
}

// OverrideLimits sets min_pixels and max_pixels to the given values where positive (0 keeps
// the current one) and checks the result.
func (c *ProcessorConfig) OverrideLimits(minPixels, maxPixels int) error {
	if minPixels > 0 {
		c.MinPixels = minPixels
	}
	if maxPixels > 0 {
		c.MaxPixels = maxPixels
	}
	return c.Validate()
}
