package grader

import (
	"context"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/imgmatch/imgmatchtest"
)

func TestLinkCopiesAndSeparate(t *testing.T) {
	dir := t.TempDir()
	a, b, c := imgmatchtest.Texture(10, 320, 320), imgmatchtest.Texture(11, 320, 320), imgmatchtest.Texture(12, 320, 320)
	photo := func(id, source, split string, img image.Image) Sample {
		p := filepath.Join(dir, id+".png")
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, img); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		return Sample{ID: id, Source: source, Split: split, Path: p}
	}
	train := []Sample{
		photo("s1a", "s1", "train", imgmatchtest.Warp(a, false, 0, 0, 1, 1, 0)),
		photo("s1b", "s1", "train", imgmatchtest.Warp(a, true, 8, 0, 0.9, 1.1, 0.001)),
		photo("s2", "s2", "train", imgmatchtest.Warp(a, false, -6, 0.05, 0.9, 0.9, 0)), // s1's photo under another id
		photo("s3", "s3", "train", b),
		photo("s4", "s4", "train", imgmatchtest.Warp(c, true, -6, 0, 0.9, 1, 0)), // a copy of the eval photo
		{ID: "broken", Source: "s5", Split: "train", Path: filepath.Join(dir, "missing.png")},
	}
	eval := []Sample{photo("e1", "e1", "valid", c)}
	var calls, last int
	links, err := LinkCopies(context.Background(), append(slices.Clone(train), eval...), LinkOptions{Workers: 2, Progress: func(done, total int) {
		calls++
		if done != last+1 || total != len(train)+1 {
			t.Errorf("progress %d of %d after %d, want %d of %d", done, total, last, last+1, len(train)+1)
		}
		last = done
	}})
	if err != nil {
		t.Fatal(err)
	}
	if calls != len(train)+1 {
		t.Errorf("progress called %d times, want once per photo (%d)", calls, len(train)+1)
	}
	for _, tc := range []struct{ source, group string }{
		{"s1", "s1"}, {"s2", "s1"}, {"s3", "s3"}, {"s4", "e1"}, {"e1", "e1"}, {"s5", "s5"},
	} {
		if g := links.Group(tc.source); g != tc.group {
			t.Errorf("Group(%s) = %s, want %s", tc.source, g, tc.group)
		}
	}
	if n := links.LinkedSources(); n != 4 {
		t.Errorf("%d linked sources, want 4 (s1, s2, s4, e1)", n)
	}
	kept, dropped := SeparateCopies(train, eval, links)
	var got []string
	for _, s := range kept {
		got = append(got, s.ID+"@"+s.Source)
	}
	want := []string{"s1a@s1", "s1b@s1", "s2@s1", "s3@s3", "broken@s5"}
	if dropped != 1 || !slices.Equal(got, want) {
		t.Errorf("kept %v (dropped %d), want %v (dropped 1: s4, a copy of e1)", got, dropped, want)
	}
	// A holdout split keeps s1's and s2's photos together now that they share a source.
	for seed := range uint64(8) {
		tr, hold := SplitBySource(kept, 0.5, seed)
		inTrain, inHold := map[string]bool{}, map[string]bool{}
		for _, s := range tr {
			inTrain[s.Source] = true
		}
		for _, s := range hold {
			inHold[s.Source] = true
		}
		for src := range inHold {
			if inTrain[src] {
				t.Fatalf("seed %d: source %s on both sides of the holdout", seed, src)
			}
		}
	}
	// The links survive a round trip through their file, and apply the same way.
	path := filepath.Join(dir, CopyLinksFile)
	if err := WriteCopyLinks(path, links); err != nil {
		t.Fatal(err)
	}
	read, err := ReadCopyLinks(path)
	if err != nil {
		t.Fatal(err)
	}
	if g := read.Groups(); !slices.EqualFunc(g, [][]string{{"e1", "s4"}, {"s1", "s2"}}, slices.Equal[[]string]) {
		t.Errorf("groups read back %v, want [[e1 s4] [s1 s2]]", g)
	}
	if kept2, dropped2 := SeparateCopies(train, eval, read); dropped2 != dropped || !reflect.DeepEqual(kept2, kept) {
		t.Errorf("links read back keep %v (dropped %d), want %v (%d)", kept2, dropped2, kept, dropped)
	}
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := LinkCopies(cancelled, train, LinkOptions{Workers: 1}); err == nil {
		t.Error("LinkCopies with a cancelled context returned no error")
	}
}

func TestCopyLinksFileErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ name, content, want string }{
		{"not JSON", "groups: 1", "copy links " + filepath.Join(dir, "not JSON.json")},
		{"lone id", `{"groups": [["a"]]}`, "group 1 has 1 source ids, want at least 2"},
		{"empty id", `{"groups": [["a", ""]]}`, "group 1 has an empty source id"},
		{"id in two groups", `{"groups": [["a", "b"], ["c", "a"]]}`, `source "a" is in two groups`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".json")
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ReadCopyLinks(path)
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
				t.Errorf("ReadCopyLinks(%s) = %v, want an error naming the file and %q", tc.content, err, tc.want)
			}
		})
	}
	if _, err := ReadCopyLinks(filepath.Join(dir, "missing.json")); err == nil || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("a missing file: %v", err)
	}
}
