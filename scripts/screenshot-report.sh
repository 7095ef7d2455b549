#!/usr/bin/env bash
# Regenerates internal/report/testdata/report-{en,zh}.png: renders the HTML report built from
# the test fixtures (internal/report/fixtures_test.go) in headless Chromium, checks each
# screenshot is not blank, and copies it into testdata. Also rewrites the report's golden
# files (testdata/*.html, *.txt, *.csv, *.json*), which the same fixtures produce.
#
# Needs Debian's chromium and CJK fonts for the zh report:
#   apt-get install -y chromium fonts-noto-cjk
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null && ! command -v chromium-browser >/dev/null && ! command -v google-chrome >/dev/null; then
	echo "screenshot-report: no chromium on PATH (apt-get install -y chromium fonts-noto-cjk)" >&2
	exit 1
fi
if ! fc-list :lang=zh 2>/dev/null | grep -q .; then
	echo "screenshot-report: warning: no CJK font found; the zh screenshot will show boxes (apt-get install -y fonts-noto-cjk)" >&2
fi
CGO_ENABLED=0 go test -tags noxla ./internal/report -run 'TestGolden|TestHTMLScreenshot' -count=1 -v -args -update
ls -l internal/report/testdata/report-en.png internal/report/testdata/report-zh.png
