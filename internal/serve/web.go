package serve

import (
	"embed"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"sync"

	"github.com/getkin/kin-openapi/openapi3"
)

// webFS holds the web page, the API docs page and their assets; nothing is fetched from a
// CDN.
//
//go:embed web
var webFS embed.FS

//go:embed openapi.yaml
var openapiYAML []byte

// OpenAPI returns the embedded API description, parsed and validated.
func OpenAPI() (*openapi3.T, error) {
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(openapiYAML)
	if err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	if err := doc.Validate(loader.Context); err != nil {
		return nil, fmt.Errorf("openapi.yaml: %w", err)
	}
	return doc, nil
}

var openapiJSON = sync.OnceValues(func() ([]byte, error) {
	doc, err := OpenAPI()
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(doc, "", "  ")
})

const pageCSP = "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"

func (s *Server) handleOpenAPI(w http.ResponseWriter, r *http.Request) {
	b, err := openapiJSON()
	if err != nil {
		writeAPIError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(b)
}

func (s *Server) serveAsset(w http.ResponseWriter, name string) {
	b, err := webFS.ReadFile(path.Join("web", name))
	if err != nil {
		writeError(w, http.StatusNotFound, "not_found", "no such asset: "+name)
		return
	}
	ct := map[string]string{".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}[path.Ext(name)]
	if ct == "" {
		ct = "application/octet-stream"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Security-Policy", pageCSP)
	w.Header().Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}

func (s *Server) handleIndex(w http.ResponseWriter, r *http.Request) { s.serveAsset(w, "index.html") }
func (s *Server) handleDocs(w http.ResponseWriter, r *http.Request)  { s.serveAsset(w, "docs.html") }
func (s *Server) handleStatic(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	if name == "index.html" || name == "docs.html" || path.Base(name) != name {
		writeError(w, http.StatusNotFound, "not_found", "no such asset: "+name)
		return
	}
	s.serveAsset(w, name)
}
