package web

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRealPrometheusRemoteWrite runs a real Prometheus that scrapes itself and
// remote-writes to the server with an agent token, then reads the samples back
// with an operator token of the same tenant.
func TestRealPrometheusRemoteWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus; skipped with -short")
	}
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		missingTool(t, "prometheus")
	}
	e := newEnv(t, withRealClock(), withTokens(
		tokenLine(tokAAgent, "a", "agent", "prometheus"),
		tokenLine(tokAOperator, "a", "operator", "alice"),
		tokenLine(tokBAdmin, "b", "admin", "bob"),
	))
	url := serve(t, e.srv, nil)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	promAddr := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
scrape_configs:
  - job_name: self
    static_configs: [{targets: [%q]}]
remote_write:
  - url: %s/api/v1/write?extra_label=site=fra1
    authorization: {credentials: %q}
    queue_config: {batch_send_deadline: 500ms, min_backoff: 100ms, max_backoff: 1s}
`, promAddr, url, tokAAgent)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--config.file="+cfgPath, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr, "--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		// A 4xx makes Prometheus drop a batch and log it as non-recoverable.
		if strings.Contains(logs.String(), "non-recoverable") {
			t.Errorf("Prometheus had batches refused")
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		rec := e.do(req{target: "/api/v1/query?query=" + urlEscape(`up{job="self"}`), token: tokAOperator})
		if rec.Code == 200 && strings.Contains(rec.Body.String(), `"site":"fra1"`) {
			if !strings.Contains(rec.Body.String(), `"1"]`) || strings.Contains(rec.Body.String(), "tenant") {
				t.Errorf("up: %s", rec.Body)
			}
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no samples from Prometheus after 60s; last answer %d %s", rec.Code, rec.Body)
		case <-time.After(250 * time.Millisecond):
		}
	}
	// The other tenant sees none of it.
	if b := e.get("/api/v1/query?query=up", tokBAdmin, 200); string(b) != `{"status":"success","data":{"resultType":"vector","result":[]}}` {
		t.Errorf("tenant b sees %s", b)
	}
}
