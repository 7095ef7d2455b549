package remote

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
)

// modelList is the answer of GET /models.
type modelList struct {
	Object string `json:"object"`
	Data   []struct {
		ID string `json:"id"`
	} `json:"data"`
}

// check asks GET {endpoint}/models and fails clearly when the endpoint is unreachable,
// refuses the key, is not an OpenAI-compatible API, or does not serve cfg.Model.
func (m *Model) check(ctx context.Context) error {
	u := m.base.String() + "/models"
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	req, err := m.newRequest(ctx, http.MethodGet, u, nil)
	if err != nil {
		return fmt.Errorf("openai backend: %w", err)
	}
	resp, err := m.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("openai backend: cannot reach %s: %w", u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fmt.Errorf("openai backend: read GET %s: %w", u, err)
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return fmt.Errorf("openai backend: %s refused the API key (HTTP %d); set the key in the environment variable named by --api-key-env: %s",
			u, resp.StatusCode, snippet(data))
	case resp.StatusCode/100 != 2:
		return fmt.Errorf("openai backend: GET %s answered HTTP %d, not a model list: is --endpoint the API base (ending in /v1)? %s",
			u, resp.StatusCode, snippet(data))
	}
	var list modelList
	if err := json.Unmarshal(data, &list); err != nil || list.Object != "list" || list.Data == nil {
		return fmt.Errorf("openai backend: %s is not an OpenAI-compatible API: GET /models answered %q (Content-Type %q) instead of {\"object\":\"list\",\"data\":[...]}",
			m.base.String(), snippet(data), resp.Header.Get("Content-Type"))
	}
	var ids []string
	for _, d := range list.Data {
		ids = append(ids, d.ID)
	}
	if !slices.Contains(ids, m.cfg.Model) {
		return fmt.Errorf("openai backend: %s does not serve model %q (it serves: %s); with vLLM, name it with --served-model-name or --lora-modules %s=/path/to/adapter",
			m.base.String(), m.cfg.Model, strings.Join(ids, ", "), m.cfg.Model)
	}
	return nil
}
