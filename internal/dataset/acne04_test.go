package dataset

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/severity"
)

func TestParseACNE04Name(t *testing.T) {
	tests := []struct {
		name   string
		grade  int
		source string
		ok     bool
	}{
		{"levle0_0_jpg.rf.2809c8a0d7e1779910e9975cd0f98b71.jpg", 0, "0_0", true},
		{"levle3_1204_jpg.rf.abc.jpg", 3, "3_1204", true},
		{"/x/y/levle2_17.jpg", 2, "2_17", true},
		{"levle2_17_jpg.xml", 2, "2_17", true},
		{"levle4_1_jpg.rf.abc.jpg", 0, "", false},
		{"level2_17.jpg", 0, "", false},
		{"levle2_x.jpg", 0, "", false},
		{"photo.jpg", 0, "", false},
	}
	for _, tc := range tests {
		g, s, ok := ParseACNE04Name(tc.name)
		if ok != tc.ok || g != tc.grade || s != tc.source {
			t.Errorf("ParseACNE04Name(%q) = %d, %q, %v; want %d, %q, %v", tc.name, g, s, ok, tc.grade, tc.source, tc.ok)
		}
	}
}

func TestImportACNE04Fixture(t *testing.T) {
	src := filepath.Join("testdata", "acne04")
	before := treeDigest(t, src)
	out := t.TempDir()
	res, err := Import(ImportOptions{Format: FormatACNE04VOC, Src: src, OutDir: out})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	if after := treeDigest(t, src); after != before {
		t.Fatal("import modified its source folder")
	}
	// Every bad input is reported once, naming its file, with a clear reason.
	wantSkips := map[string]struct{ kind, reason string }{
		"levle2_9_jpg.rf.ddd444.jpg": {SkipMissingAnnotation, "no VOC XML levle2_9_jpg.rf.ddd444.xml beside the image"},
		"levle3_1_jpg.rf.eee555.xml": {SkipBadAnnotation, "malformed VOC XML"},
		"levle1_2_jpg.rf.fff666.xml": {SkipUnknownLesion, `unknown lesion name(s) ["scar"]`},
		"photo.jpg":                  {SkipBadName, "file name does not follow levle<G>_<ID>"},
		"levle0_3_jpg.rf.ggg777.xml": {SkipOrphanAnnotation, "VOC XML without an image"},
	}
	if len(res.Skipped) != len(wantSkips) {
		t.Errorf("skipped %d inputs, want %d: %v", len(res.Skipped), len(wantSkips), res.Skipped)
	}
	for file, w := range wantSkips {
		s := skipFor(res.Skipped, file)
		if len(s) != 1 || !strings.Contains(s[0].Reason, w.reason) || s[0].Kind != w.kind {
			t.Errorf("skip for %s = %+v, want kind %q and a reason containing %q", file, s, w.kind, w.reason)
		}
	}
	wantRecs := []struct {
		id, split, source string
		grade, count      int
		w, h              int
		types             map[string]int
	}{
		{"levle0_7_jpg.rf.ccc333", "train", "0_7", 0, 0, 640, 480, map[string]int{}},
		{"levle1_5_jpg.rf.aaa111", "train", "1_5", 1, 5, 640, 640, map[string]int{LesionComedone: 1, LesionPapule: 2, LesionPustule: 1, LesionNodule: 1}},
		{"levle1_5_jpg.rf.bbb222", "train", "1_5", 1, 2, 640, 640, map[string]int{LesionPapule: 1, LesionPustule: 1}},
		{"levle0_4_jpg.rf.hhh888", "valid", "0_4", 0, 1, 320, 240, map[string]int{LesionPustule: 1}},
	}
	if len(res.Records) != len(wantRecs) {
		t.Fatalf("%d records, want %d", len(res.Records), len(wantRecs))
	}
	for i, w := range wantRecs {
		r := res.Records[i]
		if r.ImageID != w.id || r.Split != w.split || r.SourceID != w.source || r.Width != w.w || r.Height != w.h {
			t.Errorf("record %d = %s/%s/%s %dx%d, want %s/%s/%s %dx%d", i, r.ImageID, r.Split, r.SourceID, r.Width, r.Height, w.id, w.split, w.source, w.w, w.h)
		}
		if g := r.Diagnosis.Severity; g == nil || *g != (severity.Grade{Value: w.grade, Scale: severity.Hayashi}) {
			t.Errorf("%s: grade %+v, want hayashi %d", w.id, g, w.grade)
		}
		if c := r.Diagnosis.LesionCount; c == nil || *c != w.count || len(r.Diagnosis.Lesions) != w.count {
			t.Errorf("%s: lesion_count %v with %d lesions, want %d", w.id, c, len(r.Diagnosis.Lesions), w.count)
		}
		byType, _, _ := LesionCounts(&r)
		for _, lt := range LesionTypes {
			if byType[lt] != w.types[lt] {
				t.Errorf("%s: %d %s, want %d", w.id, byType[lt], lt, w.types[lt])
			}
		}
	}
	if b := res.Records[3].Diagnosis.Lesions[0].Box; *b != (Box{X0: 3.5, Y0: 4, X1: 9.25, Y1: 8}) {
		t.Errorf("valid box = %+v", *b)
	}
	// The written manifest reads back identically and its image paths resolve.
	m, err := ReadManifest(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Records) != len(res.Records) {
		t.Fatalf("manifest has %d records, want %d", len(m.Records), len(res.Records))
	}
	for i := range m.Records {
		r := &m.Records[i]
		if filepath.IsAbs(r.Image) {
			t.Errorf("%s: image path %q should be relative", r.ImageID, r.Image)
		}
		if _, err := os.Stat(m.ImagePath(r)); err != nil {
			t.Errorf("%s: image does not resolve: %v", r.ImageID, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, ReportName)); err != nil {
		t.Errorf("no import report: %v", err)
	}
}

func TestImportSingleFolderAndCopy(t *testing.T) {
	src := filepath.Join("testdata", "acne04", "valid")
	out := t.TempDir()
	res, err := Import(ImportOptions{Format: FormatACNE04VOC, Src: src, OutDir: out, Copy: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 1 || res.Copied != 1 {
		t.Fatalf("%d records, %d copied; want 1, 1", len(res.Records), res.Copied)
	}
	r := res.Records[0]
	if r.Split != "valid" {
		t.Errorf("split = %q, want valid (the folder name)", r.Split)
	}
	if r.Image != "images/levle0_4_jpg.rf.hhh888.jpg" {
		t.Errorf("image = %q, want the copy under images/", r.Image)
	}
	want, _ := os.ReadFile(filepath.Join(src, "levle0_4_jpg.rf.hhh888.jpg"))
	got, err := os.ReadFile(filepath.Join(out, filepath.FromSlash(r.Image)))
	if err != nil || string(got) != string(want) {
		t.Errorf("copied image differs from the source (err %v)", err)
	}
	left, _ := filepath.Glob(filepath.Join(out, "images", ".*tmp*"))
	if len(left) > 0 {
		t.Errorf("temporary files left behind: %v", left)
	}
}

func TestImportErrors(t *testing.T) {
	tmp := t.TempDir()
	empty := filepath.Join(tmp, "empty")
	if err := os.MkdirAll(filepath.Join(empty, "train"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    ImportOptions
		wantErr string
		nothing bool
	}{
		{"unknown format", ImportOptions{Format: "coco", Src: "testdata/acne04", OutDir: tmp}, "unknown import format", false},
		{"missing source", ImportOptions{Format: FormatACNE04VOC, Src: filepath.Join(tmp, "nope"), OutDir: tmp}, "no such file", false},
		{"out inside source", ImportOptions{Format: FormatACNE04VOC, Src: "testdata/acne04", OutDir: "testdata/acne04/out"}, "inside the source", false},
		{"nothing importable", ImportOptions{Format: FormatACNE04VOC, Src: empty, OutDir: filepath.Join(tmp, "o")}, "nothing could be imported", true},
		{"bad scale", ImportOptions{Format: FormatImageFolder, Src: "testdata/imagefolder", OutDir: tmp, Scale: "gags"}, "unknown severity scale", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Import(tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error = %v, want %q", err, tc.wantErr)
			}
			if errors.Is(err, ErrNothingImported) != tc.nothing {
				t.Errorf("errors.Is(ErrNothingImported) = %v, want %v", !tc.nothing, tc.nothing)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(tmp, "o", ManifestName)); err == nil {
		t.Error("a manifest was written although nothing was imported")
	}
}

// TestImportSharedACNE04 imports the real ACNE04 export and checks the counts of its README.
func TestImportSharedACNE04(t *testing.T) {
	src := sharedDir(t, filepath.Join("datasets", "acne04-detection"))
	res, err := Import(ImportOptions{Format: FormatACNE04VOC, Src: src, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Skipped) != 0 {
		t.Errorf("skipped %d inputs, e.g. %v", len(res.Skipped), res.Skipped[0])
	}
	type key struct {
		split string
		grade int
	}
	sources := map[key]map[string]bool{}
	files := map[string]int{}
	for _, r := range res.Records {
		k := key{r.Split, r.Diagnosis.Severity.Value}
		if sources[k] == nil {
			sources[k] = map[string]bool{}
		}
		sources[k][r.SourceID] = true
		files[r.Split]++
		if r.Width != 640 || r.Height != 640 {
			t.Fatalf("%s: size %dx%d, README says every image is 640x640", r.ImageID, r.Width, r.Height)
		}
	}
	// README "Counts (unique source photos)".
	want := map[string][4]int{"train": {328, 433, 128, 102}, "valid": {106, 118, 37, 22}}
	for split, perGrade := range want {
		total := 0
		for g, n := range perGrade {
			if got := len(sources[key{split, g}]); got != n {
				t.Errorf("%s grade %d: %d sources, README says %d", split, g, got, n)
			}
			total += len(sources[key{split, g}])
		}
		t.Logf("%s: %d files, %d sources", split, files[split], total)
	}
	if files["train"] != 2973 || files["valid"] != 283 || len(res.Records) != 3256 {
		t.Errorf("files train %d valid %d total %d, README says 2973, 283, 3256", files["train"], files["valid"], len(res.Records))
	}
	st := ComputeStats(res.Records)
	for _, s := range st.Sources {
		if (s.Split == "train" && (s.Sources != 991 || s.MaxPerSource != 3)) || (s.Split == "valid" && (s.Sources != 283 || s.MaxPerSource != 1)) {
			t.Errorf("%s: %d sources, max %d per source", s.Split, s.Sources, s.MaxPerSource)
		}
	}
}

func BenchmarkImportSharedACNE04(b *testing.B) {
	src := sharedDir(b, filepath.Join("datasets", "acne04-detection"))
	out := b.TempDir()
	for b.Loop() {
		if _, err := Import(ImportOptions{Format: FormatACNE04VOC, Src: src, OutDir: out}); err != nil {
			b.Fatal(err)
		}
	}
}

func TestImportWarnsZeroAreaBox(t *testing.T) {
	src := filepath.Join(t.TempDir(), "train")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	jpg, err := os.ReadFile(filepath.Join("testdata", "acne04", "valid", "levle0_4_jpg.rf.hhh888.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	xml := `<annotation><size><width>640</width><height>640</height></size>
<object><name>papules</name><bndbox><xmin>488</xmin><xmax>525</xmax><ymin>1</ymin><ymax>1</ymax></bndbox></object>
<object><name>pustules</name><bndbox><xmin>1</xmin><xmax>5</xmax><ymin>1</ymin><ymax>9</ymax></bndbox></object></annotation>`
	if err := os.WriteFile(filepath.Join(src, "levle1_3_jpg.rf.z.jpg"), jpg, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "levle1_3_jpg.rf.z.xml"), []byte(xml), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := Import(ImportOptions{Format: FormatACNE04VOC, Src: src, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 1 || *res.Records[0].Diagnosis.LesionCount != 2 {
		t.Fatalf("records %+v: the degenerate box must still count", res.Records)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0].Reason, "object 1 (papules): zero-area box (488,1)-(525,1) kept") ||
		!strings.HasSuffix(res.Warnings[0].File, "levle1_3_jpg.rf.z.xml") {
		t.Errorf("warnings %+v", res.Warnings)
	}
}
