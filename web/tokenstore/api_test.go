package tokenstore_test

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/web"
	"github.com/greenloop/greenloop/web/tokenstore"
)

// apiEnv is a web.Server with its tokens in ClickHouse and the admin API.
type apiEnv struct {
	t   *testing.T
	srv *web.Server
	st  *tokenstore.Store
}

func newAPIEnv(t *testing.T) *apiEnv {
	t.Helper()
	ctx := context.Background()
	st, err := tokenstore.New(ctx, dial(t), newDB(), nil, stepClock())
	if err != nil {
		t.Fatal(err)
	}
	db, err := tsdb.Open(t.TempDir(), tsdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	w, err := ingest.NewWriter(db, ingest.WriterOptions{})
	if err != nil {
		t.Fatal(err)
	}
	srv, err := web.New(web.Deps{Store: db, Writer: w, Engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute})},
		web.Options{Auth: config.Auth{Store: config.AuthStoreClickHouse}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Import(ctx, []web.Token{
		webToken("acme-admin", "acme", web.RoleAdmin, "root"),
		webToken("acme-operator", "acme", web.RoleOperator, "ops"),
		webToken("globex-admin", "globex", web.RoleAdmin, "root"),
		webToken("globex-agent", "globex", web.RoleAgent, "fra1 agent"),
	}, "test"); err != nil {
		t.Fatal(err)
	}
	sy, err := tokenstore.NewSyncer(st, srv.SetTokens, tokenstore.SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := sy.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	tokenstore.RegisterAPI(srv.Echo(), tokenstore.APIDeps{Store: st, Applied: func(r *http.Request) {
		if err := sy.Refresh(r.Context()); err != nil {
			t.Error(err)
		}
	}})
	if err := srv.AddOpenAPI(tokenstore.OpenAPI); err != nil {
		t.Fatal(err)
	}
	return &apiEnv{t: t, srv: srv, st: st}
}

func (e *apiEnv) do(method, path, token, body string) (int, string) {
	e.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// The admin API: admins only, each confined to its tenant; a change applies
// on the serving server at once; no answer shows a hash whole.
func TestAdminAPI(t *testing.T) {
	e := newAPIEnv(t)
	code, body := e.do("POST", tokenstore.PathTokens, "acme-admin", `{"role": "officer", "name": "olga"}`)
	if code != 201 {
		t.Fatalf("add: %d %s", code, body)
	}
	var created struct {
		Token, HashPrefix, Tenant, Role, Name string
	}
	var raw map[string]string
	if err := json.Unmarshal([]byte(body), &raw); err != nil {
		t.Fatal(err)
	}
	created.Token, created.HashPrefix, created.Tenant, created.Role, created.Name = raw["token"], raw["hash_prefix"], raw["tenant"], raw["role"], raw["name"]
	if !strings.HasPrefix(created.Token, "glt_") || created.Tenant != "acme" || created.Role != "officer" || created.Name != "olga" ||
		created.HashPrefix != hashOf(created.Token)[:8] {
		t.Fatalf("created %+v", created)
	}
	// In force at once on this server.
	if code, body := e.do("GET", "/api/v1/labels", created.Token, ""); code != 200 {
		t.Fatalf("new token: %d %s", code, body)
	}

	for _, tc := range []struct {
		name, method, path, token, body string
		code                            int
		// has and hasNot are substrings of the answer.
		has, hasNot string
	}{
		{"list as admin", "GET", tokenstore.PathTokens, "acme-admin", "", 200, `"name":"olga"`, "globex"},
		{"list as the other tenant's admin", "GET", tokenstore.PathTokens, "globex-admin", "", 200, `"name":"fra1 agent"`, "acme"},
		{"list as operator", "GET", tokenstore.PathTokens, "acme-operator", "", 403, "admin only", ""},
		{"list as agent", "GET", tokenstore.PathTokens, "globex-agent", "", 403, "", ""},
		{"list without a token", "GET", tokenstore.PathTokens, "", "", 401, "", ""},
		{"add as operator", "POST", tokenstore.PathTokens, "acme-operator", `{"role": "admin", "name": "me"}`, 403, "", ""},
		{"add a taken name", "POST", tokenstore.PathTokens, "acme-admin", `{"role": "agent", "name": "olga"}`, 409, "live token of that name", ""},
		{"add a bad role", "POST", tokenstore.PathTokens, "acme-admin", `{"role": "root", "name": "x"}`, 400, `unknown role \"root\"`, ""},
		{"add for another tenant", "POST", tokenstore.PathTokens, "acme-admin", `{"role": "agent", "name": "x", "tenant": "globex"}`, 400, "unknown field", ""},
		{"add with a bad body", "POST", tokenstore.PathTokens, "acme-admin", `{"role":`, 400, "invalid JSON", ""},
		{"add a huge body", "POST", tokenstore.PathTokens, "acme-admin", `{"role": "agent", "name": "` + strings.Repeat("x", 20000) + `"}`, 413, "", ""},
		{"revoke another tenant's token", "POST", tokenstore.PathRevoke, "globex-admin", `{"name": "olga"}`, 404, "no live token matches", ""},
		{"revoke another tenant's token by prefix", "POST", tokenstore.PathRevoke, "globex-admin", `{"hash_prefix": "` + created.HashPrefix + `"}`, 404, "", ""},
		{"revoke an unknown name", "POST", tokenstore.PathRevoke, "acme-admin", `{"name": "nobody"}`, 404, "", ""},
		{"revoke with neither", "POST", tokenstore.PathRevoke, "acme-admin", `{}`, 400, "give a name or a hash prefix", ""},
		{"revoke with a short prefix", "POST", tokenstore.PathRevoke, "acme-admin", `{"hash_prefix": "abc"}`, 400, "6 to 64 hex digits", ""},
		{"revoke as operator", "POST", tokenstore.PathRevoke, "acme-operator", `{"name": "olga"}`, 403, "", ""},
		{"revoke", "POST", tokenstore.PathRevoke, "acme-admin", `{"name": "olga"}`, 200, `"revoked":true`, ""},
		{"revoked token", "GET", "/api/v1/labels", created.Token, "", 401, "", ""},
		{"list with revoked", "GET", tokenstore.PathTokens + "?revoked=true", "acme-admin", "", 200, `"revoked_by":"api:root@acme"`, ""},
		{"list without revoked", "GET", tokenstore.PathTokens, "acme-admin", "", 200, `"name":"ops"`, "olga"},
		{"openapi", "GET", "/api/v1/openapi.json", "", "", 200, `"/api/v1/admin/tokens/revoke"`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do(tc.method, tc.path, tc.token, tc.body)
			if code != tc.code || !strings.Contains(body, tc.has) || (tc.hasNot != "" && strings.Contains(body, tc.hasNot)) {
				t.Fatalf("%d %s\nwant %d with %q without %q", code, body, tc.code, tc.has, tc.hasNot)
			}
			if regexp.MustCompile(`[0-9a-f]{9,}`).MatchString(body) && tc.path != "/api/v1/openapi.json" {
				t.Errorf("answer shows more than a hash prefix: %s", body)
			}
		})
	}
}

// The OpenAPI document describes exactly the routes RegisterAPI mounts, and
// every schema it refers to is its own or the server's.
func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	var doc struct {
		Paths      map[string]map[string]any `json:"paths"`
		Components struct {
			Schemas map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(tokenstore.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	tokenstore.RegisterAPI(e, tokenstore.APIDeps{})
	routes := map[string]bool{}
	for _, r := range e.Routes() {
		routes[strings.ToLower(r.Method)+" "+r.Path] = true
	}
	described := map[string]bool{}
	for p, ops := range doc.Paths {
		for m := range ops {
			described[m+" "+p] = true
		}
	}
	if !maps.Equal(routes, described) {
		t.Errorf("routes %v, described %v", routes, described)
	}
	for _, m := range regexp.MustCompile(`#/components/schemas/(\w+)`).FindAllStringSubmatch(string(tokenstore.OpenAPI), -1) {
		if _, ok := doc.Components.Schemas[m[1]]; !ok && m[1] != "Error" {
			t.Errorf("schema %s referred to, not defined", m[1])
		}
	}
}
