package safetensors

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
)

// IndexName is the index file of a sharded checkpoint.
const IndexName = "model.safetensors.index.json"

// Checkpoint is a set of safetensors files seen as one name space: a single
// model.safetensors, a sharded checkpoint with an index, or any *.safetensors in a folder.
type Checkpoint struct {
	Dir    string
	files  []*File
	byName map[string]*File
}

// OpenCheckpoint opens the safetensors weights of a checkpoint directory.
func OpenCheckpoint(dir string) (*Checkpoint, error) {
	var paths []string
	indexPath := filepath.Join(dir, IndexName)
	if data, err := os.ReadFile(indexPath); err == nil {
		var idx struct {
			WeightMap map[string]string `json:"weight_map"`
		}
		if err := json.Unmarshal(data, &idx); err != nil {
			return nil, fmt.Errorf("parse %s: %w", indexPath, err)
		}
		seen := map[string]bool{}
		for _, shard := range idx.WeightMap {
			if !seen[shard] {
				seen[shard] = true
				paths = append(paths, filepath.Join(dir, shard))
			}
		}
		sort.Strings(paths)
		if len(paths) == 0 {
			return nil, fmt.Errorf("%s: empty weight_map", indexPath)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", indexPath, err)
	} else {
		paths, _ = filepath.Glob(filepath.Join(dir, "*.safetensors"))
		if len(paths) == 0 {
			return nil, fmt.Errorf("%s: no *.safetensors weights and no %s", dir, IndexName)
		}
	}
	c := &Checkpoint{Dir: dir, byName: map[string]*File{}}
	for _, p := range paths {
		f, err := Open(p)
		if err != nil {
			c.Close()
			return nil, err
		}
		c.files = append(c.files, f)
		for _, n := range f.Names() {
			if other, dup := c.byName[n]; dup {
				c.Close()
				return nil, fmt.Errorf("tensor %s appears in both %s and %s", n, other.Path, p)
			}
			c.byName[n] = f
		}
	}
	return c, nil
}

// Close unmaps every shard.
func (c *Checkpoint) Close() error {
	var first error
	for _, f := range c.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Names lists every tensor name, sorted.
func (c *Checkpoint) Names() []string {
	names := make([]string, 0, len(c.byName))
	for n := range c.byName {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Info describes a tensor.
func (c *Checkpoint) Info(name string) (TensorInfo, bool) {
	f, ok := c.byName[name]
	if !ok {
		return TensorInfo{}, false
	}
	return f.Info(name)
}

// Float32 reads a tensor as float32, checking its shape when want is non-nil.
func (c *Checkpoint) Float32(name string, want []int) ([]float32, error) {
	f, ok := c.byName[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: %s: %w", c.Dir, name, ErrNotFound)
	}
	info, _ := f.Info(name)
	if want != nil && !slices.Equal(info.Shape, want) {
		return nil, fmt.Errorf("checkpoint %s: tensor %s has shape %v, want %v", c.Dir, name, info.Shape, want)
	}
	v, _, err := f.Float32(name)
	return v, err
}

// Bytes returns a tensor's raw bytes (a view of the mapping, valid until Close).
func (c *Checkpoint) Bytes(name string) ([]byte, error) {
	f, ok := c.byName[name]
	if !ok {
		return nil, fmt.Errorf("checkpoint %s: %s: %w", c.Dir, name, ErrNotFound)
	}
	b, _, err := f.Bytes(name)
	return b, err
}

// Release drops a tensor's pages from resident memory once it has been copied (File.Release).
func (c *Checkpoint) Release(name string) error {
	f, ok := c.byName[name]
	if !ok {
		return fmt.Errorf("checkpoint %s: %s: %w", c.Dir, name, ErrNotFound)
	}
	return f.Release(name)
}
