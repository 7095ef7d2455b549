package quant

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/gomlx/gomlx/pkg/core/dtypes"
	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/grader"
	"github.com/acdtcm/acdtcm/internal/safetensors"
)

// GraderModelType is config.json's model_type of a quantized built-in grader.
const GraderModelType = "acdtcm_grader"

// graderDoc is config.json of a quantized grader.
type graderDoc struct {
	ModelType string             `json:"model_type"`
	Grader    grader.ModelConfig `json:"grader"`
	// Version names the quantized weights: the source's version and the method
	// ("1.2.0+20261127-nf4", "custom-int8").
	Version string `json:"version"`
	// SourceVersion is the version of the float32 weights that were quantized ("custom"
	// when unknown: neither the built-in weights nor an exported grader.ckpt).
	SourceVersion string `json:"source_version"`
	// Metrics are the quantized model's own metrics, measured by acdtcm quantize --eval-data
	// on MetricsFrom; absent when it was not evaluated.
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	MetricsFrom string             `json:"metrics_from,omitempty"`
	// SourceMetrics are the float32 source's metrics, for reference only: they are not
	// this model's.
	SourceMetrics map[string]float64 `json:"source_metrics,omitempty"`
	// Calibration is the grader's count -> grade model, carried over unchanged.
	Calibration *grader.Calibration `json:"calibration,omitempty"`
	Quant       *Config             `json:"quantization_config"`
}

// GraderInfo is what a quantized grader directory says about its weights.
type GraderInfo struct {
	Version       string             // e.g. "1.2.0+20261127-nf4"
	SourceVersion string             // the float32 weights' version, or "custom"
	Method        Method             // the quantization method
	Metrics       map[string]float64 // the quantized model's measured metrics; nil when not evaluated
	MetricsFrom   string             // what Metrics were measured on
	SourceMetrics map[string]float64 // the float32 source's metrics (not this model's)
}

// graderLayoutKey marks, in the weights' __metadata__, how quantized grader weights are
// stored: transposed, because GoMLX keeps the output channel last ([in, out], [kh, kw,
// cin, cout]), so they are quantized as [out, rest] to make int8's scales per output channel.
const graderLayoutKey = "acdtcm_layout"

// graderLayoutFlat is the first layout: [out, rest] quantized as one flat run of values, so
// the blocks of nf4, q8_0 and q4_0 cross output channels wherever rest is not a multiple of
// the block size (a depthwise kernel's 9 values per channel share a block with 3 to 8 other
// channels). Still read; no longer written.
const graderLayoutFlat = "output_channel_first"

// graderLayoutRows is the layout written now: [out, rest] with every row zero-padded to a
// whole number of blocks, so that no block (and no block scale) spans two output channels.
// MobileNetV2's depthwise channels differ in magnitude by up to 30x; sharing q8_0 block
// scales across them changed 13.1% of the built-in grader's valid grades, row blocks 2.8%.
const graderLayoutRows = "output_channel_first_row_blocks"

// quantRows is the [rows, cols] shape a grader weight of channel dims cd is quantized as:
// one row per output channel, cols padded to whole blocks when rowBlocks is set.
func quantRows(m Method, cd []int, rowBlocks bool) (rows, rest, cols int) {
	rows = cd[len(cd)-1]
	rest = numElements(cd) / rows
	cols = rest
	if bs := m.BlockSize(); rowBlocks && bs > 0 {
		cols = (rest + bs - 1) / bs * bs
	}
	return rows, rest, cols
}

// quantizeGraderWeight quantizes the grader variable vals of shape dims (output channel
// last) in graderLayoutRows: it returns the quantized tensor, the values in the order it
// stores them ([out, rest]) and their dequantized approximation in the same order.
func quantizeGraderWeight(m Method, vals []float32, dims []int, opts Options) (q *Tensor, stored, approx []float32, err error) {
	cd := channelDims(dims)
	stored = outFirst(vals, cd)
	rows, rest, cols := quantRows(m, cd, true)
	if q, err = Quantize(m, padRows(stored, rows, rest, cols), []int{rows, cols}, opts); err != nil {
		return nil, nil, nil, err
	}
	return q, stored, unpadRows(q.Dequantize(), rows, rest, cols), nil
}

// dequantizeGraderWeight reads the quantized grader variable name of shape dims (output
// channel last) stored in the given layout and returns its float32 values in variable order.
func dequantizeGraderWeight(m Method, doubleQuant bool, layout, name string, dims []int, get Lookup) ([]float32, error) {
	cd := channelDims(dims)
	rows, rest, cols := quantRows(m, cd, layout == graderLayoutRows)
	q, err := Decode(m, name, []int{rows, cols}, doubleQuant, get)
	if err != nil {
		return nil, err
	}
	return outLast(unpadRows(q.Dequantize(), rows, rest, cols), cd), nil
}

// padRows copies rows of length rest into rows of length cols (cols >= rest), zero-filled.
func padRows(v []float32, rows, rest, cols int) []float32 {
	if cols == rest {
		return v
	}
	out := make([]float32, rows*cols)
	for r := 0; r < rows; r++ {
		copy(out[r*cols:r*cols+rest], v[r*rest:(r+1)*rest])
	}
	return out
}

// unpadRows reverses padRows.
func unpadRows(v []float32, rows, rest, cols int) []float32 {
	if cols == rest {
		return v
	}
	out := make([]float32, rows*rest)
	for r := 0; r < rows; r++ {
		copy(out[r*rest:(r+1)*rest], v[r*cols:r*cols+rest])
	}
	return out
}

// graderShapesKey is the __metadata__ key holding, as JSON, the variable shape of every
// quantized grader weight.
const graderShapesKey = "acdtcm_shapes"

// IsGraderDir tells whether dir holds a quantized grader (config.json with model_type
// acdtcm_grader).
func IsGraderDir(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return false
	}
	var doc struct {
		ModelType string `json:"model_type"`
	}
	return json.Unmarshal(data, &doc) == nil && doc.ModelType == GraderModelType
}

// outFirst transposes row-major values of dims [..., out] to [out, rest].
func outFirst(v []float32, dims []int) []float32 {
	out := dims[len(dims)-1]
	rest := len(v) / out
	t := make([]float32, len(v))
	for r := 0; r < rest; r++ {
		for o := 0; o < out; o++ {
			t[o*rest+r] = v[r*out+o]
		}
	}
	return t
}

// channelDims is the shape whose last axis quantization treats as the output channel (one
// int8 scale per channel, blocks that do not cross channels): dims itself, except that
// trailing axes of size 1 are dropped, so that a depthwise kernel [kh, kw, C, 1] is quantized
// per channel C rather than as one row (the same values in the same order). Per-tensor
// quantization of MobileNetV2's depthwise kernels changed 47% of the grades (int8).
func channelDims(dims []int) []int {
	d := dims
	for len(d) > 2 && d[len(d)-1] == 1 {
		d = d[:len(d)-1]
	}
	return d
}

// outLast reverses outFirst.
func outLast(t []float32, dims []int) []float32 {
	out := dims[len(dims)-1]
	rest := len(t) / out
	v := make([]float32, len(t))
	for r := 0; r < rest; r++ {
		for o := 0; o < out; o++ {
			v[r*out+o] = t[o*rest+r]
		}
	}
	return v
}

// KeepHeads is a grader keep category: its two output heads, density (the lesion heatmap)
// and grade_out (the grade logits). For a grader "lm_head" means the same.
const KeepHeads = "heads"

// KeepStem is a grader keep category: the pretrained backbone units that training kept
// frozen (ModelConfig.FreezeUpto, e.g. MobileNetV2's Conv1..block_2). Every later layer
// reads their output, so their error compounds: in the built-in grader they are where all
// of int8's cost is (2.8% of the valid grades changed with them quantized, 0.4% without),
// and at 4 bits they alone turn it into a one-grade classifier.
const KeepStem = "stem"

// DefaultGraderKeep is what stays float32 in a grader unless told otherwise (rank-1
// tensors always do): the output heads and the frozen pretrained stem.
var DefaultGraderKeep = []string{KeepHeads, KeepStem}

// graderKeepList maps a keep list to the grader's terms: nil is DefaultGraderKeep, lm_head
// becomes heads, and the Qwen-only categories are refused.
func graderKeepList(keep []string) ([]string, error) {
	if keep == nil {
		return DefaultGraderKeep, nil
	}
	out := make([]string, 0, len(keep))
	for _, k := range keep {
		switch k = strings.TrimSpace(k); k {
		case KeepLMHead:
			k = KeepHeads
		case KeepEmbeddings, KeepVision:
			return nil, fmt.Errorf("keep entry %q applies to Qwen2.5-VL checkpoints, the grader has none: use %s (its output heads), %s (its frozen pretrained layers), none, or /model/... name prefixes and patterns", k, KeepHeads, KeepStem)
		}
		if !slices.Contains(out, k) {
			out = append(out, k)
		}
	}
	return out, nil
}

// graderKeep decides what stays float32 in the grader of configuration mc: rank-1 tensors,
// with heads the two output heads (density and grade_out), with stem the frozen
// pretrained units, and name prefixes and patterns as for Qwen.
func graderKeep(rule KeepRule, mc grader.ModelConfig, name string, rank int) bool {
	if rank < 2 {
		return true
	}
	if slices.Contains(rule.entries, KeepHeads) && (strings.Contains(name, "/density/") || strings.Contains(name, "/grade_out/")) {
		return true
	}
	if slices.Contains(rule.entries, KeepStem) && mc.FrozenPretrained(name) {
		return true
	}
	return rule.Keep(name, rank)
}

// ConvertGrader quantizes the model weights of a grader checkpoint file into the directory
// out: model.safetensors (variable names as tensor names) and config.json with the
// grader's configuration, the version of the source weights and of the quantized ones,
// the source's metrics as source_metrics (the quantized model's own metrics are added by
// SetGraderMetrics once measured) and quantization_config. o.Keep is in the grader's terms
// (see KeepHeads and KeepStem; nil means DefaultGraderKeep).
func ConvertGrader(ckptPath, out string, o ConvertOptions) (*ConvertReport, error) {
	var ck *grader.Checkpoint
	var err error
	var before int64
	if ckptPath == "" {
		return nil, fmt.Errorf("quantize the built-in grader from its checkpoint file (internal/grader/weights/grader.ckpt)")
	}
	if ck, err = grader.ReadCheckpoint(ckptPath); err != nil {
		return nil, err
	}
	keep, err := graderKeepList(o.Keep)
	if err != nil {
		return nil, err
	}
	rule, err := NewKeepRule(keep)
	if err != nil {
		return nil, err
	}
	cfg := NewConfig(o.Method, rule.Entries(), o.Options)
	rep := &ConvertReport{Method: o.Method, Keep: rule.Entries(), WeightsFileName: WeightsFile}
	var outT []safetensors.Tensor
	var sumSig, sumNoise, sumRel float64
	shapes := map[string][]int{}
	for _, e := range ck.Header.Tensors {
		if !strings.HasPrefix(e.Name, "/model/") {
			continue // optimizer state and training counters are not needed for inference
		}
		t, err := ck.Tensor(e.Name)
		if err != nil {
			return nil, err
		}
		if t.DType() != dtypes.Float32 {
			return nil, fmt.Errorf("grader checkpoint %s: tensor %s is %s, want float32", ckptPath, e.Name, t.DType())
		}
		vals, err := tensors.CopyFlatData[float32](t)
		if err != nil {
			return nil, err
		}
		dims := t.Shape().Dimensions
		tr := TensorReport{Name: e.Name, Shape: dims, BytesBefore: int64(4 * len(vals))}
		before += tr.BytesBefore
		if graderKeep(rule, ck.Header.Model, e.Name, len(dims)) {
			outT = append(outT, safetensors.F32Tensor(e.Name, dims, vals))
			tr.Stored, tr.BytesAfter = "kept (F32)", tr.BytesBefore
			rep.KeptCount++
			if len(dims) >= 2 {
				cfg.ModulesNotConverted = append(cfg.ModulesNotConverted, e.Name)
			}
			rep.Tensors = append(rep.Tensors, tr)
			continue
		}
		q, tv, approx, err := quantizeGraderWeight(o.Method, vals, dims, o.Options)
		if err != nil {
			return nil, fmt.Errorf("grader tensor %s: %w", e.Name, err)
		}
		m := Measure(tv, approx)
		for i, x := range tv {
			d := float64(x) - float64(approx[i])
			sumSig += float64(x) * float64(x)
			sumNoise += d * d
		}
		tr.Stored, tr.BytesAfter, tr.RelRMS, tr.MaxAbsError = string(o.Method), q.StoredBytes(), ptr(m.RelRMS), ptr(m.MaxAbs)
		if !math.IsInf(m.SNRdB, 0) {
			tr.SNRdB = ptr(m.SNRdB)
		}
		sumRel += m.RelRMS
		if m.RelRMS >= rep.WorstRelRMS {
			rep.WorstRelRMS, rep.WorstTensor = m.RelRMS, e.Name
		}
		rep.QuantizedCount++
		shapes[e.Name] = dims
		outT = append(outT, q.Encode(e.Name)...)
		rep.Tensors = append(rep.Tensors, tr)
	}
	if rep.QuantizedCount == 0 {
		return nil, fmt.Errorf("grader checkpoint %s: no tensor to quantize with keep list %v", ckptPath, rule.Entries())
	}
	rep.BytesBefore = before // float32 model weights (the checkpoint file also holds optimizer state)
	rep.MeanRelRMS = sumRel / float64(rep.QuantizedCount)
	if sumSig > 0 && sumNoise > 0 {
		rep.OverallRelRMS, rep.OverallSNRdB = math.Sqrt(sumNoise/sumSig), 10*math.Log10(sumSig/sumNoise)
	}
	cfg.Quantized = rep.QuantizedCount
	sort.Strings(cfg.ModulesNotConverted)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", out, err)
	}
	weights := filepath.Join(out, WeightsFile)
	shapesJSON, _ := json.Marshal(shapes)
	md := map[string]string{MetadataKey: cfg.MetadataValue(), graderLayoutKey: graderLayoutRows, graderShapesKey: string(shapesJSON)}
	if err := safetensors.WriteFile(weights, outT, md); err != nil {
		return nil, fmt.Errorf("write %s: %w", weights, err)
	}
	if st, err := os.Stat(weights); err == nil {
		rep.BytesAfter = st.Size()
	}
	src := grader.WeightsVersion(ckptPath)
	if src == "" {
		src = "custom"
	}
	doc := &graderDoc{ModelType: GraderModelType, Grader: ck.Header.Model, Version: src + "-" + string(o.Method), SourceVersion: src,
		SourceMetrics: ck.Header.Metrics, Calibration: ck.Header.Calibration, Quant: cfg}
	if err := writeGraderDoc(out, doc); err != nil {
		return nil, err
	}
	return rep, nil
}

// writeGraderDoc writes config.json of a quantized grader into dir atomically.
func writeGraderDoc(dir string, doc *graderDoc) error {
	p := filepath.Join(dir, "config.json")
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return fmt.Errorf("encode %s: %w", p, err)
	}
	return fsutil.WriteFileAtomic(p, append(data, '\n'), 0o644)
}

// readGraderDoc reads and checks config.json of a quantized grader directory. A directory
// written before versions were recorded (no version) copied the float32 source's metrics
// as its own: they are returned as SourceMetrics, and the version as "custom-METHOD".
func readGraderDoc(dir string) (*graderDoc, error) {
	p := filepath.Join(dir, "config.json")
	data, err := os.ReadFile(p)
	if err != nil {
		return nil, fmt.Errorf("read grader config: %w", err)
	}
	var doc graderDoc
	if err := json.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if doc.ModelType != GraderModelType || doc.Quant == nil {
		return nil, fmt.Errorf("%s: not a quantized acdtcm grader (model_type %q)", p, doc.ModelType)
	}
	if err := doc.Quant.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", p, ConfigKey, err)
	}
	if err := doc.Grader.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	if doc.Version == "" {
		if doc.SourceMetrics == nil {
			doc.SourceMetrics = doc.Metrics
		}
		doc.Metrics, doc.MetricsFrom = nil, ""
		if doc.SourceVersion == "" {
			doc.SourceVersion = "custom"
		}
		doc.Version = doc.SourceVersion + "-" + string(doc.Quant.Method)
	}
	return &doc, nil
}

// ReadGraderInfo reads the versions, method and metrics of a quantized grader directory.
func ReadGraderInfo(dir string) (GraderInfo, error) {
	doc, err := readGraderDoc(dir)
	if err != nil {
		return GraderInfo{}, err
	}
	return GraderInfo{Version: doc.Version, SourceVersion: doc.SourceVersion, Method: doc.Quant.Method,
		Metrics: doc.Metrics, MetricsFrom: doc.MetricsFrom, SourceMetrics: doc.SourceMetrics}, nil
}

// SetGraderMetrics records in a quantized grader directory's config.json the metrics
// measured on the quantized model itself, and what they were measured on (e.g. "valid
// split of data/acne04"); nil metrics remove them.
func SetGraderMetrics(dir string, metrics map[string]float64, from string) error {
	doc, err := readGraderDoc(dir)
	if err != nil {
		return err
	}
	doc.Metrics, doc.MetricsFrom = metrics, from
	if metrics == nil {
		doc.MetricsFrom = ""
	}
	return writeGraderDoc(dir, doc)
}

// DequantizeGrader reads a quantized grader directory as a float32 grader checkpoint in
// memory (the format grader.Load reads, calibration included).
func DequantizeGrader(dir string) (*grader.Checkpoint, error) {
	doc, err := readGraderDoc(dir)
	if err != nil {
		return nil, err
	}
	return dequantizeGraderDoc(dir, doc)
}

// dequantizeGraderDoc is DequantizeGrader for a config.json already read.
func dequantizeGraderDoc(dir string, doc *graderDoc) (*grader.Checkpoint, error) {
	wpath := filepath.Join(dir, WeightsFile)
	f, err := safetensors.Open(wpath)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := doc.Quant.CheckMetadata(wpath, f.Metadata); err != nil {
		return nil, err
	}
	layout := f.Metadata[graderLayoutKey]
	if layout != graderLayoutRows && layout != graderLayoutFlat {
		return nil, fmt.Errorf("%s: %s metadata is %q, want %s or %s: not a quantized grader", wpath, graderLayoutKey, layout, graderLayoutRows, graderLayoutFlat)
	}
	var shapes map[string][]int
	if err := json.Unmarshal([]byte(f.Metadata[graderShapesKey]), &shapes); err != nil {
		return nil, fmt.Errorf("%s: bad %s metadata: %w", wpath, graderShapesKey, err)
	}
	lookup := func(name string) (safetensors.TensorInfo, []byte, bool) {
		raw, info, err := f.Bytes(name)
		return info, raw, err == nil
	}
	ctx := context.New()
	isCompanion := func(n string) bool {
		for _, s := range Companions {
			if strings.HasSuffix(n, s) {
				return true
			}
		}
		return false
	}
	for _, name := range f.Names() {
		if isCompanion(name) {
			continue
		}
		info, _ := f.Info(name)
		var vals []float32
		dims := info.Shape
		if info.DType == safetensors.F32 {
			if vals, _, err = f.Float32(name); err != nil {
				return nil, err
			}
		} else {
			// A quantized tensor: its variable shape (output channel last) is in the metadata.
			shape, ok := shapes[name]
			if !ok || len(shape) < 2 || numElements(shape) <= 0 {
				return nil, fmt.Errorf("%s: no valid shape for quantized tensor %s in the %s metadata", wpath, name, graderShapesKey)
			}
			dims = shape
			if vals, err = dequantizeGraderWeight(doc.Quant.Method, doc.Quant.DoubleQuant, layout, name, dims, lookup); err != nil {
				return nil, fmt.Errorf("%s: %w", wpath, err)
			}
		}
		i := strings.LastIndex(name, "/")
		if i <= 0 {
			return nil, fmt.Errorf("%s: tensor %q is not a scoped variable name", wpath, name)
		}
		ctx.InAbsPath(name[:i]).VariableWithValue(name[i+1:], tensors.FromFlatDataAndDimensions(vals, dims...))
	}
	ck, err := grader.NewCheckpoint(ctx, doc.Grader, nil, doc.Metrics, true)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	ck.Header.Calibration = doc.Calibration
	return ck, nil
}

// LoadGrader loads a quantized grader directory for inference on backendSpec (weights are
// dequantized to float32 when loading; the grader's graph reads float32 variables).
func LoadGrader(dir, backendSpec string) (*grader.Model, error) {
	ck, err := DequantizeGrader(dir)
	if err != nil {
		return nil, err
	}
	return grader.FromCheckpoint(ck, backendSpec)
}

// OpenGrader loads a quantized grader directory (LoadGrader) as an inference model that
// reports the quantized weights' version, method and own metrics (none when the
// directory records no measured metrics).
func OpenGrader(dir, backendSpec string) (*grader.InferModel, error) {
	doc, err := readGraderDoc(dir)
	if err != nil {
		return nil, err
	}
	ck, err := dequantizeGraderDoc(dir, doc)
	if err != nil {
		return nil, err
	}
	m, err := grader.FromCheckpoint(ck, backendSpec)
	if err != nil {
		return nil, err
	}
	return &grader.InferModel{M: m, Name: "acdtcm-grader:" + filepath.Base(filepath.Clean(dir)), Version: doc.Version, Quantization: string(doc.Quant.Method)}, nil
}
