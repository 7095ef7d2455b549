package dataset

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/severity"
)

func TestParseGradeName(t *testing.T) {
	tests := []struct {
		scale severity.Scale
		text  string
		want  int
		ok    bool
	}{
		{severity.Hayashi, "0", 0, true},
		{severity.Hayashi, "moderate", 1, true},
		{severity.Hayashi, "Very_Severe", 3, true},
		{severity.Hayashi, "very-severe", 3, true},
		{severity.Hayashi, "verysevere", 3, true},
		{severity.Hayashi, "grade_2", 2, true},
		{severity.Hayashi, "level3", 3, true},
		{severity.Hayashi, "levle1", 1, true},
		{severity.Hayashi, "重度", 2, true},
		{severity.Hayashi, "normal", 0, false},
		{severity.Hayashi, "4", 0, false},
		{severity.Clinical4, "normal", 0, true},
		{severity.Clinical4, "mild", 1, true},
		{severity.CN2019, "III", 2, true},
		{severity.CN2019, "grade IV", 3, true},
		{severity.CN2019, "Ⅱ", 1, true},
		{severity.Hayashi, "notagrade", 0, false},
		{severity.Hayashi, "", 0, false},
	}
	for _, tc := range tests {
		g, err := ParseGradeName(tc.scale, tc.text)
		if (err == nil) != tc.ok || (tc.ok && g != tc.want) {
			t.Errorf("ParseGradeName(%s, %q) = %d, %v; want %d, ok=%v", tc.scale, tc.text, g, err, tc.want, tc.ok)
		}
	}
}

func TestImportImageFolder(t *testing.T) {
	type want struct {
		split string
		grade int
		w, h  int
		src   string
	}
	tests := []struct {
		name      string
		src       string
		scale     severity.Scale
		want      map[string]want
		wantSkips map[string]string
	}{
		{
			name:  "with split level",
			src:   "testdata/imagefolder",
			scale: severity.Hayashi,
			want: map[string]want{
				"train/0/a":                            {"train", 0, 32, 12, ""},
				"train/moderate/b":                     {"train", 1, 16, 16, ""},
				"train/moderate/sub/levle1_8_jpg.rf.x": {"train", 1, 24, 12, "1_8"},
				"valid/grade_2/c":                      {"valid", 2, 32, 16, ""},
			},
			wantSkips: map[string]string{
				"broken.jpg": "not a decodable image",
				"notagrade":  `class folder skipped with its 1 images: "notagrade" is not a grade on the hayashi scale`,
			},
		},
		{
			name:  "flat on clinical4",
			src:   "testdata/imagefolder-flat",
			scale: severity.Clinical4,
			want: map[string]want{
				"mild/x": {"", 1, 24, 16, ""},
				"重度/z":   {"", 3, 16, 16, ""},
			},
			wantSkips: map[string]string{"very_severe": "not a grade on the clinical4 scale"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := treeDigest(t, tc.src)
			res, err := Import(ImportOptions{Format: FormatImageFolder, Src: tc.src, OutDir: t.TempDir(), Scale: tc.scale})
			if err != nil {
				t.Fatal(err)
			}
			if treeDigest(t, tc.src) != before {
				t.Fatal("import modified its source")
			}
			got := byID(res.Records)
			if len(got) != len(tc.want) {
				t.Errorf("records %v, want %d", res.Records, len(tc.want))
			}
			for id, w := range tc.want {
				r, ok := got[id]
				if !ok {
					t.Errorf("no record %q", id)
					continue
				}
				if r.Split != w.split || *r.Diagnosis.Severity != (severity.Grade{Value: w.grade, Scale: tc.scale}) || r.Width != w.w || r.Height != w.h || r.SourceID != w.src {
					t.Errorf("%s = split %q grade %+v %dx%d source %q; want %+v", id, r.Split, *r.Diagnosis.Severity, r.Width, r.Height, r.SourceID, w)
				}
			}
			if len(res.Skipped) != len(tc.wantSkips) {
				t.Errorf("skipped %v, want %d", res.Skipped, len(tc.wantSkips))
			}
			for file, reason := range tc.wantSkips {
				s := skipFor(res.Skipped, file)
				if len(s) != 1 || !strings.Contains(s[0].Reason, reason) {
					t.Errorf("skip for %s = %v, want %q", file, s, reason)
				}
			}
		})
	}
	if _, err := Import(ImportOptions{Format: FormatImageFolder, Src: filepath.Join("testdata", "imagefolder", "train", "0"), OutDir: t.TempDir()}); err == nil || !strings.Contains(err.Error(), "no class folders") {
		t.Errorf("folder without class folders: error %v", err)
	}
}
