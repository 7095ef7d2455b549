package report

import (
	"bytes"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acdtcm/acdtcm/internal/result"
)

var update = flag.Bool("update", false, "rewrite the golden files (and, with chromium, the report screenshots) in testdata/")

// goldenOptions are the options every golden file is written with (a fixed Generated time
// keeps the HTML deterministic).
func goldenOptions(lang string) Options {
	return Options{Lang: lang, Generated: time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)}
}

func render(t testing.TB, format string, opts Options, results []*result.DiagnosisResult) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteAll(format, &buf, opts, results); err != nil {
		t.Fatalf("WriteAll(%s, %s): %v", format, opts.Lang, err)
	}
	return buf.Bytes()
}

func checkGolden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./internal/report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test ./internal/report -update rewrites it); got:\n%s", name, clip(got))
	}
}

// clip shortens long outputs (HTML with thumbnails) in failure messages.
func clip(b []byte) string {
	s := regexp.MustCompile(`base64,[A-Za-z0-9+/=]+`).ReplaceAllString(string(b), "base64,…")
	if len(s) > 6000 {
		s = s[:6000] + "\n…"
	}
	return s
}

func TestGolden(t *testing.T) {
	results := fixtures(t)
	tests := []struct {
		format, lang, golden string
	}{
		{"table", "en", "table-en.txt"},
		{"table", "zh", "table-zh.txt"},
		{"json", "en", "results.json"},
		{"jsonl", "en", "results.jsonl"},
		{"csv", "en", "results-en.csv"},
		{"csv", "zh", "results-zh.csv"},
		{"html", "en", "report-en.html"},
		{"html", "zh", "report-zh.html"},
	}
	for _, tc := range tests {
		t.Run(tc.format+"-"+tc.lang, func(t *testing.T) {
			checkGolden(t, tc.golden, render(t, tc.format, goldenOptions(tc.lang), results))
		})
	}
}

// JSON output is language-neutral: the same bytes whatever Lang is, and it round-trips.
func TestJSONRoundTrip(t *testing.T) {
	want := fixtures(t)
	for _, format := range []string{"json", "jsonl"} {
		en := render(t, format, Options{Lang: "en"}, want)
		zh := render(t, format, Options{Lang: "zh"}, want)
		if !bytes.Equal(en, zh) {
			t.Errorf("%s output depends on Lang", format)
		}
		var got []*result.DiagnosisResult
		if format == "json" {
			if err := json.Unmarshal(en, &got); err != nil {
				t.Fatalf("json output does not parse: %v", err)
			}
		} else {
			lines := strings.Split(strings.TrimSuffix(string(en), "\n"), "\n")
			for i, line := range lines {
				var r result.DiagnosisResult
				if err := json.Unmarshal([]byte(line), &r); err != nil {
					t.Fatalf("jsonl line %d does not parse: %v", i+1, err)
				}
				got = append(got, &r)
			}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s does not round-trip:\ngot  %+v\nwant %+v", format, got, want)
		}
	}
}

func TestCSVColumns(t *testing.T) {
	results := fixtures(t)
	rows, err := csv.NewReader(bytes.NewReader(render(t, "csv", Options{Lang: "en"}, results))).ReadAll()
	if err != nil {
		t.Fatalf("CSV output does not parse: %v", err)
	}
	if len(rows) != len(results)+1 {
		t.Fatalf("got %d rows, want header + %d", len(rows), len(results))
	}
	col := map[string]int{}
	for i, name := range rows[0] {
		col[name] = i
	}
	tests := []struct {
		row          int
		column, want string
	}{
		{1, "image", photoModerate},
		{1, "grade", "1"},
		{1, "label", "moderate"},
		{1, "p1", "0.7100"},
		{1, "pustule", "16"},
		{1, "nodule", "0"},
		{1, "syndrome", "Intestine-stomach damp-heat"},
		{2, "nodule", "57"},
		{2, "referral", "nodulocystic;scarring_risk"},
		{3, "error", "decode photos/blurry.heic: image: unknown format"},
		{3, "grade", ""},
		{4, "image_id", "upload-7f3a"},
		{4, "scale", "cn2019"},
		{4, "papule", "9.2"},
		{4, "lesions", "15.6"},
		{1, "lesions", "18"},
		{5, "lesions", "23.6"},
		{5, "comedone", ""},
		{5, "nodule", ""},
	}
	for _, tc := range tests {
		if got := rows[tc.row][col[tc.column]]; got != tc.want {
			t.Errorf("row %d column %s = %q, want %q", tc.row, tc.column, got, tc.want)
		}
	}
}

// Every format writes each result when Write is called, not at Close.
func TestStreamsEachResult(t *testing.T) {
	results := fixtures(t)
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			var buf bytes.Buffer
			w, err := New(format, &buf, Options{Lang: "en", NoThumbnails: true})
			if err != nil {
				t.Fatal(err)
			}
			if err := w.Begin(); err != nil {
				t.Fatal(err)
			}
			for _, r := range results {
				before := buf.Len()
				if err := w.Write(r); err != nil {
					t.Fatal(err)
				}
				// Table cells wrap, so look for the name's first 12 bytes.
				if name := imageName(r); !strings.Contains(buf.String()[before:], name[:min(12, len(name))]) {
					t.Fatalf("after Write(%s) the output does not show it yet", name)
				}
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// Close without any result still gives well-formed output.
func TestEmpty(t *testing.T) {
	for _, format := range Formats {
		out := string(render(t, format, Options{}, nil))
		switch format {
		case "json":
			if out != "[]\n" {
				t.Errorf("empty json = %q, want []", out)
			}
		case "jsonl":
			if out != "" {
				t.Errorf("empty jsonl = %q, want nothing", out)
			}
		case "csv":
			if strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "image,") {
				t.Errorf("empty csv = %q, want the header only", out)
			}
		case "table":
			if !strings.Contains(out, "0 photos: 0 diagnosed") {
				t.Errorf("empty table lacks the summary: %q", out)
			}
		case "html":
			if !strings.HasSuffix(out, "</html>\n") || strings.Contains(out, "<article") {
				t.Errorf("empty html is not a complete page without cards")
			}
		}
	}
}

// Close is idempotent and Write after Close fails, in every format.
func TestWriteAfterClose(t *testing.T) {
	r := fixtures(t)[2]
	for _, format := range Formats {
		var buf bytes.Buffer
		w, err := New(format, &buf, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("%s: Close: %v", format, err)
		}
		n := buf.Len()
		if err := w.Close(); err != nil || buf.Len() != n {
			t.Errorf("%s: second Close wrote more or failed (%v)", format, err)
		}
		if err := w.Write(r); !errors.Is(err, ErrClosed) || buf.Len() != n {
			t.Errorf("%s: Write after Close = %v (wrote %d bytes), want ErrClosed", format, err, buf.Len()-n)
		}
	}
}

func TestNewRejectsUnknown(t *testing.T) {
	if _, err := New("xml", &bytes.Buffer{}, Options{}); err == nil || !strings.Contains(err.Error(), "xml") {
		t.Errorf("New(xml) error = %v, want unknown format", err)
	}
	if _, err := New("table", &bytes.Buffer{}, Options{Lang: "fr"}); err == nil || !strings.Contains(err.Error(), "fr") {
		t.Errorf("New(lang fr) error = %v, want unknown language", err)
	}
	if _, err := New(" HTML ", &bytes.Buffer{}, Options{}); err != nil {
		t.Errorf("format names are case-insensitive, got %v", err)
	}
}

func TestHTMLEscapesText(t *testing.T) {
	r := &result.DiagnosisResult{Image: `<script>alert(1)</script>.jpg`, Error: `bad "<b>" & worse`}
	out := string(render(t, "html", Options{}, []*result.DiagnosisResult{r}))
	if strings.Contains(out, "<script>") || strings.Contains(out, `"<b>"`) {
		t.Errorf("HTML report does not escape result text")
	}
	if !strings.Contains(out, "&lt;script&gt;") || !strings.Contains(out, "&lt;b&gt;") {
		t.Errorf("HTML report lost the escaped image name or error")
	}
}

func TestHTMLHasNoExternalAssets(t *testing.T) {
	out := string(render(t, "html", Options{}, fixtures(t)))
	for _, bad := range []string{"http://", "https://", "<link", "<script", "src=\"/", "url("} {
		if strings.Contains(out, bad) {
			t.Errorf("HTML report contains %q: it must be self-contained", bad)
		}
	}
	if n := strings.Count(out, `src="data:image/jpeg;base64,`); n != 2 {
		t.Errorf("HTML report embeds %d thumbnails, want 2 (the two fixture photos)", n)
	}
}

func TestThumbnail(t *testing.T) {
	f, err := os.Open(photoSevere)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	boxes := vocBoxes(t, "testdata/acne04-levle3_62.xml")["nodule"]
	uri, err := thumbnail(f, 160, []result.LesionFinding{finding("nodule", boxes)})
	if err != nil {
		t.Fatal(err)
	}
	const prefix = "data:image/jpeg;base64,"
	if !strings.HasPrefix(uri, prefix) {
		t.Fatalf("thumbnail is not a JPEG data URI: %.40s", uri)
	}
	data, err := base64.StdEncoding.DecodeString(uri[len(prefix):])
	if err != nil {
		t.Fatal(err)
	}
	img, err := jpeg.Decode(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 160 || b.Dy() != 160 {
		t.Errorf("thumbnail of a 640x640 photo is %dx%d, want 160x160", b.Dx(), b.Dy())
	}
	if len(data) > 20000 {
		t.Errorf("thumbnail is %d bytes; expected a small JPEG", len(data))
	}
	// The first box's top-left corner, scaled by 1/4, must be drawn in the nodule colour.
	b0 := boxes[0]
	x, y := int(b0.X0/4), int(b0.Y0/4)
	if !nearColor(img, x+2, y, lesionColors["nodule"]) {
		t.Errorf("no nodule-coloured box edge at (%d,%d)", x+2, y)
	}

	if _, err := thumbnail(strings.NewReader("not an image"), 160, nil); err == nil {
		t.Error("thumbnail of garbage succeeded")
	}
}

func nearColor(img image.Image, x, y int, want interface{ RGBA() (r, g, b, a uint32) }) bool {
	r, g, b, _ := img.At(x, y).RGBA()
	wr, wg, wb, _ := want.RGBA()
	d := func(a, b uint32) int { return abs(int(a>>8) - int(b>>8)) }
	return d(r, wr)+d(g, wg)+d(b, wb) < 120 // JPEG blurs a 1-pixel line
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}

func BenchmarkWrite(b *testing.B) {
	results := fixtures(b)
	for _, format := range Formats {
		b.Run(format, func(b *testing.B) {
			w, err := New(format, discard{}, Options{NoThumbnails: true})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if err := w.Write(results[i%len(results)]); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(); err != nil {
				b.Fatal(err)
			}
		})
	}
}

func BenchmarkThumbnail(b *testing.B) {
	data, err := os.ReadFile(photoModerate)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := thumbnail(bytes.NewReader(data), DefaultThumbnailSize, nil); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkThumbnailLarge measures a 12-megapixel phone-sized photo (synthetic gradient).
func BenchmarkThumbnailLarge(b *testing.B) {
	src := image.NewRGBA(image.Rect(0, 0, 4000, 3000))
	for y := 0; y < 3000; y++ {
		for x := 0; x < 4000; x++ {
			i := src.PixOffset(x, y)
			src.Pix[i], src.Pix[i+1], src.Pix[i+2], src.Pix[i+3] = uint8(x), uint8(y), uint8(x^y), 255
		}
	}
	var buf bytes.Buffer
	if err := jpeg.Encode(&buf, src, &jpeg.Options{Quality: 90}); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := thumbnail(bytes.NewReader(buf.Bytes()), DefaultThumbnailSize, nil); err != nil {
			b.Fatal(err)
		}
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// Writers keep nothing per result: the live heap after 5,000 results is about what it was
// after 500 (a writer that kept the results or its output would hold megabytes more).
func TestMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("skipping the 5,000-result memory check in -short mode")
	}
	results := fixtures(t)
	heap := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			w, err := New(format, discard{}, Options{NoThumbnails: true})
			if err != nil {
				t.Fatal(err)
			}
			write := func(n int) {
				for i := 0; i < n; i++ {
					// A fresh copy each time, so a writer that kept results would grow.
					r := *results[i%len(results)]
					r.Probabilities = slices.Clone(r.Probabilities)
					r.Lesions = slices.Clone(r.Lesions)
					for j := range r.Lesions {
						r.Lesions[j].Boxes = slices.Clone(r.Lesions[j].Boxes)
					}
					if err := w.Write(&r); err != nil {
						t.Fatal(err)
					}
				}
			}
			write(500)
			before := heap()
			write(4500)
			after := heap()
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			if grew := int64(after) - int64(before); grew > 2<<20 {
				t.Errorf("heap grew by %d bytes over 4,500 results", grew)
			}
		})
	}
}
