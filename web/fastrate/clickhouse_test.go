package fastrate

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
)

// openClickHouse starts a throw-away clickhouse-server and opens a store on it.
func openClickHouse(t testing.TB) *clickhouse.Store {
	t.Helper()
	chtest.Require(t)
	srv, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: []string{srv.Addr}, Database: "fastrate", WriteTimeout: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func appendAll(t testing.TB, app storage.Appendable, ss []series) {
	t.Helper()
	a := app.Appender(context.Background())
	for _, s := range ss {
		for i := range s.ts {
			if _, err := a.Append(0, s.lset, s.ts[i], s.vs[i]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
}

// On ClickHouse, as on the TSDB, Eval answers what the engine answers.
func TestClickHouseAgreement(t *testing.T) {
	st := openClickHouse(t)
	const hour = int64(time.Hour / time.Millisecond)
	from := int64(1_700_000_000_000) / hour * hour
	to := from + 4*hour
	ss := genSeries(rand.New(rand.NewPCG(3, 4)), 40, from, to)
	appendAll(t, st, ss)
	engine := newEngine()
	ctx := context.Background()
	for _, qs := range []string{
		`sum by (site) (rate(greenloop_energy_joules_total[5m]))`,
		`sum without (node) (increase(greenloop_energy_joules_total[30m]))`,
		`rate(greenloop_energy_joules_total{site="site-1"}[3m])`,
	} {
		expr, _ := parse(qs)
		plan, ok := Compile(expr)
		if !ok {
			t.Fatal(qs)
		}
		start, end := time.UnixMilli(from+hour/2), time.UnixMilli(to)
		q, err := engine.NewRangeQuery(ctx, st, nil, qs, start, end, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		res := q.Exec(ctx)
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		want, _ := res.Matrix()
		got, err := plan.Eval(ctx, st, start, end, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(want) == 0 {
			t.Fatalf("%s: the engine answered nothing", qs)
		}
		if err := sameMatrix(want, got); err != nil {
			t.Errorf("%s: %v", qs, err)
		}
		// Time shards: the series read once, each shard evaluated on its
		// own goroutine over them (evalShardedFloats).
		n := int64(end.Sub(start)/time.Minute) + 1
		for _, shards := range [][][2]int64{{{0, n / 2}, {n / 2, n}}, {{0, 1}, {1, n / 3}, {n / 3, n}}} {
			ms, err := plan.EvalShards(ctx, st, start, time.Minute, shards)
			if err != nil {
				t.Fatalf("%s %v: %v", qs, shards, err)
			}
			if err := sameMatrix(want, joinShards(ms)); err != nil {
				t.Errorf("%s, shards %v: %v", qs, shards, err)
			}
		}
		q.Close()
	}
}

// BenchmarkClickHouseSumRate24h is issue 5's query on ClickHouse: 10,000
// counters (FASTRATE_BENCH_SERIES) × 24 h at 60 s, with the engine and with
// Eval, one core each.
func BenchmarkClickHouseSumRate24h(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("FASTRATE_BENCH_SERIES")); err == nil && v > 0 {
		n = v
	}
	st := openClickHouse(b)
	end := int64(1_700_006_400_000)
	start := end - 24*3600_000
	const step = int64(60_000)
	lsets := make([]labels.Labels, n)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", fmt.Sprintf("site-%02d", i%20),
			"node", fmt.Sprintf("node-%05d", i), "component", "cpu")
	}
	loaded := time.Now()
	for t0 := start - 10*step; t0 <= end; t0 += 60 * step {
		app := st.Appender(context.Background())
		for t := t0; t < t0+60*step && t <= end; t += step {
			for i, ls := range lsets {
				if _, err := app.Append(0, ls, t, float64((t-start)/1000)*float64(100+i%50)); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	// Let ClickHouse finish merging the parts, as it has long done for a
	// day that is not new: the timed reads must not share the CPU with merges.
	for _, tbl := range []string{"samples", "samples_1m", "samples_1h"} {
		if err := st.Conn().Exec(context.Background(), "OPTIMIZE TABLE fastrate."+tbl+" FINAL"); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded and merged %d series in %s", n, time.Since(loaded).Round(time.Second))
	benchEngineAndFast(b, st, start, end)

	// Side by side with the embedded store (a TSDB with the same samples,
	// compacted into a block as a day that is not new is), both in two time
	// shards as the server runs the query on two cores, in alternating
	// rounds so that a busy machine slows both alike.
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = 2 * 3600_000
	opts.MaxBlockDuration = 48 * 3600_000
	db, err := tsdb.Open(b.TempDir(), nil, nil, opts, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	appendCounters(b, db, lsets, start, end, step)
	if err := db.Compact(context.Background()); err != nil {
		b.Fatal(err)
	}
	expr, _ := parse(`sum by (site) (rate(greenloop_energy_joules_total[5m]))`)
	plan, _ := Compile(expr)
	steps := (end-start)/step + 1
	shards := [][2]int64{{0, steps / 2}, {steps / 2, steps}}
	run := func(q storage.Queryable) time.Duration {
		t0 := time.Now()
		ms, err := plan.EvalShards(context.Background(), q, time.UnixMilli(start), time.Minute, shards)
		if err != nil || len(ms) != 2 || len(ms[0]) != 20 {
			b.Fatalf("%d shards: %v", len(ms), err)
		}
		return time.Since(t0)
	}
	b.Run("clickhouse-vs-embedded", func(b *testing.B) {
		var ch, em []time.Duration
		for b.Loop() {
			ch, em = append(ch, run(st)), append(em, run(db))
		}
		slices.Sort(ch)
		slices.Sort(em)
		mc, me := ch[len(ch)/2], em[len(em)/2]
		b.ReportMetric(mc.Seconds(), "clickhouse-s")
		b.ReportMetric(me.Seconds(), "embedded-s")
		b.ReportMetric(mc.Seconds()/me.Seconds(), "ratio")
	})
}
