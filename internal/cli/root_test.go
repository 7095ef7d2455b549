package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// probeCmd is a test-only command whose flag value shows which configuration layer won.
func probeCmd(app *App) *cobra.Command {
	var value string
	var list []string
	cmd := &cobra.Command{
		Use: "probe",
		RunE: func(cmd *cobra.Command, args []string) error {
			app.Out.Write([]byte(value + "|" + strings.Join(list, "+") + "|" + app.logLevel))
			return nil
		},
	}
	cmd.Flags().StringVar(&value, "value", "flag-default", "")
	cmd.Flags().StringSliceVar(&list, "list", []string{"a"}, "")
	return cmd
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(cfg, []byte("probe:\n  value: from-file\n  list: [x, y]\nlog-level: warn\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"built-in defaults", []string{"probe"}, nil, "flag-default|a|info"},
		{"config file", []string{"--config", cfg, "probe"}, nil, "from-file|x+y|warn"},
		{"env beats file", []string{"--config", cfg, "probe"}, map[string]string{"ACDTCM_PROBE_VALUE": "from-env", "ACDTCM_LOG_LEVEL": "error"}, "from-env|x+y|error"},
		{"flag beats env", []string{"--config", cfg, "probe", "--value", "from-flag", "--list", "f"}, map[string]string{"ACDTCM_PROBE_VALUE": "from-env"}, "from-flag|f|warn"},
	}
	saved := commandFactories
	commandFactories = append(append([]func(*App) *cobra.Command{}, saved...), probeCmd)
	defer func() { commandFactories = saved }()
	t.Chdir(dir) // no ./acdtcm.yaml here
	t.Setenv("XDG_CONFIG_HOME", dir)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			var out, errOut bytes.Buffer
			if code := Execute(tc.args, strings.NewReader(""), &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			if out.String() != tc.want {
				t.Errorf("got %q, want %q", out.String(), tc.want)
			}
		})
	}
}

func TestBadConfigFileNamesFile(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(cfg, []byte("log-level: [unclosed\n"), 0o644)
	var out, errOut bytes.Buffer
	code := Execute([]string{"--config", cfg, "version"}, strings.NewReader(""), &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), cfg) {
		t.Fatalf("exit %d, stderr %q: want exit 2 naming %s", code, errOut.String(), cfg)
	}
}

func TestVersionAndBadLogFormat(t *testing.T) {
	var out, errOut bytes.Buffer
	if code := Execute([]string{"version"}, strings.NewReader(""), &out, &errOut); code != 0 {
		t.Fatalf("version exit %d: %s", code, errOut.String())
	}
	for _, want := range []string{"acdtcm ", "commit:", "go: go1.", "backends:"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("version output %q lacks %q", out.String(), want)
		}
	}
	errOut.Reset()
	if code := Execute([]string{"--log-format", "xml", "version"}, strings.NewReader(""), &out, &errOut); code != 2 {
		t.Errorf("bad --log-format: exit %d, want 2", code)
	}
}
