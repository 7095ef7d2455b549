package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"

	"github.com/acdtcm/acdtcm/internal/fsutil"
)

// profiles holds the --cpu-profile and --mem-profile paths and the CPU profile being written.
type profiles struct {
	cpuPath, memPath string
	cpuTemp          *os.File
}

// start begins the CPU profile, written to a temporary file beside cpuPath (its folder
// created if needed) until stop.
func (p *profiles) start() error {
	if p.cpuPath == "" || p.cpuTemp != nil {
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(p.cpuPath), 0o755); err != nil {
		return fmt.Errorf("--cpu-profile %s: %w", p.cpuPath, err)
	}
	f, err := os.CreateTemp(filepath.Dir(p.cpuPath), "."+filepath.Base(p.cpuPath)+".*.tmp")
	if err != nil {
		return fmt.Errorf("--cpu-profile %s: %w", p.cpuPath, err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		os.Remove(f.Name())
		return fmt.Errorf("--cpu-profile %s: %w", p.cpuPath, err)
	}
	p.cpuTemp = f
	return nil
}

// stop ends the CPU profile (renaming it into place) and writes the heap profile, after a
// garbage collection so that it shows live memory. Both files are written atomically.
func (p *profiles) stop() error {
	var errs []error
	if p.cpuTemp != nil {
		pprof.StopCPUProfile()
		name := p.cpuTemp.Name()
		err := p.cpuTemp.Close()
		if err == nil {
			err = os.Chmod(name, 0o644) // CreateTemp's 0600 would differ from every other output
		}
		if err == nil {
			err = os.Rename(name, p.cpuPath)
		}
		if err != nil {
			os.Remove(name)
			errs = append(errs, fmt.Errorf("--cpu-profile %s: %w", p.cpuPath, err))
		}
		p.cpuTemp = nil
	}
	if p.memPath != "" {
		runtime.GC()
		var buf bytes.Buffer
		err := pprof.Lookup("heap").WriteTo(&buf, 0)
		if err == nil {
			err = fsutil.WriteFileAtomic(p.memPath, buf.Bytes(), 0o644)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("--mem-profile %s: %w", p.memPath, err))
		}
	}
	return errors.Join(errs...)
}
