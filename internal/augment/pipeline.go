package augment

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/disintegration/imaging"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/imageio"
)

// ImagesDir is the directory, inside the output directory, that holds the written images.
const ImagesDir = "images"

// Config describes one augmentation run.
type Config struct {
	Params Params
	// Copies is the number of augmented copies written per source image.
	Copies int
	// Seed makes the run reproducible.
	Seed int64
	// Limit augments only the first Limit records of the manifest (0: all).
	Limit int
	// IncludeOriginal also copies each source image (bytes unchanged) into the output.
	IncludeOriginal bool
	// Quality is the JPEG quality of the written images (1-100).
	Quality int
	// Workers is the number of images processed at once (default runtime.NumCPU()).
	Workers int
	// OutDir receives images/ and manifest.jsonl.
	OutDir string
	// Progress, when set, is called once per finished source record, from any worker.
	Progress func()
	// OnSkip, when set, is called for each source record that was skipped, from any
	// worker, as soon as it happens.
	OnSkip func(Skip)
}

// Skip is a source record that could not be augmented.
type Skip struct {
	ImageID string
	File    string
	Err     error
}

// Summary counts what a Run did.
type Summary struct {
	Sources       int // records considered (after Limit)
	Augmented     int // source records whose copies were all written
	Skipped       []Skip
	ImagesWritten int // augmented copies plus copied originals
	BoxesIn       int // boxes of the augmented sources, once per copy
	BoxesDropped  int // boxes dropped because they left the image
	Manifest      string
	Elapsed       time.Duration
}

// Validate reports the first invalid setting.
func (c *Config) Validate() error {
	if err := c.Params.Validate(); err != nil {
		return err
	}
	if c.Copies < 0 {
		return fmt.Errorf("copies must be >= 0, got %d", c.Copies)
	}
	if c.Copies == 0 && !c.IncludeOriginal {
		return fmt.Errorf("copies is 0 and originals are not included: nothing to write")
	}
	if c.Limit < 0 {
		return fmt.Errorf("limit must be >= 0, got %d", c.Limit)
	}
	if c.Quality < 1 || c.Quality > 100 {
		return fmt.Errorf("quality must be in [1,100], got %d", c.Quality)
	}
	if c.OutDir == "" {
		return fmt.Errorf("an output directory is required")
	}
	return nil
}

// job is one source record and the output names reserved for it.
type job struct {
	index    int
	rec      dataset.Record
	src      string   // source image path
	copies   []string // output image paths relative to OutDir, slash-separated
	original string   // relative output path of the copied original ("" when not included)
}

type outcome struct {
	records []dataset.Record
	written int
	boxesIn int
	dropped int
	skip    *Skip
}

// Run augments the records of m into cfg.OutDir: cfg.Copies transformed JPEGs per source
// image under images/, and manifest.jsonl listing them (in manifest order, originals first
// when included). The source is only read. A source image that cannot be read or decoded
// is reported through OnSkip and in the summary, and the run goes on; write errors stop it.
func Run(ctx context.Context, m *dataset.Manifest, cfg Config) (Summary, error) {
	start := time.Now()
	if err := cfg.Validate(); err != nil {
		return Summary{}, err
	}
	if cfg.Workers <= 0 {
		cfg.Workers = runtime.NumCPU()
	}
	records := m.Records
	if cfg.Limit > 0 && cfg.Limit < len(records) {
		records = records[:cfg.Limit]
	}
	jobs, err := planJobs(m, records, cfg)
	if err != nil {
		return Summary{}, err
	}
	sum := Summary{Sources: len(jobs), Manifest: filepath.Join(cfg.OutDir, dataset.ManifestName)}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	results := make([]outcome, len(jobs))
	var (
		firstErr error
		errOnce  sync.Once
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err; cancel() })
	}
	work := make(chan *job)
	var wg sync.WaitGroup
	for range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				out, err := processJob(j, cfg)
				if err != nil {
					fail(err)
					continue
				}
				if out.skip != nil && cfg.OnSkip != nil {
					cfg.OnSkip(*out.skip)
				}
				results[j.index] = out
				if cfg.Progress != nil {
					cfg.Progress()
				}
			}
		}()
	}
feed:
	for i := range jobs {
		select {
		case work <- &jobs[i]:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return sum, firstErr
	}
	if err := ctx.Err(); err != nil {
		return sum, fmt.Errorf("augment: %w", err)
	}

	var out []dataset.Record
	for _, r := range results {
		if r.skip != nil {
			sum.Skipped = append(sum.Skipped, *r.skip)
			continue
		}
		sum.Augmented++
		sum.ImagesWritten += r.written
		sum.BoxesIn += r.boxesIn
		sum.BoxesDropped += r.dropped
		out = append(out, r.records...)
	}
	if err := dataset.WriteManifest(sum.Manifest, out); err != nil {
		return sum, fmt.Errorf("write manifest: %w", err)
	}
	sum.Elapsed = time.Since(start)
	return sum, nil
}

// planJobs reserves a unique output name for every image to be written and refuses any
// output path that would overwrite the source manifest or a source image.
func planJobs(m *dataset.Manifest, records []dataset.Record, cfg Config) ([]job, error) {
	outDir, err := filepath.Abs(cfg.OutDir)
	if err != nil {
		return nil, fmt.Errorf("output directory %s: %w", cfg.OutDir, err)
	}
	sources := make(map[string]bool, len(m.Records)+1)
	if p, err := filepath.Abs(m.Path); err == nil {
		sources[p] = true
	}
	for i := range m.Records {
		if p, err := filepath.Abs(m.ImagePath(&m.Records[i])); err == nil {
			sources[p] = true
		}
	}
	if sources[filepath.Join(outDir, dataset.ManifestName)] {
		return nil, fmt.Errorf("output directory %s holds the source manifest: choose another --out", cfg.OutDir)
	}
	used := make(map[string]bool)
	reserve := func(stem, ext string) (string, error) {
		name := stem + ext
		for n := 2; used[name]; n++ {
			name = stem + "_" + strconv.Itoa(n) + ext
		}
		rel := path.Join(ImagesDir, name)
		if sources[filepath.Join(outDir, filepath.FromSlash(rel))] {
			return "", fmt.Errorf("output image %s would overwrite a source image: choose another --out", filepath.Join(cfg.OutDir, filepath.FromSlash(rel)))
		}
		used[name] = true
		return rel, nil
	}
	jobs := make([]job, len(records))
	for i, rec := range records {
		j := job{index: i, rec: rec, src: m.ImagePath(&records[i])}
		stem := safeName(rec.ImageID)
		if cfg.IncludeOriginal {
			ext := strings.ToLower(filepath.Ext(rec.Image))
			if ext == "" {
				ext = ".img"
			}
			if j.original, err = reserve(stem, ext); err != nil {
				return nil, err
			}
		}
		for k := 1; k <= cfg.Copies; k++ {
			rel, err := reserve(copyID(stem, k), ".jpg")
			if err != nil {
				return nil, err
			}
			j.copies = append(j.copies, rel)
		}
		jobs[i] = j
	}
	return jobs, nil
}

// copyID is the image id (and file stem) of augmented copy k of id.
func copyID(id string, k int) string { return id + "_aug" + strconv.Itoa(k) }

// safeName turns an image id into a file-name stem: characters other than letters,
// digits, '.', '-' and '_' become '_'.
func safeName(id string) string {
	var b strings.Builder
	for _, r := range id {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	s := strings.Trim(b.String(), ".")
	if s == "" {
		s = "image"
	}
	return s
}

// processJob augments one source record. A bad source image yields outcome.skip; an error
// is returned only for failures writing the output.
func processJob(j *job, cfg Config) (outcome, error) {
	skip := func(err error) (outcome, error) {
		return outcome{skip: &Skip{ImageID: j.rec.ImageID, File: j.src, Err: err}}, nil
	}
	// imageio names the file in its errors, refuses decompression bombs and applies the
	// EXIF orientation, so boxes are in displayed-pixel coordinates as everywhere else.
	data, err := imageio.ReadFile(j.src, 0)
	if err != nil {
		return skip(err)
	}
	img, _, err := imageio.Decode(j.src, data, imageio.DefaultLimits())
	if err != nil {
		return skip(err)
	}
	w, h := img.Bounds().Dx(), img.Bounds().Dy()
	if (j.rec.Width != 0 && j.rec.Width != w) || (j.rec.Height != 0 && j.rec.Height != h) {
		return skip(fmt.Errorf("image %s is %dx%d but its record says %dx%d, so its boxes cannot be trusted", j.src, w, h, j.rec.Width, j.rec.Height))
	}
	sourceID := j.rec.SourceID
	if sourceID == "" {
		sourceID = j.rec.ImageID
	}
	var out outcome
	if j.original != "" {
		dst := filepath.Join(cfg.OutDir, filepath.FromSlash(j.original))
		if err := fsutil.WriteFileAtomic(dst, data, 0o644); err != nil {
			return out, fmt.Errorf("copy %s: %w", j.src, err)
		}
		r := j.rec
		r.Image, r.Width, r.Height, r.SourceID = j.original, w, h, sourceID
		out.records = append(out.records, r)
		out.written++
	}
	var buf bytes.Buffer
	for k, rel := range j.copies {
		ops := Sample(cfg.Params, NewRand(cfg.Seed, j.rec.ImageID, k+1))
		aug, lesions, dropped := ops.Augment(cfg.Params, img, j.rec.Diagnosis.Lesions)
		buf.Reset()
		if err := imaging.Encode(&buf, aug, imaging.JPEG, imaging.JPEGQuality(cfg.Quality)); err != nil {
			return out, fmt.Errorf("encode augmented copy of %s: %w", j.src, err)
		}
		dst := filepath.Join(cfg.OutDir, filepath.FromSlash(rel))
		if err := fsutil.WriteFileAtomic(dst, buf.Bytes(), 0o644); err != nil {
			return out, err
		}
		b := aug.Bounds()
		out.records = append(out.records, augmentedRecord(j.rec, copyID(j.rec.ImageID, k+1), rel, b.Dx(), b.Dy(), sourceID, lesions, dropped))
		out.written++
		for _, l := range j.rec.Diagnosis.Lesions {
			if l.Box != nil {
				out.boxesIn++
			}
		}
		out.dropped += dropped
	}
	return out, nil
}

// augmentedRecord is the manifest record of one augmented copy: the source's labels with
// the new id, image, size and lesions. The lesion count drops by the boxes dropped; the
// severity grade is kept as annotated for the whole photo.
func augmentedRecord(src dataset.Record, id, image string, w, h int, sourceID string, lesions []dataset.Lesion, dropped int) dataset.Record {
	r := src
	r.ImageID, r.Image, r.Width, r.Height, r.SourceID = id, image, w, h, sourceID
	r.Diagnosis.Lesions = lesions
	if src.Diagnosis.LesionCount != nil {
		n := max(*src.Diagnosis.LesionCount-dropped, 0)
		r.Diagnosis.LesionCount = &n
	}
	return r
}
