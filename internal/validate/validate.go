package validate

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"image"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"

	"github.com/corona10/goimagehash"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/imageio"
	"github.com/acdtcm/acdtcm/internal/imgmatch"
	"github.com/acdtcm/acdtcm/internal/parallel"
)

// DefaultPHashThreshold is the default largest Hamming distance (of 64 bits) between the
// perceptual hashes of two near-duplicate images. See the package README for how it was
// chosen on ACNE04.
const DefaultPHashThreshold = 4

// Options configures Run.
type Options struct {
	Limits         imageio.Limits // per-image limits; zero fields mean the imageio defaults
	PHashThreshold int            // near-duplicate Hamming distance; negative disables the check
	// MatchInliers is the fewest agreeing keypoints for two images to be augmented copies
	// of one photo (local-feature matching, imgmatch); 0 means imgmatch.DefaultMinInliers,
	// negative disables the check.
	MatchInliers int
	Workers      int // image workers; 0 means runtime.NumCPU()
	// Progress, when set, is called after each image is checked with the number done and
	// the total; calls come from one goroutine at a time.
	Progress func(done, total int)
}

// entry is one parsed manifest record and what the image workers learned about it.
type entry struct {
	line int
	rec  dataset.Record
	path string // resolved image path

	// filled by the image workers
	checked bool
	cfg     imageio.Config
	err     error
	sum     [sha256.Size]byte
	hash    uint64 // perceptual hash of the image
	mirror  uint64 // perceptual hash of its horizontal mirror
	feat    *imgmatch.Features
}

// ErrManifest marks failures to open or read the manifest itself (the run cannot start).
var ErrManifest = errors.New("cannot read manifest")

// Run validates the manifest at path (a manifest file or a dataset directory holding
// manifest.jsonl). It returns an error only when the manifest cannot be opened; every
// problem inside the dataset becomes a Finding. Nothing is ever written.
func Run(ctx context.Context, path string, opts Options) (*Report, error) {
	v, err := run(ctx, path, opts)
	if err != nil {
		return nil, err
	}
	return v.report, nil
}

// run is Run keeping the validator, whose entries tests inspect.
func run(ctx context.Context, path string, opts Options) (*validator, error) {
	mp, err := dataset.ResolveManifestPath(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	f, err := os.Open(mp)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrManifest, err)
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%w: %s is a directory", ErrManifest, mp)
	}
	v := &validator{
		opts:   opts,
		report: &Report{Manifest: mp, PHashThreshold: opts.PHashThreshold, MatchInliers: opts.matchInliers()},
		man:    &dataset.Manifest{Path: mp, Dir: filepath.Dir(mp)},
	}
	err = dataset.ScanManifest(f, mp, func(line int, rec dataset.Record) error {
		v.report.Lines++
		v.entries = append(v.entries, &entry{line: line, rec: rec})
		return ctx.Err()
	}, func(le *dataset.LineError) error {
		v.report.Lines++
		v.add(SevError, CheckManifest, le.Line, nil, "malformed line: %v", le.Err)
		return ctx.Err()
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A read failure (e.g. an over-long line) ends the scan; validate what was read.
		v.add(SevError, CheckManifest, 0, nil, "manifest read stopped: %v", err)
	}
	v.report.Records = len(v.entries)
	v.checkRecords()
	if err := v.checkImages(ctx); err != nil {
		return nil, err
	}
	v.checkGeometry()
	v.checkDuplicates()
	if err := v.checkAugmented(ctx); err != nil {
		return nil, err
	}
	v.checkSourceLeaks()
	v.checkTypeGrade()
	v.stats()
	v.finish()
	return v, nil
}

type validator struct {
	opts    Options
	report  *Report
	man     *dataset.Manifest
	entries []*entry
}

// add records a finding; e may be nil for findings about a line that did not parse.
func (v *validator) add(sev Severity, check string, line int, e *entry, format string, args ...any) {
	f := Finding{Severity: sev, Check: check, File: v.report.Manifest, Line: line, Message: fmt.Sprintf(format, args...)}
	if e != nil {
		f.ImageID = e.rec.ImageID
		f.Image = e.rec.Image
	}
	v.report.Findings = append(v.report.Findings, f)
}

// checkImages reads, hashes and decodes every image in parallel.
func (v *validator) checkImages(ctx context.Context) error {
	var todo []*entry
	for _, e := range v.entries {
		if e.rec.Image != "" {
			e.path = v.man.ImagePath(&e.rec)
			todo = append(todo, e)
		}
	}
	workers := v.opts.Workers
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	if err := parallel.Each(ctx, len(todo), workers, func(i int) { v.inspect(todo[i]) }, v.opts.Progress); err != nil {
		return err
	}
	v.report.ImagesChecked = len(todo)
	for _, e := range todo {
		if e.err != nil {
			msg := e.err.Error()
			if errors.Is(e.err, fs.ErrNotExist) {
				msg = fmt.Sprintf("image file not found: %s", e.path)
			}
			v.add(SevError, CheckImage, e.line, e, "%s", msg)
			continue
		}
		v.report.ImagesOK++
	}
	return nil
}

// inspect reads one image within the limits, hashes its bytes and pixels.
func (v *validator) inspect(e *entry) {
	e.checked = true
	data, err := imageio.ReadFile(e.path, v.opts.Limits.MaxBytes)
	if err != nil {
		e.err = err
		return
	}
	e.sum = sha256.Sum256(data)
	img, cfg, err := imageio.Decode(e.path, data, v.opts.Limits)
	if err != nil {
		e.err = err
		return
	}
	e.cfg = cfg
	if v.opts.PHashThreshold >= 0 {
		e.hash, e.mirror, err = PerceptualHashes(img)
		if err != nil {
			e.err = fmt.Errorf("image %s: perceptual hash: %w", e.path, err)
			return
		}
	}
	if v.opts.MatchInliers >= 0 {
		// An image too small for local features simply takes no part in the check.
		e.feat, _ = imgmatch.Extract(img, imgmatch.Options{})
	}
}

// matchInliers is the effective MatchInliers (-1 when the check is off).
func (o Options) matchInliers() int {
	switch {
	case o.MatchInliers < 0:
		return -1
	case o.MatchInliers == 0:
		return imgmatch.DefaultMinInliers
	}
	return o.MatchInliers
}

// PerceptualHashes returns the 64-bit DCT perceptual hash (goimagehash.PerceptionHash) of
// img and of its horizontal mirror, both computed on a 64×64 grayscale thumbnail.
func PerceptualHashes(img image.Image) (hash, mirror uint64, err error) {
	thumb := imageio.GrayThumbnail(img, 64, 64)
	h, err := goimagehash.PerceptionHash(thumb)
	if err != nil {
		return 0, 0, err
	}
	flipped := image.NewGray(thumb.Rect)
	for y := 0; y < 64; y++ {
		row, out := thumb.Pix[y*thumb.Stride:], flipped.Pix[y*flipped.Stride:]
		for x := 0; x < 64; x++ {
			out[x] = row[63-x]
		}
	}
	m, err := goimagehash.PerceptionHash(flipped)
	if err != nil {
		return 0, 0, err
	}
	return h.GetHash(), m.GetHash(), nil
}
