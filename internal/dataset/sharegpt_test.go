package dataset

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/severity"
)

func TestParseAnswer(t *testing.T) {
	g := func(v int, s severity.Scale) *severity.Grade { return &severity.Grade{Value: v, Scale: s} }
	tests := []struct {
		text    string
		def     severity.Scale
		grade   *severity.Grade
		count   *int
		byType  map[string]int
		tcm     *TCMSyndrome
		wantErr bool
	}{
		{"Severity: grade 2 (severe, 重度) on the hayashi scale.\nLesions: 30 in total (comedone 5, papule 10, pustule 12, nodule 3).\nTCM syndrome: 湿热蕴结.\nTCM constitution: 湿热质.",
			severity.Hayashi, g(2, severity.Hayashi), intp(30), map[string]int{"comedone": 5, "papule": 10, "pustule": 12, "nodule": 3}, &TCMSyndrome{Pattern: "湿热蕴结", Constitution: "湿热质"}, false},
		{"Severity: grade III (grade III (pustules), 中度(Ⅲ级)) on the cn2019 scale.", severity.Hayashi, g(2, severity.CN2019), nil, nil, nil, false},
		{"Severity: grade 0 (normal, 正常) on the clinical4 scale.\nLesions: 0 in total.", severity.Hayashi, g(0, severity.Clinical4), intp(0), nil, nil, false},
		{"grade: 3", severity.Hayashi, g(3, severity.Hayashi), nil, nil, nil, false},
		{"I'd say Grade 1 overall.", severity.Hayashi, g(1, severity.Hayashi), nil, nil, nil, false},
		{"severity 2", severity.Clinical4, g(2, severity.Clinical4), nil, nil, nil, false},
		{"Severity: moderate", severity.Hayashi, g(1, severity.Hayashi), nil, nil, nil, false},
		{"Grade IV", severity.CN2019, g(3, severity.CN2019), nil, nil, nil, false},
		{"grade 7, no wait, grade 2", severity.Hayashi, g(2, severity.Hayashi), nil, nil, nil, false},
		{"该患者痤疮为中度，证型：肺经风热。", severity.Hayashi, g(1, severity.Hayashi), nil, nil, &TCMSyndrome{Pattern: "肺经风热"}, false},
		{"极重度痤疮", severity.Hayashi, g(3, severity.Hayashi), nil, nil, nil, false},
		{"重度痤疮，体质：湿热质", severity.Hayashi, g(2, severity.Hayashi), nil, nil, &TCMSyndrome{Constitution: "湿热质"}, false},
		{"轻度", severity.Clinical4, g(1, severity.Clinical4), nil, nil, nil, false},
		{"The skin looks fine.", severity.Hayashi, nil, nil, nil, nil, true},
		{"", severity.Hayashi, nil, nil, nil, nil, true},
	}
	for _, tc := range tests {
		a, err := ParseAnswer(tc.text, tc.def)
		if tc.wantErr {
			if err == nil {
				t.Errorf("ParseAnswer(%q) = %+v, want an error", tc.text, a)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseAnswer(%q): %v", tc.text, err)
			continue
		}
		if !reflect.DeepEqual(a.Grade, tc.grade) || !reflect.DeepEqual(a.LesionCount, tc.count) || !reflect.DeepEqual(a.ByType, tc.byType) || !reflect.DeepEqual(a.TCM, tc.tcm) {
			t.Errorf("ParseAnswer(%q) = grade %v count %v types %v tcm %v; want %v %v %v %v", tc.text, a.Grade, a.LesionCount, a.ByType, a.TCM, tc.grade, tc.count, tc.byType, tc.tcm)
		}
	}
}

func TestParseShareGPT(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		samples  int
		errs     int
		fatalErr bool
	}{
		{"array", `[{"messages":[{"role":"user","content":"<image>q"},{"role":"assistant","content":"grade 1"}],"images":["a.jpg"]}]`, 1, 0, false},
		{"array with a bad sample", `[{"messages":[{"role":"robot","content":"x"}]}, {"conversations":[{"from":"human","value":"<image>q"},{"from":"gpt","value":"grade 1"}],"images":["a.jpg"],"system":"s"}]`, 1, 1, false},
		{"jsonl", "{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}]}\n\n{\"messages\":[]}\nnot json\n", 1, 2, false},
		{"content not a string", `[{"messages":[{"role":"user","content":[{"type":"image"}]}]}]`, 0, 1, false},
		{"broken array", `[{"messages":`, 0, 0, true},
		{"empty", "  \n", 0, 0, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			samples, errs, err := ParseShareGPT([]byte(tc.data))
			if (err != nil) != tc.fatalErr || len(samples) != tc.samples || len(errs) != tc.errs {
				t.Fatalf("got %d samples, errors %v, fatal %v; want %d, %d, %v", len(samples), errs, err, tc.samples, tc.errs, tc.fatalErr)
			}
			for _, e := range errs {
				var se *SampleError
				if !errors.As(e, &se) || se.Index < 1 {
					t.Errorf("error %v is not a positioned *SampleError", e)
				}
			}
		})
	}
	samples, _, err := ParseShareGPT([]byte(`[{"system":"sys","conversations":[{"from":"human","value":"<image>q"},{"from":"gpt","value":"a"}],"images":["x.png"]}]`))
	if err != nil {
		t.Fatal(err)
	}
	want := ShareGPTSample{Messages: []ShareGPTMessage{{"system", "sys"}, {"user", "<image>q"}, {"assistant", "a"}}, Images: []string{"x.png"}, Index: 1}
	if !reflect.DeepEqual(samples[0], want) {
		t.Errorf("conversations form = %+v, want %+v", samples[0], want)
	}
}

func TestImportShareGPT(t *testing.T) {
	src := filepath.Join("testdata", "sharegpt", "data.jsonl")
	res, err := Import(ImportOptions{Format: FormatShareGPT, Src: src, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	got := byID(res.Records)
	if len(res.Records) != 3 {
		t.Fatalf("records %+v, want 3", res.Records)
	}
	s1 := got["s1"]
	if *s1.Diagnosis.Severity != (severity.Grade{Value: 2, Scale: severity.Hayashi}) || *s1.Diagnosis.LesionCount != 30 || len(s1.Diagnosis.Lesions) != 30 ||
		*s1.TCMSyndrome != (TCMSyndrome{Pattern: "湿热蕴结", Constitution: "湿热质"}) || s1.Width != 24 || s1.Height != 16 {
		t.Errorf("s1 = %+v", s1)
	}
	if s2 := got["s2"]; *s2.Diagnosis.Severity != (severity.Grade{Value: 1, Scale: severity.Hayashi}) || s2.TCMSyndrome.Pattern != "肺经风热" {
		t.Errorf("s2 = %+v", s2)
	}
	if s3 := got["s3"]; s3.Diagnosis.Severity.Value != 3 || s3.Width != 16 {
		t.Errorf("s3 = %+v", s3)
	}
	wantSkips := []string{
		"sample 7: invalid sample",                                    // decode error (JSONL line 7)
		"sample 4: no severity grade found",                           // no grade in the answer
		"sample 5: sample has 2 images",                               // two images
		"sample 8: 0 <image> placeholders in user turns for 1 images", // no placeholder
		"img/missing.jpg",                                             // image file absent
	}
	if len(res.Skipped) != len(wantSkips) {
		t.Errorf("skipped %v, want %d", res.Skipped, len(wantSkips))
	}
	for _, w := range wantSkips {
		found := false
		for _, s := range res.Skipped {
			found = found || (strings.Contains(s.String(), w) && strings.Contains(s.File, "data.jsonl"))
		}
		if !found {
			t.Errorf("no skip naming data.jsonl with %q in %v", w, res.Skipped)
		}
	}
}

// TestShareGPTRoundTrip exports manifests to ShareGPT and imports them back: grades,
// syndromes, lesion counts and images survive, with relative and absolute image paths.
func TestShareGPTRoundTrip(t *testing.T) {
	dir := t.TempDir()
	var src []Record
	for _, fixture := range []struct {
		format, path string
	}{{FormatACNE04VOC, "testdata/acne04"}, {FormatJSON, "testdata/json"}} {
		res, err := Import(ImportOptions{Format: fixture.format, Src: fixture.path, OutDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		src = append(src, res.Records...)
	}
	// One ungraded record must be skipped by the exporter.
	src = append(src, Record{ImageID: "ungraded", Image: src[0].Image})
	if err := WriteManifest(filepath.Join(dir, ManifestName), src); err != nil {
		t.Fatal(err)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, abs := range []bool{false, true} {
		out := filepath.Join(t.TempDir(), "sub", "train.json")
		samples, skips, err := ExportShareGPT(m, ExportOptions{OutFile: out, AbsolutePath: abs})
		if err != nil {
			t.Fatal(err)
		}
		if len(samples) != len(src)-1 || len(skips) != 1 || !strings.Contains(skips[0].Reason, "no severity grade") {
			t.Fatalf("exported %d, skipped %v; want %d and the ungraded record", len(samples), skips, len(src)-1)
		}
		if err := WriteShareGPT(out, samples); err != nil {
			t.Fatal(err)
		}
		var raw []map[string]any
		b, _ := os.ReadFile(out)
		if err := json.Unmarshal(b, &raw); err != nil || len(raw) != len(samples) {
			t.Fatalf("written file is not a JSON array of %d samples: %v", len(samples), err)
		}
		if img := samples[0].Images[0]; filepath.IsAbs(img) != abs {
			t.Errorf("absolute=%v but image path %q", abs, img)
		}
		back, err := Import(ImportOptions{Format: FormatShareGPT, Src: out, OutDir: t.TempDir()})
		if err != nil {
			t.Fatal(err)
		}
		if len(back.Records) != len(samples) || len(back.Skipped) != 0 {
			t.Fatalf("re-imported %d records, skipped %v", len(back.Records), back.Skipped)
		}
		bm, _ := ReadManifest(back.Manifest)
		for i := range back.Records {
			orig, got := &m.Records[i], &back.Records[i]
			if !reflect.DeepEqual(orig.Diagnosis.Severity, got.Diagnosis.Severity) || !reflect.DeepEqual(orig.TCMSyndrome, got.TCMSyndrome) {
				t.Errorf("%s: grade %v tcm %v came back as %v %v", orig.ImageID, orig.Diagnosis.Severity, orig.TCMSyndrome, got.Diagnosis.Severity, got.TCMSyndrome)
			}
			wantTypes, wantTotal, _ := LesionCounts(orig)
			gotTypes, gotTotal, _ := LesionCounts(got)
			if wantTotal != gotTotal || (len(orig.Diagnosis.Lesions) > 0 && !reflect.DeepEqual(wantTypes, gotTypes)) {
				t.Errorf("%s: lesions %v/%d came back as %v/%d", orig.ImageID, wantTypes, wantTotal, gotTypes, gotTotal)
			}
			if got.Split != "train" {
				t.Errorf("%s: split %q, want train (from the file name)", got.ImageID, got.Split)
			}
			a, _ := filepath.Abs(m.ImagePath(orig))
			b, _ := filepath.Abs(bm.ImagePath(&bm.Records[i]))
			if a != b {
				t.Errorf("image %s came back as %s", a, b)
			}
		}
	}
}

func TestExportScaleConversion(t *testing.T) {
	m := &Manifest{Path: "m.jsonl", Dir: ".", Records: []Record{
		{ImageID: "a", Image: "a.jpg", Diagnosis: Diagnosis{Severity: &severity.Grade{Value: 2, Scale: severity.Hayashi}}},
		{ImageID: "b", Image: "b.jpg", Diagnosis: Diagnosis{Severity: &severity.Grade{Value: 0, Scale: severity.Clinical4}}, Split: "test"},
	}}
	samples, skips, err := ExportShareGPT(m, ExportOptions{OutFile: "o.json", Scale: severity.CN2019})
	if err != nil {
		t.Fatal(err)
	}
	if len(samples) != 1 || len(skips) != 1 || !strings.Contains(skips[0].Reason, "no cn2019 equivalent") {
		t.Fatalf("samples %d skips %v", len(samples), skips)
	}
	if a := samples[0].Messages[2].Content; !strings.HasPrefix(a, "Severity: grade III (") || !strings.Contains(samples[0].Messages[1].Content, "cn2019 scale") {
		t.Errorf("answer %q / question %q not on cn2019", a, samples[0].Messages[1].Content)
	}
	samples, _, _ = ExportShareGPT(m, ExportOptions{OutFile: "o.json", Split: "test"})
	if len(samples) != 1 || !strings.Contains(samples[0].Messages[2].Content, "(normal, 正常) on the clinical4 scale") {
		t.Errorf("split filter: %+v", samples)
	}
}

// TestImportShareGPTCopyExternal copies an image that lies outside the source folder.
func TestImportShareGPTCopyExternal(t *testing.T) {
	img, err := filepath.Abs(filepath.Join("testdata", "sharegpt", "img", "s1.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(t.TempDir(), "conv.json")
	sample := `[{"messages":[{"role":"user","content":"<image>q"},{"role":"assistant","content":"Grade 2"}],"images":[` + strconvQuote(img) + `]}]`
	if err := os.WriteFile(src, []byte(sample), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res, err := Import(ImportOptions{Format: FormatShareGPT, Src: src, OutDir: out, Copy: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Records) != 1 || res.Records[0].Image != "images/external/img_s1.jpg" || res.Records[0].Split != "" {
		t.Fatalf("records %+v", res.Records)
	}
	if _, err := os.Stat(filepath.Join(out, "images", "external", "img_s1.jpg")); err != nil {
		t.Error(err)
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
