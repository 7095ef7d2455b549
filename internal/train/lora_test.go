package train

import (
	"bufio"
	gocontext "context"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/mlbackend"
	"github.com/acdtcm/acdtcm/internal/qwen"
	"github.com/acdtcm/acdtcm/internal/severity"
)

// fixture writes a tiny random checkpoint and a manifest of generated photos whose colour
// depends on the grade, so the grade is learnable.
func fixture(t testing.TB, dir string) (model, manifest string) {
	t.Helper()
	model = filepath.Join(dir, "tiny")
	if _, err := qwen.InitCheckpoint(model, qwen.InitOptions{Preset: qwen.PresetTiny, Seed: 21}); err != nil {
		t.Fatal(err)
	}
	var recs []dataset.Record
	for i := 0; i < 16; i++ {
		g := i % 4
		img := image.NewRGBA(image.Rect(0, 0, 56, 56))
		for y := 0; y < 56; y++ {
			for x := 0; x < 56; x++ {
				img.Set(x, y, color.RGBA{uint8(60 * g), uint8(x * 4), uint8(200 - 50*g + y), 255})
			}
		}
		name := fmt.Sprintf("p%02d.png", i)
		f, _ := os.Create(filepath.Join(dir, name))
		png.Encode(f, img)
		f.Close()
		split := "train"
		if i >= 12 {
			split = "valid"
		}
		recs = append(recs, dataset.Record{ImageID: name, Image: name, Split: split, SourceID: name,
			Diagnosis: dataset.Diagnosis{Severity: &severity.Grade{Value: g, Scale: severity.Hayashi}}})
	}
	manifest = filepath.Join(dir, "manifest.jsonl")
	if err := dataset.WriteManifest(manifest, recs); err != nil {
		t.Fatal(err)
	}
	return model, manifest
}

func testConfig(model, manifest, out string) LoRAConfig {
	c := DefaultLoRAConfig()
	c.Model, c.Data, c.EvalData, c.Out = model, manifest, manifest, out
	c.R, c.Alpha, c.Dropout = 4, 8, 0.1
	c.LR, c.WarmupSteps, c.BatchSize, c.GradAccum, c.Epochs = 5e-3, 2, 2, 2, 3
	c.SaveSteps, c.Seed = 1, 5
	return c
}

func run(t testing.TB, c LoRAConfig) *LoRATrainer {
	t.Helper()
	backend, err := mlbackend.New("go")
	if err != nil {
		t.Fatal(err)
	}
	tr, err := NewLoRATrainer(c, backend)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(gocontext.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return tr
}

type metricLine struct {
	Type    string   `json:"type"`
	Step    int      `json:"step"`
	Epoch   int      `json:"epoch"`
	Loss    float64  `json:"loss"`
	ValLoss *float64 `json:"val_loss"`
}

func readMetrics(t testing.TB, out string) (steps []metricLine, evals []metricLine) {
	t.Helper()
	f, err := os.Open(filepath.Join(out, "metrics.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m metricLine
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("bad metrics line %q: %v", sc.Text(), err)
		}
		if m.Type == "step" {
			steps = append(steps, m)
		} else {
			evals = append(evals, m)
		}
	}
	return
}

func TestLoRATrainingLowersLoss(t *testing.T) {
	dir := t.TempDir()
	model, manifest := fixture(t, dir)
	tr := run(t, testConfig(model, manifest, filepath.Join(dir, "out")))
	steps, evals := readMetrics(t, tr.Cfg.Out)
	if len(steps) != 3*tr.StepsPerEpoch() || len(evals) != 3 {
		t.Fatalf("%d step lines and %d eval lines for 3 epochs of %d steps", len(steps), len(evals), tr.StepsPerEpoch())
	}
	if first, last := steps[0].Loss, steps[len(steps)-1].Loss; !(last < first) {
		t.Errorf("training loss did not fall: %.4f -> %.4f", first, last)
	}
	if first, last := *evals[0].ValLoss, *evals[len(evals)-1].ValLoss; !(last < first) {
		t.Errorf("validation loss did not fall: %.4f -> %.4f", first, last)
	}
	for _, f := range []string{"checkpoint-last/adapter_model.safetensors", "checkpoint-best/adapter_config.json", "checkpoint-last/optimizer.safetensors", "loss.png"} {
		if _, err := os.Stat(filepath.Join(tr.Cfg.Out, f)); err != nil {
			t.Errorf("missing %s: %v", f, err)
		}
	}
}

// TestLoRAResumeIsExact: a run paused after some steps and resumed gives the same loss curve
// as an uninterrupted run, with the language model adapted (the default: 2 epochs, paused
// after 3 steps) and with the vision tower adapted too, trained inside the graph (1 epoch,
// paused after 1 step, validation on 2 samples).
func TestLoRAResumeIsExact(t *testing.T) {
	dir := t.TempDir()
	model, manifest := fixture(t, dir)
	for _, tc := range []struct {
		name                     string
		lmOnly                   bool
		epochs, pause, evalCount int
	}{
		{"language model only", true, 2, 3, 0},
		{"vision tower", false, 1, 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := testConfig(model, manifest, filepath.Join(dir, tc.name, "full"))
			c.Epochs, c.LanguageModelOnly, c.MaxEvalSamples = tc.epochs, tc.lmOnly, tc.evalCount
			if tr := run(t, c); tr.VisionModules() > 0 == tc.lmOnly {
				t.Fatalf("mode %q for --lora-lm-only=%v", tr.Mode(), tc.lmOnly)
			}
			want, _ := readMetrics(t, c.Out)

			c.Out = filepath.Join(dir, tc.name, "paused")
			c.MaxSteps = tc.pause
			run(t, c)
			c.MaxSteps = 0
			run(t, c)
			got, _ := readMetrics(t, c.Out)
			compareCurves(t, want, got)
		})
	}
}

func compareCurves(t *testing.T, want, got []metricLine) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("resumed run logged %d steps, uninterrupted %d", len(got), len(want))
	}
	for i := range want {
		if got[i].Step != want[i].Step || math.Abs(got[i].Loss-want[i].Loss) > 1e-6 {
			t.Errorf("step %d: resumed loss %.9f, uninterrupted %.9f", want[i].Step, got[i].Loss, want[i].Loss)
		}
	}
}

// TestLoRASIGKILLResume kills a training process with SIGKILL mid-epoch and resumes it:
// the loss curve equals the uninterrupted run's within 1e-6.
func TestLoRASIGKILLResume(t *testing.T) {
	if os.Getenv("ACDTCM_TRAIN_CHILD") != "" {
		var c LoRAConfig
		if err := json.Unmarshal([]byte(os.Getenv("ACDTCM_TRAIN_CHILD")), &c); err != nil {
			t.Fatal(err)
		}
		run(t, c)
		return
	}
	if testing.Short() {
		t.Skip("skipping the subprocess kill test in -short mode")
	}
	dir := t.TempDir()
	model, manifest := fixture(t, dir)
	c := testConfig(model, manifest, filepath.Join(dir, "full"))
	c.Epochs, c.BatchSize = 1, 1 // 6 steps in the epoch: the kill lands mid-epoch
	run(t, c)
	want, _ := readMetrics(t, c.Out)

	c.Out = filepath.Join(dir, "killed")
	cfgJSON, _ := json.Marshal(c)
	cmd := exec.Command(os.Args[0], "-test.run", "^TestLoRASIGKILLResume$")
	cmd.Env = append(os.Environ(), "ACDTCM_TRAIN_CHILD="+string(cfgJSON))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill once the child has checkpointed step 2 of 6, while it works on the next ones.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		data, err := os.ReadFile(filepath.Join(c.Out, "checkpoint-last", "trainer_state.json"))
		var st State
		if err == nil && json.Unmarshal(data, &st) == nil && st.Step >= 2 {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatal("child never checkpointed step 2")
		}
		time.Sleep(20 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	data, _ := os.ReadFile(filepath.Join(c.Out, "checkpoint-last", "trainer_state.json"))
	var st State
	json.Unmarshal(data, &st)
	if st.Done || st.StepInEpoch == 0 {
		t.Fatalf("child was not killed mid-epoch (state %+v); the test proves nothing", st)
	}
	t.Logf("killed at checkpointed step %d (epoch %d, step in epoch %d)", st.Step, st.Epoch, st.StepInEpoch)
	run(t, c)
	got, _ := readMetrics(t, c.Out)
	compareCurves(t, want, got)
}
