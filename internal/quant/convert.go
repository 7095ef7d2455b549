package quant

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/parallel"
	"github.com/acdtcm/acdtcm/internal/safetensors"
)

// ConvertOptions configure ConvertCheckpoint.
type ConvertOptions struct {
	Method Method
	Keep   []string // keep entries (see NewKeepRule); nil means DefaultKeep
	Options
	// Canonical maps a stored tensor name to the spelling the keep rule matches (e.g.
	// model.language_model.* -> model.*); nil keeps names as they are.
	Canonical func(string) string
}

// TensorReport describes what happened to one tensor.
type TensorReport struct {
	Name        string   `json:"name"`
	Shape       []int    `json:"shape"`
	Stored      string   `json:"stored"` // the method, or "kept (DTYPE)"
	BytesBefore int64    `json:"bytes_before"`
	BytesAfter  int64    `json:"bytes_after"`
	RelRMS      *float64 `json:"rel_rms,omitempty"`
	SNRdB       *float64 `json:"snr_db,omitempty"` // absent when kept or exact
	MaxAbsError *float64 `json:"max_abs_error,omitempty"`
}

// ConvertReport summarises a conversion.
type ConvertReport struct {
	Method          Method         `json:"method"`
	Keep            []string       `json:"keep"`
	BytesBefore     int64          `json:"bytes_before"` // weights files of the input
	BytesAfter      int64          `json:"bytes_after"`  // weights file of the output
	QuantizedCount  int            `json:"quantized_tensors"`
	KeptCount       int            `json:"kept_tensors"`
	MeanRelRMS      float64        `json:"mean_rel_rms"`    // over quantized tensors
	WorstRelRMS     float64        `json:"worst_rel_rms"`   // over quantized tensors
	WorstTensor     string         `json:"worst_tensor"`    // the tensor with the worst rel RMS
	OverallSNRdB    float64        `json:"overall_snr_db"`  // over all quantized values together
	OverallRelRMS   float64        `json:"overall_rel_rms"` // over all quantized values together
	WeightsFileName string         `json:"weights_file"`    // output weights file
	Tensors         []TensorReport `json:"tensors"`
}

// WeightsFile is the output weights file name.
const WeightsFile = "model.safetensors"

// ConvertCheckpoint quantizes the safetensors weights of the checkpoint directory in into
// out: a single model.safetensors with the packed weights and scales (other tensors keep
// their stored dtype and bytes), config.json with quantization_config, and every other
// file of the input (tokenizer, processor, generation config) copied. Every file is
// written atomically. Quantizing an already quantized checkpoint is an error.
func ConvertCheckpoint(in, out string, o ConvertOptions) (*ConvertReport, error) {
	if _, err := ParseMethod(string(o.Method)); err != nil {
		return nil, err
	}
	keep := o.Keep
	if keep == nil {
		keep = DefaultKeep
	}
	rule, err := NewKeepRule(keep)
	if err != nil {
		return nil, err
	}
	canon := o.Canonical
	if canon == nil {
		canon = func(s string) string { return s }
	}
	cfgSrc, err := os.ReadFile(filepath.Join(in, "config.json"))
	if err != nil {
		return nil, fmt.Errorf("read model config: %w", err)
	}
	if existing, err := ReadConfig(in); err != nil {
		return nil, err
	} else if existing != nil {
		return nil, fmt.Errorf("%s is already quantized (%s): quantize the full-precision checkpoint instead", in, existing.Method)
	}
	if abs(in) == abs(out) {
		return nil, fmt.Errorf("output %s is the input directory: choose another", out)
	}
	ckpt, err := safetensors.OpenCheckpoint(in)
	if err != nil {
		return nil, err
	}
	defer ckpt.Close()
	cfg := NewConfig(o.Method, rule.Entries(), o.Options)
	rep := &ConvertReport{Method: o.Method, Keep: rule.Entries(), WeightsFileName: WeightsFile}
	// Quantize tensors in parallel (a 3B checkpoint has ~2.8 B quantizable values: minutes on
	// one core); results are gathered in file order, so the output does not depend on timing.
	type result struct {
		tr          TensorReport
		out         []safetensors.Tensor
		sig, noise  float64
		quantized   bool
		keptNotConv string
		err         error
	}
	names := ckpt.Names()
	results := make([]result, len(names))
	convert := func(i int) {
		name := names[i]
		r := &results[i]
		info, _ := ckpt.Info(name)
		raw, err := ckpt.Bytes(name)
		if err != nil {
			r.err = err
			return
		}
		r.tr = TensorReport{Name: name, Shape: info.Shape, BytesBefore: int64(len(raw))}
		isFloat := info.DType == safetensors.F32 || info.DType == safetensors.BF16 || info.DType == safetensors.F16 || info.DType == safetensors.F64
		if !isFloat || rule.Keep(canon(name), len(info.Shape)) || info.NumElements() == 0 {
			r.out = []safetensors.Tensor{{Name: name, DType: info.DType, Shape: info.Shape, Data: raw}}
			r.tr.Stored, r.tr.BytesAfter = "kept ("+string(info.DType)+")", int64(len(raw))
			if len(info.Shape) >= 2 {
				r.keptNotConv = canon(name)
			}
			return
		}
		for _, suffix := range Companions {
			if _, clash := ckpt.Info(name + suffix); clash {
				r.err = fmt.Errorf("%s: tensor %s%s already exists: cannot store the scales of %s", in, name, suffix, name)
				return
			}
		}
		values, err := safetensors.ToFloat32(raw, info.DType)
		if err != nil {
			r.err = fmt.Errorf("%s: tensor %s: %w", in, name, err)
			return
		}
		// Only the float32 copy is read from here on: drop the mapped pages so the input
		// checkpoint is not held resident beside the quantized output (a failure only keeps
		// them mapped).
		_ = ckpt.Release(name)
		q, err := Quantize(o.Method, values, info.Shape, o.Options)
		if err != nil {
			r.err = fmt.Errorf("%s: tensor %s: %w", in, name, err)
			return
		}
		approx := q.Dequantize()
		e := Measure(values, approx)
		for i, x := range values {
			d := float64(x) - float64(approx[i])
			r.sig += float64(x) * float64(x)
			r.noise += d * d
		}
		r.tr.Stored, r.tr.BytesAfter = string(o.Method), q.StoredBytes()
		r.tr.RelRMS, r.tr.MaxAbsError = ptr(e.RelRMS), ptr(e.MaxAbs)
		if !math.IsInf(e.SNRdB, 0) {
			r.tr.SNRdB = ptr(e.SNRdB)
		}
		r.quantized = true
		r.out = q.Encode(name)
	}
	parallel.For(len(names), runtime.GOMAXPROCS(0), func(_, i int) { convert(i) })
	var outTensors []safetensors.Tensor
	var sumSig, sumNoise, sumRel float64
	for i := range results {
		r := &results[i]
		if r.err != nil {
			return nil, r.err
		}
		rep.BytesBefore += r.tr.BytesBefore
		outTensors = append(outTensors, r.out...)
		rep.Tensors = append(rep.Tensors, r.tr)
		if !r.quantized {
			rep.KeptCount++
			if r.keptNotConv != "" {
				cfg.ModulesNotConverted = append(cfg.ModulesNotConverted, r.keptNotConv)
			}
			continue
		}
		sumSig += r.sig
		sumNoise += r.noise
		sumRel += *r.tr.RelRMS
		if *r.tr.RelRMS >= rep.WorstRelRMS {
			rep.WorstRelRMS, rep.WorstTensor = *r.tr.RelRMS, r.tr.Name
		}
		rep.QuantizedCount++
	}
	if rep.QuantizedCount == 0 {
		return nil, fmt.Errorf("%s: no tensor to quantize with keep list %v", in, rule.Entries())
	}
	rep.MeanRelRMS = sumRel / float64(rep.QuantizedCount)
	if sumSig > 0 {
		rep.OverallRelRMS = math.Sqrt(sumNoise / sumSig)
		rep.OverallSNRdB = 10 * math.Log10(sumSig/sumNoise)
	}
	cfg.Quantized = rep.QuantizedCount
	sort.Strings(cfg.ModulesNotConverted)
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, fmt.Errorf("create %s: %w", out, err)
	}
	weights := filepath.Join(out, WeightsFile)
	if err := safetensors.WriteFile(weights, outTensors, map[string]string{"format": "pt", MetadataKey: cfg.MetadataValue()}); err != nil {
		return nil, fmt.Errorf("write %s: %w", weights, err)
	}
	if st, err := os.Stat(weights); err == nil {
		rep.BytesAfter = st.Size()
	}
	if err := copyOtherFiles(in, out); err != nil {
		return nil, err
	}
	// config.json last: a directory with a quantization_config always has its weights.
	if err := WriteConfig(cfgSrc, filepath.Join(out, "config.json"), cfg); err != nil {
		return nil, err
	}
	return rep, nil
}

func ptr(v float64) *float64 { return &v }

func abs(p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return filepath.Clean(a)
}

// copyOtherFiles copies the regular files of in other than weights and config.json.
func copyOtherFiles(in, out string) error {
	entries, err := os.ReadDir(in)
	if err != nil {
		return fmt.Errorf("list %s: %w", in, err)
	}
	for _, e := range entries {
		n := e.Name()
		if !e.Type().IsRegular() || n == "config.json" || n == safetensors.IndexName || strings.HasSuffix(n, ".safetensors") || strings.HasPrefix(n, ".") {
			continue
		}
		if err := fsutil.CopyFileAtomic(filepath.Join(in, n), filepath.Join(out, n)); err != nil {
			return fmt.Errorf("copy %s to %s: %w", n, out, err)
		}
	}
	return nil
}
