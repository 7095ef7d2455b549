package dataset

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif"  // register decoders for DecodeConfig
	_ "image/jpeg" // register decoders for DecodeConfig
	_ "image/png"  // register decoders for DecodeConfig
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	_ "golang.org/x/image/bmp"  // register decoders for DecodeConfig
	_ "golang.org/x/image/tiff" // register decoders for DecodeConfig
	_ "golang.org/x/image/webp" // register decoders for DecodeConfig

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// Import formats understood by Import.
const (
	FormatACNE04VOC   = "acne04-voc"
	FormatImageFolder = "imagefolder"
	FormatJSON        = "json"
	FormatShareGPT    = "sharegpt"
)

// ImportFormats lists the import formats in a stable order.
var ImportFormats = []string{FormatACNE04VOC, FormatImageFolder, FormatJSON, FormatShareGPT}

// ReportName is the file name of the import report written beside the manifest.
const ReportName = "import-report.json"

// ErrNothingImported is returned by Import when no input could be imported.
var ErrNothingImported = errors.New("nothing could be imported")

// ImportOptions configures Import.
type ImportOptions struct {
	Format string         // one of ImportFormats
	Src    string         // source folder (or file, for json and sharegpt); never modified
	OutDir string         // output dataset directory; receives manifest.jsonl
	Copy   bool           // copy images into OutDir/images instead of referencing them
	Scale  severity.Scale // scale of grades given as numbers or names (imagefolder, sharegpt); default hayashi
}

// Skip is one input that was not imported (or exported), with the reason.
type Skip struct {
	File   string `json:"file"`
	Kind   string `json:"kind"` // one of the Skip* categories, for summaries
	Reason string `json:"reason"`
}

// Categories of skipped inputs.
const (
	SkipBadName           = "bad file name"
	SkipMissingAnnotation = "missing annotation"
	SkipOrphanAnnotation  = "annotation without image"
	SkipBadAnnotation     = "malformed annotation"
	SkipUnknownLesion     = "unknown lesion name"
	SkipUnreadable        = "unreadable file"
	SkipBadImage          = "missing or undecodable image"
	SkipNoClass           = "not in a grade folder"
	SkipNoGrade           = "no usable grade"
	SkipUnusable          = "unusable sample"
)

// String returns "file: reason".
func (s Skip) String() string { return s.File + ": " + s.Reason }

// ImportResult is the outcome of Import.
type ImportResult struct {
	Manifest string         `json:"manifest"` // path of the written manifest
	Format   string         `json:"format"`
	Source   string         `json:"source"`
	Imported int            `json:"imported"`
	PerSplit map[string]int `json:"per_split"`
	PerGrade map[string]int `json:"per_grade"`
	Records  []Record       `json:"-"`
	Skipped  []Skip         `json:"skipped"`
	Renamed  []Skip         `json:"renamed,omitempty"`  // duplicate image IDs made unique
	Warnings []Skip         `json:"warnings,omitempty"` // imported, but worth a look (e.g. zero-area boxes)
	Copied   int            `json:"copied,omitempty"`
}

// item is one record found by a format reader, with the absolute path of its image.
type item struct {
	rec     Record
	img     string // absolute image path
	file    string // input file that described it (for error messages)
	needDim bool   // width/height must be read from the image
	warns   []string
}

// reader lists the importable items below src.
type reader func(src string, opts ImportOptions) ([]item, []Skip, error)

var readers = map[string]reader{
	FormatACNE04VOC:   readACNE04,
	FormatImageFolder: readImageFolder,
	FormatJSON:        readJSONAnnotations,
	FormatShareGPT:    readShareGPT,
}

// Import reads a dataset in one of ImportFormats from opts.Src and writes
// opts.OutDir/manifest.jsonl (atomically) plus an import report. Bad inputs are reported in
// ImportResult.Skipped and do not stop the import; the error is non-nil only when the source
// cannot be read, the output cannot be written, or nothing at all could be imported
// (ErrNothingImported).
func Import(opts ImportOptions) (*ImportResult, error) {
	rd, ok := readers[opts.Format]
	if !ok {
		return nil, fmt.Errorf("unknown import format %q (want one of %s)", opts.Format, strings.Join(ImportFormats, ", "))
	}
	if opts.Scale == "" {
		opts.Scale = severity.Hayashi
	}
	if _, err := severity.ParseScale(string(opts.Scale)); err != nil {
		return nil, err
	}
	src, err := filepath.Abs(opts.Src)
	if err != nil {
		return nil, fmt.Errorf("source %s: %w", opts.Src, err)
	}
	st, err := os.Stat(src)
	if err != nil {
		return nil, fmt.Errorf("source: %w", err)
	}
	out, err := filepath.Abs(opts.OutDir)
	if err != nil {
		return nil, fmt.Errorf("output %s: %w", opts.OutDir, err)
	}
	srcRoot := src
	if !st.IsDir() {
		srcRoot = filepath.Dir(src)
	}
	if st.IsDir() && within(out, src) {
		return nil, fmt.Errorf("output directory %s is inside the source %s: the source must not be modified", opts.OutDir, opts.Src)
	}
	manifest := filepath.Join(out, ManifestName)
	if manifest == src {
		return nil, fmt.Errorf("output manifest %s would overwrite the source", manifest)
	}
	items, skipped, err := rd(src, opts)
	if err != nil {
		return nil, err
	}
	res := &ImportResult{Manifest: manifest, Format: opts.Format, Source: src, Skipped: skipped}
	seenID := map[string]int{}
	for _, it := range items {
		if it.needDim {
			w, h, err := imageSize(it.img)
			if err != nil {
				reason := err.Error()
				if it.file != it.img {
					reason = "image " + it.img + ": " + reason
				}
				res.Skipped = append(res.Skipped, Skip{File: it.file, Kind: SkipBadImage, Reason: reason})
				continue
			}
			it.rec.Width, it.rec.Height = w, h
		} else if _, err := os.Stat(it.img); err != nil {
			res.Skipped = append(res.Skipped, Skip{File: it.file, Kind: SkipBadImage, Reason: fmt.Sprintf("image %s: %v", it.img, errors.Unwrap(err))})
			continue
		}
		for _, w := range it.warns {
			res.Warnings = append(res.Warnings, Skip{File: it.file, Kind: "warning", Reason: w})
		}
		img := it.img
		if opts.Copy {
			dst := copyDest(out, srcRoot, img)
			if err := copyFileAtomic(img, dst); err != nil {
				return nil, err
			}
			res.Copied++
			img = dst
		}
		it.rec.Image = relImage(out, img)
		if n := seenID[it.rec.ImageID]; n > 0 {
			old := it.rec.ImageID
			for {
				n++
				id := fmt.Sprintf("%s-%d", old, n)
				if seenID[id] == 0 {
					seenID[old] = n
					it.rec.ImageID = id
					break
				}
			}
			res.Renamed = append(res.Renamed, Skip{File: it.file, Kind: "duplicate id", Reason: fmt.Sprintf("duplicate image_id %q renamed to %q", old, it.rec.ImageID)})
		}
		seenID[it.rec.ImageID]++
		res.Records = append(res.Records, it.rec)
	}
	if len(res.Records) == 0 {
		return res, fmt.Errorf("import %s from %s: %w (%d inputs skipped)", opts.Format, opts.Src, ErrNothingImported, len(res.Skipped))
	}
	res.Imported = len(res.Records)
	res.PerSplit, res.PerGrade = SummaryCounts(res.Records)
	if err := WriteManifest(manifest, res.Records); err != nil {
		return res, err
	}
	if err := writeJSONAtomic(filepath.Join(out, ReportName), res); err != nil {
		return res, err
	}
	return res, nil
}

// within reports whether path is dir or below it.
func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

// relImage returns img relative to dir in slash form, or img itself when no relative path
// exists (another volume).
func relImage(dir, img string) string {
	rel, err := filepath.Rel(dir, img)
	if err != nil {
		return filepath.ToSlash(img)
	}
	return filepath.ToSlash(rel)
}

// copyDest places a copied image under out/images, mirroring its path below srcRoot;
// images outside srcRoot go to images/external/ with their parent folder's name.
func copyDest(out, srcRoot, img string) string {
	if within(img, srcRoot) {
		rel, _ := filepath.Rel(srcRoot, img)
		return filepath.Join(out, "images", rel)
	}
	return filepath.Join(out, "images", "external", filepath.Base(filepath.Dir(img))+"_"+filepath.Base(img))
}

// copyFileAtomic copies src to dst through a temporary file; an existing dst of the same
// size is kept (atomic writes never leave partial files).
func copyFileAtomic(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("copy image: %w", err)
	}
	defer in.Close()
	sst, err := in.Stat()
	if err != nil {
		return fmt.Errorf("copy image %s: %w", src, err)
	}
	if dst0, err := os.Stat(dst); err == nil && dst0.Size() == sst.Size() {
		return nil
	}
	return fsutil.CopyFileAtomic(src, dst)
}

// imageSize reads the dimensions from an image header.
func imageSize(path string) (int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("open image: %w", errors.Unwrap(err))
	}
	defer f.Close()
	cfg, format, err := image.DecodeConfig(f)
	if err != nil {
		return 0, 0, fmt.Errorf("not a decodable image: %w", err)
	}
	if cfg.Width <= 0 || cfg.Height <= 0 {
		return 0, 0, fmt.Errorf("%s image with size %dx%d", format, cfg.Width, cfg.Height)
	}
	return cfg.Width, cfg.Height, nil
}

// imageExts are the file extensions importers treat as images.
var imageExts = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".webp": true, ".bmp": true, ".gif": true, ".tif": true, ".tiff": true}

// imageExtList is imageExts in a fixed order of preference.
var imageExtList = []string{".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}

// IsImageFile reports whether name has an image file extension.
func IsImageFile(name string) bool { return imageExts[strings.ToLower(filepath.Ext(name))] }

func stem(name string) string {
	b := filepath.Base(name)
	return strings.TrimSuffix(b, filepath.Ext(b))
}

// readDirSorted lists a directory's entries sorted by name.
func readDirSorted(dir string) ([]os.DirEntry, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("read directory: %w", err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	return ents, nil
}

// splitNames are folder names recognised as split names, mapped to acdtcm's names.
var splitNames = map[string]string{
	"train": "train", "training": "train",
	"valid": "valid", "val": "valid", "validation": "valid", "dev": "valid",
	"test": "test", "testing": "test",
}

// SummaryCounts returns record counts per split and per grade ("scale:value", or "none").
func SummaryCounts(records []Record) (perSplit, perGrade map[string]int) {
	perSplit, perGrade = map[string]int{}, map[string]int{}
	for i := range records {
		perSplit[records[i].Split]++
		perGrade[GradeKey(&records[i])]++
	}
	return perSplit, perGrade
}

// GradeKey names a record's grade as "scale:value" ("none" when ungraded).
func GradeKey(r *Record) string {
	if r.Diagnosis.Severity == nil {
		return "none"
	}
	return fmt.Sprintf("%s:%s", r.Diagnosis.Severity.Scale, r.Diagnosis.Severity.Scale.Format(r.Diagnosis.Severity.Value))
}

// writeJSONAtomic writes v as indented JSON to path atomically.
func writeJSONAtomic(path string, v any) error {
	return fsutil.WriteAtomic(path, 0o644, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	})
}
