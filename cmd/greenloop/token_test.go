package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/web"
)

// tokenCLI runs `greenloop token args...` and returns its exit code and output.
func tokenCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var o, e bytes.Buffer
	code = run(context.Background(), append([]string{"token"}, args...), &o, &e)
	return code, o.String(), e.String()
}

// chTokensConfig writes a server configuration on ClickHouse at addr with
// the tokens there, refreshed every second.
func chTokensConfig(t *testing.T, addr, db, store string) string {
	t.Helper()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
log: {level: warn}
storage:
  backend: clickhouse
  clickhouse: {addrs: [%s], database: %s, retention: 30d}
auth: {store: %s, refresh_interval: 1s}
sites:
  - {id: fra1, name: Frankfurt 1, zone: DE, tenant: acme}
  - {id: nyc1, name: New York 1, zone: US-NY-NYIS, tenant: globex}
`, filepath.Join(dir, "data"), addr, db, store)
	p := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// startServe runs `greenloop serve --config cfg` in-process until the end
// of the test and returns its base URL.
func startServe(t *testing.T, cfg string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var out, logs syncBuffer
	done := make(chan error, 1)
	go func() { done <- runServe(ctx, []string{"--config", cfg}, &out, &logs) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Error("serve did not stop within 30 s")
		}
	})
	re := regexp.MustCompile(`serving on (http://\S+)/`)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m[1]
		}
		select {
		case err := <-done:
			t.Fatalf("serve exited: %v\n%s", err, logs.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("serve not listening after 60 s:\n%s", logs.String())
	return ""
}

// call sends a request with a bearer token and returns status and body.
func call(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// eventually polls f (status of a request) until it returns want, for at most 10 s.
func eventually(t *testing.T, what string, want int, f func() int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	got := f()
	for got != want && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		got = f()
	}
	if got != want {
		t.Fatalf("%s: status %d, want %d within 10 s", what, got, want)
	}
}

func addToken(t *testing.T, cfg, tenant, role, name string) string {
	t.Helper()
	code, out, errOut := tokenCLI(t, "add", "--config", cfg, "--tenant", tenant, "--role", role, "--name", name)
	if code != 0 {
		t.Fatalf("token add %s: exit %d: %s", name, code, errOut)
	}
	tok := strings.TrimSpace(out)
	if !strings.HasPrefix(tok, "glt_") || strings.Contains(tok, "\n") {
		t.Fatalf("token add printed %q, want the token alone", out)
	}
	return tok
}

// Two greenloop servers on one ClickHouse with auth.store clickhouse: a
// token added through the CLI works on both; revoked, it gets 401 on both
// after a refresh; tenants stay confined; while ClickHouse is down the
// servers keep the tokens they had.
func TestTokensSharedThroughClickHouse(t *testing.T) {
	chtest.Require(t)
	ch, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Stop() })
	cfg := chTokensConfig(t, ch.Addr, "tokens_e2e", "clickhouse")

	// A server starts with an empty table: auth is on, nobody gets in.
	s1, s2 := startServe(t, cfg), startServe(t, cfg)
	servers := []string{s1, s2}
	for _, s := range servers {
		if code, _ := call(t, "GET", s+"/api/v1/labels", "", ""); code != 401 {
			t.Fatalf("%s without a token: %d, want 401", s, code)
		}
	}

	acme := addToken(t, cfg, "acme", "operator", "acme ops")
	globex := addToken(t, cfg, "globex", "operator", "globex ops")
	agent := addToken(t, cfg, "acme", "agent", "fra1 agent")
	for _, s := range servers {
		for _, tk := range []string{acme, globex} {
			eventually(t, "new token on "+s, 200, func() int { c, _ := call(t, "GET", s+"/api/v1/sites", tk, ""); return c })
		}
		if code, _ := call(t, "GET", s+"/api/v1/labels", agent, ""); code != 403 {
			t.Errorf("agent reads labels on %s: %d, want 403", s, code)
		}
	}

	// Tenant confinement: acme's agent writes through s1; acme reads it
	// through s2, globex sees nothing, on either server.
	now := time.Now().UnixMilli()
	text := fmt.Sprintf("greenloop_power_watts{site=\"fra1\",node=\"n1\",source=\"import\"} 420 %d\n", now)
	if code, body := call(t, "POST", s1+"/api/v1/import/prometheus", agent, text); code != 204 {
		t.Fatalf("import as acme agent: %d %s", code, body)
	}
	query := func(server, token string) string {
		code, body := call(t, "GET", server+"/api/v1/query?query=greenloop_power_watts&time="+fmt.Sprint(now/1000+1), token, "")
		if code != 200 {
			t.Fatalf("query on %s: %d %s", server, code, body)
		}
		var r struct {
			Data struct {
				Result []struct {
					Metric map[string]string `json:"metric"`
					Value  []any             `json:"value"`
				} `json:"result"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(body), &r); err != nil {
			t.Fatal(err)
		}
		var vals []string
		for _, x := range r.Data.Result {
			if _, leak := x.Metric["tenant"]; leak {
				t.Errorf("tenant label shown: %v", x.Metric)
			}
			vals = append(vals, fmt.Sprint(x.Value[1]))
		}
		return strings.Join(vals, ",")
	}
	for _, s := range servers {
		if got := query(s, acme); got != "420" {
			t.Errorf("acme on %s reads %q, want 420", s, got)
		}
		if got := query(s, globex); got != "" {
			t.Errorf("globex on %s reads %q, want nothing", s, got)
		}
		_, sites := call(t, "GET", s+"/api/v1/sites", globex, "")
		if !strings.Contains(sites, "nyc1") || strings.Contains(sites, "fra1") {
			t.Errorf("globex's sites on %s: %s", s, sites)
		}
	}

	// list shows no full hash; revoke by name applies on both servers.
	code, out, errOut := tokenCLI(t, "list", "--config", cfg)
	if code != 0 || strings.Count(out, "live") != 3 || !strings.Contains(out, "acme ops") {
		t.Fatalf("list: exit %d\n%s%s", code, out, errOut)
	}
	if regexp.MustCompile(`[0-9a-f]{9,}`).MatchString(out) || strings.Contains(out, "glt_") {
		t.Errorf("list shows more than a hash prefix or a token:\n%s", out)
	}
	if code, out, errOut := tokenCLI(t, "revoke", "--config", cfg, "--name", "acme ops"); code != 0 || !strings.Contains(out, `revoked`) {
		t.Fatalf("revoke: exit %d %s%s", code, out, errOut)
	}
	for _, s := range servers {
		eventually(t, "revoked token on "+s, 401, func() int { c, _ := call(t, "GET", s+"/api/v1/sites", acme, ""); return c })
		if code, _ := call(t, "GET", s+"/api/v1/sites", globex, ""); code != 200 {
			t.Errorf("globex after acme's revocation on %s: %d", s, code)
		}
	}

	// ClickHouse frozen: refreshes fail, the servers keep the last good set
	// and count the failures; back, a change applies again.
	if err := ch.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = ch.Resume()
		}
	}()
	time.Sleep(3 * time.Second) // a refresh is due every second; each times out after 1 s
	for _, s := range servers {
		if code, _ := call(t, "GET", s+"/api/v1/sites", globex, ""); code != 200 {
			t.Errorf("globex with ClickHouse down on %s: %d, want 200 (last good set)", s, code)
		}
		if code, _ := call(t, "GET", s+"/api/v1/sites", acme, ""); code != 401 {
			t.Errorf("revoked token with ClickHouse down on %s: %d, want 401", s, code)
		}
		code, metrics := call(t, "GET", s+"/metrics", globex, "")
		m := regexp.MustCompile(`(?m)^greenloop_auth_tokens_refresh_errors_total (\d+)`).FindStringSubmatch(metrics)
		if code != 200 || m == nil || m[1] == "0" {
			t.Errorf("refresh errors on %s: %d %v", s, code, m)
		}
		if !strings.Contains(metrics, "greenloop_auth_tokens 2\n") {
			t.Errorf("greenloop_auth_tokens on %s is not 2:\n%s", s, grepLines(metrics, "greenloop_auth_tokens"))
		}
	}
	if err := ch.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	if code, _, errOut := tokenCLI(t, "revoke", "--config", cfg, "--name", "globex ops", "--tenant", "globex"); code != 0 {
		t.Fatalf("revoke after resume: %s", errOut)
	}
	for _, s := range servers {
		eventually(t, "revocation after ClickHouse is back on "+s, 401, func() int { c, _ := call(t, "GET", s+"/api/v1/sites", globex, ""); return c })
	}

	// The admin API on one server: the token it makes works there at once,
	// on the other after its refresh.
	admin := addToken(t, cfg, "acme", "admin", "acme admin")
	eventually(t, "admin token on "+s1, 200, func() int { c, _ := call(t, "GET", s1+"/api/v1/admin/tokens", admin, ""); return c })
	code, body := call(t, "POST", s1+"/api/v1/admin/tokens", admin, `{"role": "officer", "name": "via api"}`)
	var made struct {
		Token  string `json:"token"`
		Tenant string `json:"tenant"`
	}
	if err := json.Unmarshal([]byte(body), &made); code != 201 || err != nil || made.Tenant != "acme" {
		t.Fatalf("add through the API: %d %s", code, body)
	}
	if code, _ := call(t, "GET", s1+"/api/v1/sites", made.Token, ""); code != 200 {
		t.Errorf("token made through %s not in force there at once: %d", s1, code)
	}
	eventually(t, "token made through the API on "+s2, 200, func() int { c, _ := call(t, "GET", s2+"/api/v1/sites", made.Token, ""); return c })
	if code, _ := call(t, "POST", s2+"/api/v1/admin/tokens", agent, `{"role": "admin", "name": "escalate"}`); code != 403 {
		t.Errorf("agent adds a token: %d, want 403", code)
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The CLI: import with counts, twice; the errors it reports.
func TestTokenCLI(t *testing.T) {
	chtest.Require(t)
	ch, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Stop() })
	cfg := chTokensConfig(t, ch.Addr, "tokens_cli", "clickhouse")
	fileCfg := chTokensConfig(t, ch.Addr, "tokens_cli", "file")
	tsdbCfg := filepath.Join(t.TempDir(), "tsdb.yaml")
	if err := os.WriteFile(tsdbCfg, []byte("data_dir: ./data\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("# two tokens\n"+
		hashLine("s1", "acme admin Ops Team")+hashLine("s2", "globex agent nyc1 agent")), 0o600); err != nil {
		t.Fatal(err)
	}
	badTokens := filepath.Join(t.TempDir(), "bad-tokens")
	if err := os.WriteFile(badTokens, []byte(hashLine("s3", "acme boss x")), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name string
		args []string
		code int
		// out and errOut are substrings of stdout and stderr.
		out, errOut string
	}{
		{"import", []string{"import", "--config", cfg, tokens}, 0, "2 tokens: 2 added, 0 unchanged, 0 updated, 0 revoked before", ""},
		{"import again", []string{"import", "--config", cfg, tokens}, 0, "2 tokens: 0 added, 2 unchanged", ""},
		{"import with auth.store file notes it", []string{"import", "--config", fileCfg, tokens}, 0, "0 added, 2 unchanged", `auth.store is "file"`},
		{"import a bad file", []string{"import", "--config", cfg, badTokens}, 1, "", `unknown role "boss"`},
		{"import without a file", []string{"import", "--config", cfg}, 1, "", "want one tokens file"},
		{"list", []string{"list", "--config", cfg}, 0, "Ops Team", ""},
		{"add a taken name", []string{"add", "--config", cfg, "--tenant", "acme", "--role", "operator", "--name", "Ops Team"}, 1, "", "live token of that name"},
		{"add a bad role", []string{"add", "--config", cfg, "--tenant", "acme", "--role", "root", "--name", "x"}, 1, "", `unknown role "root"`},
		{"add without a tenant", []string{"add", "--config", cfg, "--role", "agent", "--name", "x"}, 1, "", "tenant"},
		{"revoke an unknown name", []string{"revoke", "--config", cfg, "--name", "nobody"}, 1, "", "no live token matches"},
		{"revoke with a short prefix", []string{"revoke", "--config", cfg, "--hash-prefix", "ab"}, 1, "", "6 to 64 hex digits"},
		{"revoke by prefix", []string{"revoke", "--config", cfg, "--hash-prefix", hashHex("s2")[:10]}, 0, `name "nyc1 agent"`, ""},
		{"list --revoked", []string{"list", "--config", cfg, "--revoked"}, 0, "revoked 20", ""},
		{"tsdb backend", []string{"list", "--config", tsdbCfg}, 1, "", "needs storage.backend clickhouse"},
		{"no config", []string{"list"}, 1, "", "--config is required"},
		{"unknown subcommand", []string{"rotate"}, 1, "", `unknown subcommand "rotate"`},
		{"no subcommand", nil, 1, "", "missing subcommand"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := tokenCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(out, tc.out) || !strings.Contains(errOut, tc.errOut) {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s\nwant %q and %q", code, tc.code, out, errOut, tc.out, tc.errOut)
			}
			if strings.Contains(out+errOut, hashHex("s1")[:12]) {
				t.Errorf("output shows a hash:\n%s%s", out, errOut)
			}
		})
	}
}

func hashHex(secret string) string { return fmt.Sprintf("%x", sha256.Sum256([]byte(secret))) }

// hashLine is a tokens file line for the token secret.
func hashLine(secret, rest string) string { return hashHex(secret) + " " + rest + "\n" }

// newTestWebServer is a web.Server over an embedded store, with cfg's auth.
func newTestWebServer(t *testing.T, cfg config.Server) *web.Server {
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
	srv, err := web.New(web.Deps{Store: db, Writer: w, Engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute})},
		web.Options{Auth: cfg.Auth})
	if err != nil {
		t.Fatal(err)
	}
	return srv
}

// A server with auth.store clickhouse that cannot read the tokens does not
// start, and says why.
func TestStartTokensFailsClearly(t *testing.T) {
	port, err := chtest.FreePort() // nothing listens there
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFile(chTokensConfig(t, fmt.Sprintf("127.0.0.1:%d", port), "tokens_down", "clickhouse"))
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestWebServer(t, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, err = startTokens(ctx, cfg, srv, nil, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), "auth.store clickhouse") {
		t.Fatalf("start with ClickHouse down: %v", err)
	}
	// With the file store it only hands back the file reload.
	cfg.Auth.Store = config.AuthStoreFile
	reload, stop, err := startTokens(ctx, cfg, srv, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if err := reload(); err != nil {
		t.Errorf("reload without a tokens file: %v", err)
	}
}

// With the tokens in ClickHouse auth is on, so the server may listen on
// every interface (web.New's own check reads auth.tokens_file only).
func TestWebOptionsClickHouseAuthListen(t *testing.T) {
	for _, tc := range []struct {
		store, listen string
		ok            bool
	}{
		{config.AuthStoreClickHouse, "0.0.0.0:8080", true},
		{config.AuthStoreFile, "0.0.0.0:8080", false},
		{config.AuthStoreFile, "127.0.0.1:8080", true},
	} {
		cfg := config.Default()
		cfg.Listen, cfg.Auth.Store = tc.listen, tc.store
		db, err := tsdb.Open(t.TempDir(), tsdb.Options{})
		if err != nil {
			t.Fatal(err)
		}
		w, err := ingest.NewWriter(db, ingest.WriterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		_, err = web.New(web.Deps{Store: db, Writer: w, Engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute})}, webOptions(cfg))
		db.Close()
		if (err == nil) != tc.ok {
			t.Errorf("store %s listen %s: %v, want ok=%v", tc.store, tc.listen, err, tc.ok)
		}
	}
}

// On a cluster the token table lives on the first shard only, as the
// report tables do, and servers given the whole cluster read it there.
func TestTokensOnCluster(t *testing.T) {
	chtest.Require(t)
	var addrs []string
	var ports []int
	for range 2 {
		p, err := chtest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		ports = append(ports, p)
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	cluster := chtest.Cluster{Name: "tokens2", Shards: addrs}
	dir := t.TempDir()
	for i, p := range ports {
		s, err := chtest.Start(filepath.Join(dir, fmt.Sprint("shard", i)), p, cluster)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Stop() })
	}
	cfgFile := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(cfgFile, []byte(fmt.Sprintf(`storage:
  backend: clickhouse
  clickhouse: {addrs: [%s], database: gl, cluster: tokens2}
auth: {store: clickhouse, refresh_interval: 1s}
`, strings.Join(addrs, ", "))), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := addToken(t, cfgFile, "acme", "officer", "olga")
	for i, a := range addrs {
		conn, err := tokenConn(config.Server{Storage: config.Storage{ClickHouse: config.ClickHouse{Addrs: []string{a}}}})
		if err != nil {
			t.Fatal(err)
		}
		var n uint64
		err = conn.QueryRow(context.Background(), "SELECT count() FROM system.tables WHERE database = 'gl' AND name = 'auth_tokens'").Scan(&n)
		conn.Close()
		if want := []uint64{1, 0}[i]; err != nil || n != want {
			t.Errorf("shard %d holds %d token tables (%v), want %d", i, n, err, want)
		}
	}
	cfg, err := config.LoadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestWebServer(t, cfg)
	_, stop, err := startTokens(context.Background(), cfg, srv, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	for _, tc := range []struct {
		token string
		want  int
	}{{tok, 200}, {"glt_not-a-token", 401}, {"", 401}} {
		req, _ := http.NewRequest("GET", "/api/v1/sites", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, req)
		if rec.Code != tc.want {
			t.Errorf("token %.8q: status %d, want %d", tc.token, rec.Code, tc.want)
		}
	}
}
