package cli

import (
	"bytes"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/grader"
	"github.com/acdtcm/acdtcm/internal/imgmatch/imgmatchtest"
)

// writeCopiesExport writes a small ACNE04-style VOC export in which photo copies hide under
// other source ids: train 0_2 is train 0_1's photo warped, train 1_4 is valid 0_9's, and
// train 2_3 stands alone.
func writeCopiesExport(t *testing.T, dir string) {
	t.Helper()
	a, b, c := imgmatchtest.Texture(10, 320, 320), imgmatchtest.Texture(11, 320, 320), imgmatchtest.Texture(12, 320, 320)
	for _, p := range []struct {
		name string
		img  image.Image
	}{
		{"train/levle0_1_jpg.rf.a", a},
		{"train/levle0_1_jpg.rf.b", imgmatchtest.Warp(a, true, 8, 0, 0.9, 1.1, 0.001)},
		{"train/levle0_2_jpg.rf.a", imgmatchtest.Warp(a, false, -6, 0.05, 0.9, 0.9, 0)},
		{"train/levle2_3_jpg.rf.a", b},
		{"train/levle1_4_jpg.rf.a", imgmatchtest.Warp(c, true, -6, 0, 0.9, 1, 0)},
		{"valid/levle0_9_jpg.rf.a", c},
	} {
		path := filepath.Join(dir, p.name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, p.img, &jpeg.Options{Quality: 95}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path+".jpg", buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		xml := "<annotation><size><width>320</width><height>320</height></size></annotation>"
		if err := os.WriteFile(path+".xml", []byte(xml), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func TestDatasetLinkCopies(t *testing.T) {
	data := t.TempDir()
	writeCopiesExport(t, data)
	out := filepath.Join(t.TempDir(), "links.json")
	var stdout, stderr bytes.Buffer
	if code := Execute([]string{"dataset", "link-copies", data, "--out", out, "--workers", "2"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"6 photos of 5 source ids", "4 source ids linked in 2 groups", "drops 1 train photos as copies of valid photos", "wrote " + out} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	links, err := grader.ReadCopyLinks(out)
	if err != nil {
		t.Fatal(err)
	}
	if g := links.Groups(); !slices.EqualFunc(g, [][]string{{"0_1", "0_2"}, {"0_9", "1_4"}}, slices.Equal[[]string]) {
		t.Errorf("groups %v, want [[0_1 0_2] [0_9 1_4]]", g)
	}
}

func TestDatasetLinkCopiesErrors(t *testing.T) {
	data := t.TempDir()
	writeCopiesExport(t, data)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no --out", []string{data}, `required flag(s) "out" not set`},
		{"missing data", []string{filepath.Join(data, "nope"), "--out", filepath.Join(t.TempDir(), "l.json")}, "nope"},
		{"out is a folder", []string{data, "--out", filepath.Join(data, "train")}, filepath.Join(data, "train")},
		{"bad inliers", []string{data, "--out", filepath.Join(t.TempDir(), "l.json"), "--match-inliers", "0"}, "--match-inliers 0"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := Execute(append([]string{"dataset", "link-copies"}, tc.args...), strings.NewReader(""), &stdout, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q, want an error containing %q", code, stderr.String(), tc.want)
			}
		})
	}
}
