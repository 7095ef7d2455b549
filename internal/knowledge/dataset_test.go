package knowledge

import (
	"slices"
	"testing"

	"github.com/acdtcm/acdtcm/internal/dataset"
)

func TestLesionTypesMatchDataset(t *testing.T) {
	if !slices.Equal(lesionTypes, dataset.LesionTypes) {
		t.Fatalf("knowledge lesion types %v differ from dataset.LesionTypes %v", lesionTypes, dataset.LesionTypes)
	}
	if untypedLesion != dataset.LesionUnspecified {
		t.Fatalf("knowledge untyped lesion %q differs from dataset.LesionUnspecified %q", untypedLesion, dataset.LesionUnspecified)
	}
	kb := mustLoad(t)
	var ids []string
	for _, l := range kb.LesionTypes {
		ids = append(ids, l.ID)
	}
	if !slices.Equal(ids, dataset.LesionTypes) {
		t.Errorf("lesion_types in YAML %v, want %v", ids, dataset.LesionTypes)
	}
}
