package grader

import (
	gocontext "context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// trainedTinyCheckpoint trains the tiny model for one epoch on 32 px photos and returns its
// best.ckpt and the photos.
func trainedTinyCheckpoint(t *testing.T) (string, []Sample, *Pixels) {
	t.Helper()
	samples, px := synthetic(12, 32, 3)
	c := tinyConfig(t.TempDir())
	c.Epochs, c.Patience = 1, 0
	tr, err := NewTrainer(c, testBackend(t), samples, px)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.Run(gocontext.Background(), nil); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(c.OutDir, "best.ckpt"), samples, px
}

// TestInitFromCheckpoint starts a run from trained weights at another input size: the model
// variables must equal the checkpoint's before the first step, and training must go on.
func TestInitFromCheckpoint(t *testing.T) {
	bestPath, _, _ := trainedTinyCheckpoint(t)
	ck, err := ReadCheckpoint(bestPath)
	if err != nil {
		t.Fatal(err)
	}

	samples48, px48 := synthetic(12, 48, 3)
	c48 := tinyConfig(t.TempDir())
	c48.Model.InputSize, c48.Model.Sigma, c48.Epochs, c48.Patience = 48, 1.5, 1, 0
	tr48, err := NewTrainer(c48, testBackend(t), samples48, px48)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr48.InitFromCheckpoint(ck, bestPath); err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, e := range ck.Header.Tensors {
		if !isModelVar(e.Name) {
			continue
		}
		want, err := ck.Tensor(e.Name)
		if err != nil {
			t.Fatal(err)
		}
		scope, name := splitScopeName(e.Name)
		v := tr48.Context().GetVariableByScopeAndName(scope, name)
		if v == nil {
			t.Fatalf("variable %s not created", e.Name)
		}
		got := v.MustValue()
		if !tensorsEqual(got, want) {
			t.Errorf("variable %s differs from the checkpoint", e.Name)
		}
		compared++
	}
	if compared == 0 {
		t.Fatal("the checkpoint has no model variables")
	}
	if _, err := tr48.Step(); err != nil {
		t.Fatalf("training after init: %v", err)
	}
	if err := tr48.InitFromCheckpoint(ck, bestPath); err == nil || !strings.Contains(err.Error(), "already taken") {
		t.Errorf("init after a step: err = %v, want a refusal", err)
	}
}

func TestInitFromCheckpointRejects(t *testing.T) {
	bestPath, samples, px := trainedTinyCheckpoint(t)
	ck, err := ReadCheckpoint(bestPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(*ModelConfig)
	}{
		{"wider layer", func(m *ModelConfig) { m.Layers = []Layer{{4, 2}, {16, 2}, {8, 1}} }},
		{"no high-pass channels", func(m *ModelConfig) { m.HighPass = false }},
		{"other grade head", func(m *ModelConfig) { m.GradeHidden = 4 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c2 := tinyConfig(t.TempDir())
			tc.change(&c2.Model)
			tr2, err := NewTrainer(c2, testBackend(t), samples, px)
			if err != nil {
				t.Fatal(err)
			}
			if err := tr2.InitFromCheckpoint(ck, "best.ckpt"); err == nil || !strings.Contains(err.Error(), "architecture") {
				t.Errorf("err = %v, want an architecture mismatch naming best.ckpt", err)
			}
		})
	}
	if _, _, err := readInitCheckpoint(filepath.Join(t.TempDir(), "missing.ckpt")); err == nil || !strings.Contains(err.Error(), "missing.ckpt") {
		t.Errorf("missing file: err = %v, want it named", err)
	}
	if _, _, err := readInitCheckpoint(t.TempDir()); err == nil || !strings.Contains(err.Error(), "a directory") {
		t.Errorf("directory: err = %v, want a clear refusal", err)
	}
}

// TestInitFromBuiltin loads the embedded weights into a trainer of the same architecture
// at a small input size.
func TestInitFromBuiltin(t *testing.T) {
	ck, name, err := readInitCheckpoint("builtin")
	if err != nil {
		t.Fatal(err)
	}
	samples, px := synthetic(12, 32, 3)
	c := tinyConfig(t.TempDir())
	c.Model = ck.Header.Model
	c.Model.InputSize = 32
	tr, err := NewTrainer(c, testBackend(t), samples, px)
	if err != nil {
		t.Fatal(err)
	}
	if err := tr.InitFromCheckpoint(ck, name); err != nil {
		t.Fatal(err)
	}
	if _, err := tr.Step(); err != nil {
		t.Fatalf("training after init: %v", err)
	}
}

func tensorsEqual(a, b *tensors.Tensor) bool {
	if !a.Shape().Equal(b.Shape()) {
		return false
	}
	fa, fb := tensors.MustCopyFlatData[float32](a), tensors.MustCopyFlatData[float32](b)
	for i := range fa {
		if fa[i] != fb[i] {
			return false
		}
	}
	return true
}
