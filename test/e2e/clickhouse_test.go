package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
)

// startClickHouse starts a throw-away clickhouse-server, failing in CI and
// skipping elsewhere when it is not installed.
func startClickHouse(t *testing.T) *chtest.Server {
	t.Helper()
	chtest.Require(t)
	ch, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatalf("start clickhouse-server: %v", err)
	}
	t.Cleanup(func() { _ = ch.Stop() })
	return ch
}

// An agent pushes into a greenloop server whose store is ClickHouse;
// ClickHouse is stopped during ingest and started again. Every reading the
// agent took is stored exactly once, and PromQL over ClickHouse counts them.
func TestClickHouseBackendOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("ClickHouse e2e takes about 30 s")
	}
	ch := startClickHouse(t)
	agentTok := newToken(t, "acme", "agent", "fra1-agent")
	reader := newToken(t, "acme", "operator", "acme-reader")
	tokensFile := writeTokensFile(t, agentTok, reader)
	tokenFile := filepath.Join(t.TempDir(), "agent.token")
	if err := os.WriteFile(tokenFile, []byte(agentTok.secret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The server's port is picked after ClickHouse's, which binds several
	// more as it starts: a port taken meanwhile is tried again with another.
	var srv *server
	var serverAddr string
	for attempt := 1; ; attempt++ {
		serverAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		srvCfg := filepath.Join(t.TempDir(), "server.yaml")
		if err := os.WriteFile(srvCfg, fmt.Appendf(nil, `listen: %s
storage:
  backend: clickhouse
  clickhouse: {addrs: [%q], database: e2e_outage, write_timeout: 3s}
auth: {tokens_file: %q}
`, serverAddr, ch.Addr, tokensFile), 0o644); err != nil {
			t.Fatal(err)
		}
		p := startProcess(t, fmt.Sprintf("server-ch-%d", attempt), greenloopBinary(t), "serve", "--config", srvCfg)
		url := "http://" + serverAddr
		up := eventually(60*time.Second, 50*time.Millisecond, func() bool { return p.exited() || httpOK(url+"/readyz") })
		if up && !p.exited() {
			srv = &server{process: p, addr: serverAddr, url: url}
			break
		}
		if attempt == 3 {
			p.dumpLog(t)
			t.Fatal("greenloop serve did not start on ClickHouse")
		}
	}

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
targets:
  - {name: host, type: rapl, sysfs: %q}
`, agentPollInterval, agentListen, serverAddr, tokenFile, filepath.Join(t.TempDir(), "queue"), raplFixtureCopy(t)), 0o644); err != nil {
		t.Fatal(err)
	}
	agent := startProcess(t, "agent", greenloopBinary(t), "agent", "--config", cfg)
	waitHTTP(t, agent, "http://"+agentListen+"/healthz", 30*time.Second)
	const series = `greenloop_energy_joules_total{site="fra1",node="host",source="rapl",sensor="intel-rapl:0"}`

	if !eventually(20*time.Second, 200*time.Millisecond, func() bool {
		v, err := srv.tryQueryVector(t, reader.secret, "count_over_time("+series+"[10m])")
		return err == nil && len(v) == 1 && v[0].Value.V >= 3
	}) {
		t.Fatal("no readings reached ClickHouse while everything was up")
	}

	// ClickHouse goes away for a few seconds: writes answer 503, the agent queues.
	outageStart := time.Now()
	if err := ch.Stop(); err != nil {
		t.Fatal(err)
	}
	if !eventually(20*time.Second, 100*time.Millisecond, func() bool { return agentPending(metricsURL) > 0 }) {
		t.Fatal("the agent queued nothing while ClickHouse was down")
	}
	time.Sleep(3 * time.Second)
	pendingDuring := agentPending(metricsURL)
	if err := ch.Restart(); err != nil {
		t.Fatal(err)
	}
	outageEnd := time.Now()
	if !eventually(60*time.Second, 100*time.Millisecond, func() bool { return agentPending(metricsURL) == 0 }) {
		t.Fatalf("agent queue not drained within 60s of ClickHouse's return (pending %v)", agentPending(metricsURL))
	}
	drained := time.Since(outageEnd)
	time.Sleep(3 * agentPollInterval)

	ts := storedOnce(t, srv, reader.secret, series, 10)
	limit := 2 * agentPollInterval.Milliseconds()
	inOutage := 0
	for i, x := range ts {
		if tm := time.UnixMilli(x); tm.After(outageStart) && tm.Before(outageEnd) {
			inOutage++
		}
		if i > 0 && x-ts[i-1] > limit {
			t.Errorf("gap of %d ms between samples at %s and %s: readings lost", x-ts[i-1],
				time.UnixMilli(ts[i-1]).UTC().Format("15:04:05.000"), time.UnixMilli(x).UTC().Format("15:04:05.000"))
		}
	}
	outage := outageEnd.Sub(outageStart)
	if minOutage := int(outage/agentPollInterval) / 2; inOutage < minOutage {
		t.Errorf("%d samples taken during the %s outage, want at least %d", inOutage, outage.Round(time.Millisecond), minOutage)
	}
	t.Logf("%d samples, all distinct; %d taken during the %s ClickHouse outage (%v records queued), drained in %s",
		len(ts), inOutage, outage.Round(time.Millisecond), pendingDuring, drained.Round(time.Millisecond))
	agent.stop(t)
	srv.stop(t)
}

// httpOK reports whether a GET of url answers 200.
func httpOK(url string) bool {
	resp, err := httpClient.Get(url)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}
