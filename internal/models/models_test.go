package models

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acdtcm/acdtcm/internal/grader"
	"github.com/acdtcm/acdtcm/internal/grader/weights"
)

// TestOpenRejects covers the option combinations Open refuses before loading anything, each
// with an error that names the problem.
func TestOpenRejects(t *testing.T) {
	dir := t.TempDir()
	emptyDir := filepath.Join(dir, "not-a-model")
	if err := os.Mkdir(emptyDir, 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{"adapter on the built-in grader", Options{Adapter: "adapter"}, "not the built-in grader"},
		{"missing checkpoint", Options{Model: filepath.Join(dir, "missing.ckpt")}, "missing.ckpt"},
		{"directory without config.json", Options{Model: emptyDir}, "has no config.json"},
		{"openai without a model name", Options{Backend: "openai"}, "needs --model NAME"},
		{"openai with an adapter", Options{Backend: "openai", Model: "qwen", Adapter: "a"}, "--enable-lora"},
		{"unknown backend for the built-in grader", Options{Backend: "tpu:nowhere"}, "tpu:nowhere"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Open(tt.opts)
			if err == nil {
				t.Fatalf("Open(%+v) = %v, want an error", tt.opts, m.Info())
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not mention %q", err, tt.want)
			}
		})
	}
}

// TestOpenGrader checks the built-in grader (the default) and a grader checkpoint file (here
// a copy of the embedded weights, which Open recognises and reports under their version).
func TestOpenGrader(t *testing.T) {
	want := grader.BuiltinVersion()
	if want == "" {
		t.Fatal("the binary embeds no grader weights (internal/grader/weights/grader.json)")
	}
	ckpt := filepath.Join(t.TempDir(), "copy.ckpt")
	if err := os.WriteFile(ckpt, weights.Grader, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		model, wantName string
	}{
		{"", "grader"},
		{Builtin, "grader"},
		{ckpt, "acdtcm-grader:copy.ckpt"},
	}
	for _, tt := range tests {
		m, err := Open(Options{Model: tt.model, Backend: "go"})
		if err != nil {
			t.Fatalf("Open(%q): %v", tt.model, err)
		}
		info := m.Info()
		t.Logf("%q: %s %s", tt.model, info.Name, info.Version)
		if !strings.Contains(info.Name, tt.wantName) || !strings.HasPrefix(info.Version, want) {
			t.Errorf("Open(%q).Info() = name %q version %q, want %q and the embedded weights' %q", tt.model, info.Name, info.Version, tt.wantName, want)
		}
	}
}
