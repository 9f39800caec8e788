package e2e

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// token is one line of a tokens file, with the secret kept for the requests.
type token struct {
	secret, tenant, role, name string
}

func newToken(t *testing.T, tenant, role, name string) token {
	t.Helper()
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return token{secret: hex.EncodeToString(b), tenant: tenant, role: role, name: name}
}

// writeTokensFile writes `<sha256 hex of token> <tenant> <role> <name>` lines.
func writeTokensFile(t *testing.T, tokens ...token) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# e2e tokens: sha256(token) tenant role name\n")
	for _, tk := range tokens {
		sum := sha256.Sum256([]byte(tk.secret))
		fmt.Fprintf(&b, "%s %s %s %s\n", hex.EncodeToString(sum[:]), tk.tenant, tk.role, tk.name)
	}
	p := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(p, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestTenantsIsolation runs the server with a tokens file and checks that each
// tenant reads only its own series, and that roles and unknown tokens are refused.
func TestTenantsIsolation(t *testing.T) {
	acme := newToken(t, "acme", "operator", "acme-writer")
	globex := newToken(t, "globex", "operator", "globex-writer")
	agent := newToken(t, "acme", "agent", "acme-agent")
	reader := newToken(t, "acme", "officer", "acme-reader")
	tokensFile := writeTokensFile(t, acme, globex, agent, reader)

	gl := startServer(t, "greenloop", t.TempDir(), "--tokens-file", tokensFile)

	write := func(tk token, text string) {
		t.Helper()
		code, body := gl.importText(t, tk.secret, text)
		if code/100 != 2 {
			t.Fatalf("import as %s: HTTP %d, want 2xx: %s", tk.name, code, body)
		}
	}
	// The same series name from two tenants, with different values.
	write(acme, "e2e_tenant_power_watts{site=\"fra1\",node=\"n1\"} 111\n")
	write(globex, "e2e_tenant_power_watts{site=\"fra1\",node=\"n1\"} 222\n")
	// The agent role may write, into its own tenant.
	write(agent, "e2e_tenant_power_watts{site=\"fra1\",node=\"agent\"} 333\n")
	// A tenant label sent by the client must not put data into another tenant.
	write(acme, "e2e_tenant_spoof{tenant=\"globex\"} 7\n")

	values := func(tk token, q string) []float64 {
		t.Helper()
		var vs []float64
		for _, s := range gl.queryVector(t, tk.secret, q) {
			if tn, ok := s.Metric["tenant"]; ok && tn != tk.tenant {
				t.Errorf("%s: query %q returned a series of tenant %q: %v", tk.name, q, tn, s.Metric)
			}
			vs = append(vs, s.Value.V)
		}
		slices.Sort(vs)
		return vs
	}
	check := func(tk token, q string, want ...float64) {
		t.Helper()
		if got := values(tk, q); !slices.Equal(got, want) {
			t.Errorf("%s (tenant %s, role %s): query %q = %v, want %v", tk.name, tk.tenant, tk.role, q, got, want)
		}
	}
	check(acme, "e2e_tenant_power_watts", 111, 333)
	check(globex, "e2e_tenant_power_watts", 222)
	check(reader, "e2e_tenant_power_watts", 111, 333)
	// Naming another tenant in a query must not reach its series (the server
	// may answer nothing or confine the matcher to the caller's own tenant).
	foreign := func(tk token, q string, others ...float64) {
		t.Helper()
		for _, v := range values(tk, q) {
			if slices.Contains(others, v) {
				t.Errorf("%s (tenant %s): query %q returned %v, another tenant's value", tk.name, tk.tenant, q, v)
			}
		}
	}
	foreign(acme, `e2e_tenant_power_watts{tenant="globex"}`, 222)
	foreign(acme, `{__name__=~"e2e_tenant.*",tenant=~".+"}`, 222)
	foreign(globex, `e2e_tenant_power_watts{tenant="acme"}`, 111, 333)
	foreign(globex, `{__name__=~"e2e_tenant.+",tenant!="globex"}`, 111, 333, 7)
	check(globex, "sum(e2e_tenant_power_watts)", 222)
	check(globex, "e2e_tenant_spoof")
	check(acme, "e2e_tenant_spoof", 7)

	nodes := func(tk token) []string {
		t.Helper()
		var ns []string
		for _, s := range gl.series(t, tk.secret, "e2e_tenant_power_watts") {
			if tn, ok := s["tenant"]; ok && tn != tk.tenant {
				t.Errorf("%s: /api/v1/series returned a series of tenant %q: %v", tk.name, tn, s)
			}
			ns = append(ns, s["node"])
		}
		slices.Sort(ns)
		return ns
	}
	if got := nodes(acme); !slices.Equal(got, []string{"agent", "n1"}) {
		t.Errorf("acme: /api/v1/series nodes = %v, want [agent n1]", got)
	}
	if got := nodes(globex); !slices.Equal(got, []string{"n1"}) {
		t.Errorf("globex: /api/v1/series nodes = %v, want [n1]", got)
	}
	if got := nodes(reader); !slices.Equal(got, []string{"agent", "n1"}) {
		t.Errorf("acme reader: /api/v1/series nodes = %v, want [agent n1]", got)
	}

	// Label values are per tenant too.
	code, r, body := gl.api(t, globex.secret, "/api/v1/label/node/values", nil)
	if code != http.StatusOK || r.Status != "success" {
		t.Errorf("globex: /api/v1/label/node/values: HTTP %d: %s", code, body)
	} else if strings.Contains(string(r.Data), `"agent"`) {
		t.Errorf("globex: /api/v1/label/node/values shows acme's node \"agent\": %s", r.Data)
	}

	// Refusals: the agent role may not read; unknown and missing tokens are not let in.
	q := url.Values{"query": {"e2e_tenant_power_watts"}}
	for _, c := range []struct {
		who, secret string
		want        int
	}{
		{"agent token", agent.secret, http.StatusForbidden},
		{"unknown token", "not-a-token-" + acme.secret, http.StatusUnauthorized},
		{"no token", "", http.StatusUnauthorized},
	} {
		if code, _, body := gl.api(t, c.secret, "/api/v1/query", q); code != c.want {
			t.Errorf("%s: GET /api/v1/query: HTTP %d, want %d: %s", c.who, code, c.want, body)
		}
		if code, _, body := gl.api(t, c.secret, "/api/v1/series", url.Values{"match[]": {"e2e_tenant_power_watts"}}); code != c.want {
			t.Errorf("%s: GET /api/v1/series: HTTP %d, want %d: %s", c.who, code, c.want, body)
		}
	}
	for _, c := range []struct{ who, secret string }{{"unknown token", "nope"}, {"no token", ""}} {
		if code, body := gl.importText(t, c.secret, "e2e_tenant_intruder 1\n"); code != http.StatusUnauthorized {
			t.Errorf("%s: POST /api/v1/import/prometheus: HTTP %d, want 401: %s", c.who, code, body)
		}
	}
	for _, tk := range []token{acme, globex} {
		if vs := values(tk, "e2e_tenant_intruder"); len(vs) != 0 {
			t.Errorf("%s: a refused write was stored: e2e_tenant_intruder = %v", tk.name, vs)
		}
	}
}
