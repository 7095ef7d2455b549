package cli

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	"github.com/spf13/viper"

	"github.com/acdtcm/acdtcm/configs"
	"github.com/acdtcm/acdtcm/internal/dataset"
)

// augCopyTiny copies the augment package's tiny fixture to a temporary directory, leaving out
// the broken photo's record unless withBroken.
func augCopyTiny(t *testing.T, withBroken bool) string {
	t.Helper()
	src := filepath.Join("..", "augment", "testdata", "tiny")
	dst := t.TempDir()
	for _, name := range []string{"face1.jpg", "face2.png", "broken.jpg", "manifest.jsonl"} {
		data, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			t.Fatal(err)
		}
		if name == "manifest.jsonl" && !withBroken {
			var keep []string
			for _, line := range strings.Split(string(data), "\n") {
				if line != "" && !strings.Contains(line, "broken.jpg") {
					keep = append(keep, line)
				}
			}
			data = []byte(strings.Join(keep, "\n") + "\n")
		}
		if err := os.WriteFile(filepath.Join(dst, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

func augRunCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Execute(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func augOutputIDs(t *testing.T, dir string) []string {
	t.Helper()
	m, err := dataset.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range m.Records {
		ids = append(ids, r.ImageID)
	}
	return ids
}

func TestAugmentCommand(t *testing.T) {
	src := augCopyTiny(t, true)
	t.Chdir(t.TempDir()) // no ./acdtcm.yaml
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	out := filepath.Join(t.TempDir(), "aug")
	code, stdout, stderr := augRunCLI(t, "augment", filepath.Join(src, "manifest.jsonl"), "--out", out, "--copies", "2", "--workers", "2", "--no-progress")
	if code != 1 {
		t.Fatalf("exit %d, want 1 (one broken photo); stderr: %s", code, stderr)
	}
	if !strings.Contains(stderr, "broken.jpg") || !strings.Contains(stdout, "skipped 1 photos") || !strings.Contains(stdout, "augmented 2 of 3 photos: wrote 4 images") {
		t.Errorf("stdout:\n%s\nstderr:\n%s", stdout, stderr)
	}
	want := "face1_aug1 face1_aug2 face2/left_aug1 face2/left_aug2"
	if got := strings.Join(augOutputIDs(t, out), " "); got != want {
		t.Errorf("output ids %q, want %q", got, want)
	}
}

func TestAugmentConfigKeys(t *testing.T) {
	src := augCopyTiny(t, false)
	t.Chdir(t.TempDir()) // no ./acdtcm.yaml
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cfg := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(cfg, []byte("augment:\n  copies: 1\n  include-original: true\n  rotation-p: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "aug")
	code, stdout, stderr := augRunCLI(t, "--config", cfg, "augment", src, "--out", out, "--no-progress")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got, want := strings.Join(augOutputIDs(t, out), " "), "face1 face1_aug1 face2/left face2/left_aug1"; got != want {
		t.Errorf("with augment.copies=1 and include-original: ids %q, want %q (stdout %s)", got, want, stdout)
	}
	// The environment beats the file.
	t.Setenv("ACDTCM_AUGMENT_COPIES", "2")
	out2 := filepath.Join(t.TempDir(), "aug")
	if code, _, stderr := augRunCLI(t, "--config", cfg, "augment", src, "--out", out2, "--no-progress"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if n := len(augOutputIDs(t, out2)); n != 6 {
		t.Errorf("ACDTCM_AUGMENT_COPIES=2: %d records, want 6", n)
	}
}

func TestAugmentBadInput(t *testing.T) {
	src := augCopyTiny(t, false)
	t.Chdir(t.TempDir()) // no ./acdtcm.yaml
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"no --out", []string{"augment", src}, "--out is required"},
		{"bad probability", []string{"augment", src, "--out", t.TempDir(), "--flip-p", "2"}, "flip-p must be in [0,1]"},
		{"bad fill", []string{"augment", src, "--out", t.TempDir(), "--fill", "red"}, "--fill"},
		{"missing manifest", []string{"augment", filepath.Join(src, "nope.jsonl"), "--out", t.TempDir()}, "nope.jsonl"},
		{"out is the source", []string{"augment", src, "--out", src}, "source manifest"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, stderr := augRunCLI(t, c.args...)
			if code == 0 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want a failure mentioning %q", code, stderr, c.want)
			}
		})
	}
}

// TestAugmentYAMLMatchesFlags keeps configs/augment.yaml and the flag defaults in step:
// every key is a flag with that default and every flag but --out has a key.
func TestAugmentYAMLMatchesFlags(t *testing.T) {
	data, err := configs.FS.ReadFile("augment.yaml")
	if err != nil {
		t.Fatal(err)
	}
	v := viper.New()
	v.SetConfigType("yaml")
	if err := v.ReadConfig(bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	keys := v.GetStringMap("augment")
	cmd := newAugmentCmd(&App{})
	for key, val := range keys {
		f := cmd.Flags().Lookup(key)
		if f == nil {
			t.Errorf("augment.yaml key %q is not a flag of acdtcm augment", key)
			continue
		}
		if got := fmt.Sprint(val); got != f.DefValue {
			t.Errorf("augment.yaml %s = %s, flag default %s", key, got, f.DefValue)
		}
	}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if _, ok := keys[f.Name]; !ok && f.Name != "out" {
			t.Errorf("flag --%s has no key in augment.yaml", f.Name)
		}
	})
	if !strings.Contains(cmd.Example, "acdtcm augment ") {
		t.Error("help has no example")
	}
}
