package dataset

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/severity"
)

func TestParseAnnotation(t *testing.T) {
	tests := []struct {
		name    string
		json    string
		wantErr string
	}{
		{"minimal", `{"diagnosis":{}}`, ""},
		{"pretty printed", "{\n  \"image\": \"a.jpg\",\n  \"diagnosis\": {\"severity\": {\"value\": 1, \"scale\": \"cn2019\"}}\n}", ""},
		{"unknown field", `{"diagnosis":{},"grade":2}`, `unknown field "grade"`},
		{"trailing data", `{"diagnosis":{}} {}`, "trailing data"},
		{"not an object", `[1,2]`, "invalid record"},
		{"truncated", `{"diagnosis":{"severity":`, "invalid record"},
		{"grade out of range", `{"diagnosis":{"severity":{"value":4,"scale":"hayashi"}}}`, "hayashi grade 4 out of range"},
		{"unknown scale", `{"diagnosis":{"severity":{"value":1,"scale":"gags"}}}`, "unknown severity scale"},
		{"negative count", `{"diagnosis":{"lesion_count":-1}}`, "lesion_count is negative"},
		{"unknown lesion", `{"diagnosis":{"lesions":[{"type":"scar"}]}}`, `unknown type "scar"`},
		{"inverted box", `{"diagnosis":{"lesions":[{"type":"papule","box":{"x0":5,"y0":0,"x1":1,"y1":1}}]}}`, "inverted box"},
		{"negative size", `{"width":-3,"diagnosis":{}}`, "negative image size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseAnnotation([]byte(tc.json))
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseAnnotation: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
		})
	}
}

func TestImportJSON(t *testing.T) {
	src := filepath.Join("testdata", "json")
	before := treeDigest(t, src)
	res, err := Import(ImportOptions{Format: FormatJSON, Src: src, OutDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if treeDigest(t, src) != before {
		t.Fatal("import modified its source")
	}
	got := byID(res.Records)
	if len(got) != 3 {
		t.Fatalf("records %+v, want 3", res.Records)
	}
	p1 := got["patient-001"]
	if p1.Image != filepath.ToSlash(mustRel(t, res.Manifest, "testdata/json/images/p1.jpg")) {
		t.Errorf("p1 image = %q, want it relative to the manifest", p1.Image)
	}
	if *p1.Diagnosis.Severity != (severity.Grade{Value: 2, Scale: severity.Clinical4}) || p1.TCMSyndrome.Pattern != "肺经风热" ||
		p1.Treatment.TCMPrescription != "枇杷清肺饮" || *p1.PatientInfo.Age != 19 || p1.Width != 24 || p1.Height != 12 {
		t.Errorf("p1 = %+v", p1)
	}
	p2 := got["p2"]
	if p2.Split != "test" || p2.SourceID != "patient-002" || *p2.Diagnosis.Severity != (severity.Grade{Value: 3, Scale: severity.CN2019}) || p2.Width != 32 {
		t.Errorf("p2 = %+v", p2)
	}
	if p3 := got["p3"]; *p3.Diagnosis.LesionCount != 2 || !strings.HasSuffix(p3.Image, "testdata/json/beside/p3.jpg") {
		t.Errorf("p3 = %+v", p3)
	}
	wantSkips := map[string]string{
		"malformed.json":     "invalid record",
		"unknown-field.json": `unknown field "grade"`,
		"missing-image.json": `image "nowhere/p9.jpg" not found`,
		"bad-grade.json":     "grade 7 out of range",
		"bad-lesion.json":    `unknown type "scar"`,
	}
	if len(res.Skipped) != len(wantSkips) {
		t.Errorf("skipped %v, want %d", res.Skipped, len(wantSkips))
	}
	for file, reason := range wantSkips {
		s := skipFor(res.Skipped, file)
		if len(s) != 1 || !strings.Contains(s[0].Reason, reason) {
			t.Errorf("skip for %s = %v, want %q", file, s, reason)
		}
	}
	// A single annotation file is a source of its own.
	one, err := Import(ImportOptions{Format: FormatJSON, Src: filepath.Join(src, "beside", "p3.json"), OutDir: t.TempDir()})
	if err != nil || len(one.Records) != 1 || one.Records[0].ImageID != "p3" {
		t.Errorf("single file import: %v, %+v", err, one)
	}
}

func mustRel(t *testing.T, manifest, p string) string {
	t.Helper()
	abs, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(filepath.Dir(manifest), abs)
	if err != nil {
		t.Fatal(err)
	}
	return rel
}
