package mlbackend

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"

	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/simplego"
	"github.com/spf13/pflag"
)

// DefaultSpec is the backend used when none is given: pure Go (simplego with unbounded
// workers; parallel op scheduling for training, NormalizeGoConfig, sequential for inference,
// NormalizeGoInferenceConfig).
const DefaultSpec = "go"

// FlagName is the name of the flag added by AddFlag; its config key is "<command path>.backend",
// falling back to the top-level key "backend" (env ACDTCM_BACKEND) when resolved by internal/cli.
const FlagName = "backend"

// FlagUsage is the help text of the --backend flag.
const FlagUsage = `ML backend: "go" (pure Go, CPU: independent ops run in parallel when training, one at a time ` +
	`when only running a model; the built-in grader then runs on its own native engine, ` +
	`"simplego" forces GoMLX's simplego for it), "go:<options>" (GoMLX simplego, e.g. go:parallelism=4,ops_sequential), ` +
	`"xla:cuda", "xla:<plugin name>" or "xla:/abs/path/plugin.so" (needs a build with cgo, without the noxla tag), ` +
	`optionally followed by ",preallocate=false", ",memory_fraction=F", ",allocator=NAME" (PJRT client) or ",tf32"; ` +
	`diagnose, eval and serve also take "openai" (a remote OpenAI-compatible server, see --endpoint)`

// ErrXLANotCompiled is returned by New when an xla spec is requested in a build without XLA
// (the default pure-Go build, CGO_ENABLED=0 -tags noxla).
var ErrXLANotCompiled = errors.New("the xla backend is not compiled into this binary: " +
	"rebuild with cgo and without the noxla tag (make build-xla), or use --backend=go")

// xlaNew is set by xla.go when the XLA backend is compiled in.
var xlaNew func(config string) (backends.Backend, error)

// Compiled lists the backends compiled into this binary, e.g. ["go"] or ["go", "xla"].
func Compiled() []string {
	out := []string{"go"}
	if xlaNew != nil {
		out = append(out, "xla")
	}
	return out
}

// AddFlag adds --backend (default DefaultSpec) to fs, storing the spec in p.
func AddFlag(fs *pflag.FlagSet, p *string) {
	fs.StringVar(p, FlagName, DefaultSpec, FlagUsage)
}

// simplegoOptions are the options accepted by the simplego backend of GoMLX v0.26.0.
var simplegoOptions = []string{"parallelism", "dotgeneral_small", "dotgeneral_large", "dotgeneral_check",
	"ops_sequential", "ops_parallel"}

// NormalizeGoConfig validates a simplego option list ("a,b=c") and makes it safe and fast.
// With no option it gives "parallelism=-1,ops_parallel": unbounded workers, so that
// independent ops of a graph (a backward pass's weight and input gradients) run on every core
// at once. simplego's default (parallel ops on a pool bounded to the core count) deadlocks on
// small machines, because a large matmul waits for a worker slot from inside a worker; an
// unbounded pool never waits. So parallelism is -1 unless given, and when no ops mode is
// named, ops_parallel is added if the parallelism is -1 and ops_sequential otherwise (an
// explicit ops_parallel with a bounded parallelism is taken as asked). Every simplego kernel
// computes the same values whichever goroutine runs which part (a matmul's contracting axis
// is never split across workers), so the options change speed and memory, not results.
func NormalizeGoConfig(config string) (string, error) {
	return normalizeGoConfig(config, false)
}

// NormalizeGoInferenceConfig is NormalizeGoConfig for running a model without training it:
// with no ops mode named it adds ops_sequential, whatever the parallelism. A forward pass
// has few independent ops, and running them at once keeps more buffers alive: Qwen2.5-VL
// diagnose on the CPU was slower in parallel at the 3B shape (746 s against 651 s for one
// photo) and no faster on the small preset, while its peak memory grew by half
// (BENCHMARKS.md, "Qwen2.5-VL-3B on the CPU").
func NormalizeGoInferenceConfig(config string) (string, error) {
	return normalizeGoConfig(config, true)
}

// normalizeGoConfig implements NormalizeGoConfig (sequential false) and
// NormalizeGoInferenceConfig (true).
func normalizeGoConfig(config string, sequential bool) (string, error) {
	var parts []string
	hasOpsMode, parallelism := false, ""
	for _, part := range strings.Split(config, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		key, value, hasValue := strings.Cut(part, "=")
		if !slices.Contains(simplegoOptions, key) {
			return "", fmt.Errorf("backend go: unknown option %q (valid: parallelism=N, %s)", key,
				strings.Join(simplegoOptions[1:], ", "))
		}
		if key == "parallelism" {
			var n int
			if _, err := fmt.Sscanf(value, "%d", &n); !hasValue || err != nil || fmt.Sprint(n) != value {
				return "", fmt.Errorf("backend go: parallelism needs an integer (-1 unlimited, 0 off), got %q", value)
			}
			parallelism = value
		} else if hasValue {
			return "", fmt.Errorf("backend go: option %q takes no value", key)
		}
		if key == "ops_sequential" || key == "ops_parallel" {
			hasOpsMode = true
		}
		parts = append(parts, part)
	}
	if parallelism == "" {
		parallelism = "-1"
		parts = append([]string{"parallelism=-1"}, parts...)
	}
	if !hasOpsMode {
		if parallelism == "-1" && !sequential {
			parts = append(parts, "ops_parallel")
		} else {
			parts = append(parts, "ops_sequential")
		}
	}
	return strings.Join(parts, ","), nil
}

// stdoutMu serialises the temporary redirection of os.Stdout in newGo.
var stdoutMu sync.Mutex

// newGo creates a simplego backend. simplego prints a line to os.Stdout when parallelism is
// set, which would corrupt machine-readable command output; the variable os.Stdout is pointed
// at /dev/null for the duration of the call (writers captured earlier, like cli.App.Out, are
// unaffected).
func newGo(config string) (backends.Backend, error) {
	stdoutMu.Lock()
	defer stdoutMu.Unlock()
	if devNull, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0); err == nil {
		saved := os.Stdout
		os.Stdout = devNull
		defer func() {
			os.Stdout = saved
			devNull.Close()
		}()
	}
	b, err := simplego.New(config)
	if err != nil {
		return nil, fmt.Errorf("backend go:%s: %w", config, err)
	}
	return b, nil
}

// New creates the backend named by spec and registers this package's gradient rules.
//
//	"go"                    pure Go (simplego): parallelism=-1,ops_parallel (NormalizeGoConfig)
//	"go:parallelism=N,..."  simplego options; without an ops mode, ops_parallel is added when
//	                        the parallelism is unbounded and ops_sequential otherwise
//	xla, xla:cuda, xla:cpu  XLA/PJRT plugin by name, found in PJRT_PLUGIN_LIBRARY_PATH or the
//	                        standard directories; never downloaded
//	xla:/abs/path/x.so      XLA/PJRT plugin by absolute path
//	xla:<plugin>,opt,...    plus PJRT client options (preallocate=false, memory_fraction=F,
//	                        allocator=NAME; see XLAClientOptions) and GoMLX's (tf32, ...)
//
// An empty spec means DefaultSpec. The GOMLX_BACKEND environment variable is ignored.
func New(spec string) (backends.Backend, error) {
	return newBackend(spec, NormalizeGoConfig)
}

// NewForInference is New for commands that only run a model (diagnose, eval, serve,
// quantize's comparison): a "go" spec that names no ops mode runs ops one at a time
// (NormalizeGoInferenceConfig); training keeps New's parallel ops.
func NewForInference(spec string) (backends.Backend, error) {
	return newBackend(spec, NormalizeGoInferenceConfig)
}

// newBackend implements New and NewForInference, normalizing simplego options with normalize.
func newBackend(spec string, normalize func(string) (string, error)) (backends.Backend, error) {
	RegisterGradients()
	spec = strings.TrimSpace(spec)
	if spec == "" {
		spec = DefaultSpec
	}
	name, config, _ := strings.Cut(spec, ":")
	switch name {
	case "go", "simplego":
		cfg, err := normalize(config)
		if err != nil {
			return nil, err
		}
		return newGo(cfg)
	case "xla", "stablehlo", "hlo", "shlo":
		if xlaNew == nil {
			return nil, fmt.Errorf("backend %q: %w", spec, ErrXLANotCompiled)
		}
		b, err := xlaNew(config)
		if err != nil {
			return nil, fmt.Errorf("backend %q: %w", spec, err)
		}
		return b, nil
	default:
		return nil, fmt.Errorf("unknown backend %q: want go, go:<options>, xla:<plugin> or xla:/abs/path/plugin.so (compiled: %s)",
			spec, strings.Join(Compiled(), ", "))
	}
}
