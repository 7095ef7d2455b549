package validate

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/disintegration/imaging"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/imgmatch/imgmatchtest"
)

const fixtureDir = "testdata/fixture"

// fixtureLines is the manifest of the fixture dataset: good records, one record per kind
// of problem and one malformed line.
var fixtureLines = []string{
	`{"image_id":"a","image":"images/a.png","width":64,"height":64,"patient_info":{"age":24,"gender":"female"},"diagnosis":{"severity":{"value":1,"scale":"hayashi"},"lesion_count":2,"lesions":[{"type":"papule","box":{"x0":4,"y0":4,"x1":12,"y1":10}},{"type":"papule","box":{"x0":30,"y0":20,"x1":34,"y1":26}}]},"split":"train","source_id":"s1"}`,
	`{"image_id":"a-flip","image":"images/a-flip.png","width":64,"height":64,"diagnosis":{"severity":{"value":1,"scale":"hayashi"},"lesion_count":2,"lesions":[{"type":"papule","box":{"x0":52,"y0":4,"x1":60,"y1":10}},{"type":"papule","box":{"x0":30,"y0":20,"x1":34,"y1":26}}]},"split":"train","source_id":"s1"}`,
	`{"image_id":"b","image":"images/b.png","width":64,"height":64,"diagnosis":{"severity":{"value":0,"scale":"hayashi"},"lesion_count":1,"lesions":[{"type":"comedone","box":{"x0":10,"y0":10,"x1":14,"y1":14}}]},"split":"train","source_id":"s2"}`,
	`{"image_id":"c","image":"images/c.png","width":64,"height":64,"diagnosis":{"severity":{"value":2,"scale":"hayashi"}},"split":"valid","source_id":"s3"}`,
	`{"image_id":"a-copy","image":"images/a-copy.png","width":64,"height":64,"diagnosis":{"severity":{"value":1,"scale":"hayashi"}},"split":"valid","source_id":"s4"}`,
	`{"image_id":"d","image":"images/d.png","width":64,"height":64,"diagnosis":{"severity":{"value":0,"scale":"hayashi"}},"split":"test","source_id":"s2"}`,
	`{"image_id":"broken", "image":`,
	`{"image_id":"missing","image":"images/missing.png","split":"train","source_id":"s5"}`,
	`{"image_id":"truncated","image":"images/truncated.jpg","split":"train","source_id":"s6"}`,
	`{"image_id":"text","image":"images/text.jpg","split":"train","source_id":"s7"}`,
	`{"image_id":"bomb","image":"images/bomb.png","split":"train","source_id":"s8"}`,
	`{"image_id":"labels","image":"images/e.png","patient_info":{"age":150,"gender":"x"},"diagnosis":{"severity":{"value":7,"scale":"hayashi"},"lesions":[{"type":"wart"}]},"split":"holdout","source_id":"s9"}`,
	`{"image_id":"boxes","image":"images/f.png","width":64,"height":64,"diagnosis":{"lesion_count":2,"lesions":[{"type":"pustule","box":{"x0":60,"y0":10,"x1":70,"y1":20}},{"type":"nodule","box":{"x0":20,"y0":30,"x1":10,"y1":40}}]},"split":"train","source_id":"s10"}`,
	`{"image_id":"count","image":"images/g.png","width":64,"height":64,"diagnosis":{"lesion_count":3,"lesions":[{"type":"papule","box":{"x0":1,"y0":1,"x1":5,"y1":5}}]},"split":"train","source_id":"s11"}`,
	`{"image_id":"size","image":"images/h.png","width":640,"height":480,"split":"train","source_id":"s12"}`,
	`{"image_id":"b","image":"images/i.png","split":"test","source_id":"s13"}`,
	`{"image_id":"p","image":"images/p.jpg","split":"train","source_id":"s14"}`,
	`{"image_id":"p-aug","image":"images/p-aug.jpg","split":"valid","source_id":"s15"}`,
}

// writeFixture regenerates the fixture dataset (run with -update).
func writeFixture(t *testing.T) {
	a := pattern(1, 64, 64)
	p := imgmatchtest.Texture(12, 320, 320)
	jpg := jpegBytes(t, pattern(2, 200, 200))
	files := map[string][]byte{
		"a.png":         pngBytes(t, a),
		"a-flip.png":    pngBytes(t, imaging.FlipH(a)),
		"a-copy.png":    pngBytes(t, a),
		"b.png":         pngBytes(t, pattern(4, 64, 64)),
		"c.png":         pngBytes(t, pattern(5, 64, 64)),
		"d.png":         pngBytes(t, pattern(6, 64, 64)),
		"e.png":         pngBytes(t, pattern(7, 64, 64)),
		"f.png":         pngBytes(t, pattern(8, 64, 64)),
		"g.png":         pngBytes(t, pattern(9, 64, 64)),
		"h.png":         pngBytes(t, pattern(10, 64, 64)),
		"i.png":         pngBytes(t, pattern(11, 64, 64)),
		"truncated.jpg": jpg[:len(jpg)/2],
		"text.jpg":      []byte("this file is a text note, not a photo\n"),
		"bomb.png":      bombPNG(),
		"p.jpg":         jpegBytes(t, p),
		// p mirrored, rotated 8°, cropped by 10%, brightened, with salt and pepper: the
		// augmented check's case.
		"p-aug.jpg": jpegBytes(t, imgmatchtest.Warp(p, true, 8, 0, 0.9, 1.1, 0.001)),
	}
	if err := os.RemoveAll(fixtureDir); err != nil {
		t.Fatal(err)
	}
	for name, data := range files {
		if err := fsutil.WriteFileAtomic(filepath.Join(fixtureDir, "images", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	man := strings.Join(fixtureLines, "\n") + "\n"
	if err := fsutil.WriteFileAtomic(filepath.Join(fixtureDir, dataset.ManifestName), []byte(man), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestFixtureGolden validates the fixture dataset and compares the text and JSON reports
// with the golden files.
func TestFixtureGolden(t *testing.T) {
	if *update {
		writeFixture(t)
	}
	rep, err := Run(context.Background(), fixtureDir, Options{PHashThreshold: DefaultPHashThreshold, Workers: 2})
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := WriteText(&text, rep, TextOptions{}); err != nil {
		t.Fatal(err)
	}
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	js = append(js, '\n')
	for _, g := range []struct {
		file string
		got  []byte
	}{{"fixture.golden.txt", text.Bytes()}, {"fixture.golden.json", js}} {
		path := filepath.Join("testdata", g.file)
		if *update {
			if err := fsutil.WriteFileAtomic(path, g.got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run go test -run TestFixtureGolden -update)", err)
		}
		if !bytes.Equal(g.got, want) {
			t.Errorf("%s differs from the golden file; got:\n%s", g.file, g.got)
		}
	}
	// Every kind of problem planted in the fixture is found.
	for _, c := range Checks {
		found := false
		for _, f := range rep.Findings {
			found = found || f.Check == c
		}
		if !found {
			t.Errorf("fixture yields no %s finding", c)
		}
	}
	if rep.Records != len(fixtureLines)-1 || rep.Lines != len(fixtureLines) {
		t.Errorf("records %d, lines %d; want %d, %d", rep.Records, rep.Lines, len(fixtureLines)-1, len(fixtureLines))
	}
}
