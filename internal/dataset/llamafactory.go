package dataset

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// DatasetInfoName is the file LLaMA-Factory reads dataset definitions from.
const DatasetInfoName = "dataset_info.json"

// LlamaFactoryEntry is the dataset_info.json entry describing a file written by
// WriteShareGPT: sharegpt formatting with role/content message tags and an images column.
func LlamaFactoryEntry(fileName string) map[string]any {
	return map[string]any{
		"file_name":  fileName,
		"formatting": "sharegpt",
		"columns":    map[string]string{"messages": "messages", "images": "images"},
		"tags": map[string]string{
			"role_tag": "role", "content_tag": "content",
			"user_tag": "user", "assistant_tag": "assistant", "system_tag": "system",
		},
	}
}

// MergeDatasetInfo adds (or replaces) the entry name → LlamaFactoryEntry(fileName) in the
// dataset_info.json at path, keeping its other entries, and writes it atomically. A missing
// file is created.
func MergeDatasetInfo(path, name, fileName string) error {
	if name == "" {
		return errors.New("empty dataset name for " + DatasetInfoName)
	}
	entries := map[string]json.RawMessage{}
	data, err := os.ReadFile(path)
	switch {
	case err == nil:
		if len(bytes.TrimSpace(data)) > 0 {
			if err := json.Unmarshal(data, &entries); err != nil {
				return fmt.Errorf("%s is not a JSON object of datasets: %w", path, err)
			}
		}
	case errors.Is(err, fs.ErrNotExist):
	default:
		return fmt.Errorf("read %s: %w", path, err)
	}
	entry, err := json.Marshal(LlamaFactoryEntry(fileName))
	if err != nil {
		return err
	}
	entries[name] = entry
	return writeJSONAtomic(path, entries)
}
