package validate

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/disintegration/imaging"

	"github.com/acdtcm/acdtcm/internal/dataset"
)

var update = flag.Bool("update", false, "rewrite the fixture dataset and golden files under testdata/")

// pattern is a smooth w×h test picture; different seeds give perceptually different images.
func pattern(seed, w, h int) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, w, h))
	fx, fy := 1+float64(seed%3), 1+float64(seed/3%3)
	phase := float64(seed) * 1.7
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			u, v := float64(x)/float64(w), float64(y)/float64(h)
			a := math.Sin(2*math.Pi*(fx*u+0.3*v)+phase) + math.Cos(2*math.Pi*(fy*v-0.2*u)+2*phase) + 1.5*u*v
			g := uint8(127 + 50*a)
			m.SetNRGBA(x, y, color.NRGBA{g, uint8(255 - int(g)/2), uint8(seed * 37), 255})
		}
	}
	return m
}

func pngBytes(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func jpegBytes(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// bombPNG is a valid PNG signature and IHDR claiming 100000×100000 pixels, nothing more.
func bombPNG() []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], 100000)
	binary.BigEndian.PutUint32(ihdr[4:], 100000)
	ihdr[8], ihdr[9] = 8, 2
	chunk := append([]byte("IHDR"), ihdr...)
	binary.Write(&b, binary.BigEndian, uint32(13))
	b.Write(chunk)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(chunk))
	return b.Bytes()
}

// writeDataset writes files and a manifest of the given lines into a temporary directory.
func writeDataset(t *testing.T, files map[string][]byte, lines []string) string {
	t.Helper()
	dir := t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	man := strings.Join(lines, "\n") + "\n"
	if err := os.WriteFile(filepath.Join(dir, dataset.ManifestName), []byte(man), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// goodLine is a valid record for good.png (64×64, seed 1).
const goodLine = `{"image_id":"good","image":"good.png","width":64,"height":64,"diagnosis":{"severity":{"value":1,"scale":"hayashi"},"lesion_count":1,"lesions":[{"type":"papule","box":{"x0":1,"y0":2,"x1":10,"y1":12}}]},"split":"train","source_id":"g"}`

func TestCheckers(t *testing.T) {
	good := pngBytes(t, pattern(1, 64, 64))
	other := pngBytes(t, pattern(5, 64, 64))
	jpg := jpegBytes(t, pattern(2, 200, 200))
	type want struct {
		check, sev, msg string
		line            int
	}
	tests := []struct {
		name  string
		files map[string][]byte
		line  string // line 2 of the manifest; line 1 is goodLine
		want  []want
		okImg int // images that must still decode within limits
	}{
		{"malformed json", nil, `{"image_id":"x","image":`, []want{{CheckManifest, "error", "malformed line", 2}}, 1},
		{"unknown field", nil, `{"image_id":"x","image":"good.png","colour":"red"}`, []want{{CheckManifest, "error", "unknown field", 2}}, 1},
		{"missing image", nil, `{"image_id":"m","image":"missing.png","split":"train"}`, []want{{CheckImage, "error", "image file not found: " + "MISSING", 2}}, 1},
		{"truncated jpeg", map[string][]byte{"t.jpg": jpg[:len(jpg)/2]}, `{"image_id":"t","image":"t.jpg","split":"train"}`, []want{{CheckImage, "error", "t.jpg: decode jpeg: truncated", 2}}, 1},
		{"not an image", map[string][]byte{"n.jpg": []byte("hello, world\n")}, `{"image_id":"n","image":"n.jpg","split":"train"}`, []want{{CheckImage, "error", "n.jpg: unknown image format", 2}}, 1},
		{"corrupt png", map[string][]byte{"c.png": append(append([]byte{}, good[:40]...), bytes.Repeat([]byte{0xAB}, 200)...)}, `{"image_id":"c","image":"c.png","split":"train"}`, []want{{CheckImage, "error", "c.png", 2}}, 1},
		{"decompression bomb", map[string][]byte{"b.png": bombPNG()}, `{"image_id":"b","image":"b.png","split":"train"}`, []want{{CheckImage, "error", "b.png: image too large: 100000x100000", 2}}, 1},
		{"bad severity", map[string][]byte{"o.png": other}, `{"image_id":"o","image":"o.png","diagnosis":{"severity":{"value":4,"scale":"hayashi"}},"split":"train"}`, []want{{CheckLabel, "error", "hayashi grade 4 out of range", 2}}, 2},
		{"unknown scale", map[string][]byte{"o.png": other}, `{"image_id":"o","image":"o.png","diagnosis":{"severity":{"value":1,"scale":"ige"}},"split":"train"}`, []want{{CheckLabel, "error", `unknown severity scale "ige"`, 2}}, 2},
		{"unknown lesion type", map[string][]byte{"o.png": other}, `{"image_id":"o","image":"o.png","diagnosis":{"lesions":[{"type":"wart"}]},"split":"train"}`, []want{{CheckLabel, "error", `unknown lesion type "wart"`, 2}}, 2},
		{"age and gender", map[string][]byte{"o.png": other}, `{"image_id":"o","image":"o.png","patient_info":{"age":130,"gender":"F"},"split":"train"}`, []want{{CheckLabel, "error", "age 130 outside 0..120", 2}, {CheckLabel, "error", `gender "F"`, 2}}, 2},
		{"unknown split", map[string][]byte{"o.png": other}, `{"image_id":"o","image":"o.png","split":"holdout"}`, []want{{CheckLabel, "error", `unknown split "holdout"`, 2}}, 2},
		{"no split", map[string][]byte{"o.png": other}, `{"image_id":"o","image":"o.png"}`, []want{{CheckLabel, "info", "no split", 2}}, 2},
		{"size mismatch", map[string][]byte{"o.png": other}, `{"image_id":"o","image":"o.png","width":64,"height":48,"split":"train"}`, []want{{CheckSize, "error", "recorded size 64x48 but the image is 64x64", 2}}, 2},
		{"box out of bounds", map[string][]byte{"o.png": other}, `{"image_id":"o","image":"o.png","diagnosis":{"lesions":[{"type":"papule","box":{"x0":50,"y0":10,"x1":70,"y1":20}}]},"split":"train"}`, []want{{CheckBox, "error", "lesion 1: box (50,10)-(70,20) outside the 64x64 image", 2}}, 2},
		{"box overhang of one pixel", map[string][]byte{"o.png": other}, `{"image_id":"o","image":"o.png","diagnosis":{"lesions":[{"type":"papule","box":{"x0":50,"y0":10,"x1":65,"y1":20}}]},"split":"train"}`, []want{{CheckBox, "warning", "overhangs the 64x64 image by 1px", 2}}, 2},
		{"inverted box", map[string][]byte{"o.png": other}, `{"image_id":"o","image":"o.png","diagnosis":{"lesions":[{"type":"pustule"},{"type":"papule","box":{"x0":30,"y0":10,"x1":20,"y1":20}}]},"split":"train"}`, []want{{CheckBox, "error", "lesion 2: empty or inverted box", 2}}, 2},
		{"lesion count too small", map[string][]byte{"o.png": other}, `{"image_id":"o","image":"o.png","diagnosis":{"lesion_count":1,"lesions":[{"type":"papule"},{"type":"nodule"}]},"split":"train"}`, []want{{CheckLesionCount, "error", "lesion_count 1 but 2 lesions are listed", 2}}, 2},
		{"lesion count too large", map[string][]byte{"o.png": other}, `{"image_id":"o","image":"o.png","diagnosis":{"lesion_count":5,"lesions":[{"type":"papule"}]},"split":"train"}`, []want{{CheckLesionCount, "warning", "lesion_count 5 but only 1 lesions are listed", 2}}, 2},
		{"duplicate image id", map[string][]byte{"o.png": other}, `{"image_id":"good","image":"o.png","split":"train"}`, []want{{CheckSchema, "error", `duplicate image_id "good" (first on line 1)`, 2}}, 2},
		{"image listed twice", nil, `{"image_id":"again","image":"good.png","split":"train","source_id":"g"}`, []want{{CheckSchema, "warning", "good.png is listed again (first on line 1)", 2}, {CheckDuplicate, "warning", "byte-identical to good.png (line 2, train)", 1}}, 2},
		{"cross-split exact duplicate", map[string][]byte{"copy.png": good}, `{"image_id":"copy","image":"copy.png","split":"valid","source_id":"c"}`, []want{{CheckDuplicate, "error", "leakage across splits train, valid: byte-identical to copy.png (line 2, valid)", 1}}, 2},
		{"cross-split mirrored near duplicate", map[string][]byte{"mirror.png": pngBytes(t, imaging.FlipH(pattern(1, 64, 64)))}, `{"image_id":"mirror","image":"mirror.png","split":"test","source_id":"x"}`, []want{{CheckNearDuplicate, "warning", "leakage across splits test, train: near-duplicate", 1}, {CheckNearDuplicate, "warning", "their severity grades differ: (none), hayashi:1", 1}}, 2},
		{"source leak", map[string][]byte{"o.png": other}, `{"image_id":"o","image":"o.png","split":"val","source_id":"g"}`, []want{{CheckSourceLeak, "error", `source_id "g" appears in several splits: train=1, valid=1`, 1}}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string][]byte{"good.png": good}
			for k, v := range tt.files {
				files[k] = v
			}
			dir := writeDataset(t, files, []string{goodLine, tt.line})
			rep, err := Run(context.Background(), dir, Options{PHashThreshold: DefaultPHashThreshold, Workers: 2})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if rep.ImagesOK != tt.okImg {
				t.Errorf("ImagesOK = %d, want %d (the run must go on past the bad record)", rep.ImagesOK, tt.okImg)
			}
			manifest := filepath.Join(dir, dataset.ManifestName)
			for _, w := range tt.want {
				msg := strings.ReplaceAll(w.msg, "MISSING", filepath.Join(dir, "missing.png"))
				found := false
				for _, f := range rep.Findings {
					if f.Check == w.check && string(f.Severity) == w.sev && f.Line == w.line && strings.Contains(f.Message, msg) {
						found = true
						if f.File != manifest {
							t.Errorf("finding names file %q, want %q", f.File, manifest)
						}
						if w.check != CheckManifest && f.Image == "" {
							t.Errorf("finding %+v does not name the image", f)
						}
					}
				}
				if !found {
					t.Errorf("no %s %s finding on line %d containing %q; got:\n%s", w.sev, w.check, w.line, msg, dump(rep.Findings))
				}
			}
			// The good record itself yields no error or warning.
			for _, f := range rep.Findings {
				if f.Line == 1 && f.Check != CheckDuplicate && f.Check != CheckNearDuplicate && f.Check != CheckSourceLeak {
					t.Errorf("good record got a finding: %+v", f)
				}
			}
		})
	}
}

func dump(fs []Finding) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("  " + string(f.Severity) + " " + f.Check + " line " + itoa(f.Line) + ": " + f.Message + "\n")
	}
	return b.String()
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestCleanDataset checks that a valid dataset yields no errors or warnings.
func TestCleanDataset(t *testing.T) {
	files := map[string][]byte{"good.png": pngBytes(t, pattern(1, 64, 64)), "b.png": pngBytes(t, pattern(4, 64, 64))}
	dir := writeDataset(t, files, []string{goodLine,
		`{"image_id":"b","image":"b.png","width":64,"height":64,"patient_info":{"age":19,"gender":"female"},"diagnosis":{"severity":{"value":0,"scale":"clinical4"},"lesion_count":0},"split":"valid","source_id":"b"}`})
	rep, err := Run(context.Background(), dir, Options{PHashThreshold: DefaultPHashThreshold})
	if err != nil {
		t.Fatal(err)
	}
	if rep.HasErrors(true) || len(rep.Findings) != 0 {
		t.Errorf("clean dataset has findings:\n%s", dump(rep.Findings))
	}
	if rep.ImagesChecked != 2 || rep.ImagesOK != 2 || rep.Records != 2 {
		t.Errorf("checked %d, ok %d, records %d; want 2, 2, 2", rep.ImagesChecked, rep.ImagesOK, rep.Records)
	}
}

func TestManifestUnreadable(t *testing.T) {
	for _, p := range []string{filepath.Join(t.TempDir(), "nope.jsonl"), t.TempDir()} {
		_, err := Run(context.Background(), p, Options{})
		if !errors.Is(err, ErrManifest) {
			t.Errorf("Run(%s) error %v, want ErrManifest", p, err)
		}
	}
}

// TestNeverWrites checks that validation leaves the dataset directory byte-for-byte intact.
func TestNeverWrites(t *testing.T) {
	dir := writeDataset(t, map[string][]byte{"good.png": pngBytes(t, pattern(1, 64, 64))}, []string{goodLine, "not json"})
	before := snapshot(t, dir)
	if _, err := Run(context.Background(), dir, Options{}); err != nil {
		t.Fatal(err)
	}
	if after := snapshot(t, dir); after != before {
		t.Errorf("dataset changed:\nbefore %s\nafter  %s", before, after)
	}
}

func snapshot(t *testing.T, dir string) string {
	var b strings.Builder
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(p)
		b.WriteString(p + " " + info.ModTime().String() + " " + itoa(len(data)) + string(data) + "\n")
		return nil
	})
	return b.String()
}

func TestProgressAndCancel(t *testing.T) {
	files := map[string][]byte{}
	var lines []string
	for i := 0; i < 6; i++ {
		name := "p" + itoa(i) + ".png"
		files[name] = pngBytes(t, pattern(10+i, 32, 32))
		lines = append(lines, `{"image_id":"`+name+`","image":"`+name+`","split":"train"}`)
	}
	dir := writeDataset(t, files, lines)
	var calls, last int
	_, err := Run(context.Background(), dir, Options{Workers: 3, Progress: func(done, total int) {
		calls++
		if total != 6 || done != last+1 {
			t.Errorf("progress(%d, %d) after %d", done, total, last)
		}
		last = done
	}})
	if err != nil || calls != 6 {
		t.Fatalf("Run: err %v, %d progress calls, want 6", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, dir, Options{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Run error %v", err)
	}
}

func TestPerceptualHashesMirror(t *testing.T) {
	img := pattern(3, 80, 60)
	h, m, err := PerceptualHashes(img)
	if err != nil {
		t.Fatal(err)
	}
	fh, fm, err := PerceptualHashes(imaging.FlipH(img))
	if err != nil {
		t.Fatal(err)
	}
	if h != fm || m != fh {
		t.Errorf("mirror hashes do not swap: %x/%x vs %x/%x", h, m, fh, fm)
	}
	oh, _, _ := PerceptualHashes(pattern(7, 80, 60))
	a, b := &entry{hash: h, mirror: m}, &entry{hash: fh, mirror: fm}
	if d := hashDistance(a, b); d != 0 {
		t.Errorf("distance to own mirror %d, want 0", d)
	}
	if d := hashDistance(a, &entry{hash: oh}); d <= DefaultPHashThreshold {
		t.Errorf("different patterns at distance %d <= threshold", d)
	}
}

func TestNearGroupsAndSourceRecovery(t *testing.T) {
	mk := func(src string, hash uint64) *entry {
		return &entry{rec: dataset.Record{SourceID: src}, hash: hash, mirror: hash}
	}
	es := []*entry{
		mk("s1", 0x0),                // 0
		mk("s1", 0x3),                // 1: 2 bits from 0
		mk("s1", 0xFFFFFFFF00000000), // 2: far, but its mirror (set below) is 1 bit from 0
		mk("s2", 0x00FF00FF00FF00FF), // 3
		mk("s2", 0x00FF00FF00FF00FE), // 4: 1 bit from 3
		mk("s3", 0xFFFFFFFFFFFFFFFF), // 5: alone
		mk("s3", 0xAAAAAAAAAAAAAAAA), // 6: alone
		mk("s4", 0x7),                // 7: 1 bit from 1 → joins s1's group
		mk("s5", 0x5555555555555555), // 8
		mk("s5", 0x5555555555555554), // 9: 1 bit from 8
		mk("s5", 0x3333333333333333), // 10: alone
	}
	es[2].mirror = 0x1
	groups, maxD := nearGroups(es, 2)
	want := [][]int{{0, 1, 2, 7}, {3, 4}, {8, 9}}
	if len(groups) != len(want) {
		t.Fatalf("%d groups, want %d", len(groups), len(want))
	}
	for gi, g := range groups {
		var idx []int
		for _, e := range g {
			idx = append(idx, slices.Index(es, e))
		}
		if !slices.Equal(idx, want[gi]) {
			t.Errorf("group %d = %v, want %v", gi, idx, want[gi])
		}
	}
	if !slices.Equal(maxD, []int{2, 1, 1}) {
		t.Errorf("max distances %v, want [2 1 1]", maxD)
	}
	got := sourceRecovery(es, groups)
	if want := (SourceRecovery{Sources: 4, Full: 2, Partial: 1, MixedGroups: 1}); got != want {
		t.Errorf("source recovery %+v, want %+v", got, want)
	}
}

// TestTypeGradeWarning: one dataset-wide warning when the lesion types only mirror the grade
// (ACNE04's export), none when they vary within a grade.
func TestTypeGradeWarning(t *testing.T) {
	other := pngBytes(t, pattern(5, 64, 64))
	line := func(id string, grade int, types ...string) string {
		var ls []string
		for _, ty := range types {
			ls = append(ls, `{"type":"`+ty+`","box":{"x0":1,"y0":2,"x1":10,"y1":12}}`)
		}
		return `{"image_id":"` + id + `","image":"` + id + `.png","width":64,"height":64,"diagnosis":{"severity":{"value":` + itoa(grade) +
			`,"scale":"hayashi"},"lesions":[` + strings.Join(ls, ",") + `]},"split":"train","source_id":"` + id + `"}`
	}
	tests := []struct {
		name  string
		lines []string
		warn  bool
	}{
		{"types mirror the grade", []string{goodLine, line("o", 3, "nodule", "nodule")}, true},
		{"types vary within a grade", []string{goodLine, line("o", 1, "comedone", "papule")}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := writeDataset(t, map[string][]byte{"good.png": pngBytes(t, pattern(1, 64, 64)), "o.png": other}, tt.lines)
			rep, err := Run(context.Background(), dir, Options{PHashThreshold: DefaultPHashThreshold, Workers: 2})
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			var got []Finding
			for _, f := range rep.Findings {
				if f.Check == CheckTypeGrade {
					got = append(got, f)
				}
			}
			if !tt.warn {
				if len(got) > 0 {
					t.Fatalf("unexpected %s findings:\n%s", CheckTypeGrade, dump(got))
				}
				return
			}
			if len(got) != 1 || got[0].Severity != SevWarning || got[0].Line != 0 ||
				!strings.Contains(got[0].Message, "nodule in hayashi 3, papule in hayashi 1): the type labels mirror the grade") {
				t.Fatalf("want one dataset-wide %s warning naming the mapping; got:\n%s", CheckTypeGrade, dump(rep.Findings))
			}
		})
	}
}
