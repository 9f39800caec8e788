package clickhouse_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/ingest/storetest"
)

// holdBuffer has thresholds no test reaches: rows stay in the Buffer table's
// memory until it is flushed (OPTIMIZE, DROP or a graceful server stop).
var holdBuffer = clickhouse.BufferOptions{Enabled: true, MinTime: 600 * time.Second, MaxTime: 900 * time.Second,
	MinRows: 1_000_000_000, MaxRows: 2_000_000_000, MinBytes: 1 << 40, MaxBytes: 1 << 41}

func withBuffer(b clickhouse.BufferOptions) func(*clickhouse.Options) {
	return func(o *clickhouse.Options) { o.Buffer = b }
}

// recentBatch is 3 power series, a sample every 15 s over the 10 minutes up
// to the last whole minute (value = 100*node + index), and that minute's end.
func recentBatch() ([]sampleT, int64) {
	end := time.Now().Truncate(time.Minute).UnixMilli()
	return powerBatch(3, 40, end-39*15_000, func(i, j int) float64 { return float64(100*i + j) }), end
}

// The conformance suite with every sample still in the buffer's memory:
// whatever is written is read back at once, through the buffer.
func TestConformanceBuffer(t *testing.T) {
	server(t)
	storetest.Run(t, func(t *testing.T, dir string) ingest.Store {
		return open(t, dbFor(dir)+"_buf", withBuffer(holdBuffer))
	})
}

func TestBufferTable(t *testing.T) {
	db := newDB(t)
	st := open(t, db, withBuffer(holdBuffer))
	defer st.Close()
	ctx := context.Background()
	batch, end := recentBatch()
	mustCommit(t, st, batch)
	mustCommit(t, st, batch) // a resend
	// Acknowledged, but only in the buffer's memory so far.
	if n := queryUint(t, st, "SELECT count() FROM "+db+".samples"); n != 0 {
		t.Fatalf("samples table holds %d rows before any flush, want 0 (thresholds not reached)", n)
	}
	if n := queryUint(t, st, "SELECT count() FROM "+db+".samples_1h"); n != 0 {
		t.Fatalf("hourly rollup holds %d rows before any flush, want 0", n)
	}
	check := func(stage string) {
		t.Helper()
		// Queryable at once and counted once (the resend is dropped at read).
		if got := promInstant(t, st, "sum(count_over_time(greenloop_power_watts[15m]))", end); got != 120 {
			t.Errorf("%s: count_over_time = %v, want 120", stage, got)
		}
		if got := promInstant(t, st, "sum(greenloop_power_watts)", end); got != 39+139+239 {
			t.Errorf("%s: sum of the latest samples = %v, want %d", stage, got, 39+139+239)
		}
		// The series API finds them in a bounded range (the rollup does not have them yet).
		q, err := st.Querier(end-5*60_000, end)
		if err != nil {
			t.Fatal(err)
		}
		set := q.Select(ctx, false, &storage.SelectHints{Start: end - 5*60_000, End: end, Func: "series"},
			labels.MustNewMatcher(labels.MatchEqual, "__name__", "greenloop_power_watts"))
		n := 0
		for set.Next() {
			n++
		}
		if set.Err() != nil || n != 3 {
			t.Errorf("%s: series API found %d series (%v), want 3", stage, n, set.Err())
		}
		q.Close()
		// A minute-aligned range query up to now reads raw samples through the
		// buffer, not the rollups (which lack the buffered rows), and is exact.
		m0, h0 := clickhouse.RollupReads(st)
		qry, err := newEngine().NewRangeQuery(ctx, st, nil, "max_over_time(greenloop_power_watts{node=\"n2\"}[1m])",
			time.UnixMilli(end-5*60_000), time.UnixMilli(end), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		res := qry.Exec(ctx)
		mat, err := res.Matrix()
		if err != nil || len(mat) != 1 || len(mat[0].Floats) != 6 {
			t.Fatalf("%s: range query: %v %v", stage, res.Value, err)
		}
		for k, p := range mat[0].Floats {
			// The minute ending at end-(5-k) minutes holds j up to 39-4*(5-k).
			want := promql.FPoint{T: end - int64(5-k)*60_000, F: float64(239 - 4*(5-k))}
			if p != want {
				t.Errorf("%s: point %d = %v, want %v", stage, k, p, want)
			}
		}
		qry.Close()
		if m, h := clickhouse.RollupReads(st); m != m0 || h != h0 {
			t.Errorf("%s: the range query read a rollup (%d, %d)", stage, m-m0, h-h0)
		}
	}
	check("in the buffer")
	// Flushing (what the thresholds or a graceful stop do) moves the rows into
	// samples, and the materialized views fill the rollups from them.
	if err := st.Conn().Exec(ctx, "OPTIMIZE TABLE "+db+".samples_buffer"); err != nil {
		t.Fatal(err)
	}
	if n := queryUint(t, st, "SELECT count() FROM "+db+".samples"); n != 120 && n != 240 {
		t.Errorf("samples after the flush: %d rows, want 240 (120 once merged)", n)
	}
	if n := queryUint(t, st, "SELECT count() FROM "+db+".samples FINAL"); n != 120 {
		t.Errorf("samples FINAL after the flush: %d rows, want 120", n)
	}
	if n := queryUint(t, st, "SELECT count() FROM "+db+".samples_1h"); n == 0 {
		t.Error("hourly rollup empty after the flush")
	}
	check("flushed")
	rs, err := st.Rollups(ctx, time.Minute, end-60_000, end, labels.MustNewMatcher(labels.MatchEqual, "node", "n0"))
	if err != nil || len(rs) != 1 || len(rs[0].Buckets) != 2 || rs[0].Buckets[1].Count != 4 || rs[0].Buckets[1].Last != 39 {
		t.Errorf("minute rollup after the flush: %+v %v", rs, err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopening with the same thresholds keeps the buffer (and its rows);
	// other thresholds replace it, flushing its rows first.
	more := make([]sampleT, len(batch))
	for i, s := range batch {
		more[i] = sampleT{s.l, s.t - 3_600_000, s.v}
	}
	st2 := open(t, db, withBuffer(holdBuffer))
	mustCommit(t, st2, more)
	st2.Close()
	st3 := open(t, db, withBuffer(holdBuffer))
	if n := queryUint(t, st3, "SELECT count() FROM "+db+".samples FINAL"); n != 120 {
		t.Errorf("reopened with the same thresholds: samples holds %d rows, want 120 (the buffer kept)", n)
	}
	st3.Close()
	other := holdBuffer
	other.MaxTime = 1200 * time.Second
	st4 := open(t, db, withBuffer(other))
	defer st4.Close()
	if n := queryUint(t, st4, "SELECT count() FROM "+db+".samples FINAL"); n != 240 {
		t.Errorf("reopened with other thresholds: samples holds %d rows, want 240 (the old buffer flushed)", n)
	}
	var stmt string
	if err := st4.Conn().QueryRow(ctx, "SHOW CREATE TABLE "+db+".samples_buffer").Scan(&stmt); err != nil || !strings.Contains(stmt, "1200") {
		t.Errorf("buffer definition after the change: %q %v", stmt, err)
	}
}

// TestBufferCrash shows the Buffer table's trade-off on a real server: rows
// acknowledged from the buffer's memory survive a graceful stop (it flushes)
// and are lost when the server is killed before a flush.
func TestBufferCrash(t *testing.T) {
	server(t)
	own, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = own.Stop() })
	ctx := context.Background()
	openOwn := func() *clickhouse.Store {
		st, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: []string{own.Addr}, Database: "buffered", Buffer: holdBuffer, FlushInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := openOwn()
	batch, _ := recentBatch()
	mustCommit(t, st, batch)
	st.Close()
	if err := own.Stop(); err != nil { // SIGTERM: the server flushes its buffers
		t.Fatal(err)
	}
	if err := own.Restart(); err != nil {
		t.Fatal(err)
	}
	st = openOwn()
	if n := queryUint(t, st, "SELECT count() FROM buffered.samples"); n != 120 {
		t.Errorf("after a graceful stop: %d rows, want 120", n)
	}
	later := make([]sampleT, len(batch))
	for i, s := range batch {
		later[i] = sampleT{s.l, s.t + 600_000, s.v}
	}
	mustCommit(t, st, later) // acknowledged...
	st.Close()
	if err := own.Kill(); err != nil { // ...then SIGKILL before any flush
		t.Fatal(err)
	}
	if err := own.Restart(); err != nil {
		t.Fatal(err)
	}
	st = openOwn()
	defer st.Close()
	if n := queryUint(t, st, "SELECT count() FROM buffered.samples_buffer"); n != 120 {
		t.Errorf("after SIGKILL: %d rows, want 120 (the 120 acknowledged from memory are lost)", n)
	}
}
