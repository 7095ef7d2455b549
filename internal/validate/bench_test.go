package validate

import (
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// photo640 is a 640×640 JPEG with photo-like smooth structure and noise.
func photo640(b *testing.B) []byte {
	m := image.NewNRGBA(image.Rect(0, 0, 640, 640))
	base := pattern(3, 640, 640)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range m.Pix {
		v := int(base.Pix[i]) + r.IntN(17) - 8
		if i%4 == 3 {
			v = 255
		}
		m.Pix[i] = uint8(min(max(v, 0), 255))
	}
	return jpegBytes(b, m)
}

// BenchmarkInspectJPEG640 measures the per-image work of a validation run: read the file,
// SHA-256 it, decode it and compute the two perceptual hashes.
func BenchmarkInspectJPEG640(b *testing.B) {
	path := filepath.Join(b.TempDir(), "photo.jpg")
	if err := os.WriteFile(path, photo640(b), 0o644); err != nil {
		b.Fatal(err)
	}
	v := &validator{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		e := &entry{path: path}
		v.inspect(e)
		if e.err != nil {
			b.Fatal(e.err)
		}
	}
}

// BenchmarkNearGroups3256 measures the all-pairs near-duplicate grouping for a dataset the
// size of the ACNE04 export.
func BenchmarkNearGroups3256(b *testing.B) {
	r := rand.New(rand.NewPCG(3, 4))
	es := make([]*entry, 3256)
	for i := range es {
		es[i] = &entry{hash: r.Uint64(), mirror: r.Uint64()}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		nearGroups(es, DefaultPHashThreshold)
	}
}
