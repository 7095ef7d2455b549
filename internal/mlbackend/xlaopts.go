package mlbackend

import (
	"fmt"
	"strconv"
	"strings"
)

// XLAClientOptions are the options of an xla spec that acdtcm passes to the PJRT client when
// it is created (PJRT_Client_Create named values), rather than to GoMLX:
//
//	preallocate=true|false   CUDA plugin: reserve memory_fraction of the GPU up front (the
//	                         plugin's default) or grow the allocator as needed (false: what
//	                         nvidia-smi shows is then close to what the program uses)
//	memory_fraction=F        CUDA plugin: share of GPU memory the allocator may use (0 < F <= 1)
//	allocator=NAME           CUDA plugin: default, platform (cudaMalloc per buffer), bfc or
//	                         cuda_async
//
// Everything else (shared_buffers, noshared_buffers, tf32) goes to GoMLX as before, e.g.
// "xla:/abs/xla_cuda_plugin.so,preallocate=false,tf32".
var XLAClientOptions = []string{"preallocate", "memory_fraction", "allocator"}

// SplitXLAConfig separates the PJRT client options (XLAClientOptions) of an xla backend
// config ("plugin,opt,opt=value,...": the part of the spec after "xla:") from the rest,
// returning the config to give GoMLX and the typed client options (nil when none).
func SplitXLAConfig(config string) (string, map[string]any, error) {
	parts := strings.Split(config, ",")
	kept := []string{parts[0]}
	var opts map[string]any
	for _, part := range parts[1:] {
		key, value, hasValue := strings.Cut(strings.TrimSpace(part), "=")
		var v any
		switch key {
		case "preallocate":
			b, err := strconv.ParseBool(value)
			if !hasValue || err != nil {
				return "", nil, fmt.Errorf("xla option preallocate needs true or false, got %q", part)
			}
			v = b
		case "memory_fraction":
			f, err := strconv.ParseFloat(value, 32)
			if !hasValue || err != nil || f <= 0 || f > 1 {
				return "", nil, fmt.Errorf("xla option memory_fraction needs a number in (0, 1], got %q", part)
			}
			v = float32(f)
		case "allocator":
			switch value {
			case "default", "platform", "bfc", "cuda_async":
			default:
				return "", nil, fmt.Errorf("xla option allocator needs default, platform, bfc or cuda_async, got %q", part)
			}
			v = value
		default:
			kept = append(kept, part)
			continue
		}
		if opts == nil {
			opts = map[string]any{}
		}
		opts[key] = v
	}
	return strings.Join(kept, ","), opts, nil
}
