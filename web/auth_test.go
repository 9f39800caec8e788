package web

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
)

const (
	tokAOperator = "token-of-tenant-a-operator"
	tokAAgent    = "token-of-tenant-a-agent"
	tokBAdmin    = "token-of-tenant-b-admin"
	tokBOfficer  = "token-of-tenant-b-officer"
	tokBSched    = "token-of-tenant-b-scheduler"
)

func tenantEnv(t *testing.T) *testEnv {
	return newEnv(t,
		withTokens(
			"# tenants a and b",
			tokenLine(tokAOperator, "a", "operator", "alice"),
			tokenLine(tokAAgent, "a", "agent", "fra1 agent"),
			"",
			tokenLine(tokBAdmin, "b", "admin", "bob"),
			tokenLine(tokBOfficer, "b", "officer", "olga"),
			tokenLine(tokBSched, "b", "scheduler", "k8s"),
		),
		withSites(
			config.Site{ID: "fra1", Name: "Frankfurt 1", Tenant: "a", Zone: "DE", Location: config.Location{Lat: 50.11, Lon: 8.68}, ITCapacityKW: 800},
			config.Site{ID: "par1", Name: "Paris 1", Tenant: "b", Zone: "FR", Location: config.Location{Lat: 48.85, Lon: 2.35}, ITCapacityKW: 300},
			config.Site{ID: "lon1", Name: "London 1", Zone: "GB"},
		),
	)
}

func TestTenantsAreIsolated(t *testing.T) {
	e := tenantEnv(t)
	write := func(token string, v float64) {
		t.Helper()
		body := remoteWriteBody(t, tsIn{labels: []string{"__name__", "greenloop_power_watts", "site", "fra1", "tenant", "forged"}, pts: []sample.Point{{T: nowMs, V: v}}})
		rec := e.do(req{method: http.MethodPost, target: "/api/v1/write", body: body, header: rwHeaders, token: token})
		if rec.Code != http.StatusNoContent {
			t.Fatalf("write: status %d; body %s", rec.Code, rec.Body)
		}
	}
	write(tokAAgent, 1)
	write(tokBAdmin, 2)

	for _, tc := range []struct {
		token, want string
	}{
		{tokAOperator, "1"},
		{tokBAdmin, "2"},
		{tokBOfficer, "2"},
		{tokBSched, "2"},
	} {
		got := e.instant(`greenloop_power_watts`, tc.token)
		if len(got) != 1 || got["map[__name__:greenloop_power_watts site:fra1]"] != tc.want {
			t.Errorf("query as %s: %v, want only the value %s without a tenant label", tc.token, got, tc.want)
		}
		// A selector naming tenant a does not escape the confinement: tenant a
		// finds its own series, tenant b nothing.
		got = e.instant(`greenloop_power_watts{tenant="a"}`, tc.token)
		if tc.token == tokAOperator {
			if len(got) != 1 || got["map[__name__:greenloop_power_watts site:fra1]"] != tc.want {
				t.Errorf("query with its own tenant matcher as %s: %v", tc.token, got)
			}
		} else if len(got) != 0 {
			t.Errorf("query with the other tenant's matcher as %s: %v, want nothing", tc.token, got)
		}
		b := e.get("/api/v1/series?match[]=greenloop_power_watts", tc.token, 200)
		if want := `{"status":"success","data":[{"__name__":"greenloop_power_watts","site":"fra1"}]}`; string(b) != want {
			t.Errorf("series as %s: %s, want %s", tc.token, b, want)
		}
		b = e.get("/api/v1/labels", tc.token, 200)
		if want := `{"status":"success","data":["__name__","site"]}`; string(b) != want {
			t.Errorf("labels as %s: %s, want %s", tc.token, b, want)
		}
		b = e.get("/api/v1/label/tenant/values", tc.token, 200)
		if want := `{"status":"success","data":[]}`; string(b) != want {
			t.Errorf("tenant values as %s: %s", tc.token, b)
		}
	}

	// Sites: each tenant its own; unset tenant means "default".
	var sites struct {
		Sites []map[string]any `json:"sites"`
	}
	if err := json.Unmarshal(e.get("/api/v1/sites", tokAOperator, 200), &sites); err != nil {
		t.Fatal(err)
	}
	if len(sites.Sites) != 1 || sites.Sites[0]["id"] != "fra1" || sites.Sites[0]["it_capacity_kw"] != 800.0 ||
		sites.Sites[0]["location"].(map[string]any)["lat"] != 50.11 || sites.Sites[0]["zone"] != "DE" || sites.Sites[0]["name"] != "Frankfurt 1" {
		t.Errorf("sites of a: %v", sites)
	}
	if b := e.get("/api/v1/sites", tokBOfficer, 200); !strings.Contains(string(b), `"par1"`) || strings.Contains(string(b), "fra1") || strings.Contains(string(b), "lon1") {
		t.Errorf("sites of b: %s", b)
	}
}

func TestAuthStatusCodes(t *testing.T) {
	e := tenantEnv(t)
	rw := remoteWriteBody(t, tsIn{labels: []string{"__name__", "up"}, pts: []sample.Point{{T: nowMs, V: 1}}})
	tests := []struct {
		name    string
		method  string
		target  string
		body    []byte
		header  map[string]string
		token   string
		code    int
		promErr bool
	}{
		{"query without token", "GET", "/api/v1/query?query=up", nil, nil, "", 401, true},
		{"query with unknown token", "GET", "/api/v1/query?query=up", nil, nil, "not-a-token", 401, true},
		{"query as agent", "GET", "/api/v1/query?query=up", nil, nil, tokAAgent, 403, true},
		{"query_range as agent", "POST", "/api/v1/query_range", nil, nil, tokAAgent, 403, true},
		{"series as agent", "GET", "/api/v1/series?match[]=up", nil, nil, tokAAgent, 403, true},
		{"labels as agent", "GET", "/api/v1/labels", nil, nil, tokAAgent, 403, true},
		{"sites as agent", "GET", "/api/v1/sites", nil, nil, tokAAgent, 403, false},
		{"metrics as agent", "GET", "/metrics", nil, nil, tokAAgent, 403, false},
		{"metrics as officer", "GET", "/metrics", nil, nil, tokBOfficer, 403, false},
		{"metrics as operator", "GET", "/metrics", nil, nil, tokAOperator, 200, false},
		{"write without token", "POST", "/api/v1/write", rw, rwHeaders, "", 401, false},
		{"write as agent", "POST", "/api/v1/write", rw, rwHeaders, tokAAgent, 204, false},
		{"write as operator", "POST", "/api/v1/write", rw, rwHeaders, tokAOperator, 204, false},
		{"write as officer", "POST", "/api/v1/write", rw, rwHeaders, tokBOfficer, 403, false},
		{"import as scheduler", "POST", "/api/v1/import/prometheus", []byte("up 1\n"), nil, tokBSched, 403, false},
		{"import as admin", "POST", "/api/v1/import/prometheus", []byte("up 1\n"), nil, tokBAdmin, 204, false},
		{"healthz without token", "GET", "/healthz", nil, nil, "", 200, false},
		{"readyz without token", "GET", "/readyz", nil, nil, "", 200, false},
		{"openapi without token", "GET", "/api/v1/openapi.json", nil, nil, "", 200, false},
		{"unknown path without token", "GET", "/nope", nil, nil, "", 401, false},
		{"unknown path with token", "GET", "/nope", nil, nil, tokAOperator, 404, false},
		{"lower-case bearer", "GET", "/api/v1/labels", nil, map[string]string{"Authorization": "bearer " + tokBOfficer}, "", 200, true},
		{"basic auth", "GET", "/api/v1/labels", nil, map[string]string{"Authorization": "Basic dXNlcjpwYXNz"}, "", 401, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.do(req{method: tc.method, target: tc.target, body: tc.body, header: tc.header, token: tc.token})
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.code, rec.Body)
			}
			if tc.code == 401 && !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer (got %q)", rec.Header().Get("WWW-Authenticate"))
			}
			if tc.code < 400 {
				return
			}
			var body map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["error"] == nil {
				t.Fatalf("want a JSON error, got %s", rec.Body)
			}
			if tc.promErr && body["status"] != "error" {
				t.Errorf("want Prometheus' error shape, got %s", rec.Body)
			}
			if strings.Contains(rec.Body.String(), "token-of") {
				t.Errorf("response leaks a token: %s", rec.Body)
			}
		})
	}
}

func TestParseTokens(t *testing.T) {
	hash := strings.Repeat("ab", 32)
	f := func(in string, want []Token, wantErr ...string) {
		t.Helper()
		got, err := ParseTokens(strings.NewReader(in))
		if len(wantErr) > 0 {
			if err == nil {
				t.Fatalf("ParseTokens(%q): no error, want %v", in, wantErr)
			}
			for _, w := range wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("ParseTokens(%q) error %q does not mention %q", in, err, w)
				}
			}
			return
		}
		if err != nil {
			t.Fatalf("ParseTokens(%q): %v", in, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("ParseTokens(%q) = %+v, want %+v", in, got, want)
		}
	}
	var h [32]byte
	for i := range h {
		h[i] = 0xab
	}
	f("", nil)
	f("# only a comment\n\n   \n", nil)
	f(hash+" acme admin Ops Team\n", []Token{{Hash: h, Identity: Identity{Tenant: "acme", Role: RoleAdmin, Name: "Ops Team"}}})
	f(strings.ToUpper(hash)+"\tacme\tagent\tfra1\n", []Token{{Hash: h, Identity: Identity{Tenant: "acme", Role: RoleAgent, Name: "fra1"}}})
	f("# header\n"+hash+" acme admin\n", nil, "line 2", "fields")
	f("\nxyz acme admin n\n", nil, "line 2", "64 hex digits")
	f(strings.Repeat("zz", 32)+" acme admin n\n", nil, "line 1", "not hex")
	f(hash+" acme root n\n", nil, "line 1", `unknown role "root"`)
	f(hash+" acme admin a\n"+hash+" other admin b\n", nil, "line 2", "same token hash as line 1")
	f("bad\n"+hash+" acme boss n\n", nil, "line 1", "line 2")
}

func TestReloadTokens(t *testing.T) {
	e := tenantEnv(t)
	e.get("/api/v1/labels", tokBOfficer, 200)
	p := e.srv.opts.Auth.TokensFile
	if err := os.WriteFile(p, []byte(tokenLine("new-token", "b", "officer", "n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ReloadTokens(); err != nil {
		t.Fatal(err)
	}
	e.get("/api/v1/labels", tokBOfficer, 401)
	e.get("/api/v1/labels", "new-token", 200)
	// A broken file keeps the tokens in force.
	if err := os.WriteFile(p, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ReloadTokens(); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("reload of a bad file: %v", err)
	}
	e.get("/api/v1/labels", "new-token", 200)
}

func TestNoAuthOnlyOnLoopback(t *testing.T) {
	e := newEnv(t)
	deps := e.srv.deps
	for _, tc := range []struct {
		listen string
		ok     bool
	}{
		{"127.0.0.1:8080", true},
		{"[::1]:8080", true},
		{"localhost:8080", true},
		{"127.1.2.3:0", true},
		{"0.0.0.0:8080", false},
		{":8080", false},
		{"[::]:8080", false},
		{"10.0.0.5:8080", false},
		{"greenloop.example:8080", false},
	} {
		_, err := New(deps, Options{Listen: tc.listen})
		if tc.ok != (err == nil) {
			t.Errorf("New(listen %q): err %v, want ok=%v", tc.listen, err, tc.ok)
			continue
		}
		if err != nil && (!strings.Contains(err.Error(), tc.listen) || !strings.Contains(err.Error(), "auth.tokens_file")) {
			t.Errorf("error %q should name %q and auth.tokens_file", err, tc.listen)
		}
	}
	// With a tokens file any address is fine.
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte(tokenLine("x", "t", "admin", "n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(deps, Options{Listen: "0.0.0.0:8080", Auth: config.Auth{TokensFile: p}}); err != nil {
		t.Errorf("with tokens: %v", err)
	}
	// Serve checks the real listener too: one on every interface is refused.
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		t.Skip("cannot listen on all interfaces:", err)
	}
	err = e.srv.Serve(context.Background(), ln)
	if err == nil || !strings.Contains(err.Error(), "auth.tokens_file") || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Errorf("Serve on %s without auth: %v", ln.Addr(), err)
	}
}

// withAuthStore sets auth.store (tokens then come through SetTokens).
func withAuthStore(store string) envOpt {
	return func(c *envConfig) { c.opts.Auth.Store = store }
}

// tokenFor is the Token of bearer tok.
func tokenFor(tok, tenant string, role Role, name string) Token {
	return Token{Hash: sha256.Sum256([]byte(tok)), Identity: Identity{Tenant: tenant, Role: role, Name: name}}
}

// With auth.store clickhouse the tokens come through SetTokens: auth is on
// from the start (even with no token yet), each set replaces the previous
// one whole, and tenants stay confined as with a tokens file.
func TestSetTokens(t *testing.T) {
	e := newEnv(t, withAuthStore(config.AuthStoreClickHouse))
	if !e.srv.authEnabled() {
		t.Fatal("auth off with auth.store clickhouse")
	}
	e.get("/api/v1/labels", "", 401)
	e.get("/api/v1/labels", tokAOperator, 401)

	e.srv.SetTokens([]Token{tokenFor(tokAOperator, "a", RoleOperator, "alice"), tokenFor(tokBOfficer, "b", RoleOfficer, "olga")})
	body := remoteWriteBody(t, tsIn{labels: []string{"__name__", "greenloop_power_watts", "site", "fra1"}, pts: []sample.Point{{T: nowMs, V: 7}}})
	if rec := e.do(req{method: http.MethodPost, target: "/api/v1/write", body: body, header: rwHeaders, token: tokAOperator}); rec.Code != http.StatusNoContent {
		t.Fatalf("write as a: status %d; body %s", rec.Code, rec.Body)
	}
	for _, tc := range []struct {
		token string
		want  map[string]string
	}{
		{tokAOperator, map[string]string{"map[__name__:greenloop_power_watts site:fra1]": "7"}},
		{tokBOfficer, map[string]string{}},
	} {
		if got := e.instant(`greenloop_power_watts`, tc.token); !maps.Equal(got, tc.want) {
			t.Errorf("query as %s: %v, want %v", tc.token, got, tc.want)
		}
	}
	if rec := e.do(req{method: http.MethodPost, target: "/api/v1/write", body: body, header: rwHeaders, token: tokBOfficer}); rec.Code != http.StatusForbidden {
		t.Errorf("write as officer: status %d, want 403", rec.Code)
	}

	// A later set replaces the whole table: alice is revoked, a new token works.
	toks := []Token{tokenFor(tokBOfficer, "b", RoleOfficer, "olga"), tokenFor("new-token", "a", RoleScheduler, "k8s")}
	e.srv.SetTokens(toks)
	toks[0].Tenant = "a" // the server keeps its own copy
	e.get("/api/v1/labels", tokAOperator, 401)
	e.get("/api/v1/labels", "new-token", 200)
	if got := e.instant(`greenloop_power_watts`, tokBOfficer); len(got) != 0 {
		t.Errorf("officer of b sees %v after the caller changed its slice", got)
	}
	// An empty set leaves auth on: nobody gets in.
	e.srv.SetTokens(nil)
	e.get("/api/v1/labels", "new-token", 401)
	e.get("/api/v1/labels", "", 401)
	// ReloadTokens has no file to read and keeps what is in force.
	e.srv.SetTokens([]Token{tokenFor("kept", "a", RoleOfficer, "k")})
	if err := e.srv.ReloadTokens(); err != nil {
		t.Fatal(err)
	}
	e.get("/api/v1/labels", "kept", 200)
}
