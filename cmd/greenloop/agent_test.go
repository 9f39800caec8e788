package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/greenloop/greenloop/ingest/queue"
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
