package grader

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"image"
	"image/draw"
	_ "image/jpeg" // decoders for the photos
	_ "image/png"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/grader/heatmap"
	"github.com/acdtcm/acdtcm/internal/imageio"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// Sample is one labelled photo for the grader: its grade, its lesion boxes in normalised
// coordinates and the source photo it derives from (augmented copies share a source).
type Sample struct {
	ID     string
	Source string
	Split  string
	Grade  int // Hayashi 0..3
	Path   string
	Boxes  []heatmap.Box
}

// LesionIndex maps a lesion type name (canonical or ACNE04/VOC spelling) to its channel.
func LesionIndex(name string) int {
	switch strings.ToLower(strings.TrimSpace(name)) {
	case dataset.LesionComedone, "whitehead and blackhead", "comedones", "blackhead", "whitehead":
		return 0
	case dataset.LesionPapule, "papules":
		return 1
	case dataset.LesionPustule, "pustules":
		return 2
	case dataset.LesionNodule, "nodules and cysts", "nodules", "cyst", "cysts":
		return 3
	}
	return -1
}

// typedLesionLabels tells whether the lesion types of samples' boxes say more than the grade
// (dataset.LesionTypesInformative), so that a model can learn lesion types from them.
func typedLesionLabels(samples []Sample) (typed bool, why string) {
	photos := make([]dataset.GradeTypes, len(samples))
	for i, s := range samples {
		photos[i].Grade = "grade " + strconv.Itoa(s.Grade)
		for _, b := range s.Boxes {
			if b.Type >= 0 && b.Type < NumTypes {
				photos[i].Types = append(photos[i].Types, dataset.LesionTypes[b.Type])
			}
		}
	}
	typed, _, why = dataset.LesionTypesInformative(photos)
	return typed, why
}

// SplitSamples returns the samples of trainSplit and of evalSplit, in their order; samples of
// other splits are in neither.
func SplitSamples(samples []Sample, trainSplit, evalSplit string) (train, eval []Sample) {
	for _, s := range samples {
		switch s.Split {
		case trainSplit:
			train = append(train, s)
		case evalSplit:
			eval = append(eval, s)
		}
	}
	return train, eval
}

// LoadSamples reads labelled photos from path: a manifest (file or directory holding
// manifest.jsonl) or, as a fallback, an ACNE04 Pascal VOC export directory with train/ and
// valid/ subdirectories. Records without a Hayashi grade are skipped and counted in skipped.
func LoadSamples(path string) (samples []Sample, skipped int, err error) {
	if mp, err := dataset.ResolveManifestPath(path); err == nil {
		if st, err := os.Stat(mp); err == nil && !st.IsDir() {
			return loadManifestSamples(mp)
		}
	}
	return loadVOCSamples(path)
}

func loadManifestSamples(path string) ([]Sample, int, error) {
	m, err := dataset.ReadManifest(path)
	if err != nil {
		return nil, 0, err
	}
	var out []Sample
	skipped := 0
	for i := range m.Records {
		r := &m.Records[i]
		sev := r.Diagnosis.Severity
		if sev == nil || sev.Scale != severity.Hayashi || !severity.Hayashi.Valid(sev.Value) {
			skipped++
			continue
		}
		p := m.ImagePath(r)
		w, h := r.Width, r.Height
		if (w <= 0 || h <= 0) && len(r.Diagnosis.Lesions) > 0 {
			cw, ch, err := imageSize(p)
			if err != nil {
				skipped++
				continue
			}
			w, h = cw, ch
		}
		s := Sample{ID: r.ImageID, Source: r.SourceID, Split: r.Split, Grade: sev.Value, Path: p}
		if s.Source == "" {
			s.Source = r.ImageID
		}
		for _, l := range r.Diagnosis.Lesions {
			t := LesionIndex(l.Type)
			if t < 0 || l.Box == nil {
				continue
			}
			s.Boxes = append(s.Boxes, heatmap.Box{Type: t, X0: l.Box.X0 / float64(w), X1: l.Box.X1 / float64(w), Y0: l.Box.Y0 / float64(h), Y1: l.Box.Y1 / float64(h)})
		}
		out = append(out, s)
	}
	return out, skipped, nil
}

func imageSize(path string) (int, int, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(f)
	if err != nil {
		return 0, 0, fmt.Errorf("decode %s: %w", path, err)
	}
	return cfg.Width, cfg.Height, nil
}

var acneName = regexp.MustCompile(`^levle(\d)_(\d+)_`)

type vocAnnotation struct {
	Size struct {
		Width  float64 `xml:"width"`
		Height float64 `xml:"height"`
	} `xml:"size"`
	Objects []struct {
		Name string `xml:"name"`
		Box  struct {
			XMin float64 `xml:"xmin"`
			XMax float64 `xml:"xmax"`
			YMin float64 `xml:"ymin"`
			YMax float64 `xml:"ymax"`
		} `xml:"bndbox"`
	} `xml:"object"`
}

// loadVOCSamples reads an ACNE04 VOC export: <dir>/<split>/levle<G>_<ID>_*.jpg with an .xml beside.
func loadVOCSamples(dir string) ([]Sample, int, error) {
	var out []Sample
	skipped := 0
	splits, err := os.ReadDir(dir)
	if err != nil {
		return nil, 0, fmt.Errorf("read dataset %s: %w", dir, err)
	}
	for _, sp := range splits {
		if !sp.IsDir() {
			continue
		}
		files, err := filepath.Glob(filepath.Join(dir, sp.Name(), "*.xml"))
		if err != nil {
			return nil, 0, err
		}
		sort.Strings(files)
		for _, x := range files {
			base := filepath.Base(x)
			m := acneName.FindStringSubmatch(base)
			img := strings.TrimSuffix(x, ".xml") + ".jpg"
			if m == nil {
				skipped++
				continue
			}
			if _, err := os.Stat(img); err != nil {
				skipped++
				continue
			}
			data, err := os.ReadFile(x)
			if err != nil {
				return nil, 0, fmt.Errorf("read %s: %w", x, err)
			}
			var a vocAnnotation
			if err := xml.Unmarshal(data, &a); err != nil || a.Size.Width <= 0 || a.Size.Height <= 0 {
				skipped++
				continue
			}
			g, _ := strconv.Atoi(m[1])
			s := Sample{ID: strings.TrimSuffix(base, ".xml"), Source: m[1] + "_" + m[2], Split: sp.Name(), Grade: g, Path: img}
			for _, o := range a.Objects {
				t := LesionIndex(o.Name)
				if t < 0 {
					continue
				}
				s.Boxes = append(s.Boxes, heatmap.Box{Type: t, X0: o.Box.XMin / a.Size.Width, X1: o.Box.XMax / a.Size.Width, Y0: o.Box.YMin / a.Size.Height, Y1: o.Box.YMax / a.Size.Height})
			}
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, skipped, fmt.Errorf("no labelled ACNE04 photos found in %s (want a manifest or train/valid VOC folders)", dir)
	}
	return out, skipped, nil
}

// SplitBySource divides samples into train and held-out validation sets by source photo:
// every source goes wholly to one side, chosen by a seeded hash, stratified by grade so that
// roughly frac of each grade's sources is held out.
func SplitBySource(samples []Sample, frac float64, seed uint64) (train, val []Sample) {
	type src struct {
		key   string
		grade int
	}
	bySource := map[string][]int{}
	var srcs []src
	for i, s := range samples {
		if _, ok := bySource[s.Source]; !ok {
			srcs = append(srcs, src{s.Source, s.Grade})
		}
		bySource[s.Source] = append(bySource[s.Source], i)
	}
	sort.Slice(srcs, func(a, b int) bool { return srcs[a].key < srcs[b].key })
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	r.Shuffle(len(srcs), func(a, b int) { srcs[a], srcs[b] = srcs[b], srcs[a] })
	held := map[string]bool{}
	perGrade := map[int][]string{}
	for _, s := range srcs {
		perGrade[s.grade] = append(perGrade[s.grade], s.key)
	}
	for _, keys := range perGrade {
		n := int(float64(len(keys))*frac + 0.5)
		for _, k := range keys[:n] {
			held[k] = true
		}
	}
	for _, s := range samples {
		if held[s.Source] {
			val = append(val, s)
		} else {
			train = append(train, s)
		}
	}
	return train, val
}

// Resize decodes nothing: it stretches img to size x size RGB bytes with area averaging
// (the ACNE04 export itself stretches photos to a square). Every product is rounded before
// it is added (explicit float64 conversions), so compilers that fuse multiply-adds (arm64's)
// give the same bytes as amd64's: a fused rounding moved 6-15 of a photo's 150,528 values by
// one level and a grade probability by up to 1.3e-4.
func Resize(img image.Image, size int) []uint8 {
	b := img.Bounds()
	rgba, ok := img.(*image.RGBA)
	if !ok || rgba.Bounds().Min != (image.Point{}) {
		rgba = image.NewRGBA(image.Rect(0, 0, b.Dx(), b.Dy()))
		draw.Draw(rgba, rgba.Bounds(), img, b.Min, draw.Src)
	}
	w, h := b.Dx(), b.Dy()
	out := make([]uint8, size*size*3)
	sx, sy := float64(w)/float64(size), float64(h)/float64(size)
	var acc [3]float64
	for oy := 0; oy < size; oy++ {
		y0, y1 := float64(oy)*sy, float64(oy+1)*sy
		for ox := 0; ox < size; ox++ {
			x0, x1 := float64(ox)*sx, float64(ox+1)*sx
			acc = [3]float64{}
			var wsum float64
			for iy := int(y0); iy < h && float64(iy) < y1; iy++ {
				wy := min(float64(iy+1), y1) - max(float64(iy), y0)
				row := rgba.Pix[iy*rgba.Stride:]
				for ix := int(x0); ix < w && float64(ix) < x1; ix++ {
					wx := min(float64(ix+1), x1) - max(float64(ix), x0)
					wt := float64(wx * wy)
					p := row[ix*4:]
					acc[0] += float64(wt * float64(p[0]))
					acc[1] += float64(wt * float64(p[1]))
					acc[2] += float64(wt * float64(p[2]))
					wsum += wt
				}
			}
			o := out[(oy*size+ox)*3:]
			for c := 0; c < 3; c++ {
				o[c] = uint8(min(255, acc[c]/wsum+0.5))
			}
		}
	}
	return out
}

// loadResized decodes one photo file as diagnose does (imageio: libjpeg's pixels for JPEGs,
// EXIF orientation applied) and resizes it.
func loadResized(path string, size int) ([]uint8, error) {
	img, _, err := imageio.DecodeFile(path, imageio.DefaultLimits())
	if err != nil {
		return nil, err
	}
	return Resize(img, size), nil
}

// Pixels holds every sample's resized RGB bytes, size*size*3 per sample, in sample order.
type Pixels struct {
	Size int
	Data [][]uint8
}

// cacheMagic versions the cache: 2 since photos are decoded by imageio (libjpeg's JPEG pixels),
// so caches written with Go's own JPEG colour conversion are not reused.
const cacheMagic = "ACDTCM-PIXCACHE-2"

// cacheKey identifies a pixel cache by image size and the list of photo paths.
func cacheKey(samples []Sample, size int) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %d\n", cacheMagic, size)
	for _, s := range samples {
		fmt.Fprintln(h, s.Path)
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// LoadPixels returns the resized pixels of samples, from cacheDir when a cache for exactly
// these photos and size exists, else by decoding the photos (workers in parallel) and
// writing the cache atomically. An empty cacheDir disables caching. Photos that fail to
// decode are reported in the returned error list and left black.
func LoadPixels(samples []Sample, size int, cacheDir string, workers int) (*Pixels, []error, error) {
	px := &Pixels{Size: size, Data: make([][]uint8, len(samples))}
	per := size * size * 3
	var cachePath string
	if cacheDir != "" {
		cachePath = filepath.Join(cacheDir, fmt.Sprintf("pixels-%d-%s.bin", size, cacheKey(samples, size)))
		if data, err := os.ReadFile(cachePath); err == nil {
			hdr := len(cacheMagic) + 8
			if len(data) == hdr+per*len(samples) && string(data[:len(cacheMagic)]) == cacheMagic &&
				binary.LittleEndian.Uint64(data[len(cacheMagic):hdr]) == uint64(len(samples)) {
				for i := range samples {
					px.Data[i] = data[hdr+i*per : hdr+(i+1)*per]
				}
				return px, nil, nil
			}
		}
	}
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		next = make(chan int)
	)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				b, err := loadResized(samples[i].Path, size)
				if err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					b = make([]uint8, per)
				}
				px.Data[i] = b
			}
		}()
	}
	for i := range samples {
		next <- i
	}
	close(next)
	wg.Wait()
	if cachePath != "" && len(errs) == 0 {
		err := fsutil.WriteAtomic(cachePath, 0o644, func(w io.Writer) error {
			var hdr bytes.Buffer
			hdr.WriteString(cacheMagic)
			binary.Write(&hdr, binary.LittleEndian, uint64(len(samples)))
			if _, err := w.Write(hdr.Bytes()); err != nil {
				return err
			}
			for _, d := range px.Data {
				if _, err := w.Write(d); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return px, errs, fmt.Errorf("write pixel cache: %w", err)
		}
	}
	return px, errs, nil
}
