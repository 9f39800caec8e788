package web

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io"
	"math"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
)

func TestHealthReadyMetrics(t *testing.T) {
	e := newEnv(t)
	var notReady error = errors.New("demo history loading")
	e.srv.deps.Ready = func() error { return notReady }

	e.get("/healthz", "", 200)
	b := e.get("/readyz", "", 503)
	if !strings.Contains(string(b), "demo history loading") {
		t.Errorf("readyz: %s", b)
	}
	notReady = nil
	e.get("/readyz", "", 200)
	e.get("/api/v1/label/site/values", "", 200)
	e.get("/api/v1/label/node/values", "", 200)
	e.get("/no/such/path", "", 404)

	m := string(e.get("/metrics", "", 200))
	for _, want := range []string{
		`greenloop_http_requests_total{code="200",method="GET",route="/healthz"} 1`,
		`greenloop_http_requests_total{code="503",method="GET",route="/readyz"} 1`,
		`greenloop_http_requests_total{code="200",method="GET",route="/api/v1/label/:name/values"} 2`,
		`greenloop_http_requests_total{code="404",method="GET",route="unmatched"} 1`,
		`greenloop_http_request_duration_seconds_count{code="200",route="/api/v1/label/:name/values"} 2`,
		`greenloop_http_requests_in_flight 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

func TestPanicIsA500(t *testing.T) {
	e := newEnv(t)
	e.srv.Echo().GET("/boom", func(c echo.Context) error { panic("kaboom") })
	rec := e.do(req{target: "/boom"})
	if rec.Code != 500 || !strings.Contains(rec.Body.String(), `"error":"internal server error"`) || strings.Contains(rec.Body.String(), "kaboom") {
		t.Errorf("status %d, body %s", rec.Code, rec.Body)
	}
}

func TestForeignRoutesSeeTheCaller(t *testing.T) {
	e := tenantEnv(t)
	e.srv.Echo().GET("/ui/whoami", func(c echo.Context) error {
		return c.String(200, c.Get(ContextKeyTenant).(string)+"/"+c.Get(ContextKeyRole).(string))
	})
	if b := e.get("/ui/whoami", tokBOfficer, 200); string(b) != "b/officer" {
		t.Errorf("got %s", b)
	}
	e.get("/ui/whoami", "", 401)
	e.get("/ui/whoami", tokAAgent, 403)
}

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	e := newEnv(t)
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(e.get("/api/v1/openapi.json", "", 200), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.0") {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	served := map[string]bool{}
	for _, r := range e.srv.Echo().Routes() {
		if _, own := e.srv.routes[r.Path]; !own {
			continue
		}
		p := r.Path
		if i := strings.Index(p, ":name"); i >= 0 {
			p = p[:i] + "{name}" + p[i+len(":name"):]
		}
		key := strings.ToLower(r.Method) + " " + p
		served[key] = true
		if _, ok := doc.Paths[p][strings.ToLower(r.Method)]; !ok {
			t.Errorf("%s is served but not in openapi.json", key)
		}
	}
	for p, ops := range doc.Paths {
		for m := range ops {
			if !served[m+" "+p] {
				t.Errorf("openapi.json describes %s %s, which is not served", m, p)
			}
		}
	}
	// Every $ref resolves.
	raw := string(openAPIDoc)
	var full map[string]any
	if err := json.Unmarshal(openAPIDoc, &full); err != nil {
		t.Fatal(err)
	}
	comps := full["components"].(map[string]any)
	for _, part := range strings.Split(raw, `"$ref": "#/components/`)[1:] {
		ref := part[:strings.IndexByte(part, '"')]
		kind, name, _ := strings.Cut(ref, "/")
		if _, ok := comps[kind].(map[string]any)[name]; !ok {
			t.Errorf("dangling $ref %s", ref)
		}
	}
}

func TestJSONStringsMatchEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "plain", `q"uote`, `back\slash`, "nl\n cr\r tab\t bs\b ff\f nul\x00 esc\x1b", "<a href='x'>&amp;</a>",
		"ünïcödé ✓ 😀", "bad utf8 \xff\xfe end", "line\u2028sep\u2029", "\x7f del"} {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
	for _, tc := range []struct {
		f    float64
		want string
	}{
		{0, `"0"`}, {1.5, `"1.5"`}, {-3, `"-3"`}, {1e-7, `"1e-07"`}, {1e-6, `"0.000001"`}, {1e21, `"1e+21"`}, {123456789012, `"123456789012"`},
		{math.Inf(1), `"+Inf"`}, {math.Inf(-1), `"-Inf"`}, {math.NaN(), `"NaN"`},
	} {
		if got := appendSampleValue(nil, tc.f); string(got) != tc.want {
			t.Errorf("appendSampleValue(%v) = %s, want %s", tc.f, got, tc.want)
		}
	}
	for _, tc := range []struct {
		t    int64
		want string
	}{{0, "0"}, {1700000000000, "1700000000"}, {1700000000001, "1700000000.001"}, {1700000000010, "1700000000.010"}, {1700000000123, "1700000000.123"}, {-1500, "-1.500"}} {
		if got := appendTimestamp(nil, tc.t); string(got) != tc.want {
			t.Errorf("appendTimestamp(%d) = %s, want %s", tc.t, got, tc.want)
		}
	}
}

// TestPromtool runs Prometheus' own client, promtool, against the server.
func TestPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		missingTool(t, "promtool")
	}
	e := newEnv(t)
	now := time.Now()
	e.appendDirect(labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1"),
		sample.Point{T: now.Add(-time.Minute).UnixMilli(), V: 211}, sample.Point{T: now.UnixMilli(), V: 212.5})
	e.srv.now = time.Now
	url := serve(t, e.srv, nil)

	run := func(args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, promtool, append([]string{"query"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("promtool query %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("instant", url, "greenloop_power_watts"); !strings.Contains(out, `greenloop_power_watts{site="fra1"} => 212.5`) {
		t.Errorf("instant: %s", out)
	}
	start := now.Add(-2 * time.Minute).Format(time.RFC3339)
	end := now.Add(time.Minute).Format(time.RFC3339)
	if out := run("range", "--start="+start, "--end="+end, "--step=30s", url, "greenloop_power_watts"); !strings.Contains(out, "212.5 @[") || !strings.Contains(out, "211 @[") {
		t.Errorf("range: %s", out)
	}
	if out := run("series", "--match=greenloop_power_watts", url); !strings.Contains(out, `{__name__="greenloop_power_watts", site="fra1"}`) {
		t.Errorf("series: %s", out)
	}
	if out := run("labels", url, "site"); strings.TrimSpace(out) != "fra1" {
		t.Errorf("labels: %s", out)
	}
}

// serve runs s.Serve on a loopback port until the test ends and returns its base URL.
func serve(t *testing.T, s *Server, tlsClient *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Serve returned %v after shutdown", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Serve did not return after shutdown")
		}
	})
	scheme := "http"
	if s.tls != nil {
		scheme = "https"
	}
	return scheme + "://" + ln.Addr().String()
}

func TestServeMutualTLS(t *testing.T) {
	dir := t.TempDir()
	ca, caKey := newCert(t, "test CA", nil, nil, true)
	srvCert, srvKey := newCert(t, "127.0.0.1", ca, caKey, false)
	cliCert, cliKey := newCert(t, "agent", ca, caKey, false)
	write := func(name string, der []byte, typ string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyDER := func(k *ecdsa.PrivateKey) []byte {
		b, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tlsCfg := config.TLS{
		CertFile:     write("srv.crt", srvCert.Raw, "CERTIFICATE"),
		KeyFile:      write("srv.key", keyDER(srvKey), "EC PRIVATE KEY"),
		ClientCAFile: write("ca.crt", ca.Raw, "CERTIFICATE"),
	}
	e := newEnv(t)
	s, err := New(e.srv.deps, Options{Listen: "127.0.0.1:0", TLS: tlsCfg})
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, s, nil)
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	withCert := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots,
		Certificates: []tls.Certificate{{Certificate: [][]byte{cliCert.Raw}, PrivateKey: cliKey}}}}}
	resp, err := withCert.Get(url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("with a client certificate: status %d", resp.StatusCode)
	}
	withCert.CloseIdleConnections()

	without := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	if resp, err := without.Get(url + "/healthz"); err == nil {
		resp.Body.Close()
		t.Errorf("without a client certificate: status %d, want a handshake failure", resp.StatusCode)
	}
	// A bad client CA file is refused up front.
	bad := tlsCfg
	bad.ClientCAFile = tlsCfg.KeyFile
	if _, err := New(e.srv.deps, Options{TLS: bad}); err == nil || !strings.Contains(err.Error(), "no PEM certificate") {
		t.Errorf("bad client CA: %v", err)
	}
}

func newCert(t *testing.T, cn string, parent *x509.Certificate, parentKey *ecdsa.PrivateKey, isCA bool) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, _ := rand.Int(rand.Reader, big.NewInt(math.MaxInt64))
	tpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IsCA:        isCA, BasicConstraintsValid: true,
	}
	if ip := net.ParseIP(cn); ip != nil {
		tpl.IPAddresses = []net.IP{ip}
	}
	if parent == nil {
		parent, parentKey = tpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func TestGracefulShutdownFinishesRequests(t *testing.T) {
	e := newEnv(t)
	started, release := make(chan struct{}), make(chan struct{})
	e.srv.Echo().GET("/slow", func(c echo.Context) error {
		close(started)
		<-release
		return c.String(200, "done")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	type result struct {
		body string
		err  error
	}
	got := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/slow")
		if err != nil {
			got <- result{err: err}
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		got <- result{string(b), err}
	}()
	<-started
	cancel()
	select {
	case err := <-done:
		t.Fatalf("Serve returned (%v) with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := <-got; r.err != nil || r.body != "done" {
		t.Errorf("in-flight request: %q, %v", r.body, r.err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve: %v", err)
	}
}

func TestNewChecksDeps(t *testing.T) {
	e := newEnv(t)
	ok := e.srv.deps
	var nilWriter *ingest.Writer
	for _, tc := range []struct {
		name string
		edit func(*Deps)
		want string
	}{
		{"no store", func(d *Deps) { d.Store = nil }, "Deps.Store"},
		{"no writer", func(d *Deps) { d.Writer = nil }, "Deps.Writer"},
		{"typed nil writer", func(d *Deps) { d.Writer = nilWriter }, "Deps.Writer"},
		{"no engine", func(d *Deps) { d.Engine = nil }, "Deps.Engine"},
	} {
		d := ok
		tc.edit(&d)
		if _, err := New(d, Options{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
	if _, err := New(ok, Options{Auth: config.Auth{TokensFile: filepath.Join(t.TempDir(), "missing")}}); err == nil {
		t.Error("a missing tokens file was accepted")
	}
}

// Another package's routes are merged into the served document; a path
// described twice is refused.
func TestAddOpenAPI(t *testing.T) {
	e := newEnv(t)
	add := []byte(`{"openapi":"3.0.3","tags":[{"name":"accounting"}],"paths":{"/api/v1/extra":{"get":{"responses":{"401":{"$ref":"#/components/responses/Unauthorized"}}}}},
		"components":{"schemas":{"Extra":{"type":"object"}}}}`)
	if err := e.srv.AddOpenAPI(add); err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]json.RawMessage            `json:"paths"`
		Components map[string]map[string]json.RawMessage `json:"components"`
		Tags       []struct{ Name string }               `json:"tags"`
	}
	if err := json.Unmarshal(e.get("/api/v1/openapi.json", "", 200), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Paths["/api/v1/extra"] == nil || doc.Paths["/api/v1/write"] == nil {
		t.Errorf("paths after the merge: %d, extra %v", len(doc.Paths), doc.Paths["/api/v1/extra"] != nil)
	}
	if doc.Components["schemas"]["Extra"] == nil || doc.Components["schemas"]["Error"] == nil || doc.Components["responses"]["Unauthorized"] == nil {
		t.Error("components not merged")
	}
	if len(doc.Tags) == 0 || doc.Tags[len(doc.Tags)-1].Name != "accounting" {
		t.Errorf("tags %v", doc.Tags)
	}
	if err := e.srv.AddOpenAPI(add); err == nil || !strings.Contains(err.Error(), `"/api/v1/extra" is described twice`) {
		t.Errorf("a second merge of the same path: %v", err)
	}
}
