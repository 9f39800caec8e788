package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/greenloop/greenloop/ingest/queue"
	"github.com/greenloop/greenloop/ingest/textimport"
	"github.com/greenloop/greenloop/ingest/validate"
)

// remoteWriteSink is an httptest server that decodes remote_write bodies.
type remoteWriteSink struct {
	mu       sync.Mutex
	series   []prompb.TimeSeries
	requests int
	badAuth  int
}

func (s *remoteWriteSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/write" || r.Method != http.MethodPost {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.Header.Get("Authorization") != "Bearer agent-secret" {
		s.badAuth++
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.requests++
	s.series = append(s.series, req.Timeseries...)
	w.WriteHeader(http.StatusNoContent)
}

// energyTimestamps returns the distinct timestamps received for the RAPL
// package zone's energy counter, checking the labels of every energy series.
func (s *remoteWriteSink) energyTimestamps(t *testing.T) map[int64]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	ts := map[int64]bool{}
	for _, series := range s.series {
		ls := map[string]string{}
		for _, l := range series.Labels {
			ls[l.Name] = l.Value
		}
		if ls["__name__"] != "greenloop_energy_joules_total" {
			continue
		}
		if ls["site"] != "fra1" || ls["node"] != "host" || ls["source"] != "rapl" {
			t.Errorf("energy series with labels %v, want site=fra1 node=host source=rapl", ls)
		}
		if ls["sensor"] != "intel-rapl:0" {
			continue
		}
		for _, smp := range series.Samples {
			ts[smp.Timestamp] = true
		}
	}
	return ts
}

// startAgent runs the agent in-process on cfg and returns its listen
// address, the function that stops it and a channel with its result.
func startAgent(t *testing.T, cfg string) (addr string, stop func() error, logs *syncBuffer) {
	t.Helper()
	addrCh := make(chan string, 1)
	agentTestHooks.listening = func(a string) { addrCh <- a }
	t.Cleanup(func() { agentTestHooks.listening = nil })
	ctx, cancel := context.WithCancel(t.Context())
	logs = &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- runAgentForTest(ctx, []string{"--config", cfg, "--log-level", "debug"}, logs) }()
	select {
	case addr = <-addrCh:
	case err := <-done:
		cancel()
		t.Fatalf("agent ended before listening: %v\n%s", err, logs)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatalf("agent not listening after 10s\n%s", logs)
	}
	var once sync.Once
	var result error
	stop = func() error {
		once.Do(func() {
			cancel()
			select {
			case result = <-done:
			case <-time.After(15 * time.Second):
				result = fmt.Errorf("agent did not stop within 15s")
			}
		})
		return result
	}
	t.Cleanup(func() { _ = stop() })
	return addr, stop, logs
}

func runAgentForTest(ctx context.Context, args []string, logs io.Writer) error {
	return runAgent(ctx, args, io.Discard, logs)
}

// syncBuffer is a bytes.Buffer safe for concurrent writes and reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestAgentPushesAndServes(t *testing.T) {
	sink := &remoteWriteSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	t.Setenv("GREENLOOP_TEST_AGENT_TOKEN", "agent-secret")
	queueDir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf(`site: fra1
interval: 100ms
listen: 127.0.0.1:0
server:
  url: %s
  token_env: GREENLOOP_TEST_AGENT_TOKEN
  queue_dir: %q
  queue_max_bytes: 16MiB
targets:
  - {name: host, type: rapl, sysfs: %q}
  - {name: pdu-a, type: snmp, address: 192.0.2.1, community_env: GREENLOOP_TEST_NO_SUCH_VAR}
`, srv.URL, queueDir, fixture(t, "rapl", "node_exporter")))
	addr, stop, logs := startAgent(t, cfg)

	// Readings arrive at the server, labelled, one timestamp a poll.
	deadline := time.Now().Add(10 * time.Second)
	for len(sink.energyTimestamps(t)) < 5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := len(sink.energyTimestamps(t)); n < 5 {
		t.Fatalf("server got %d energy timestamps in 10s, want >= 5\n%s", n, logs)
	}
	sink.mu.Lock()
	if sink.badAuth > 0 {
		t.Errorf("%d requests without the agent's token", sink.badAuth)
	}
	sink.mu.Unlock()

	code, body := httpGet(t, "http://"+addr+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: HTTP %d: %s", code, body)
	}
	for _, want := range []string{
		`greenloop_energy_joules_total{`,
		`node="host"`,
		`site="fra1"`,
		`source="rapl"`,
		`greenloop_collector_up{target="host",type="rapl"} 1`,
		`# TYPE greenloop_energy_joules_total counter`,
		`greenloop_agent_queue_pending_records `,
		`greenloop_agent_sent_records_total `,
		`greenloop_agent_retries_total `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	if strings.Contains(body, "agent-secret") || strings.Contains(logs.String(), "agent-secret") {
		t.Error("the token appears in /metrics or the logs")
	}

	code, body = httpGet(t, "http://"+addr+"/healthz")
	if code != http.StatusOK {
		t.Fatalf("/healthz: HTTP %d: %s", code, body)
	}
	var h struct {
		Status  string
		Targets []struct{ Name, Type, State string }
		Queue   *struct {
			SentRecords uint64 `json:"sent_records"`
		}
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatalf("/healthz: %v: %s", err, body)
	}
	if h.Status != "ok" || len(h.Targets) != 1 || h.Targets[0].Name != "host" || h.Targets[0].State != "up" {
		t.Errorf("/healthz = %s", body)
	}
	if h.Queue == nil || h.Queue.SentRecords == 0 {
		t.Errorf("/healthz queue = %s", body)
	}

	if !strings.Contains(logs.String(), `target=pdu-a`) {
		t.Errorf("no error logged for the target that cannot run:\n%s", logs)
	}
	if err := stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, logs)
	}
	// With the server up, the agent delivered everything before it exited,
	// and closed the queue (it opens again).
	q, err := queue.Open(queueDir, queue.Options{MaxBytes: 16 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	if st := q.Stats(); st.PendingRecords != 0 {
		t.Errorf("after a clean stop %d records are still pending", st.PendingRecords)
	}
}

func TestAgentPullOnly(t *testing.T) {
	cfg := writeConfig(t, fmt.Sprintf(`site: fra1
interval: 100ms
listen: 127.0.0.1:0
targets:
  - {name: host, type: rapl, sysfs: %q, labels: {component: chassis}}
`, fixture(t, "rapl", "node_exporter")))
	addr, stop, logs := startAgent(t, cfg)
	ok := false
	var body string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		_, body = httpGet(t, "http://"+addr+"/metrics")
		if strings.Contains(body, "greenloop_energy_joules_total{") {
			ok = true
			break
		}
	}
	if !ok {
		t.Fatalf("/metrics never showed a reading:\n%s\n%s", body, logs)
	}
	if strings.Contains(body, "greenloop_agent_queue_pending_records") {
		t.Error("a pull-only agent exposes queue metrics")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestAgentConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"invalid", "site: FRA\ntargets:\n  - {name: x, type: toaster}\n", "targets[0].type"},
		{"no queue dir", "site: fra1\nserver: {url: http://127.0.0.1:1}\ntargets:\n  - {name: x, type: rapl}\n", "server.queue_dir"},
		{"no target runs", "site: fra1\nlisten: 127.0.0.1:0\ntargets:\n  - {name: pdu, type: snmp, address: 192.0.2.1, community_env: X}\n", "none of the 1 targets"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := run(t.Context(), []string{"agent", "--config", writeConfig(t, tc.yaml)}, io.Discard, &stderr)
			if code == 0 || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, stderr %q; want non-zero and %q", code, stderr.String(), tc.want)
			}
		})
	}
}

// selfMetricsSink accepts remote_write (to a remoteWriteSink) and the text
// import endpoint, where it keeps every body (gunzipped) and its headers.
type selfMetricsSink struct {
	rw      remoteWriteSink
	mu      sync.Mutex
	bodies  []string
	auth    []string
	methods []string
}

func (s *selfMetricsSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/import/prometheus" {
		s.rw.ServeHTTP(w, r)
		return
	}
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.bodies = append(s.bodies, string(b))
	s.auth = append(s.auth, r.Header.Get("Authorization"))
	s.methods = append(s.methods, r.Method)
	s.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (s *selfMetricsSink) pushes() (bodies, auth, methods []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.bodies...), append([]string(nil), s.auth...), append([]string(nil), s.methods...)
}

func TestAgentPushesSelfMetrics(t *testing.T) {
	old := agentSelfPushInterval
	agentSelfPushInterval = 100 * time.Millisecond
	t.Cleanup(func() { agentSelfPushInterval = old })

	sink := &selfMetricsSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	t.Setenv("GREENLOOP_TEST_AGENT_TOKEN", "agent-secret")
	cfg := writeConfig(t, fmt.Sprintf(`site: fra1
interval: 100ms
listen: 127.0.0.1:0
server:
  url: %s/
  token_env: GREENLOOP_TEST_AGENT_TOKEN
  queue_dir: %q
  queue_max_bytes: 16MiB
targets:
  - {name: host, type: rapl, sysfs: %q}
`, srv.URL, t.TempDir(), fixture(t, "rapl", "node_exporter")))
	_, stop, logs := startAgent(t, cfg)

	// Pushes come every interval while the agent runs.
	n := 0
	for deadline := time.Now().Add(10 * time.Second); n < 3 && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		bodies, _, _ := sink.pushes()
		n = len(bodies)
	}
	if n < 3 {
		t.Fatalf("%d self-metrics pushes in 10s, want >= 3\n%s", n, logs)
	}
	if err := stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, logs)
	}
	if strings.Contains(logs.String(), "agent-secret") {
		t.Error("the token appears in the logs")
	}

	bodies, auth, methods := sink.pushes()
	for i := range bodies {
		if auth[i] != "Bearer agent-secret" {
			t.Errorf("push %d: Authorization %q, want the agent's bearer token", i, auth[i])
		}
		if methods[i] != http.MethodPost {
			t.Errorf("push %d: method %s, want POST", i, methods[i])
		}
	}
	// The last push (made when the agent stopped) has the final counts.
	body := bodies[len(bodies)-1]
	host, _ := os.Hostname()
	if host == "" {
		host = "fra1"
	}
	labels := fmt.Sprintf(`{agent=%q,site="fra1"}`, host)
	names := []string{
		"greenloop_agent_queue_pending_records",
		"greenloop_agent_queue_pending_bytes",
		"greenloop_agent_queue_oldest_age_seconds",
		"greenloop_agent_queue_dropped_records_total",
		"greenloop_agent_sent_records_total",
		"greenloop_agent_retries_total",
		"greenloop_agent_refused_records_total",
		"greenloop_agent_queue_append_errors_total",
	}
	for _, n := range names {
		if !strings.Contains(body, n+labels+" ") {
			t.Errorf("pushed body lacks %s%s:\n%s", n, labels, body)
		}
	}

	t.Logf("last push:\n%s", body)
	// The server's text import takes every line.
	series, rejs := textimport.Parse([]byte(body), time.Now().UnixMilli())
	if len(rejs) > 0 {
		t.Errorf("textimport.Parse rejected %v in:\n%s", rejs, body)
	}
	got := map[string]float64{}
	for _, s := range series {
		ls := map[string]string{}
		for _, l := range s.Labels {
			ls[l.Name] = l.Value
		}
		if ls["site"] != "fra1" || ls["agent"] != host || len(s.Labels) != 3 {
			t.Errorf("series %v: want labels __name__, agent=%q and site=fra1", s.Labels, host)
		}
		for _, p := range s.Points {
			if reason, detail, ok := validate.Point(ls["__name__"], p, time.Now(), validate.DefaultLimits()); !ok {
				t.Errorf("the server would refuse %s: %s: %s", ls["__name__"], reason, detail)
			}
			got[ls["__name__"]] = p.V
		}
	}
	if len(got) != len(names) {
		t.Errorf("pushed %d metrics, want %d: %v", len(got), len(names), got)
	}
	if got["greenloop_agent_sent_records_total"] == 0 {
		t.Errorf("final push reports no records sent:\n%s", body)
	}
}

// The poll batches of several targets travel together: one request carries
// every target's readings, instead of one small request per poll.
func TestAgentBatchesTargetsTogether(t *testing.T) {
	sink := &remoteWriteSink{}
	srv := httptest.NewServer(sink)
	defer srv.Close()
	t.Setenv("GREENLOOP_TEST_AGENT_TOKEN", "agent-secret")
	cfg := writeConfig(t, fmt.Sprintf(`site: fra1
interval: 100ms
server:
  url: %s
  token_env: GREENLOOP_TEST_AGENT_TOKEN
  queue_dir: %q
  queue_max_bytes: 16MiB
targets:
  - {name: host, type: rapl, sysfs: %q}
  - {name: host-hwmon, type: hwmon, sysfs: %q}
`, srv.URL, t.TempDir(), fixture(t, "rapl", "node_exporter"), fixture(t, "hwmon", "node_exporter")))
	_, stop, logs := startAgent(t, cfg)
	time.Sleep(2500 * time.Millisecond) // 2 targets × about 25 polls
	if err := stop(); err != nil {
		t.Fatalf("agent: %v\n%s", err, logs)
	}
	sink.mu.Lock()
	defer sink.mu.Unlock()
	nodes := map[string]bool{}
	for _, ts := range sink.series {
		for _, l := range ts.Labels {
			if l.Name == "node" {
				nodes[l.Value] = true
			}
		}
	}
	if !nodes["host"] || !nodes["host-hwmon"] {
		t.Fatalf("nodes received %v, want both targets\n%s", nodes, logs)
	}
	// About 50 polls arrived in a handful of requests: one per second, plus the flush at stop.
	if sink.requests == 0 || sink.requests > 6 {
		t.Fatalf("%d requests for %d series, want at most 6 (one a second)", sink.requests, len(sink.series))
	}
	t.Logf("%d series in %d requests", len(sink.series), sink.requests)
}
