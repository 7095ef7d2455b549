package mlbackend

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestNormalizeGoConfig(t *testing.T) {
	cases := []struct {
		in, want string
		wantErr  string
	}{
		{"", "parallelism=-1,ops_parallel", ""},
		{"dotgeneral_large", "parallelism=-1,dotgeneral_large,ops_parallel", ""},
		{"parallelism=-1", "parallelism=-1,ops_parallel", ""},
		{"parallelism=4, dotgeneral_large", "parallelism=4,dotgeneral_large,ops_sequential", ""},
		{"parallelism=0", "parallelism=0,ops_sequential", ""},
		{"ops_parallel", "parallelism=-1,ops_parallel", ""},
		{"ops_sequential", "parallelism=-1,ops_sequential", ""},
		{"ops_sequential,parallelism=2", "ops_sequential,parallelism=2", ""},
		{"parallelism=two", "", "needs an integer"},
		{"parallelism", "", "needs an integer"},
		{"ops_sequential=1", "", "takes no value"},
		{"turbo", "", `unknown option "turbo"`},
	}
	for _, tc := range cases {
		got, err := NormalizeGoConfig(tc.in)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("NormalizeGoConfig(%q): error %v, want one containing %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeGoConfig(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

// TestNormalizeGoInferenceConfig: for inference an unnamed ops mode is always sequential;
// everything else is NormalizeGoConfig's.
func TestNormalizeGoInferenceConfig(t *testing.T) {
	cases := []struct{ in, want string }{
		{"", "parallelism=-1,ops_sequential"},
		{"parallelism=-1", "parallelism=-1,ops_sequential"},
		{"parallelism=4", "parallelism=4,ops_sequential"},
		{"ops_parallel", "parallelism=-1,ops_parallel"},
		{"dotgeneral_large,ops_parallel,parallelism=2", "dotgeneral_large,ops_parallel,parallelism=2"},
	}
	for _, tc := range cases {
		if got, err := NormalizeGoInferenceConfig(tc.in); err != nil || got != tc.want {
			t.Errorf("NormalizeGoInferenceConfig(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if _, err := NormalizeGoInferenceConfig("turbo"); err == nil {
		t.Error("NormalizeGoInferenceConfig accepted an unknown option")
	}
	for _, spec := range []string{"", "go", "go:ops_parallel"} {
		b, err := NewForInference(spec)
		if err != nil {
			t.Fatalf("NewForInference(%q): %v", spec, err)
		}
		b.Finalize()
	}
}

func TestNew(t *testing.T) {
	cases := []struct {
		spec    string
		wantErr string
	}{
		{"", ""},
		{"go", ""},
		{"go:parallelism=2", ""},
		{"simplego:ops_parallel", ""},
		{"go:bogus", "unknown option"},
		{"tpu", "unknown backend"},
	}
	for _, tc := range cases {
		b, err := New(tc.spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("New(%q): error %v, want one containing %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("New(%q): %v", tc.spec, err)
			continue
		}
		if b.String() != "go" {
			t.Errorf("New(%q).String() = %q, want go", tc.spec, b.String())
		}
		b.Finalize()
	}
}

func TestCompiled(t *testing.T) {
	got := Compiled()
	if !slices.Contains(got, "go") {
		t.Fatalf("Compiled() = %v, want it to contain go", got)
	}
	_, err := New("xla:/nonexistent/pjrt_c_api_cuda_plugin.so")
	if slices.Contains(got, "xla") {
		if err == nil || errors.Is(err, ErrXLANotCompiled) {
			t.Errorf("xla build: New(missing plugin) = %v, want a missing-file error", err)
		}
	} else if !errors.Is(err, ErrXLANotCompiled) {
		t.Errorf("noxla build: New(xla:...) = %v, want ErrXLANotCompiled", err)
	}
}

func TestSplitXLAConfig(t *testing.T) {
	cfg, opts, err := SplitXLAConfig("/abs/xla_cuda_plugin.so,preallocate=false,tf32,memory_fraction=0.5,allocator=platform")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != "/abs/xla_cuda_plugin.so,tf32" {
		t.Errorf("config for GoMLX = %q", cfg)
	}
	if opts["preallocate"] != false || opts["memory_fraction"] != float32(0.5) || opts["allocator"] != "platform" || len(opts) != 3 {
		t.Errorf("client options = %#v", opts)
	}
	if cfg, opts, err := SplitXLAConfig("cuda"); err != nil || cfg != "cuda" || opts != nil {
		t.Errorf("plain plugin: %q %v %v", cfg, opts, err)
	}
	for _, bad := range []string{"cuda,preallocate", "cuda,preallocate=maybe", "cuda,memory_fraction=0", "cuda,memory_fraction=1.5", "cuda,allocator=magic"} {
		if _, _, err := SplitXLAConfig(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}
