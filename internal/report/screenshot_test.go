package report

import (
	"bytes"
	"context"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// chromiumPath returns a headless-capable Chromium on PATH, or "".
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// screenshot renders an HTML file to a PNG with headless Chromium.
func screenshot(ctx context.Context, chromium, htmlPath, pngPath string, width, height int, profile string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--hide-scrollbars", "--disable-extensions", "--mute-audio", "--disable-dev-shm-usage",
		"--user-data-dir="+profile, "--screenshot="+pngPath,
		"--window-size="+strconv.Itoa(width)+","+strconv.Itoa(height), "file://"+htmlPath)
	// Chromium puts its singleton socket directory in TMPDIR: keep it beside the profile,
	// which the test removes.
	cmd.Env = append(os.Environ(), "TMPDIR="+filepath.Dir(profile))
	return cmd.CombinedOutput()
}

// TestHTMLScreenshot opens the fixture report in headless Chromium and checks the screenshot
// is a real rendering: the right size, and neither blank nor a flat colour. With -update it
// renders every language and copies the screenshots to testdata/report-{en,zh}.png (scripts/screenshot-report.sh).
func TestHTMLScreenshot(t *testing.T) {
	chromium := chromiumPath()
	if chromium == "" {
		t.Skip("chromium not on PATH (apt-get install -y chromium fonts-noto-cjk); skipping the rendered-report check")
	}
	if testing.Short() {
		t.Skip("skipping headless Chromium in -short mode")
	}
	const width, height = 1280, 1600
	results := fixtures(t)
	langs := []string{"en"} // one is enough for the check; -update renders every language
	if *update {
		langs = Langs
	}
	for _, lang := range langs {
		t.Run(lang, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			htmlPath := filepath.Join(dir, "report-"+lang+".html")
			if err := os.WriteFile(htmlPath, render(t, "html", goldenOptions(lang), results), 0o644); err != nil {
				t.Fatal(err)
			}
			pngPath := filepath.Join(dir, "report-"+lang+".png")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := screenshot(ctx, chromium, htmlPath, pngPath, width, height, filepath.Join(dir, "profile"))
			if err != nil {
				t.Fatalf("chromium: %v\n%s", err, out)
			}
			data, err := os.ReadFile(pngPath)
			if err != nil {
				t.Fatalf("chromium wrote no screenshot: %v\n%s", err, out)
			}
			img, err := png.Decode(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("screenshot is not a PNG: %v", err)
			}
			if b := img.Bounds(); b.Dx() != width || b.Dy() != height {
				t.Errorf("screenshot is %dx%d, want %dx%d", b.Dx(), b.Dy(), width, height)
			}
			colors, ink := pixelStats(img)
			// A blank page has one colour and no ink; the report has text, badges, bars and
			// photos, so thousands of colours and a few percent dark pixels.
			if colors < 500 || ink < 0.01 {
				t.Errorf("screenshot looks blank: %d distinct colours, %.2f%% dark pixels", colors, 100*ink)
			}
			t.Logf("%s: %d bytes, %d distinct colours, %.2f%% dark pixels", lang, len(data), colors, 100*ink)
			if *update {
				if err := os.WriteFile(filepath.Join("testdata", "report-"+lang+".png"), data, 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// pixelStats returns the number of distinct colours and the fraction of dark pixels (text).
func pixelStats(img image.Image) (colors int, ink float64) {
	seen := map[uint32]bool{}
	b := img.Bounds()
	dark := 0
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			seen[(r>>8)<<16|(g>>8)<<8|bl>>8] = true
			if (r>>8)+(g>>8)+(bl>>8) < 3*100 {
				dark++
			}
		}
	}
	return len(seen), float64(dark) / float64(b.Dx()*b.Dy())
}
