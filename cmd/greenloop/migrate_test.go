package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/accounting/report/chstore"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
)

// The embedded store's history (old blocks and the head) is copied into a
// real ClickHouse; a second run skips the copied blocks and stores nothing twice.
func TestMigrateTSDBToClickHouse(t *testing.T) {
	chtest.Require(t)
	ch, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer ch.Stop()

	dir := t.TempDir()
	db, err := tsdb.Open(dir, tsdb.Options{Retention: 400 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().Truncate(time.Minute)
	want := map[string]int{}
	write := func(w *ingest.Writer, node string, from time.Time, n int) {
		t.Helper()
		s := sample.Series{Labels: []sample.Label{{Name: "__name__", Value: "greenloop_energy_joules_total"}, {Name: "node", Value: node},
			{Name: "site", Value: "fra1"}, {Name: "tenant", Value: "acme"}}}
		for i := range n {
			s.Points = append(s.Points, sample.Point{T: from.Add(time.Duration(i) * time.Minute).UnixMilli(), V: float64(i) * 1000})
		}
		if res, err := w.WriteSeries(context.Background(), ingest.WriteOptions{}, []sample.Series{s}); err != nil || res.RejectedCount > 0 {
			t.Fatalf("write %s: %v %+v", node, err, res.Rejected)
		}
		want[node] += n
	}
	bw, _ := ingest.NewWriter(db.Backfill(), ingest.WriterOptions{MaxAge: 300 * 24 * time.Hour})
	hw, _ := ingest.NewWriter(db, ingest.WriterOptions{})
	write(bw, "old-a", now.AddDate(0, -3, 0), 3000) // blocks, months back
	write(bw, "old-b", now.AddDate(0, -2, 0), 2000)
	write(hw, "live", now.Add(-2*time.Hour), 120) // the head
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// The EU report's file stores in the same data directory: two entries of
	// one field (its history) and a frozen snapshot.
	inDir, snapDir := reportDirs(config.Server{DataDir: dir})
	inputs, err := report.NewFileInputStore(inDir, nil, func() time.Time { return now.Add(-48 * time.Hour) }, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := inputs.Put(ctx, "acme", "fra1", 2025, map[string]json.RawMessage{report.FFloorTotal: json.RawMessage("11000")}, "alice"); err != nil {
		t.Fatal(err)
	}
	inputs2, _ := report.NewFileInputStore(inDir, nil, func() time.Time { return now.Add(-24 * time.Hour) }, nil)
	if err := inputs2.Put(ctx, "acme", "fra1", 2025, map[string]json.RawMessage{report.FFloorTotal: json.RawMessage("12000")}, "bob"); err != nil {
		t.Fatal(err)
	}
	site := config.Site{ID: "fra1", Name: "Frankfurt 1", Zone: "DE", ITCapacityKW: 800}
	rep, err := report.Build(report.Request{Tenant: "acme", Year: 2025, Now: now, Site: site,
		Measured: report.Measured{EDC: &report.Reading[report.KWh]{Value: 1200}, EIT: &report.Reading[report.KWh]{Value: 1000}}})
	if err != nil {
		t.Fatal(err)
	}
	snap, err := report.Freeze("acme", rep, report.FreezeOptions{Draft: true, By: "carol", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	snaps, _ := report.NewFileSnapshotStore(snapDir, nil)
	if err := snaps.Save(ctx, snap); err != nil {
		t.Fatal(err)
	}

	cfg := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, "storage: {backend: clickhouse, clickhouse: {addrs: [%q], database: migrate_test, retention: 200d}}\n", ch.Addr), 0o644); err != nil {
		t.Fatal(err)
	}
	migrate := func() string {
		t.Helper()
		var out, errb bytes.Buffer
		if err := runMigrate(context.Background(), []string{"--from", "tsdb:" + dir, "--to", "clickhouse", "--config", cfg, "--batch", "700"}, &out, &errb); err != nil {
			t.Fatalf("migrate: %v\n%s%s", err, out.String(), errb.String())
		}
		return out.String()
	}
	first := migrate()
	// The blocks hold 5,000 samples; the head pass starts 73 h before the
	// newest block's end, so it may copy some of them again (stored once).
	if !regexp.MustCompile(`(?m)^copied (\d+) samples of \d+ series from 2 block\(s\) and the head`).MatchString(first) ||
		!strings.Contains(first, "3000 samples") || !strings.Contains(first, "2000 samples") {
		t.Errorf("first run:\n%s", first)
	}
	if !strings.Contains(first, "report inputs: 2 entries of 1 site-year(s), 2 copied, 0 already in ClickHouse") ||
		!strings.Contains(first, "report snapshots: 1, 1 copied, 0 already in ClickHouse") {
		t.Errorf("first run, reports:\n%s", first)
	}
	second := migrate()
	if !strings.Contains(second, "report inputs: 2 entries of 1 site-year(s), 0 copied, 2 already in ClickHouse") ||
		!strings.Contains(second, "report snapshots: 1, 0 copied, 1 already in ClickHouse") {
		t.Errorf("second run, reports:\n%s", second)
	}
	blocks := len(regexp.MustCompile(`(?m)^block .*: \d+ series`).FindAllString(first, -1))
	if blocks == 0 || strings.Count(second, "copied by an earlier run, skipped") != blocks || !strings.Contains(second, fmt.Sprintf("%d block(s) skipped", blocks)) {
		t.Errorf("second run did not skip the %d copied blocks:\n%s", blocks, second)
	}

	st, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{ch.Addr}, Database: "migrate_test", Retention: 200 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The entries keep their authors and times; the snapshot its bytes.
	chIn, err := chstore.NewInputStore(ctx, st.Conn(), "migrate_test", nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	got0, err := chIn.Get(ctx, "acme", "fra1", 2025)
	if err != nil {
		t.Fatal(err)
	}
	if h := got0.Fields[report.FFloorTotal]; len(h) != 2 || h[0].By != "alice" || !h[0].At.Equal(now.Add(-48*time.Hour)) ||
		h[1].By != "bob" || string(h[1].Value) != "12000" {
		t.Errorf("inputs in ClickHouse: %+v", h)
	}
	chSnaps, err := chstore.NewSnapshotStore(ctx, st.Conn(), "migrate_test", nil)
	if err != nil {
		t.Fatal(err)
	}
	if gs, err := chSnaps.Get(ctx, "acme", snap.ID); err != nil || !bytes.Equal(gs.JSON, snap.JSON) || gs.By != "carol" {
		t.Errorf("snapshot in ClickHouse: %v", err)
	}
	q, err := st.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	got := map[string]int{}
	ss := q.Select(context.Background(), true, nil, labels.MustNewMatcher(labels.MatchEqual, "site", "fra1"))
	for ss.Next() {
		s := ss.At()
		if s.Labels().Get("tenant") != "acme" {
			t.Errorf("tenant label lost: %s", s.Labels())
		}
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			got[s.Labels().Get("node")]++
		}
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	for node, n := range want {
		if got[node] != n {
			t.Errorf("%s: %d samples in ClickHouse, want %d (all of them, once)", node, got[node], n)
		}
	}
}
