package dataset

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/acdtcm/acdtcm/internal/fsutil"
)

// maxLine bounds one manifest line (a record with tens of thousands of boxes still fits).
const maxLine = 64 << 20

// LineError reports a manifest line that could not be parsed.
type LineError struct {
	File string
	Line int
	Err  error
}

// Error returns "file:line: problem".
func (e *LineError) Error() string { return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err) }

// Unwrap returns the line's problem.
func (e *LineError) Unwrap() error { return e.Err }

// Manifest is a loaded manifest: its records and the directory image paths are relative to.
type Manifest struct {
	Path    string // the manifest file
	Dir     string // directory image paths are relative to
	Records []Record
}

// ImagePath resolves a record's image path against the manifest directory.
func (m *Manifest) ImagePath(r *Record) string {
	if filepath.IsAbs(r.Image) {
		return r.Image
	}
	return filepath.Join(m.Dir, filepath.FromSlash(r.Image))
}

// ResolveManifestPath accepts a manifest file or a dataset directory containing
// manifest.jsonl and returns the manifest file path.
func ResolveManifestPath(path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("open dataset %s: %w", path, err)
	}
	if st.IsDir() {
		p := filepath.Join(path, ManifestName)
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("dataset directory %s has no %s: %w", path, ManifestName, err)
		}
		return p, nil
	}
	return path, nil
}

// ParseRecord decodes one manifest line strictly: unknown fields are errors, so a typo in
// a hand-written manifest does not silently drop data.
func ParseRecord(line []byte) (Record, error) {
	var r Record
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return Record{}, fmt.Errorf("invalid record: %w", err)
	}
	if dec.More() {
		return Record{}, errors.New("invalid record: trailing data after the JSON object")
	}
	return r, nil
}

// ScanManifest reads records from r one at a time, calling fn with the 1-based line
// number. Blank lines are skipped. A line that fails to parse is passed to onError (when
// nil, scanning stops with that error); returning a non-nil error from fn or onError stops
// the scan.
func ScanManifest(r io.Reader, name string, fn func(line int, rec Record) error, onError func(*LineError) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxLine)
	n := 0
	for sc.Scan() {
		n++
		b := bytes.TrimSpace(sc.Bytes())
		if len(b) == 0 {
			continue
		}
		rec, err := ParseRecord(b)
		if err != nil {
			le := &LineError{File: name, Line: n, Err: err}
			if onError == nil {
				return le
			}
			if err := onError(le); err != nil {
				return err
			}
			continue
		}
		if err := fn(n, rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read %s after line %d: %w", name, n, err)
	}
	return nil
}

// ReadManifest loads a whole manifest (a file, or a directory with manifest.jsonl),
// failing on the first malformed line.
func ReadManifest(path string) (*Manifest, error) {
	p, err := ResolveManifestPath(path)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("open manifest: %w", err)
	}
	defer f.Close()
	m := &Manifest{Path: p, Dir: filepath.Dir(p)}
	err = ScanManifest(f, p, func(_ int, rec Record) error {
		m.Records = append(m.Records, rec)
		return nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// WriteRecords writes records as JSON Lines.
func WriteRecords(w io.Writer, records []Record) error {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	for i := range records {
		if err := enc.Encode(&records[i]); err != nil {
			return fmt.Errorf("encode record %q: %w", records[i].ImageID, err)
		}
	}
	return bw.Flush()
}

// WriteManifest writes records to path atomically.
func WriteManifest(path string, records []Record) error {
	return fsutil.WriteAtomic(path, 0o644, func(w io.Writer) error {
		return WriteRecords(w, records)
	})
}
