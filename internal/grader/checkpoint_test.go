package grader

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
	"github.com/gomlx/gomlx/pkg/ml/context"
)

// weightsOf copies every model variable's values.
func weightsOf(t *testing.T, ctx *context.Context) map[string][]float32 {
	t.Helper()
	out := map[string][]float32{}
	for v := range ctx.IterVariables() {
		if !isModelVar(v.ScopeAndName()) {
			continue
		}
		out[v.ScopeAndName()] = tensors.MustCopyFlatData[float32](v.MustValue())
	}
	return out
}

func runSteps(t *testing.T, tr *Trainer, n int) []LossTerms {
	t.Helper()
	var ls []LossTerms
	for i := 0; i < n; i++ {
		if tr.State.StepInEpoch >= tr.StepsPerEpoch() {
			tr.State.Epoch++
			tr.State.StepInEpoch = 0
		}
		l, err := tr.Step()
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
	}
	return ls
}

func TestCheckpointRoundTrip(t *testing.T) {
	samples, px := synthetic(16, 32, 4)
	c := tinyConfig(t.TempDir())
	tr, err := NewTrainer(c, testBackend(t), samples, px)
	if err != nil {
		t.Fatal(err)
	}
	runSteps(t, tr, 2)
	path := filepath.Join(c.OutDir, "x.ckpt")
	if err := tr.SaveCheckpoint(path); err != nil {
		t.Fatal(err)
	}
	ck, err := ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if ck.Header.Model.Grid() != c.Model.Grid() || len(ck.Header.Tensors) == 0 {
		t.Fatalf("header: grid %d, %d tensors", ck.Header.Model.Grid(), len(ck.Header.Tensors))
	}
	want := weightsOf(t, tr.Context())
	ctx := context.New()
	if err := ck.Restore(ctx); err != nil {
		t.Fatal(err)
	}
	got := weightsOf(t, ctx)
	if len(got) != len(want) {
		t.Fatalf("restored %d model variables, want %d", len(got), len(want))
	}
	for k, w := range want {
		g := got[k]
		if len(g) != len(w) {
			t.Fatalf("%s: %d values, want %d", k, len(g), len(w))
		}
		for i := range w {
			if g[i] != w[i] {
				t.Fatalf("%s[%d] = %v, want %v", k, i, g[i], w[i])
			}
		}
	}
	// Inference loading (model variables only) gives the same predictions as the trainer.
	m, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	a, err := m.PredictPreprocessed(px.Data[:2])
	if err != nil {
		t.Fatal(err)
	}
	b, err := predictRows(tr.EvalExec(), c.Model, nil, px.Data[:2], false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range a {
		for g := range a[i].Probabilities {
			if a[i].Probabilities[g] != b[i].Probabilities[g] {
				t.Fatalf("photo %d grade %d: loaded %v, trainer %v", i, g, a[i].Probabilities[g], b[i].Probabilities[g])
			}
		}
	}
}

func TestCheckpointRejectsCorruption(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"bad magic", []byte("NOTACKPT\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")},
		{"truncated header", []byte("ACDTCMGR\x01\x00\x00\x00\xff\x00\x00\x00\x00\x00\x00\x00{}")},
		{"wrong version", []byte("ACDTCMGR\x09\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00{}")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, tc.name)
			if err := os.WriteFile(p, tc.data, 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := ReadCheckpoint(p); err == nil {
				t.Fatal("ReadCheckpoint accepted a corrupt file")
			}
		})
	}
}

// TestExactResume: a run interrupted after k steps and resumed from its checkpoint takes the
// same steps and ends with the same weights as one run straight through, for the network from
// scratch and for the pretrained backbone with its native stem.
func TestExactResume(t *testing.T) {
	for _, tc := range []struct {
		name  string
		model ModelConfig
	}{{"scratch", tinyModel()}, {"mobilenetv2", tinyMobileNetV2()}} {
		t.Run(tc.name, func(t *testing.T) {
			samples, px := synthetic(20, 32, 5)
			c := tinyConfig(t.TempDir())
			c.Model = tc.model
			const n, k = 6, 2

			full, err := NewTrainer(c, testBackend(t), samples, px)
			if err != nil {
				t.Fatal(err)
			}
			want := runSteps(t, full, n)

			first, err := NewTrainer(c, testBackend(t), samples, px)
			if err != nil {
				t.Fatal(err)
			}
			got := runSteps(t, first, k)
			path := filepath.Join(c.OutDir, "last.ckpt")
			if err := first.SaveCheckpoint(path); err != nil {
				t.Fatal(err)
			}
			resumed, err := NewTrainer(c, testBackend(t), samples, px)
			if err != nil {
				t.Fatal(err)
			}
			if err := resumed.LoadCheckpoint(path); err != nil {
				t.Fatal(err)
			}
			got = append(got, runSteps(t, resumed, n-k)...)
			for i := range want {
				if got[i] != want[i] {
					t.Errorf("step %d: losses %v after resume, %v without", i, got[i], want[i])
				}
			}
			wf, wr := weightsOf(t, full.Context()), weightsOf(t, resumed.Context())
			for name, w := range wf {
				r := wr[name]
				for i := range w {
					if r[i] != w[i] {
						t.Fatalf("%s[%d]: %v after resume, %v without", name, i, r[i], w[i])
					}
				}
			}
			if resumed.State.GlobalStep != full.State.GlobalStep {
				t.Errorf("global step %d after resume, %d without", resumed.State.GlobalStep, full.State.GlobalStep)
			}
		})
	}
}
