//go:build !noxla && cgo

package mlbackend

import (
	"strings"
	"testing"
)

// TestXLANeverDownloads: with no plugin on the search path, xla specs must fail at once with a
// "no plugins found" error instead of trying to auto-install one from the network.
func TestXLANeverDownloads(t *testing.T) {
	t.Setenv("PJRT_PLUGIN_LIBRARY_PATH", t.TempDir())
	for _, spec := range []string{"xla:cuda", "xla:cpu", "xla"} {
		_, err := New(spec)
		if err == nil || !strings.Contains(err.Error(), "no plugins found") {
			t.Errorf("New(%q) = %v, want a no-plugins-found error", spec, err)
		}
	}
}
