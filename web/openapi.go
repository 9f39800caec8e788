package web

import (
	_ "embed"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"

	"github.com/labstack/echo/v4"
)

// openAPIDoc describes every route this package serves; a test keeps the two in step.
//
//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) openAPI(c echo.Context, _ Identity) error {
	doc := s.openAPIDoc.Load()
	if doc == nil {
		return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, openAPIDoc)
	}
	return c.Blob(http.StatusOK, echo.MIMEApplicationJSON, *doc)
}

// AddOpenAPI merges the paths, tags and components of another package's
// OpenAPI 3.0 document (the routes it registered on Echo()) into the one
// served at /api/v1/openapi.json. Its $refs may point at this package's
// components. A path or component already described is an error.
func (s *Server) AddOpenAPI(doc []byte) error {
	s.openAPIMu.Lock()
	defer s.openAPIMu.Unlock()
	cur := openAPIDoc
	if p := s.openAPIDoc.Load(); p != nil {
		cur = *p
	}
	var base, add map[string]any
	if err := json.Unmarshal(cur, &base); err != nil {
		return fmt.Errorf("openapi: %w", err)
	}
	if err := json.Unmarshal(doc, &add); err != nil {
		return fmt.Errorf("openapi: the added document: %w", err)
	}
	merge := func(section string, dst, src map[string]any) error {
		for k, v := range src {
			if _, dup := dst[k]; dup {
				return fmt.Errorf("openapi: %s %q is described twice", section, k)
			}
			dst[k] = v
		}
		return nil
	}
	paths, _ := base["paths"].(map[string]any)
	addPaths, _ := add["paths"].(map[string]any)
	if paths == nil {
		paths = map[string]any{}
		base["paths"] = paths
	}
	if err := merge("path", paths, addPaths); err != nil {
		return err
	}
	comps, _ := base["components"].(map[string]any)
	if comps == nil {
		comps = map[string]any{}
		base["components"] = comps
	}
	addComps, _ := add["components"].(map[string]any)
	for kind, v := range addComps {
		src, _ := v.(map[string]any)
		dst, _ := comps[kind].(map[string]any)
		if dst == nil {
			dst = map[string]any{}
			comps[kind] = dst
		}
		if err := merge("component "+kind, dst, src); err != nil {
			return err
		}
	}
	if addTags, ok := add["tags"].([]any); ok {
		tags, _ := base["tags"].([]any)
		for _, t := range addTags {
			if !slices.ContainsFunc(tags, func(x any) bool { return tagName(x) == tagName(t) }) {
				tags = append(tags, t)
			}
		}
		base["tags"] = tags
	}
	out, err := json.MarshalIndent(base, "", "  ")
	if err != nil {
		return err
	}
	s.openAPIDoc.Store(&out)
	return nil
}

func tagName(t any) string {
	m, _ := t.(map[string]any)
	n, _ := m["name"].(string)
	return n
}
