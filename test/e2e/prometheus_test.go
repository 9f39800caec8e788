package e2e

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestRealPrometheusRemoteWrite has a real Prometheus (Debian's 2.42) scrape a
// small exporter and remote_write to greenloop, then reads the series back with
// promtool, Prometheus' own query client.
func TestRealPrometheusRemoteWrite(t *testing.T) {
	promBin := requireTool(t, "prometheus", "/usr/bin/prometheus", "prometheus")
	promtool := requireTool(t, "promtool", "/usr/bin/promtool", "prometheus")

	gl := startServer(t, "greenloop", t.TempDir())

	// The scrape target: a RAPL counter as node_exporter names it, and a
	// reading already in greenloop's canonical form.
	var scrapes atomic.Int64
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := scrapes.Add(1)
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, `# HELP node_rapl_package_joules_total Current RAPL package value in joules
# TYPE node_rapl_package_joules_total counter
node_rapl_package_joules_total{index="0",path="/sys/class/powercap/intel-rapl:0"} %d
# HELP greenloop_power_watts Active power.
# TYPE greenloop_power_watts gauge
greenloop_power_watts{site="fra1",node="n1",source="rapl",component="package",sensor="intel-rapl:0"} 123.5
`, 1000+100*n)
	}))
	t.Cleanup(target.Close)

	dir := t.TempDir()
	promAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
  external_labels:
    site: fra1
scrape_configs:
  - job_name: e2e
    static_configs:
      - targets: ['%s']
remote_write:
  - url: %s/api/v1/write
    queue_config:
      batch_send_deadline: 1s
      min_backoff: 100ms
      max_backoff: 1s
`, strings.TrimPrefix(target.URL, "http://"), gl.url)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	prom := startProcess(t, "prometheus", promBin,
		"--config.file="+cfgPath,
		"--web.listen-address="+promAddr,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
	)
	waitHTTP(t, prom, "http://"+promAddr+"/-/ready", 60*time.Second)

	// Remote write ships what the WAL watcher reads, a few seconds after each scrape.
	var got []vectorSample
	var lastErr error
	ok := eventually(90*time.Second, 500*time.Millisecond, func() bool {
		if prom.exited() || gl.exited() {
			return true
		}
		got, lastErr = gl.tryQueryVector(t, "", `greenloop_power_watts{sensor="intel-rapl:0"}`)
		return lastErr == nil && len(got) > 0
	})
	if prom.exited() {
		t.Fatalf("prometheus exited: %v", prom.waitErr)
	}
	if gl.exited() {
		t.Fatalf("greenloop exited: %v", gl.waitErr)
	}
	if !ok {
		t.Fatalf("greenloop_power_watts from Prometheus' remote_write did not arrive within 90s (%d scrapes; last query error: %v)", scrapes.Load(), lastErr)
	}
	if len(got) != 1 {
		t.Fatalf("greenloop_power_watts: %d series, want 1: %+v", len(got), got)
	}
	want := map[string]string{"__name__": "greenloop_power_watts", "site": "fra1", "node": "n1", "source": "rapl",
		"component": "package", "sensor": "intel-rapl:0", "job": "e2e"}
	for k, v := range want {
		if got[0].Metric[k] != v {
			t.Errorf("greenloop_power_watts label %s = %q, want %q (series %v)", k, got[0].Metric[k], v, got[0].Metric)
		}
	}
	if got[0].Value.V != 123.5 {
		t.Errorf("greenloop_power_watts = %v, want 123.5", got[0].Value.V)
	}

	// The exporter's own series is kept under its own name; the external label
	// site=fra1 came from Prometheus.
	var rapl []vectorSample
	if !eventually(30*time.Second, 500*time.Millisecond, func() bool {
		rapl, lastErr = gl.tryQueryVector(t, "", `node_rapl_package_joules_total`)
		return lastErr == nil && len(rapl) > 0
	}) {
		t.Fatalf("node_rapl_package_joules_total did not arrive (last query error: %v)", lastErr)
	}
	r := rapl[0]
	if r.Metric["path"] != "/sys/class/powercap/intel-rapl:0" || r.Metric["index"] != "0" || r.Metric["site"] != "fra1" {
		t.Errorf("node_rapl_package_joules_total labels = %v, want index=0, path=/sys/class/powercap/intel-rapl:0, site=fra1", r.Metric)
	}
	if v := r.Value.V; v < 1100 || math.Mod(v-1000, 100) != 0 {
		t.Errorf("node_rapl_package_joules_total = %v, want one of the values served (1000 + 100·n)", r.Value.V)
	}

	// Let a few more scrapes arrive, so the range query below spans several of them.
	var n []vectorSample
	if !eventually(30*time.Second, 500*time.Millisecond, func() bool {
		n, lastErr = gl.tryQueryVector(t, "", `count_over_time(greenloop_power_watts[5m])`)
		return lastErr == nil && len(n) == 1 && n[0].Value.V >= 3
	}) {
		t.Fatalf("fewer than 3 samples of greenloop_power_watts arrived in 30s more (%+v, last query error: %v)", n, lastErr)
	}

	// promtool, Prometheus' own client, reads the same through the query API.
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	promtoolRun := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, promtool, args...).CombinedOutput()
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}

	out := promtoolRun("query", "instant", gl.url, "greenloop_power_watts")
	for _, s := range []string{"greenloop_power_watts{", `sensor="intel-rapl:0"`, `site="fra1"`, "=> 123.5 @["} {
		if !strings.Contains(out, s) {
			t.Errorf("promtool query instant greenloop_power_watts: output lacks %q", s)
		}
	}

	end := time.Now()
	start := end.Add(-2 * time.Minute)
	unix := func(t time.Time) string { return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64) }
	out = promtoolRun("query", "range", "--start="+unix(start), "--end="+unix(end), "--step=1s", gl.url, "greenloop_power_watts")
	if !strings.Contains(out, "greenloop_power_watts{") || !strings.Contains(out, "=>\n123.5 @[") {
		t.Errorf("promtool query range greenloop_power_watts: output lacks the series and 123.5 values")
	}
	if n := strings.Count(out, "123.5 @["); n < 2 {
		t.Errorf("promtool query range greenloop_power_watts: %d points, want at least 2 over 2 minutes at 1s steps", n)
	}

	out = promtoolRun("query", "instant", gl.url, "node_rapl_package_joules_total")
	for _, s := range []string{"node_rapl_package_joules_total{", `path="/sys/class/powercap/intel-rapl:0"`, `site="fra1"`} {
		if !strings.Contains(out, s) {
			t.Errorf("promtool query instant node_rapl_package_joules_total: output lacks %q", s)
		}
	}
	t.Logf("Prometheus scraped the target %d times", scrapes.Load())
}
