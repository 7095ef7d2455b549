package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// backendProbeCmd prints the backend spec it resolves and the name of the backend it opens.
func backendProbeCmd(app *App) *cobra.Command {
	var spec string
	cmd := &cobra.Command{
		Use: "bprobe",
		RunE: func(cmd *cobra.Command, args []string) error {
			b, err := openBackend(app, cmd, spec)
			if err != nil {
				return err
			}
			defer b.Finalize()
			app.Out.Write([]byte(backendSpec(app, cmd, spec) + "|" + b.String()))
			return nil
		},
	}
	addBackendFlag(cmd, &spec)
	return cmd
}

func TestBackendFlag(t *testing.T) {
	dir := t.TempDir()
	global := filepath.Join(dir, "global.yaml")
	perCmd := filepath.Join(dir, "percmd.yaml")
	os.WriteFile(global, []byte("backend: go:parallelism=1\n"), 0o644)
	os.WriteFile(perCmd, []byte("backend: go:parallelism=1\nbprobe:\n  backend: go:dotgeneral_large\n"), 0o644)
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    string
		wantErr string
	}{
		{"default", []string{"bprobe"}, nil, "go|go", ""},
		{"global key", []string{"--config", global, "bprobe"}, nil, "go:parallelism=1|go", ""},
		{"command key beats global", []string{"--config", perCmd, "bprobe"}, nil, "go:dotgeneral_large|go", ""},
		{"global env", []string{"bprobe"}, map[string]string{"ACDTCM_BACKEND": "go:ops_parallel"}, "go:ops_parallel|go", ""},
		{"flag beats all", []string{"--config", perCmd, "bprobe", "--backend", "go"}, nil, "go|go", ""},
		{"bad option", []string{"bprobe", "--backend", "go:warp"}, nil, "", `unknown option "warp"`},
	}
	saved := commandFactories
	commandFactories = append(append([]func(*App) *cobra.Command{}, saved...), backendProbeCmd)
	defer func() { commandFactories = saved }()
	t.Chdir(dir)
	t.Setenv("XDG_CONFIG_HOME", dir)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out, errOut bytes.Buffer
			code := Execute(tc.args, strings.NewReader(""), &out, &errOut)
			if tc.wantErr != "" {
				if code == 0 || !strings.Contains(errOut.String(), tc.wantErr) {
					t.Fatalf("exit %d, stderr %q: want failure containing %q", code, errOut.String(), tc.wantErr)
				}
				return
			}
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			if out.String() != tc.want {
				t.Errorf("got %q, want %q", out.String(), tc.want)
			}
		})
	}
}

func TestVersionListsBackends(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Execute([]string{"version"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("version exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), "backends: go") {
		t.Errorf("version output %q does not list the go backend", out.String())
	}
}
