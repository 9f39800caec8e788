package accountingapi

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"

	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/accounting/service"
)

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Schemas map[string]json.RawMessage `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, r := range registeredRoutes(t) {
		p := r[1]
		for _, name := range []string{"id", "year"} {
			p = strings.ReplaceAll(p, ":"+name, "{"+name+"}")
		}
		served[strings.ToLower(r[0])+" "+p] = true
		if _, ok := doc.Paths[p][strings.ToLower(r[0])]; !ok {
			t.Errorf("%s %s is served but not described", r[0], p)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if m != "parameters" && !served[m+" "+p] {
				t.Errorf("%s %s is described but not served", m, p)
			}
		}
	}
	// Every $ref resolves, here or in the server's document.
	var server struct {
		Components map[string]map[string]json.RawMessage `json:"components"`
	}
	b, err := os.ReadFile("../openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &server); err != nil {
		t.Fatal(err)
	}
	for _, part := range strings.Split(string(OpenAPI), `"$ref": "#/components/`)[1:] {
		ref := part[:strings.IndexByte(part, '"')]
		kind, name, _ := strings.Cut(ref, "/")
		_, own := doc.Components.Schemas[name]
		_, theirs := server.Components[kind][name]
		if !(kind == "schemas" && own) && !theirs {
			t.Errorf("dangling $ref %s", ref)
		}
	}
}

// registeredRoutes returns (method, path) of every route Register adds.
func registeredRoutes(t *testing.T) [][2]string {
	t.Helper()
	e := echoWithRoutes(t)
	var out [][2]string
	for _, r := range e.Routes() {
		out = append(out, [2]string{r.Method, r.Path})
	}
	return out
}

func echoWithRoutes(t *testing.T) *echo.Echo {
	t.Helper()
	e := echo.New()
	Register(e, Deps{Accountant: service.New(service.Options{}), Reports: &Reports{Service: &report.Service{}}})
	return e
}
