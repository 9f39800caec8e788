package sitestore_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/web"
	"github.com/greenloop/greenloop/web/sitestore"
)

// newAPIServer is a web.Server with tokens of two tenants, its sites from a
// Registry kept by a Syncer on st, and the admin API.
func newAPIServer(t *testing.T, st *sitestore.Store) http.Handler {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), tsdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w, err := ingest.NewWriter(db, ingest.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reg := sitestore.NewRegistry(st.FileSites())
	sy, err := sitestore.NewSyncer(st, reg, sitestore.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sy.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	srv, err := web.New(web.Deps{Store: db, Writer: w, SiteSource: reg.Sites,
		Engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute})}, web.Options{Auth: config.Auth{Store: config.AuthStoreClickHouse}})
	if err != nil {
		t.Fatal(err)
	}
	var toks []web.Token
	for _, tk := range []struct {
		secret, tenant string
		role           web.Role
	}{{"acme-admin", "acme", web.RoleAdmin}, {"acme-operator", "acme", web.RoleOperator}, {"globex-admin", "globex", web.RoleAdmin}} {
		toks = append(toks, web.Token{Hash: sha(tk.secret), Identity: web.Identity{Tenant: tk.tenant, Role: tk.role, Name: "n"}})
	}
	srv.SetTokens(toks)
	sitestore.RegisterAPI(srv.Echo(), sitestore.APIDeps{Store: st, Applied: func(r *http.Request) {
		if err := sy.Refresh(r.Context()); err != nil {
			t.Error(err)
		}
	}})
	if err := srv.AddOpenAPI(sitestore.OpenAPI); err != nil {
		t.Fatal(err)
	}
	return srv.Handler()
}

func do(t *testing.T, h http.Handler, method, path, token, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// The admin API: admins only, each confined to its tenant; every problem
// of an invalid site by field path; a file site is 409; a change is in
// /api/v1/sites at once.
func TestAdminAPI(t *testing.T) {
	st, err := sitestore.New(context.Background(), dial(t), newDB(), fileSites, nil, stepClock())
	if err != nil {
		t.Fatal(err)
	}
	h := newAPIServer(t, st)
	for _, tc := range []struct {
		name, method, path, token, body string
		code                            int
		has, hasNot                     []string
	}{
		{"operator may not", "PUT", "/api/v1/admin/sites/ams1", "acme-operator", `{"zone": "NL"}`, 403, []string{"admin only"}, nil},
		{"add", "PUT", "/api/v1/admin/sites/ams1", "acme-admin", `{"name": "Amsterdam 1", "zone": "NL", "it_capacity_kw": 450}`, 201,
			[]string{`"source":"clickhouse"`, `"tenant":"acme"`, `"it_capacity_kw":450`}, nil},
		{"replace", "PUT", "/api/v1/admin/sites/ams1", "acme-admin", `{"id": "ams1", "tenant": "acme", "name": "Amsterdam 1", "zone": "NL", "it_capacity_kw": 500}`, 200,
			[]string{`"it_capacity_kw":500`}, nil},
		{"another tenant in the body", "PUT", "/api/v1/admin/sites/ams2", "acme-admin", `{"tenant": "globex", "zone": "NL"}`, 403, []string{`globex`, `is not the caller's tenant`}, nil},
		{"id differs from the path", "PUT", "/api/v1/admin/sites/ams2", "acme-admin", `{"id": "ams3", "zone": "NL"}`, 400, []string{`"path":"id"`}, nil},
		{"invalid, every field named", "PUT", "/api/v1/admin/sites/bad1", "acme-admin",
			`{"location": {"lat": 95}, "pue": {"value": 7}, "instruments": [{"id": "g", "type": "REC"}]}`, 400,
			[]string{`"path":"zone"`, `"path":"location.lat"`, `"path":"pue.value"`, `"path":"pue.basis"`, `"path":"instruments[0].type"`, `"path":"instruments[0].energy_mwh"`}, nil},
		{"unknown field", "PUT", "/api/v1/admin/sites/bad2", "acme-admin", `{"zone": "NL", "colour": "green"}`, 400, []string{"colour"}, nil},
		{"not JSON", "PUT", "/api/v1/admin/sites/bad3", "acme-admin", "zone: NL", 400, []string{"not JSON"}, nil},
		{"file site", "PUT", "/api/v1/admin/sites/fra1", "acme-admin", `{"zone": "DE"}`, 409, []string{"configuration file"}, nil},
		{"file site of another tenant's id is fine", "PUT", "/api/v1/admin/sites/fra1", "globex-admin", `{"zone": "DE"}`, 201, nil, nil},
		{"list: own tenant, both sources", "GET", "/api/v1/admin/sites", "acme-admin", "", 200,
			[]string{`"source":"file"`, `"id":"fra1"`, `"source":"clickhouse"`, `"id":"ams1"`}, []string{"globex", "lon1"}},
		{"globex does not see acme's", "GET", "/api/v1/admin/sites", "globex-admin", "", 200, []string{`"id":"fra1"`}, []string{"ams1", "acme"}},
		{"served at once", "GET", "/api/v1/sites", "acme-operator", "", 200, []string{`"id":"fra1"`, `"id":"ams1"`, `"it_capacity_kw":500`}, []string{"lon1"}},
		{"delete another tenant's", "DELETE", "/api/v1/admin/sites/ams1", "globex-admin", "", 404, nil, nil},
		{"delete a file site", "DELETE", "/api/v1/admin/sites/fra1", "acme-admin", "", 409, nil, nil},
		{"delete", "DELETE", "/api/v1/admin/sites/ams1", "acme-admin", "", 204, nil, nil},
		{"gone at once", "GET", "/api/v1/sites", "acme-operator", "", 200, []string{`"id":"fra1"`}, []string{"ams1"}},
		{"delete twice", "DELETE", "/api/v1/admin/sites/ams1", "acme-admin", "", 404, nil, nil},
		{"described", "GET", "/api/v1/openapi.json", "", "", 200, []string{`"/api/v1/admin/sites/{id}"`, "AdminSiteList"}, nil},
	} {
		code, body := do(t, h, tc.method, tc.path, tc.token, tc.body)
		if code != tc.code {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.code)
			continue
		}
		for _, s := range tc.has {
			if !strings.Contains(body, s) {
				t.Errorf("%s: answer lacks %s: %s", tc.name, s, body)
			}
		}
		for _, s := range tc.hasNot {
			if strings.Contains(body, s) {
				t.Errorf("%s: answer has %s: %s", tc.name, s, body)
			}
		}
	}
	// The invalid site's problems are all listed, once each.
	_, body := do(t, h, "PUT", "/api/v1/admin/sites/bad1", "acme-admin", `{"location": {"lat": 95}, "pue": {"value": 7}}`)
	var e struct {
		Detail struct{ Problems []sitestore.Problem } `json:"detail"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || len(e.Detail.Problems) != 4 {
		t.Errorf("problems of a site with 4: %+v (%v) %s", e.Detail.Problems, err, body)
	}
}

// With ClickHouse gone, a write is 503 with Retry-After.
func TestAdminAPIUnavailable(t *testing.T) {
	conn := dial(t)
	st, err := sitestore.New(context.Background(), conn, newDB(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := newAPIServer(t, st)
	conn.Close()
	req := httptest.NewRequest("PUT", "/api/v1/admin/sites/x1", strings.NewReader(`{"zone": "DE"}`))
	req.Header.Set("Authorization", "Bearer acme-admin")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != 503 || rec.Header().Get("Retry-After") == "" {
		t.Errorf("put with ClickHouse closed: %d %q %s", rec.Code, rec.Header().Get("Retry-After"), rec.Body)
	}
}
