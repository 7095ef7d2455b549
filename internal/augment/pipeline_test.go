package augment

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/disintegration/imaging"

	"github.com/acdtcm/acdtcm/internal/dataset"
)

var update = flag.Bool("update", false, "rewrite golden files")

const tinyDir = "testdata/tiny"

// hashTree returns path → SHA-256 of every regular file under dir.
func hashTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		sum := sha256.Sum256(data)
		out[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func tinyConfig(out string, workers int) Config {
	return Config{Params: DefaultParams(), Copies: 2, Seed: 42, IncludeOriginal: true, Quality: 90, Workers: workers, OutDir: out}
}

func readTiny(t *testing.T) *dataset.Manifest {
	t.Helper()
	m, err := dataset.ReadManifest(tinyDir)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestRunGolden augments the tiny fixture (two good photos, one broken) and compares the
// manifest with the golden file; it also checks each record against the written image and
// the source record.
func TestRunGolden(t *testing.T) {
	m := readTiny(t)
	out := t.TempDir()
	var (
		mu    sync.Mutex
		skips []Skip
	)
	cfg := tinyConfig(out, 2)
	cfg.OnSkip = func(s Skip) { mu.Lock(); skips = append(skips, s); mu.Unlock() }
	progress := 0
	cfg.Progress = func() { mu.Lock(); progress++; mu.Unlock() }
	sum, err := Run(context.Background(), m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources != 3 || sum.Augmented != 2 || sum.ImagesWritten != 6 || progress != 3 {
		t.Errorf("summary %+v, progress %d; want 3 sources, 2 augmented, 6 images, progress 3", sum, progress)
	}
	if len(skips) != 1 || len(sum.Skipped) != 1 || skips[0].ImageID != "broken" ||
		!strings.HasSuffix(skips[0].File, "broken.jpg") || !strings.Contains(skips[0].Err.Error(), "broken.jpg") {
		t.Fatalf("skips %+v / %+v: want the broken photo, its error naming broken.jpg", skips, sum.Skipped)
	}

	got, err := os.ReadFile(filepath.Join(out, dataset.ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "tiny.golden.jsonl")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("manifest differs from %s:\n got:\n%s\nwant:\n%s", golden, got, want)
	}

	outM, err := dataset.ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	src := map[string]dataset.Record{}
	for _, r := range m.Records {
		src[r.ImageID] = r
	}
	wantIDs := []string{"face1", "face1_aug1", "face1_aug2", "face2/left", "face2/left_aug1", "face2/left_aug2"}
	if len(outM.Records) != len(wantIDs) {
		t.Fatalf("%d output records, want %d", len(outM.Records), len(wantIDs))
	}
	for i, r := range outM.Records {
		if r.ImageID != wantIDs[i] {
			t.Errorf("record %d is %s, want %s", i, r.ImageID, wantIDs[i])
		}
		orig := src[strings.Split(r.ImageID, "_aug")[0]]
		if r.Split != orig.Split {
			t.Errorf("%s: split %q, source %q", r.ImageID, r.Split, orig.Split)
		}
		wantSource := orig.SourceID
		if wantSource == "" {
			wantSource = orig.ImageID
		}
		if r.SourceID != wantSource {
			t.Errorf("%s: source_id %q, want %q", r.ImageID, r.SourceID, wantSource)
		}
		img, err := imaging.Open(outM.ImagePath(&r))
		if err != nil {
			t.Fatalf("%s: %v", r.ImageID, err)
		}
		if b := img.Bounds(); b.Dx() != r.Width || b.Dy() != r.Height {
			t.Errorf("%s: record says %dx%d, image is %v", r.ImageID, r.Width, r.Height, b)
		}
		boxed := func(ls []dataset.Lesion) int {
			n := 0
			for _, l := range ls {
				if l.Box != nil {
					n++
					if l.Box.X0 < 0 || l.Box.Y0 < 0 || l.Box.X1 > float64(r.Width) || l.Box.Y1 > float64(r.Height) || l.Box.X1 <= l.Box.X0 || l.Box.Y1 <= l.Box.Y0 {
						t.Errorf("%s: box %+v outside %dx%d", r.ImageID, *l.Box, r.Width, r.Height)
					}
				}
			}
			return n
		}
		dropped := boxed(orig.Diagnosis.Lesions) - boxed(r.Diagnosis.Lesions)
		if dropped < 0 || *r.Diagnosis.LesionCount != *orig.Diagnosis.LesionCount-dropped {
			t.Errorf("%s: lesion_count %d, source %d with %d boxes dropped", r.ImageID, *r.Diagnosis.LesionCount, *orig.Diagnosis.LesionCount, dropped)
		}
	}
}

// TestRunDeterministicAcrossWorkers: the same seed gives byte-identical manifests and
// images with 1, 2 and 5 workers.
func TestRunDeterministicAcrossWorkers(t *testing.T) {
	m := readTiny(t)
	var first map[string]string
	for _, workers := range []int{1, 2, 5} {
		out := t.TempDir()
		cfg := tinyConfig(out, workers)
		cfg.Copies = 4
		if _, err := Run(context.Background(), m, cfg); err != nil {
			t.Fatal(err)
		}
		h := hashTree(t, out)
		if len(h) != 11 { // 2 originals + 2x4 copies + manifest
			t.Fatalf("workers=%d wrote %d files: %v", workers, len(h), h)
		}
		if first == nil {
			first = h
			continue
		}
		for name, sum := range first {
			if h[name] != sum {
				t.Errorf("workers=%d: %s differs from workers=1", workers, name)
			}
		}
	}
	// A different seed gives different images.
	out := t.TempDir()
	cfg := tinyConfig(out, 2)
	cfg.Copies, cfg.Seed = 4, 43
	if _, err := Run(context.Background(), m, cfg); err != nil {
		t.Fatal(err)
	}
	if h := hashTree(t, out); h["images/face1_aug1.jpg"] == first["images/face1_aug1.jpg"] &&
		h["images/face1_aug2.jpg"] == first["images/face1_aug2.jpg"] {
		t.Error("seed 43 wrote the same copies as seed 42")
	}
}

// TestRunLeavesSourceUntouched hashes the source directory before and after a run, and
// checks that an output directory that would overwrite the source is refused.
func TestRunLeavesSourceUntouched(t *testing.T) {
	src := t.TempDir()
	for name, h := range hashTree(t, tinyDir) {
		_ = h
		data, err := os.ReadFile(filepath.Join(tinyDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	before := hashTree(t, src)
	m, err := dataset.ReadManifest(src)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Run(context.Background(), m, tinyConfig(filepath.Join(src, "aug"), 2)); err != nil {
		t.Fatal(err)
	}
	after := hashTree(t, src)
	for name, sum := range before {
		if after[name] != sum {
			t.Errorf("source file %s changed", name)
		}
	}
	for name := range after {
		if _, ok := before[name]; !ok && !strings.HasPrefix(name, "aug/") {
			t.Errorf("new file %s outside the output directory", name)
		}
	}

	// --out pointing at the source directory would overwrite its manifest.
	if _, err := Run(context.Background(), m, tinyConfig(src, 1)); err == nil || !strings.Contains(err.Error(), "source manifest") {
		t.Errorf("out = source dir: err = %v, want a refusal", err)
	}
	// A source whose images live in out/images/ with the names augment would write.
	clash := t.TempDir()
	if err := os.MkdirAll(filepath.Join(clash, "src", "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	cm := &dataset.Manifest{Path: filepath.Join(clash, "src", "manifest.jsonl"), Dir: filepath.Join(clash, "src"),
		Records: []dataset.Record{{ImageID: "a", Image: "images/a_aug1.jpg"}}}
	if _, err := Run(context.Background(), cm, Config{Params: DefaultParams(), Copies: 1, Quality: 90, OutDir: filepath.Join(clash, "src")}); err == nil {
		t.Error("writing over a source image was not refused")
	}
	if got := hashTree(t, clash); len(got) != 0 {
		t.Errorf("refused run wrote files: %v", got)
	}
}

func TestRunLimitAndNoOriginals(t *testing.T) {
	m := readTiny(t)
	out := t.TempDir()
	cfg := tinyConfig(out, 2)
	cfg.Limit, cfg.IncludeOriginal, cfg.Copies = 1, false, 3
	sum, err := Run(context.Background(), m, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sources != 1 || sum.ImagesWritten != 3 || len(sum.Skipped) != 0 {
		t.Errorf("summary %+v: want 1 source and 3 images", sum)
	}
	var names []string
	for name := range hashTree(t, out) {
		names = append(names, name)
	}
	sort.Strings(names)
	want := []string{"images/face1_aug1.jpg", "images/face1_aug2.jpg", "images/face1_aug3.jpg", "manifest.jsonl"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("wrote %v, want %v", names, want)
	}
}

func TestSafeName(t *testing.T) {
	cases := map[string]string{
		"levle1_10_jpg.rf.abc": "levle1_10_jpg.rf.abc",
		"face2/left":           "face2_left",
		"../../etc/passwd":     "_.._etc_passwd",
		"..":                   "image",
		"痤疮 1":                 "___1",
	}
	for in, want := range cases {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}
