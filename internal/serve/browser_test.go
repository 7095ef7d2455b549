package serve

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/acdtcm/acdtcm/internal/fsutil"
	"github.com/acdtcm/acdtcm/internal/grader"
	"github.com/acdtcm/acdtcm/internal/result"
)

// samplePhoto is an ACNE04 photo committed with the report package (see its
// testdata/ATTRIBUTION.md).
const samplePhoto = "../report/testdata/acne04-levle3_62.jpg"

func findChromium(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Skip("no Chromium found (apt-get install chromium fonts-noto-cjk): browser test skipped")
	return ""
}

// TestWebPageInChromium drives the embedded web page in headless Chromium: it uploads a
// photo, reads the grade from the result card, checks it against the API, switches to
// Chinese and opens the history. With ACDTCM_UPDATE_SCREENSHOTS=1 it writes desktop and
// phone screenshots to testdata/.
func TestWebPageInChromium(t *testing.T) {
	if testing.Short() {
		t.Skip("browser test skipped in -short mode")
	}
	chromium := findChromium(t)
	photo, err := os.ReadFile(samplePhoto)
	if err != nil {
		t.Skipf("sample photo %s missing: %v", samplePhoto, err)
	}
	abs, _ := filepath.Abs(samplePhoto)
	// The built-in grader when the binary has its weights, else the fake test model.
	o := harnessOpts{}
	if g, err := grader.LoadBuiltin(); err == nil {
		o.real = &grader.InferModel{M: g}
	} else {
		t.Logf("built-in grader unavailable (%v): using the fake test model", err)
	}
	h := newHarness(t, o)

	// What the API says for this photo, to compare with what the page shows.
	resp, body := h.do(h.diagnoseReq(photo, nil, ""))
	if resp.StatusCode != 200 {
		t.Fatalf("API diagnose: %d %s", resp.StatusCode, body)
	}
	var want result.DiagnosisResult
	json.Unmarshal(decode(t, body).Data, &want)

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("no-sandbox", true), chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("lang", "en-US"), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1280, 900),
		// Chromium puts its singleton socket directory in TMPDIR: one the test removes.
		chromedp.Env("TMPDIR=" + t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelTimeout := context.WithTimeout(ctx, 120*time.Second)
	defer cancelTimeout()

	update := os.Getenv("ACDTCM_UPDATE_SCREENSHOTS") == "1"
	shot := func(name string) {
		if !update {
			return
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := fsutil.WriteFileAtomic(filepath.Join("testdata", name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(1280, 900),
		chromedp.Navigate(h.ts.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("form")),
		chromedp.SetUploadFiles(chromedp.ID("image"), []string{abs}),
		chromedp.SendKeys(chromedp.ID("description"), "oily skin, 口干 便秘"),
		chromedp.SendKeys(chromedp.ID("age"), "24"),
		chromedp.SetValue(chromedp.ID("gender"), "female"),
		chromedp.Click(chromedp.ID("submit")),
		chromedp.WaitVisible(chromedp.ID("grade")),
	); err != nil {
		t.Fatalf("upload and diagnose: %v", err)
	}
	grade, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("grade"), "data-grade"))
	if err != nil {
		t.Fatal(err)
	}
	text, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("grade")))
	if err != nil {
		t.Fatal(err)
	}
	if grade.Value != strconv.Itoa(want.Severity.Value) || !strings.Contains(text, want.Diagnosis.EN) {
		t.Errorf("page shows grade %q %q, API says %d %q", grade.Value, text, want.Severity.Value, want.Diagnosis.EN)
	}
	for _, id := range []string{"tcm", "disclaimer"} {
		if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID(id))); err != nil {
			t.Errorf("result card lacks #%s: %v", id, err)
		}
	}
	shot("web-desktop-en.png")

	// Chinese.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("lang"))); err != nil {
		t.Fatal(err)
	}
	title, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("h1")))
	if err != nil {
		t.Fatal(err)
	}
	text, err = chromedp.Run(ctx, chromedp.Text(chromedp.ID("grade")))
	if err != nil {
		t.Fatal(err)
	}
	if title != "痤疮分级与中西医辅助决策" || !strings.Contains(text, want.Diagnosis.ZH) {
		t.Errorf("after switching language: title %q, grade %q (want %q)", title, text, want.Diagnosis.ZH)
	}
	// Phone width.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateTouch)); err != nil {
		t.Fatal(err)
	}
	width, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.documentElement.scrollWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if width > 390 {
		t.Errorf("page is %d px wide on a 390 px phone screen (horizontal scrolling)", width)
	}
	shot("web-phone-zh.png")

	// History: the API call above and the page's upload.
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.ID("tab-history")), chromedp.WaitVisible(chromedp.CSS("#history tbody tr td"))); err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#history tbody tr").length`))
	if err != nil {
		t.Fatal(err)
	}
	if rows != 2 {
		t.Errorf("history shows %d rows, want 2", rows)
	}
	shot("web-phone-history-zh.png")

	// The API docs page renders the embedded OpenAPI document without any CDN.
	if err := chromedp.Do(ctx, chromedp.Navigate(h.ts.URL+"/docs"), chromedp.WaitVisible(chromedp.CSS("section.op"))); err != nil {
		t.Fatalf("docs page: %v", err)
	}
	ops, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("section.op").length`))
	if err != nil {
		t.Fatal(err)
	}
	if ops < 12 {
		t.Errorf("docs page lists %d operations, want every route", ops)
	}
}
