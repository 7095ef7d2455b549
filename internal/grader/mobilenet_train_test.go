package grader

import (
	"math"
	"path/filepath"
	"slices"
	"testing"

	"github.com/gomlx/gomlx/pkg/core/tensors"
)

// tinyMobileNetV2 is the pretrained backbone at 32 px (a 4x4 map), frozen up to block_2.
func tinyMobileNetV2() ModelConfig {
	return ModelConfig{InputSize: 32, Backbone: BackboneMobileNetV2, FreezeUpto: "block_2", Layers: []Layer{{8, 1}}, Norm: 2, GradeHidden: 8, Sigma: 1}
}

// TestMobileNetV2Training trains a few steps with the frozen units computed by the native stem
// and checks: frozen weights and BatchNorm statistics keep their pretrained values while the
// rest trains; the trainer's feature path (native stem + graph from block_3) predicts what the
// whole GoMLX graph does; the checkpoint holds the frozen weights, and the native engine and
// GoMLX give the same predictions from it.
func TestMobileNetV2Training(t *testing.T) {
	samples, px := synthetic(12, 32, 9)
	c := tinyConfig(t.TempDir())
	c.Model = tinyMobileNetV2()
	tr, err := NewTrainer(c, testBackend(t), samples, px)
	if err != nil {
		t.Fatal(err)
	}
	if tr.stem == nil || tr.stemUnits != 4 {
		t.Fatalf("trainer stem %v, %d units; want the native stem for Conv1..block_2 (4 units)", tr.stem, tr.stemUnits)
	}
	pre, err := pretrainedMobileNetV2()
	if err != nil {
		t.Fatal(err)
	}
	runSteps(t, tr, 3)
	w := weightsOf(t, tr.Context())
	scope := "/" + modelScope + "/" + BackboneMobileNetV2 + "/"
	for _, tc := range []struct {
		key     string
		changes bool
	}{
		{"Conv1/kernel", false},
		{"block_2_project/kernel", false},
		{"block_2_expand_BN/gamma", false},
		{"block_4_depthwise_BN/moving_variance", false},
		{"block_3_expand/kernel", true},
		{"block_5_depthwise/depthwise_kernel", true},
		{"block_5_project_BN/beta", true},
	} {
		got, ok := w[scope+tc.key]
		if !ok {
			t.Fatalf("no variable %s in the trainer's context", tc.key)
		}
		same := slices.Equal(got, tensors.MustCopyFlatData[float32](pre[tc.key]))
		if same == tc.changes {
			t.Errorf("%s: unchanged after 3 steps = %v, want %v", tc.key, same, !tc.changes)
		}
	}

	rows := px.Data[:3]
	viaStem, err := tr.predictHead(rows)
	if err != nil {
		t.Fatal(err)
	}
	whole, err := predictRows(tr.EvalExec(), c.Model, nil, rows, false)
	if err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		for k, p := range whole[i].Probabilities {
			if math.Abs(p-viaStem[i].Probabilities[k]) > 1e-4 {
				t.Errorf("photo %d: grade %d probability %.6f via the native stem, %.6f in the whole graph", i, k, viaStem[i].Probabilities[k], p)
			}
		}
		for k, n := range whole[i].LesionCounts {
			if math.Abs(n-viaStem[i].LesionCounts[k]) > 1e-3*max(1, n) {
				t.Errorf("photo %d: count %s %.5f via the native stem, %.5f in the whole graph", i, k, viaStem[i].LesionCounts[k], n)
			}
		}
	}

	path := filepath.Join(c.OutDir, "x.ckpt")
	if err := tr.SaveCheckpoint(path); err != nil {
		t.Fatal(err)
	}
	ck, err := ReadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ck.Tensor(scope + "Conv1/kernel"); err != nil {
		t.Fatalf("checkpoint lacks the frozen stem: %v", err)
	}
	compareNative(t, ck, []int{2}, 3)
}
