package report

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"github.com/acdtcm/acdtcm/internal/result"
)

// jsonWriter writes one JSON array of results (indented, one element per Write) or, in lines
// mode, JSON Lines (one compact object per line). Both are language-neutral.
type jsonWriter struct {
	w      io.Writer
	lines  bool
	begun  bool
	n      int
	buf    bytes.Buffer
	closed bool
}

func newJSONWriter(w io.Writer, lines bool) *jsonWriter { return &jsonWriter{w: w, lines: lines} }

func (j *jsonWriter) Begin() error {
	if j.begun {
		return nil
	}
	j.begun = true
	if j.lines {
		return nil
	}
	if _, err := io.WriteString(j.w, "["); err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	return nil
}

func (j *jsonWriter) Write(r *result.DiagnosisResult) error {
	if j.closed {
		return ErrClosed
	}
	if err := j.Begin(); err != nil {
		return err
	}
	j.buf.Reset()
	enc := json.NewEncoder(&j.buf)
	enc.SetEscapeHTML(false)
	if !j.lines {
		if j.n > 0 {
			j.buf.WriteString(",")
		}
		j.buf.WriteString("\n  ")
		enc.SetIndent("  ", "  ")
	}
	if err := enc.Encode(r); err != nil {
		return fmt.Errorf("encode result for %s: %w", imageName(r), err)
	}
	out := j.buf.Bytes()
	if !j.lines {
		out = bytes.TrimSuffix(out, []byte("\n")) // the separator or "]" follows
	}
	if _, err := j.w.Write(out); err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	j.n++
	return nil
}

func (j *jsonWriter) Close() error {
	if err := j.Begin(); err != nil {
		return err
	}
	if j.closed || j.lines {
		j.closed = true
		return nil
	}
	j.closed = true
	end := "\n]\n"
	if j.n == 0 {
		end = "]\n"
	}
	if _, err := io.WriteString(j.w, end); err != nil {
		return fmt.Errorf("write JSON report: %w", err)
	}
	return nil
}
