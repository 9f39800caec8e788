package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
)

// testNow is the fixed "now" of every test server: 2023-11-14T22:13:20Z.
var testNow = time.Unix(1700000000, 0).UTC()

const nowMs = int64(1700000000000)

type testEnv struct {
	t      testing.TB
	srv    *Server
	store  *tsdb.Store
	writer *ingest.Writer
	h      http.Handler
}

type envConfig struct {
	clock  func() time.Time
	deps   Deps
	opts   Options
	tokens []string // tokens-file lines; none means auth off
	cache  bool     // results cache on, with a late-write tracker
	// backfill gives the server a backfill writer (history up to 14 days back).
	backfill bool
	// store, when set, replaces the embedded TSDB as the server's store.
	store ingest.Store
}

func withBackfill() envOpt {
	return func(c *envConfig) { c.backfill = true }
}

// withResultsCache turns the range-query results cache on (settle 5m).
func withResultsCache() envOpt {
	return func(c *envConfig) { c.cache = true }
}

type envOpt func(*envConfig)

func withTokens(lines ...string) envOpt {
	return func(c *envConfig) { c.tokens = lines }
}

func withIngest(body, decoded config.ByteSize) envOpt {
	return func(c *envConfig) { c.opts.Ingest.MaxBodyBytes, c.opts.Ingest.MaxDecodedBytes = body, decoded }
}

func withSites(sites ...config.Site) envOpt {
	return func(c *envConfig) { c.deps.Sites = sites }
}

// withRealClock runs the server and its Writer on the real clock (for real peers that send "now").
func withRealClock() envOpt {
	return func(c *envConfig) { c.clock = time.Now }
}

func withEngine(eng *promql.Engine) envOpt {
	return func(c *envConfig) { c.deps.Engine = eng }
}

// newEnv opens a real embedded TSDB in a temp dir, the real ingest.Writer and
// a PromQL engine, and builds a Server over them.
func newEnv(t testing.TB, opts ...envOpt) *testEnv {
	t.Helper()
	dir := t.TempDir()
	store, err := tsdb.Open(filepath.Join(dir, "data"), tsdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	c := envConfig{clock: func() time.Time { return testNow }}
	c.deps.Engine = promql.NewEngine(promql.EngineOpts{MaxSamples: 1_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	for _, f := range opts {
		f(&c)
	}
	var st ingest.Store = store
	if c.store != nil {
		st = c.store
	}
	if c.cache {
		c.deps.LateWrites = ingest.NewLateWrites(5*time.Minute, time.Hour, c.clock)
		st = ingest.TrackLate(store, c.deps.LateWrites)
		c.opts.Query.ResultsCache.MaxBytes = 64 << 20
	}
	w, err := ingest.NewWriter(st, ingest.WriterOptions{Clock: c.clock, MaxAge: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c.deps.Store, c.deps.Writer, c.deps.Clock = st, w, c.clock
	if c.backfill {
		var bst ingest.Store = store.Backfill()
		if c.deps.LateWrites != nil {
			bst = ingest.TrackLate(bst, c.deps.LateWrites)
		}
		bw, err := ingest.NewWriter(bst, ingest.WriterOptions{Clock: c.clock, MaxAge: 14 * 24 * time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		c.deps.Backfill = bw
	}
	if len(c.tokens) > 0 {
		p := filepath.Join(dir, "tokens")
		if err := os.WriteFile(p, []byte(strings.Join(c.tokens, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c.opts.Auth.TokensFile = p
	}
	s, err := New(c.deps, c.opts)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, srv: s, store: store, writer: w, h: s.Handler()}
}

// tokenLine is a tokens-file line for the bearer token tok.
func tokenLine(tok, tenant, role, name string) string {
	sum := sha256.Sum256([]byte(tok))
	return hex.EncodeToString(sum[:]) + " " + tenant + " " + role + " " + name
}

type req struct {
	method, target string
	body           []byte
	header         map[string]string
	token          string
}

func (e *testEnv) do(r req) *httptest.ResponseRecorder {
	e.t.Helper()
	if r.method == "" {
		r.method = http.MethodGet
	}
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	hr := httptest.NewRequest(r.method, r.target, body)
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, hr)
	return rec
}

// get is a GET with a token, failing the test unless the status is want.
func (e *testEnv) get(target, token string, want int) []byte {
	e.t.Helper()
	rec := e.do(req{target: target, token: token})
	if rec.Code != want {
		e.t.Fatalf("GET %s: status %d, want %d; body %s", target, rec.Code, want, rec.Body)
	}
	return rec.Body.Bytes()
}

// appendDirect writes samples straight into the store, bypassing the Writer.
func (e *testEnv) appendDirect(ls labels.Labels, pts ...sample.Point) {
	e.t.Helper()
	app := e.store.Appender(context.Background())
	for _, p := range pts {
		if _, err := app.Append(0, ls, p.T, p.V); err != nil {
			e.t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		e.t.Fatal(err)
	}
}

type tsIn struct {
	labels []string // name, value pairs
	pts    []sample.Point
}

// remoteWriteBody encodes a remote_write 1.0 request, snappy-compressed.
func remoteWriteBody(t testing.TB, series ...tsIn) []byte {
	t.Helper()
	var wr prompb.WriteRequest
	for _, s := range series {
		var ts prompb.TimeSeries
		for i := 0; i < len(s.labels); i += 2 {
			ts.Labels = append(ts.Labels, prompb.Label{Name: s.labels[i], Value: s.labels[i+1]})
		}
		for _, p := range s.pts {
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: p.T, Value: p.V})
		}
		wr.Timeseries = append(wr.Timeseries, ts)
	}
	pb, err := wr.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return snappy.Encode(nil, pb)
}

var rwHeaders = map[string]string{
	"Content-Encoding":                  "snappy",
	"Content-Type":                      "application/x-protobuf",
	"X-Prometheus-Remote-Write-Version": "0.1.0",
}

// queryResp is the Prometheus API envelope as a client decodes it.
type queryResp struct {
	Status    string          `json:"status"`
	Data      json.RawMessage `json:"data"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Warnings  []string        `json:"warnings"`
}

type vectorData struct {
	ResultType string `json:"resultType"`
	Result     []struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	} `json:"result"`
}

func decode[T any](t testing.TB, b []byte) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// instant runs an instant query at testNow and returns metric -> value.
func (e *testEnv) instant(query, token string) map[string]string {
	e.t.Helper()
	b := e.get("/api/v1/query?query="+urlEscape(query)+"&time=1700000000", token, http.StatusOK)
	r := decode[queryResp](e.t, b)
	v := decode[vectorData](e.t, r.Data)
	out := map[string]string{}
	for _, s := range v.Result {
		out[fmt.Sprint(s.Metric)] = s.Value[1].(string)
	}
	return out
}

func urlEscape(s string) string {
	r := strings.NewReplacer("%", "%25", "&", "%26", "+", "%2B", " ", "%20", "#", "%23", "{", "%7B", "}", "%7D", `"`, "%22", "=", "%3D")
	return r.Replace(s)
}

// missingTool fails the test in CI, where scripts/test-deps.sh installs every
// tool the tests use, and skips it elsewhere, saying how to install the tool.
func missingTool(t *testing.T, name string) {
	t.Helper()
	msg := name + " not installed: apt-get install -y --no-install-recommends prometheus (or run scripts/test-deps.sh as root)"
	if v := os.Getenv("CI"); v != "" && v != "false" && v != "0" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
