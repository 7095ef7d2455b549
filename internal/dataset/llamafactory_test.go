package dataset

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestMergeDatasetInfo(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DatasetInfoName)
	if err := os.WriteFile(path, []byte(`{"other": {"file_name": "x.json", "formatting": "alpaca"}}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MergeDatasetInfo(path, "acne04_train", "train.json"); err != nil {
		t.Fatal(err)
	}
	if err := MergeDatasetInfo(path, "acne04_train", "train2.json"); err != nil { // replaces
		t.Fatal(err)
	}
	var got map[string]map[string]any
	b, _ := os.ReadFile(path)
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got["other"]["formatting"] != "alpaca" {
		t.Errorf("existing entry lost: %s", b)
	}
	e := got["acne04_train"]
	tags, _ := e["tags"].(map[string]any)
	cols, _ := e["columns"].(map[string]any)
	if e["file_name"] != "train2.json" || e["formatting"] != "sharegpt" || tags["system_tag"] != "system" || tags["role_tag"] != "role" ||
		!reflect.DeepEqual(cols, map[string]any{"messages": "messages", "images": "images"}) {
		t.Errorf("entry = %v", e)
	}
	if err := os.WriteFile(path, []byte(`[1]`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := MergeDatasetInfo(path, "a", "a.json"); err == nil {
		t.Error("a dataset_info.json that is not an object should be an error")
	}
	if err := MergeDatasetInfo(filepath.Join(dir, "new", DatasetInfoName), "a", "a.json"); err != nil {
		t.Errorf("creating a new dataset_info.json: %v", err)
	}
}
