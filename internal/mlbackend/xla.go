//go:build !noxla && cgo

package mlbackend

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/gomlx/go-xla/pkg/pjrt"
	"github.com/gomlx/gomlx/backends"
	"github.com/gomlx/gomlx/backends/xla"
)

func init() {
	// Never download plugins: this project's machines have no network access, and a silent
	// download is not wanted elsewhere either (GOMLX_NO_AUTO_INSTALL=1 semantics).
	xla.EnableAutoInstall(false)
	xlaNew = newXLA
}

// newXLA creates an XLA/PJRT backend for config ("cuda", "cpu", "/abs/path/plugin.so", ...),
// passing the options of XLAClientOptions (preallocate=false, ...) to the PJRT client.
func newXLA(config string) (backends.Backend, error) {
	config, clientOpts, err := SplitXLAConfig(config)
	if err != nil {
		return nil, err
	}
	plugin, _, _ := strings.Cut(config, ",")
	if plugin != "" {
		if filepath.IsAbs(plugin) {
			if _, err := os.Stat(plugin); err != nil {
				return nil, fmt.Errorf("PJRT plugin: %w", err)
			}
		}
		setCUDADataDir(plugin)
	}
	b, err := xla.NewWithOptions(config, pjrt.NamedValuesMap(clientOpts))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// setCUDADataDir works around go-xla v0.1.4, which sets XLA_FLAGS=--xla_gpu_cuda_data_dir to a
// path of its author's home when an nvidia/ folder sits beside a CUDA plugin: unless the user
// already chose a CUDA data dir, point it at the real nvidia/ folder next to the plugin (go-xla
// layout) or at site-packages/nvidia/cuda_nvcc (JAX pip layout).
func setCUDADataDir(plugin string) {
	if !strings.Contains(strings.ToLower(plugin), "cuda") {
		return
	}
	flags := os.Getenv("XLA_FLAGS")
	if strings.Contains(flags, "--xla_gpu_cuda_data_dir") {
		return
	}
	path := plugin
	if !filepath.IsAbs(path) {
		p, ok := pjrt.AvailablePlugins()[plugin]
		if !ok {
			return
		}
		path = p
	}
	dir := filepath.Dir(path)
	for _, cand := range []string{
		filepath.Join(filepath.Dir(dir), "nvidia"),                            // go-xla: lib/go-xla/nvidia
		filepath.Join(filepath.Dir(filepath.Dir(dir)), "nvidia", "cuda_nvcc"), // JAX: site-packages/nvidia/cuda_nvcc
	} {
		if st, err := os.Stat(cand); err == nil && st.IsDir() {
			os.Setenv("XLA_FLAGS", strings.TrimSpace(flags+" --xla_gpu_cuda_data_dir="+cand))
			return
		}
	}
}
