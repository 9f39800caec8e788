package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/ingest/ndjson"
	"github.com/greenloop/greenloop/ingest/textimport"
)

var collectT0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC) // 1795348800000 ms

// fixture returns the absolute sysfs root of a collector's test fixture.
func fixture(t *testing.T, pkg, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "collectors", pkg, "testdata", name, "sys"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fixtureConfig has a RAPL and an hwmon target on the fixture trees, the
// hwmon one with labels (node overrides the name; component is added where
// the collector sets none), and a RAPL target on a tree without powercap.
func fixtureConfig(t *testing.T) string {
	return writeConfig(t, fmt.Sprintf(`site: fra1
targets:
  - {name: host, type: rapl, sysfs: %q, labels: {component: chassis}}
  - {name: host-hwmon, type: hwmon, sysfs: %q, labels: {node: rack4-u12, component: chassis}}
  - {name: bare, type: rapl, sysfs: %q}
`, fixture(t, "rapl", "node_exporter"), fixture(t, "hwmon", "node_exporter"), t.TempDir()))
}

// collectRun runs `greenloop collect` in-process with the collectors' clock pinned.
func collectRun(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	old := collectTestDeps
	collectTestDeps = collectors.Deps{Now: func() time.Time { return collectT0 }}
	defer func() { collectTestDeps = old }()
	var out, errb bytes.Buffer
	code = run(context.Background(), append([]string{"collect"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

var summaryRe = regexp.MustCompile(`^target=(\S+) type=(\S+) readings=(\d+) took=\S+ status=(.*)$`)

// summaries returns the summary lines of stderr as "name type readings status".
func summaries(t *testing.T, stderr string) []string {
	t.Helper()
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
		if m := summaryRe.FindStringSubmatch(l); m != nil {
			got = append(got, strings.Join(m[1:], " "))
		}
	}
	return got
}

func TestCollectJSON(t *testing.T) {
	cfg := fixtureConfig(t)
	code, out, stderr := collectRun(t, "--once", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, want := range []string{
		// the collector's component wins over the target's label
		`{"metric":"greenloop_energy_joules_total","labels":{"component":"package","node":"host","sensor":"intel-rapl:0","site":"fra1","source":"rapl"},"value":240422.366267,"timestamp_ms":1795348800000}`,
		`{"metric":"greenloop_temperature_celsius","labels":{"component":"chassis","node":"rack4-u12","sensor":"coretemp/Core 0 (hwmon0/temp2)","site":"fra1","source":"hwmon"},"value":54,"timestamp_ms":1795348800000}`,
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("missing line\n%s\nin:\n%s", want, out)
		}
	}
	// Targets in configuration order: the RAPL reading comes first.
	if !strings.Contains(lines[0], `"source":"rapl"`) {
		t.Errorf("first line is not the rapl target's: %s", lines[0])
	}
	want := []string{"host rapl 1 ok", "host-hwmon hwmon 17 ok", "bare rapl 0 no data"}
	if got := summaries(t, stderr); !slices.Equal(got, want) {
		t.Errorf("summaries %q, want %q; stderr:\n%s", got, want, stderr)
	}
	if len(lines) != 18 {
		t.Errorf("%d lines, want 18", len(lines))
	}

	// Deterministic: a second run prints the same.
	if _, again, _ := collectRun(t, "--once", "--config", cfg, "--format", "json"); again != out {
		t.Errorf("second run differs:\n%s\n---\n%s", again, out)
	}

	// What collect prints, the server's NDJSON reader takes without a refusal.
	series, rejs := ndjson.Parse([]byte(out), 0)
	if len(rejs) != 0 {
		t.Fatalf("ndjson rejections: %+v", rejs)
	}
	points := 0
	for _, s := range series {
		points += len(s.Points)
		if s.Get("site") != "fra1" || s.Get("node") == "" {
			t.Errorf("series without site or node: %s", s.String())
		}
	}
	if points != len(lines) {
		t.Errorf("ndjson read %d points from %d lines", points, len(lines))
	}
}

func TestCollectProm(t *testing.T) {
	code, out, stderr := collectRun(t, "--once", "--config", fixtureConfig(t), "--format", "prom", "--timeout", "5s")
	if code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	for _, want := range []string{
		`greenloop_energy_joules_total{component="package",node="host",sensor="intel-rapl:0",site="fra1",source="rapl"} 240422.366267 1795348800000`,
		`greenloop_temperature_celsius{component="chassis",node="rack4-u12",sensor="coretemp/Core 0 (hwmon0/temp2)",site="fra1",source="hwmon"} 54 1795348800000`,
	} {
		if !slices.Contains(lines, want) {
			t.Errorf("missing line\n%s\nin:\n%s", want, out)
		}
	}
	// Sorted by metric, then labels, within a target.
	hw := lines[1:]
	if !slices.IsSorted(hw) {
		t.Errorf("hwmon readings not sorted:\n%s", strings.Join(hw, "\n"))
	}
	series, rejs := textimport.Parse([]byte(out), 0)
	if len(rejs) != 0 {
		t.Fatalf("text import rejections: %+v", rejs)
	}
	points := 0
	for _, s := range series {
		for _, p := range s.Points {
			points++
			if p.T != collectT0.UnixMilli() {
				t.Errorf("%s: timestamp %d", s.String(), p.T)
			}
		}
	}
	if points != len(lines) {
		t.Errorf("text import read %d points from %d lines", points, len(lines))
	}
}

func TestCollectTargetNotBuilt(t *testing.T) {
	// A target whose collector refuses its configuration (go-ipmi cannot
	// address an IPv6 literal) fails alone: the other target is still read.
	cfg := writeConfig(t, fmt.Sprintf("site: fra1\ntargets:\n  - {name: host, type: rapl, sysfs: %q}\n  - {name: bmc, type: ipmi, host: \"::1\", username: admin, password_env: GL_TEST_IPMI_PW}\n",
		fixture(t, "rapl", "node_exporter")))
	t.Setenv("GL_TEST_IPMI_PW", "x")
	code, out, stderr := collectRun(t, "--once", "--config", cfg)
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
	}
	if strings.Count(out, "\n") != 1 || !strings.Contains(out, `"node":"host"`) {
		t.Errorf("stdout:\n%s", out)
	}
	if !strings.Contains(stderr, "target=bmc type=ipmi readings=0 took=0s status=error: target \"bmc\" (ipmi):") {
		t.Errorf("stderr lacks the ipmi target's error:\n%s", stderr)
	}
	if !strings.Contains(stderr, "greenloop collect: 1 of 2 targets failed") {
		t.Errorf("stderr:\n%s", stderr)
	}
}

func TestCollectErrors(t *testing.T) {
	good := writeConfig(t, "site: fra1\ntargets: [{name: h, type: hwmon, sysfs: /nonexistent}]\n")
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	for _, tc := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing config file", []string{"--once", "--config", missing}, 1, "greenloop collect: open config: open " + missing + ": no such file or directory"},
		{"no --config", []string{"--once"}, 1, "--config FILE is required"},
		{"no --once", []string{"--config", good}, 1, "run `greenloop agent --config FILE`"},
		{"bad format", []string{"--once", "--config", good, "--format", "xml"}, 1, `--format: want json or prom, got "xml"`},
		{"bad timeout", []string{"--once", "--config", good, "--timeout", "0s"}, 1, "--timeout: must be positive"},
		{"unknown flag", []string{"--once", "--config", good, "--fast"}, 1, "flag provided but not defined: -fast"},
		{"invalid config", []string{"--once", "--config", writeConfig(t, "site: Fra 1\ntargets: [{name: b, type: redfish, password: x}]\n")}, 1,
			"targets[0].password: literal passwords are not allowed"},
		{"unknown key", []string{"--once", "--config", writeConfig(t, "site: fra1\nsites: []\n")}, 1, "field sites not found"},
		{"help", []string{"-h"}, 0, "Usage: greenloop collect --once"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out, stderr := collectRun(t, tc.args...)
			if code != tc.code || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d (want %d), stderr:\n%s\nwant it to contain %q", code, tc.code, stderr, tc.want)
			}
			if out != "" {
				t.Errorf("stdout: %s", out)
			}
		})
	}
	// A target without hardware is not a failure.
	if code, _, stderr := collectRun(t, "--once", "--config", good); code != 0 || !strings.Contains(stderr, "status=no data") {
		t.Errorf("exit %d, stderr:\n%s", code, stderr)
	}
}

// blockingCollector emits one reading, then waits for its context (or, when
// it ignores it, until release is closed).
type blockingCollector struct {
	ignoreCtx bool
	release   chan struct{}
}

func (b blockingCollector) Collect(ctx context.Context, emit collectors.Emitter) error {
	emit.Emit(collectors.Reading{Metric: collectors.MetricPower, Value: 1, Time: collectT0})
	if b.ignoreCtx {
		<-b.release
		return nil
	}
	<-ctx.Done()
	return ctx.Err()
}

func TestPollTargetTimeout(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	for _, ignore := range []bool{false, true} {
		start := time.Now()
		res := pollTarget(context.Background(), blockingCollector{ignoreCtx: ignore, release: release}, 50*time.Millisecond)
		if res.err == nil || time.Since(start) > 5*time.Second {
			t.Fatalf("ignoreCtx=%v: err %v after %s", ignore, res.err, time.Since(start))
		}
		if res.err.Error() != "timed out after 50ms" {
			t.Errorf("ignoreCtx=%v: err %v", ignore, res.err)
		}
		if len(res.readings) != 1 {
			t.Errorf("ignoreCtx=%v: %d readings, want the one emitted before the timeout", ignore, len(res.readings))
		}
	}
}

// A Redfish BMC (the DMTF rackmount mockup) read through collect, with the
// password from a file and never on the command line or in the output.
func TestCollectRedfish(t *testing.T) {
	tree, err := filepath.Abs(filepath.Join("..", "..", "collectors", "redfish", "testdata", "dmtf-public-rackmount1"))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p := strings.TrimSuffix(r.URL.Path, "/")
		if p != "/redfish/v1" {
			if u, pw, ok := r.BasicAuth(); !ok || u != "monitor" || pw != "s3cret-pw" {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		rel, ok := strings.CutPrefix(p, "/redfish/v1")
		body, err := os.ReadFile(filepath.Join(tree, filepath.FromSlash(rel), "index.json"))
		if !ok || err != nil {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}))
	defer srv.Close()
	pass := filepath.Join(t.TempDir(), "bmc.pass")
	if err := os.WriteFile(pass, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := writeConfig(t, fmt.Sprintf("site: fra1\ntargets:\n  - {name: bmc-12, type: redfish, endpoint: %q, username: monitor, password_file: %q, auth: basic}\n", srv.URL, pass))
	code, out, stderr := collectRun(t, "--once", "--config", cfg)
	if code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, stderr)
	}
	want := `{"metric":"greenloop_power_watts","labels":{"component":"chassis","node":"bmc-12","sensor":"1U","site":"fra1","source":"redfish"},"value":374`
	if !strings.Contains(out, want) {
		t.Errorf("stdout lacks %s:\n%s", want, out)
	}
	if strings.Contains(out+stderr, "s3cret-pw") {
		t.Error("the password appears in the output")
	}
	if !strings.Contains(stderr, "target=bmc-12 type=redfish") || !strings.Contains(stderr, "status=ok") {
		t.Errorf("stderr:\n%s", stderr)
	}
}
