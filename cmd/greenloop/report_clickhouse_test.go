package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/accounting/service/servicetest"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
	"github.com/greenloop/greenloop/web"
)

// With the ClickHouse backend the EU report's inputs and snapshots live in
// ClickHouse: what one server stores, another server (and the report
// command) reads, and no server keeps any of it in its data directory.
func TestReportInputsSharedThroughClickHouse(t *testing.T) {
	chtest.Require(t)
	t.Run("OneServer", func(t *testing.T) {
		s, err := chtest.Start(t.TempDir(), 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Stop() })
		reportsSharedByServers(t, []string{s.Addr}, "")
	})
	t.Run("Cluster", func(t *testing.T) {
		var addrs []string
		for range 2 {
			p, err := chtest.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
		}
		cluster := chtest.Cluster{Name: "greenloop2", Shards: addrs}
		dir := t.TempDir()
		for i, a := range addrs {
			var port int
			fmt.Sscanf(a, "127.0.0.1:%d", &port)
			s, err := chtest.Start(filepath.Join(dir, fmt.Sprint("shard", i)), port, cluster)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Stop() })
		}
		reportsSharedByServers(t, addrs, cluster.Name)
		// The report tables live on the first shard only.
		for i, a := range addrs {
			conn, err := ch.Open(&ch.Options{Addr: []string{a}, Protocol: ch.Native, Auth: ch.Auth{Username: "default", Database: "default"}})
			if err != nil {
				t.Fatal(err)
			}
			var n uint64
			err = conn.QueryRow(context.Background(), "SELECT count() FROM system.tables WHERE database = 'reports' AND name LIKE 'report\\_%'").Scan(&n)
			conn.Close()
			if want := []uint64{2, 0}[i]; err != nil || n != want {
				t.Errorf("shard %d holds %d report tables (%v), want %d", i, n, err, want)
			}
		}
	})
}

// reportsSharedByServers runs two servers on the ClickHouse at addrs: inputs
// entered through one are read through the other and by the report command.
func reportsSharedByServers(t *testing.T, addrs []string, cluster string) {
	ctx := context.Background()
	dir := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	config1 := func(name string) (config.Server, string) {
		t.Helper()
		file := filepath.Join(dir, name+".yaml")
		yaml := fmt.Sprintf(`data_dir: %s
storage:
  backend: clickhouse
  clickhouse: {addrs: [%s], database: reports, cluster: %q, retention: 1000d}
sites:
  - {id: fra1, name: Frankfurt 1, zone: DE, it_capacity_kw: 800}
  - {id: ams1, name: Amsterdam 1, zone: NL}
`, filepath.Join(dir, name), strings.Join(addrs, ", "), cluster)
		if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg, err := config.LoadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		return cfg, file
	}
	type server struct {
		cfg    config.Server
		file   string
		opened *openedStore
		h      http.Handler
	}
	start := func(name string) server {
		t.Helper()
		cfg, file := config1(name)
		opened, err := openStore(ctx, cfg, prometheus.NewRegistry(), log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { opened.Close() })
		writer, err := ingest.NewWriter(opened.Store, ingest.WriterOptions{MaxAge: opened.maxAge})
		if err != nil {
			t.Fatal(err)
		}
		srv, err := web.New(web.Deps{Store: opened.Store, Writer: writer, Sites: cfg.Sites,
			Engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute})}, web.Options{})
		if err != nil {
			t.Fatal(err)
		}
		stop, err := startAccounting(ctx, srv, log, cfg, opened.Store, writer, nil, staticSites(cfg.Sites), nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(stop)
		return server{cfg: cfg, file: file, opened: opened, h: srv.Handler()}
	}
	a, b := start("a"), start("b")
	// The API's ages are the writers' (openStore's).
	if w, r := storeAges(a.cfg); w != a.opened.maxAge || r-time.Hour != a.opened.backfillMaxAge {
		t.Errorf("storeAges %v %v; the store takes %v, backfill %v", w, r, a.opened.maxAge, a.opened.backfillMaxAge)
	}

	do := func(s server, method, path, body string, want int) []byte {
		t.Helper()
		rec := httptest.NewRecorder()
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		s.h.ServeHTTP(rec, req)
		if rec.Code != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, rec.Code, rec.Body.String(), want)
		}
		return rec.Body.Bytes()
	}
	const path = "/api/v1/sites/fra1/report-inputs/2025"
	do(a, "PUT", path, `{"floor_area_total_m2": 12000, "water_input_m3": {"value": 9100.5, "quality": "estimated"}}`, 200)
	do(b, "PUT", path, `{"floor_area_total_m2": 12500}`, 200)
	// A refusal through either server stores nothing.
	do(b, "PUT", path, `{"floor_area_total_m2": 1, "floor_area_m2": 12}`, 400)
	do(a, "PUT", "/api/v1/sites/ams1/report-inputs/2025", `{"dc_type": "colocation"}`, 200)

	fromA, fromB := do(a, "GET", path, "", 200), do(b, "GET", path, "", 200)
	if !bytes.Equal(fromA, fromB) {
		t.Errorf("the servers answer differently:\nA %s\nB %s", fromA, fromB)
	}
	var in report.Inputs
	if err := json.Unmarshal(fromB, &in); err != nil {
		t.Fatal(err)
	}
	floor := in.Fields[report.FFloorTotal]
	if len(floor) != 2 || string(floor[0].Value) != "12000" || string(floor[1].Value) != "12500" || len(in.Fields) != 2 {
		t.Fatalf("inputs read through B: %s", fromB)
	}
	if w, _ := in.Current(report.FWIN); string(w.Value) != "9100.5" || w.Quality != report.QualityEstimated || !strings.Contains(w.By, "role admin") {
		t.Errorf("water entry %+v", w)
	}

	// The report command reads the same entries (and the meters of 2025).
	meters, err := ingest.NewWriter(a.opened.Store, ingest.WriterOptions{Clock: func() time.Time { return servicetest.Now }, MaxAge: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if res, err := meters.WriteSeries(ctx, ingest.WriteOptions{}, []sample.Series{
		servicetest.Counter("fra1", "facility", 1), servicetest.Counter("fra1", "it", 0.8)}); err != nil || res.RejectedCount > 0 {
		t.Fatalf("write meters: %+v, %v", res, err)
	}
	var stdout, stderr bytes.Buffer
	if code := run(ctx, []string{"report", "eu", "--config", b.file, "--site", "fra1", "--year", "2025", "--format", "json"}, &stdout, &stderr); code != 0 {
		t.Fatalf("greenloop report eu: exit %d: %s", code, stderr.String())
	}
	var r struct {
		Fields map[string]struct {
			Value   any
			Quality string
			Source  string
		}
	}
	if err := json.Unmarshal(stdout.Bytes(), &r); err != nil {
		t.Fatal(err)
	}
	if f := r.Fields[report.FFloorTotal]; f.Value != 12500.0 || !strings.HasPrefix(f.Source, "entered by ") {
		t.Errorf("report command: floor area %+v", f)
	}
	if f := r.Fields[report.FWIN]; f.Value != 9100.5 || f.Quality != string(report.QualityEstimated) {
		t.Errorf("report command: water %+v", f)
	}

	// A snapshot frozen through one server's service is read through the other's.
	svcA, closeA, err := newReportService(ctx, a.cfg, a.opened.Store, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closeA()
	svcB, closeB, err := newReportService(ctx, b.cfg, b.opened.Store, log)
	if err != nil {
		t.Fatal(err)
	}
	defer closeB()
	snap, _, err := svcA.Freeze(ctx, "default", b.cfg.Sites[0], 2025, report.Measured{}, []string{"ams1"}, true, "alice")
	if err != nil {
		t.Fatal(err)
	}
	got, err := svcB.Snapshots.Get(ctx, "default", snap.ID)
	if err != nil || !bytes.Equal(got.JSON, snap.JSON) || got.By != "alice" {
		t.Fatalf("snapshot through B: %v, %d bytes (want %d)", err, len(got.JSON), len(snap.JSON))
	}
	if l, err := svcB.Snapshots.List(ctx, "default", "fra1", 2025); err != nil || len(l) != 1 || l[0].ID != snap.ID {
		t.Errorf("snapshots listed through B: %+v, %v", l, err)
	}
	frozenReport, err := got.Report()
	if err != nil || frozenReport.Fields[report.FFloorTotal].Value != 12500.0 {
		t.Errorf("frozen report: %v, floor area %+v", err, frozenReport)
	}

	// Nothing of it went to the data directories.
	for _, name := range []string{"a", "b"} {
		if _, err := os.Stat(filepath.Join(dir, name, "reports")); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("server %s keeps reports in its data directory: %v", name, err)
		}
	}
}

// The accounting API takes the ages of the configured store.
func TestStoreAges(t *testing.T) {
	for _, c := range []struct {
		name              string
		storage           config.Storage
		window, retention time.Duration
	}{
		{"tsdb", config.Storage{Backend: "tsdb", TSDB: config.TSDB{Retention: config.Duration(30 * 24 * time.Hour), OutOfOrderWindow: config.Duration(72 * time.Hour)}},
			72 * time.Hour, 30 * 24 * time.Hour},
		{"clickhouse default", config.Storage{Backend: "clickhouse", TSDB: config.TSDB{Retention: config.Duration(time.Hour)}},
			15*24*time.Hour - time.Hour, 15 * 24 * time.Hour},
		{"clickhouse 400d", config.Storage{Backend: "clickhouse", ClickHouse: config.ClickHouse{Retention: config.Duration(400 * 24 * time.Hour)}},
			400*24*time.Hour - time.Hour, 400 * 24 * time.Hour},
	} {
		w, r := storeAges(config.Server{Storage: c.storage})
		if w != c.window || r != c.retention {
			t.Errorf("%s: window %v retention %v, want %v %v", c.name, w, r, c.window, c.retention)
		}
	}
}
