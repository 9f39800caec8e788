package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"testing"
	"time"
)

// agentPollInterval is the e2e agent's poll interval.
const agentPollInterval = 200 * time.Millisecond

// startServerAt runs `greenloop serve` on a fixed address (so that an agent
// finds it again after a restart) and waits until /readyz answers 200.
func startServerAt(t *testing.T, name, addr, dataDir string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--listen", addr, "--data-dir", dataDir}, extra...)
	p := startProcess(t, name, greenloopBinary(t), args...)
	s := &server{process: p, addr: addr, url: "http://" + addr, dataDir: dataDir}
	waitHTTP(t, p, s.url+"/readyz", 60*time.Second)
	return s
}

// raplFixtureCopy copies the RAPL collector's sysfs fixture into a temporary
// folder and returns its root.
func raplFixtureCopy(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "sys")
	if err := os.CopyFS(dst, os.DirFS(filepath.Join(root, "collectors", "rapl", "testdata", "node_exporter", "sys"))); err != nil {
		t.Fatalf("copy RAPL fixture: %v", err)
	}
	return dst
}

var pendingRecordsRe = regexp.MustCompile(`(?m)^greenloop_agent_queue_pending_records (\S+)$`)

// agentPending reads greenloop_agent_queue_pending_records from the agent's
// /metrics; -1 when it cannot be read.
func agentPending(metricsURL string) float64 {
	resp, err := httpClient.Get(metricsURL)
	if err != nil {
		return -1
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	m := pendingRecordsRe.FindSubmatch(b)
	if resp.StatusCode != http.StatusOK || m == nil {
		return -1
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		return -1
	}
	return v
}

// rawSamples returns the timestamps (ms) of the raw samples of the one
// series q selects over the last window, via a range-vector instant query.
func rawSamples(t *testing.T, s *server, token, q string) []int64 {
	t.Helper()
	qr, err := s.tryQuery(t, token, q, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if qr.ResultType != "matrix" {
		t.Fatalf("query %q: result type %q, want matrix", q, qr.ResultType)
	}
	var m []struct {
		Metric map[string]string `json:"metric"`
		Values []samplePair      `json:"values"`
	}
	if err := json.Unmarshal(qr.Result, &m); err != nil {
		t.Fatalf("query %q: %v", q, err)
	}
	if len(m) != 1 {
		t.Fatalf("query %q: %d series, want 1: %s", q, len(m), qr.Result)
	}
	ts := make([]int64, len(m[0].Values))
	for i, v := range m[0].Values {
		ts[i] = int64(math.Round(v.T * 1000))
	}
	return ts
}

// TestAgentStoreAndForward runs a real server and a real agent as separate
// processes; the server is stopped for a while and restarted, and the agent
// is restarted during the outage. Afterwards every reading the agent took
// of one series is in the server exactly once: no gap longer than two poll
// intervals (other than the agent's own restart) and no duplicate.
func TestAgentStoreAndForward(t *testing.T) {
	if testing.Short() {
		t.Skip("store-and-forward e2e takes about 15 s")
	}
	agentTok := newToken(t, "acme", "agent", "fra1-agent")
	reader := newToken(t, "acme", "operator", "acme-reader")
	tokensFile := writeTokensFile(t, agentTok, reader)
	tokenFile := filepath.Join(t.TempDir(), "agent.token")
	if err := os.WriteFile(tokenFile, []byte(agentTok.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	serverAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	dataDir := t.TempDir()
	agentListen := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	metricsURL := "http://" + agentListen + "/metrics"
	cfg := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, `site: fra1
interval: %s
listen: %s
server:
  url: http://%s
  token_file: %q
  queue_dir: %q
  queue_max_bytes: 64MiB
targets:
  - {name: host, type: rapl, sysfs: %q}
`, agentPollInterval, agentListen, serverAddr, tokenFile, filepath.Join(t.TempDir(), "queue"), raplFixtureCopy(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	bin := greenloopBinary(t)
	startAgentProc := func(name string) *process {
		p := startProcess(t, name, bin, "agent", "--config", cfg)
		waitHTTP(t, p, "http://"+agentListen+"/healthz", 30*time.Second)
		return p
	}
	const series = `greenloop_energy_joules_total{site="fra1",node="host",source="rapl",sensor="intel-rapl:0"}`

	// Phase 1: both up; readings flow.
	srv := startServerAt(t, "server-1", serverAddr, dataDir, "--tokens-file", tokensFile)
	a1 := startAgentProc("agent-1")
	time.Sleep(2 * time.Second)
	if !eventually(10*time.Second, 200*time.Millisecond, func() bool {
		v, err := srv.tryQueryVector(t, reader.secret, "count_over_time("+series+"[10m])")
		return err == nil && len(v) == 1 && v[0].Value.V >= 3
	}) {
		t.Fatal("the server got no readings from the agent while both were up")
	}
	phase1 := srv.queryVector(t, reader.secret, "count_over_time("+series+"[10m])")[0].Value.V

	// Phase 2: the server goes away; the agent queues.
	outageStart := time.Now()
	srv.stop(t)
	if srv.waitErr != nil {
		t.Fatalf("server-1 exit: %v", srv.waitErr)
	}
	time.Sleep(2 * time.Second)

	// Phase 3: the agent restarts during the outage.
	restartBegin := time.Now()
	a1.stop(t)
	if a1.waitErr != nil {
		t.Errorf("agent-1 did not exit 0 on SIGTERM: %v", a1.waitErr)
	}
	a2 := startAgentProc("agent-2")
	restartEnd := time.Now()
	time.Sleep(2 * time.Second)
	pendingBefore := agentPending(metricsURL)

	// Phase 4: the server comes back on the same data; the queue drains.
	srv = startServerAt(t, "server-2", serverAddr, dataDir, "--tokens-file", tokensFile)
	outageEnd := time.Now()
	if !eventually(60*time.Second, 100*time.Millisecond, func() bool { return agentPending(metricsURL) == 0 }) {
		t.Fatalf("agent queue not drained within 60s of the server's return (pending %v)", agentPending(metricsURL))
	}
	drained := time.Since(outageEnd)
	time.Sleep(3 * agentPollInterval) // a few readings after the drain

	// Count: the raw samples of one series over the whole window.
	ts := storedOnce(t, srv, reader.secret, series, 2)
	limit := 2 * agentPollInterval.Milliseconds()
	restartGap := 0
	inOutage := 0
	for i, x := range ts {
		tm := time.UnixMilli(x)
		if tm.After(outageStart) && tm.Before(outageEnd) {
			inOutage++
		}
		if i == 0 {
			continue
		}
		gap := x - ts[i-1]
		if gap <= limit {
			continue
		}
		// Only the agent's own restart may leave a longer gap: no reading is
		// taken while no agent runs.
		from, to := time.UnixMilli(ts[i-1]), time.UnixMilli(x)
		allowed := restartEnd.Sub(restartBegin).Milliseconds() + limit
		if restartGap == 0 && !from.After(restartEnd) && !to.Before(restartBegin) && gap <= allowed {
			restartGap++
			t.Logf("gap of %d ms across the agent restart (restart took %s)", gap, restartEnd.Sub(restartBegin).Round(time.Millisecond))
			continue
		}
		t.Errorf("gap of %d ms (limit %d) between samples at %s and %s: readings lost",
			gap, limit, from.UTC().Format("15:04:05.000"), to.UTC().Format("15:04:05.000"))
	}
	outage := outageEnd.Sub(outageStart)
	if minOutage := int(outage/agentPollInterval) / 2; inOutage < minOutage {
		t.Errorf("%d samples taken during the %s outage, want at least %d", inOutage, outage.Round(time.Millisecond), minOutage)
	}
	span := time.Duration(ts[len(ts)-1]-ts[0]) * time.Millisecond
	t.Logf("series %s: %d samples, each stored once, over %s = %.1f polls at %s; %v before the outage, %d taken during the %s outage, %v pending in the queue before the server returned, drained in %s",
		series, len(ts), span.Round(time.Millisecond), float64(span)/float64(agentPollInterval)+1,
		agentPollInterval, phase1, inOutage, outage.Round(time.Millisecond), pendingBefore, drained.Round(time.Millisecond))

	a2.stop(t)
	if a2.waitErr != nil {
		t.Errorf("agent-2 did not exit 0 on SIGTERM: %v", a2.waitErr)
	}
}

// storedOnce returns the timestamps of the raw samples of one series over
// the last 10 minutes (at least min of them), failing the test unless every
// one is stored exactly once (distinct timestamps, equal to count_over_time)
// and in time order.
func storedOnce(t *testing.T, s *server, token, series string, min int) []int64 {
	t.Helper()
	ts := rawSamples(t, s, token, series+"[10m]")
	cv := s.queryVector(t, token, "count_over_time("+series+"[10m])")
	if len(ts) < min || len(cv) != 1 {
		t.Fatalf("got %d samples, count_over_time %v", len(ts), cv)
	}
	distinct := map[int64]bool{}
	for _, x := range ts {
		distinct[x] = true
	}
	if len(distinct) != len(ts) || int(cv[0].Value.V) != len(ts) {
		t.Errorf("samples %d, distinct timestamps %d, count_over_time %v: every reading must be stored exactly once", len(ts), len(distinct), cv[0].Value.V)
	}
	if !slices.IsSorted(ts) {
		t.Error("samples not in time order")
	}
	return ts
}
