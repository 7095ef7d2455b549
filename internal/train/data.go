// Package train implements LoRA fine-tuning of Qwen2.5-VL: chat samples from a dataset
// manifest or sharegpt/messages JSON Lines, AdamW with warmup + cosine decay, gradient
// accumulation and global-norm clipping, validation each epoch through the eval package,
// best/last checkpoints written atomically and exact resume.
//
// By default only the language model is adapted: the vision tower is frozen and each photo's
// features are computed once and cached. When the adapter also has modules on the vision
// tower (visual.*: a fresh adapter without LanguageModelOnly, a TargetRegex matching them, or
// a loaded PEFT adapter whose plain target list hit the tower's MLPs), the training step runs
// the tower inside the graph, from the pixels, so gradients reach those adapters too; it is
// slower, as the tower runs every step.
package train

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/acdtcm/acdtcm/internal/dataset"
	"github.com/acdtcm/acdtcm/internal/qwen"
	"github.com/acdtcm/acdtcm/internal/severity"
	"github.com/acdtcm/acdtcm/internal/tokenizer"
)

// Sample is one training conversation with the paths of its images.
type Sample struct {
	ID       string
	Messages []tokenizer.Message
	Images   []string
	// Grade is the Hayashi grade of the answer (-1 when unknown).
	Grade int
}

// SamplesFromManifest turns each graded record of a manifest (optionally one split) into
// the grading chat: system prompt, image + question, and the answer with grade, lesion
// counts and TCM syndrome (qwen.GradingAnswer). Grades on other scales are mapped to
// Hayashi through the cross-walk; records without an equivalent are skipped and counted.
func SamplesFromManifest(path, split string) (samples []Sample, skipped int, err error) {
	m, err := dataset.ReadManifest(path)
	if err != nil {
		return nil, 0, err
	}
	for i := range m.Records {
		r := &m.Records[i]
		if split != "" && r.Split != split {
			continue
		}
		if r.Diagnosis.Severity == nil {
			skipped++
			continue
		}
		g, ok := severity.Convert(r.Diagnosis.Severity.Value, r.Diagnosis.Severity.Scale, severity.Hayashi)
		if !ok {
			skipped++
			continue
		}
		var counts map[string]int
		if len(r.Diagnosis.Lesions) > 0 {
			counts = map[string]int{}
			for _, l := range r.Diagnosis.Lesions {
				counts[l.Type]++
			}
		}
		syndrome := ""
		if r.TCMSyndrome != nil {
			syndrome = r.TCMSyndrome.Pattern
		}
		answer := qwen.GradingAnswer(g, severity.Hayashi, counts, syndrome)
		samples = append(samples, Sample{ID: r.ImageID, Messages: qwen.GradingMessages(answer), Images: []string{m.ImagePath(r)}, Grade: g})
	}
	if len(samples) == 0 {
		return nil, skipped, fmt.Errorf("manifest %s has no graded records%s", m.Path, splitNote(split))
	}
	return samples, skipped, nil
}

func splitNote(split string) string {
	if split == "" {
		return ""
	}
	return " in split " + split
}

// sharegptLine is one LLaMA-Factory / ms-swift multimodal record.
type sharegptLine struct {
	Messages []struct {
		Role    string `json:"role"`
		Content string `json:"content"`
	} `json:"messages"`
	Images []string `json:"images"`
}

// SamplesFromMessages reads sharegpt/messages JSON Lines (or a JSON array): "<image>" in a
// message marks where each image goes; image paths are relative to the file.
func SamplesFromMessages(path string) ([]Sample, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read messages: %w", err)
	}
	var lines []sharegptLine
	trimmed := strings.TrimSpace(string(data))
	if strings.HasPrefix(trimmed, "[") {
		if err := json.Unmarshal(data, &lines); err != nil {
			return nil, fmt.Errorf("parse %s: %w", path, err)
		}
	} else {
		sc := bufio.NewScanner(strings.NewReader(trimmed))
		sc.Buffer(nil, 16<<20)
		for n := 1; sc.Scan(); n++ {
			if strings.TrimSpace(sc.Text()) == "" {
				continue
			}
			var l sharegptLine
			if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
				return nil, fmt.Errorf("%s:%d: %w", path, n, err)
			}
			lines = append(lines, l)
		}
	}
	dir := filepath.Dir(path)
	var out []Sample
	for i, l := range lines {
		s := Sample{ID: fmt.Sprintf("%s#%d", filepath.Base(path), i+1), Grade: -1}
		placeholders := 0
		for _, msg := range l.Messages {
			tm := tokenizer.Message{Role: msg.Role}
			parts := strings.Split(msg.Content, "<image>")
			for k, p := range parts {
				if k > 0 {
					tm.Content = append(tm.Content, tokenizer.Content{Image: true})
					placeholders++
				}
				if p != "" {
					tm.Content = append(tm.Content, tokenizer.Content{Text: p})
				}
			}
			s.Messages = append(s.Messages, tm)
			if msg.Role == "assistant" && s.Grade < 0 {
				s.Grade = qwen.ParseLeadingGrade(msg.Content, severity.Hayashi)
			}
		}
		if placeholders != len(l.Images) {
			return nil, fmt.Errorf("%s record %d: %d <image> placeholders but %d images", path, i+1, placeholders, len(l.Images))
		}
		for _, img := range l.Images {
			if !filepath.IsAbs(img) {
				img = filepath.Join(dir, img)
			}
			s.Images = append(s.Images, img)
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no records", path)
	}
	return out, nil
}

// LoadSamples reads a manifest (file or dataset dir) or a .json/.jsonl messages file.
func LoadSamples(path, split string) ([]Sample, error) {
	if strings.HasSuffix(path, ".json") || (strings.HasSuffix(path, ".jsonl") && !isManifest(path)) {
		return SamplesFromMessages(path)
	}
	s, _, err := SamplesFromManifest(path, split)
	return s, err
}

// isManifest sniffs whether a .jsonl file holds manifest records (they have "image_id").
func isManifest(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		if line := strings.TrimSpace(sc.Text()); line != "" {
			return strings.Contains(line, `"image_id"`)
		}
	}
	return false
}
