package dataset

import (
	"fmt"
	"path/filepath"
)

// RebaseImages returns a copy of records whose relative image paths, relative to fromDir,
// are rewritten relative to toDir, so a derived manifest written elsewhere still finds the
// images. Absolute paths are kept.
func RebaseImages(records []Record, fromDir, toDir string) ([]Record, error) {
	from, err := filepath.Abs(fromDir)
	if err != nil {
		return nil, fmt.Errorf("rebase images from %s: %w", fromDir, err)
	}
	to, err := filepath.Abs(toDir)
	if err != nil {
		return nil, fmt.Errorf("rebase images to %s: %w", toDir, err)
	}
	out := append([]Record(nil), records...)
	if from == to {
		return out, nil
	}
	for i := range out {
		p := filepath.FromSlash(out[i].Image)
		if p == "" || filepath.IsAbs(p) {
			continue
		}
		out[i].Image = relImage(to, filepath.Join(from, p))
	}
	return out, nil
}
