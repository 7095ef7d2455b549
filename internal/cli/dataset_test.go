package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/acdtcm/acdtcm/internal/dataset"
)

var updateGolden = flag.Bool("update-dataset", false, "rewrite the dataset golden files under testdata/")

func runDatasetCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Execute(args, strings.NewReader(""), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestDatasetImportSplitStatsExport(t *testing.T) {
	fixture, err := filepath.Abs(filepath.Join("..", "dataset", "testdata", "acne04"))
	if err != nil {
		t.Fatal(err)
	}
	t.Chdir(t.TempDir()) // relative paths keep the golden output independent of the machine
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())

	code, out, errOut := runDatasetCLI(t, "dataset", "import", "--format", "acne04-voc", fixture, "--out", "ds")
	if code != 0 {
		t.Fatalf("import exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "imported 4 records") || !strings.Contains(out, "per split: train 3, valid 1") || !strings.Contains(out, "skipped 5 inputs: annotation without image 1, bad file name 1, malformed annotation 1, missing annotation 1, unknown lesion name 1") {
		t.Errorf("import summary:\n%s", out)
	}
	for _, f := range []string{"levle2_9_jpg.rf.ddd444.jpg", "levle3_1_jpg.rf.eee555.xml", "levle1_2_jpg.rf.fff666.xml", "photo.jpg", "levle0_3_jpg.rf.ggg777.xml"} {
		if !strings.Contains(errOut, f) {
			t.Errorf("stderr does not name skipped %s:\n%s", f, errOut)
		}
	}

	code, _, errOut = runDatasetCLI(t, "dataset", "split", "ds", "--ratios", "0.5,0.5", "--seed", "3", "--per-split", "--out", "split")
	if code != 0 {
		t.Fatalf("split exit %d: %s", code, errOut)
	}
	m, err := dataset.ReadManifest("split")
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Records {
		if _, err := os.Stat(m.ImagePath(&m.Records[i])); err != nil {
			t.Errorf("split manifest image does not resolve: %v", err)
		}
	}
	for _, name := range []string{"train.jsonl", "valid.jsonl"} {
		if _, err := os.Stat(filepath.Join("split", name)); err != nil {
			t.Errorf("--per-split: %v", err)
		}
	}

	code, out, errOut = runDatasetCLI(t, "dataset", "stats", "split")
	if code != 0 {
		t.Fatalf("stats exit %d: %s", code, errOut)
	}
	golden := filepath.Join(pkgTestdata, "dataset-stats.golden")
	if *updateGolden {
		if err := os.WriteFile(golden, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestDatasetImportSplitStatsExport -update-dataset)", err)
	}
	if out != string(want) {
		t.Errorf("stats output differs from %s:\n%s", golden, out)
	}

	code, out, _ = runDatasetCLI(t, "dataset", "stats", "--json", "split/manifest.jsonl")
	var st dataset.Stats
	if code != 0 || json.Unmarshal([]byte(out), &st) != nil || st.Records != 4 {
		t.Errorf("stats --json exit %d: %s", code, out)
	}

	code, _, errOut = runDatasetCLI(t, "dataset", "export", "--format", "sharegpt", "split", "--split", "train", "--dataset-info", "acne_train", "--out", "sg/train.json")
	if code != 0 {
		t.Fatalf("export exit %d: %s", code, errOut)
	}
	if info, err := os.ReadFile(filepath.Join("sg", dataset.DatasetInfoName)); err != nil || !strings.Contains(string(info), `"acne_train"`) {
		t.Errorf("dataset_info.json: %v %s", err, info)
	}
	var samples []dataset.ShareGPTSample
	b, _ := os.ReadFile(filepath.Join("sg", "train.json"))
	if err := json.Unmarshal(b, &samples); err != nil || len(samples) == 0 {
		t.Fatalf("export wrote %d samples: %v", len(samples), err)
	}
	code, _, errOut = runDatasetCLI(t, "dataset", "import", "--format", "sharegpt", "sg/train.json", "--out", "back")
	if code != 0 {
		t.Fatalf("re-import exit %d: %s", code, errOut)
	}
}

// pkgTestdata is this package's testdata directory, captured before any test changes the
// working directory.
var pkgTestdata = func() string {
	p, err := filepath.Abs("testdata")
	if err != nil {
		panic(err)
	}
	return p
}()

func TestDatasetCommandErrors(t *testing.T) {
	t.Chdir(t.TempDir())
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	if err := os.MkdirAll(filepath.Join("empty", "train"), 0o755); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"nothing imported", []string{"dataset", "import", "--format", "acne04-voc", "empty", "--out", "o"}, 1, "nothing could be imported"},
		{"unknown format", []string{"dataset", "import", "--format", "coco", "empty", "--out", "o"}, 2, "unknown import format"},
		{"missing --out", []string{"dataset", "import", "--format", "json", "empty"}, 2, `"out" not set`},
		{"bad ratios", []string{"dataset", "split", "nope.jsonl", "--ratios", "0.5,0.6", "--out", "o"}, 2, "nope.jsonl"},
		{"export other format", []string{"dataset", "export", "--format", "coco", "x", "--out", "o.json"}, 2, "only sharegpt"},
		{"stats missing", []string{"dataset", "stats", "missing.jsonl"}, 2, "missing.jsonl"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runDatasetCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Errorf("exit %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.want)
			}
		})
	}
}

func TestDatasetChildrenHook(t *testing.T) {
	saved := datasetChildren
	defer func() { datasetChildren = saved }()
	registerDataset(func(app *App) *cobra.Command {
		return &cobra.Command{Use: "probe", RunE: func(cmd *cobra.Command, args []string) error {
			_, err := app.Out.Write([]byte("probe ran"))
			return err
		}}
	})
	code, out, errOut := runDatasetCLI(t, "dataset", "probe")
	if code != 0 || out != "probe ran" {
		t.Fatalf("exit %d, out %q, err %q", code, out, errOut)
	}
	code, out, _ = runDatasetCLI(t, "dataset", "--help")
	for _, sub := range []string{"import", "export", "split", "stats", "probe"} {
		if code != 0 || !strings.Contains(out, "  "+sub) {
			t.Errorf("dataset --help does not list %s:\n%s", sub, out)
		}
	}
}
