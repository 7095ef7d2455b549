package augment

import (
	"context"
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"testing"

	"github.com/disintegration/imaging"

	"github.com/acdtcm/acdtcm/internal/dataset"
)

const benchImages = 16

// photoLike is a 640x640 image with smooth shading plus pixel noise, so JPEG coding costs
// about what it costs on a photo.
func photoLike(seed uint64) *image.NRGBA {
	r := rand.New(rand.NewPCG(seed, 1))
	img := fieldImage(640, 640)
	for i := 0; i < len(img.Pix); i += 4 {
		for c := 0; c < 3; c++ {
			v := int(img.Pix[i+c]) + r.IntN(17) - 8
			img.Pix[i+c] = uint8(min(max(v, 0), 255))
		}
	}
	return img
}

func benchLesions() []dataset.Lesion {
	var ls []dataset.Lesion
	for i := range 12 {
		b := dataset.Box{X0: float64(40 + 45*i), Y0: float64(30 + 40*i), X1: float64(70 + 45*i), Y1: float64(55 + 40*i)}
		ls = append(ls, dataset.Lesion{Type: dataset.LesionPapule, Box: &b})
	}
	return ls
}

// benchManifest writes benchImages synthetic 640x640 JPEGs and their manifest to dir.
func benchManifest(b *testing.B, dir string) *dataset.Manifest {
	b.Helper()
	m := &dataset.Manifest{Path: filepath.Join(dir, dataset.ManifestName), Dir: dir}
	for i := range benchImages {
		name := fmt.Sprintf("img%02d.jpg", i)
		if err := imaging.Save(photoLike(uint64(i)), filepath.Join(dir, name), imaging.JPEGQuality(90)); err != nil {
			b.Fatal(err)
		}
		n := 12
		m.Records = append(m.Records, dataset.Record{ImageID: name, Image: name, Width: 640, Height: 640,
			Diagnosis: dataset.Diagnosis{LesionCount: &n, Lesions: benchLesions()}})
	}
	return m
}

// acne04Manifest lists the first benchImages ACNE04 validation photos (no boxes needed for
// timing), or returns nil when ../shared is absent.
func acne04Manifest(b *testing.B) *dataset.Manifest {
	dir := filepath.Join(sharedDirB(b), "datasets", "acne04-detection", "valid")
	names, _ := filepath.Glob(filepath.Join(dir, "*.jpg"))
	if len(names) < benchImages {
		return nil
	}
	sort.Strings(names)
	m := &dataset.Manifest{Path: filepath.Join(dir, dataset.ManifestName), Dir: dir}
	for _, p := range names[:benchImages] {
		m.Records = append(m.Records, dataset.Record{ImageID: filepath.Base(p), Image: filepath.Base(p),
			Diagnosis: dataset.Diagnosis{Lesions: benchLesions()}})
	}
	return m
}

func sharedDirB(b *testing.B) string {
	dir, _ := os.Getwd()
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return filepath.Join(dir, "..", "shared")
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			b.Fatal("go.mod not found")
		}
		dir = parent
	}
}

// BenchmarkPipeline640 measures the whole pipeline on 640x640 JPEGs: read, decode,
// transform (default parameters), encode at quality 95 and write atomically, one copy per
// photo, with GOMAXPROCS workers. The images/s metric counts written copies; cpu-ms/image
// is the process's user+system CPU time per written copy.
func BenchmarkPipeline640(b *testing.B) {
	sources := map[string]*dataset.Manifest{"synthetic": benchManifest(b, b.TempDir())}
	if m := acne04Manifest(b); m != nil {
		sources["acne04"] = m
	}
	for _, name := range []string{"synthetic", "acne04"} {
		m, ok := sources[name]
		if !ok {
			b.Logf("%s: ../shared absent, skipped", name)
			continue
		}
		b.Run(name, func(b *testing.B) {
			out := b.TempDir()
			cfg := Config{Params: DefaultParams(), Copies: 1, Quality: 95, Workers: runtime.GOMAXPROCS(0), OutDir: out}
			written := 0
			cpu0, cpuOK := processCPU()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				cfg.Seed = int64(i)
				sum, err := Run(context.Background(), m, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if len(sum.Skipped) != 0 {
					b.Fatalf("skipped %v", sum.Skipped)
				}
				written += sum.ImagesWritten
			}
			b.ReportMetric(float64(written)/b.Elapsed().Seconds(), "images/s")
			// CPU time per image is what a busy machine cannot distort much.
			if cpu1, ok := processCPU(); ok && cpuOK && written > 0 {
				b.ReportMetric(float64((cpu1-cpu0).Milliseconds())/float64(written), "cpu-ms/image")
			}
		})
	}
}

// BenchmarkAugment640 measures only the transforms of one 640x640 image (default
// parameters, boxes included), without decoding, encoding or files.
func BenchmarkAugment640(b *testing.B) {
	img := photoLike(1)
	lesions := benchLesions()
	p := DefaultParams()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		ops := Sample(p, NewRand(1, "bench", i))
		out, _, _ := ops.Augment(p, img, lesions)
		if out.Bounds().Dx() != 640 {
			b.Fatal("unexpected size")
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "images/s")
}
