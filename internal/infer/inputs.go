package infer

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Item is one input photo, or an input argument that could not be expanded.
type Item struct {
	Path string
	Err  error
}

// imageExtensions are the file name extensions picked up when walking folders.
var imageExtensions = map[string]bool{".jpg": true, ".jpeg": true, ".png": true, ".webp": true, ".bmp": true, ".gif": true}

// IsImageName reports whether a file name has an image extension acdtcm reads.
func IsImageName(name string) bool { return imageExtensions[strings.ToLower(filepath.Ext(name))] }

// ExpandInputs streams the photos named by args onto the returned channel: a file is taken
// as is; a folder is walked recursively (image extensions only, lexical order); a pattern
// with glob characters is expanded; "-" reads one path per line from stdin. An argument
// that names nothing becomes an Item with Err set, so the caller reports it and goes on.
// The channel is closed when every argument is expanded or ctx is done.
func ExpandInputs(ctx context.Context, args []string, stdin io.Reader) <-chan Item {
	out := make(chan Item, 64)
	go func() {
		defer close(out)
		send := func(it Item) bool {
			select {
			case out <- it:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for _, arg := range args {
			if !expandOne(ctx, arg, stdin, send) {
				return
			}
		}
	}()
	return out
}

func expandOne(ctx context.Context, arg string, stdin io.Reader, send func(Item) bool) bool {
	if arg == "-" {
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if !expandOne(ctx, line, nil, send) {
				return false
			}
		}
		if err := sc.Err(); err != nil {
			return send(Item{Path: "-", Err: fmt.Errorf("read input list from stdin: %w", err)})
		}
		return true
	}
	st, err := os.Stat(arg)
	switch {
	case err == nil && st.IsDir():
		return walkDir(ctx, arg, send)
	case err == nil:
		return send(Item{Path: arg})
	case strings.ContainsAny(arg, "*?["):
		matches, gerr := filepath.Glob(arg)
		if gerr != nil {
			return send(Item{Path: arg, Err: fmt.Errorf("bad glob pattern %q: %w", arg, gerr)})
		}
		if len(matches) == 0 {
			return send(Item{Path: arg, Err: fmt.Errorf("glob %q matches no file", arg)})
		}
		for _, m := range matches {
			if !expandOne(ctx, m, nil, send) {
				return false
			}
		}
		return true
	default:
		return send(Item{Path: arg, Err: fmt.Errorf("input %s: %w", arg, err)})
	}
}

func walkDir(ctx context.Context, root string, send func(Item) bool) bool {
	ok := true
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if !send(Item{Path: path, Err: fmt.Errorf("walk %s: %w", path, err)}) {
				ok = false
				return filepath.SkipAll
			}
			if d != nil && d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if ctx.Err() != nil {
			ok = false
			return filepath.SkipAll
		}
		if d.IsDir() || !IsImageName(d.Name()) {
			return nil
		}
		if !send(Item{Path: path}) {
			ok = false
			return filepath.SkipAll
		}
		return nil
	})
	if err != nil {
		return send(Item{Path: root, Err: fmt.Errorf("walk %s: %w", root, err)})
	}
	return ok
}
