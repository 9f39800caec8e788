package main

import (
	"bytes"
	"context"
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

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/ingest/tsdb"
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
	second := migrate()
	blocks := len(regexp.MustCompile(`(?m)^block .*: \d+ series`).FindAllString(first, -1))
	if blocks == 0 || strings.Count(second, "copied by an earlier run, skipped") != blocks || !strings.Contains(second, fmt.Sprintf("%d block(s) skipped", blocks)) {
		t.Errorf("second run did not skip the %d copied blocks:\n%s", blocks, second)
	}

	st, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{ch.Addr}, Database: "migrate_test", Retention: 200 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
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
