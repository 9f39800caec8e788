package web

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/test/bench/loadgen"
)

// BenchmarkQueryRange24hHTTP is the foundation issue's query through the
// HTTP handler (time shards, JSON), uncached: 10,000 counters over 20 sites,
// 24 h at 60 s, on the one-pass path and on the engine.
func BenchmarkQueryRange24hHTTP(b *testing.B) {
	const n = 10_000
	for _, fast := range []bool{true, false} {
		b.Run(map[bool]string{true: "fast_rate", false: "engine"}[fast], func(b *testing.B) {
			e := newEnv(b, func(c *envConfig) {
				c.opts.Query.FastRate = &fast
				c.deps.Engine = promql.NewEngine(promql.EngineOpts{MaxSamples: 1e9, Timeout: time.Hour, LookbackDelta: 5 * time.Minute})
			})
			start, end := appendBenchCounters(b, e.store, n)
			// Settle the store (head compacted into blocks, as a server's
			// background loop does) so that no compaction runs while timed.
			if err := e.store.Compact(b.Context()); err != nil {
				b.Fatal(err)
			}
			timeQueryRange(b, e, start, end)
		})
	}
}

// BenchmarkQueryRange24hHTTPClickHouse is the same query through the HTTP
// handler on the ClickHouse store (a throw-away clickhouse-server, the
// tables merged first as a day that is not new has long been).
func BenchmarkQueryRange24hHTTPClickHouse(b *testing.B) {
	chtest.Require(b)
	srv, err := chtest.Start(b.TempDir(), 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Stop() })
	st, err := clickhouse.Open(b.Context(), clickhouse.Options{Addrs: []string{srv.Addr}, Database: "httpbench", WriteTimeout: 5 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	e := newEnv(b, func(c *envConfig) {
		c.store = st
		c.deps.Engine = promql.NewEngine(promql.EngineOpts{MaxSamples: 1e9, Timeout: time.Hour, LookbackDelta: 5 * time.Minute})
	})
	start, end := appendBenchCounters(b, st, 10_000)
	for _, tbl := range []string{"samples", "samples_1m", "samples_1h"} {
		if err := st.Conn().Exec(b.Context(), "OPTIMIZE TABLE httpbench."+tbl+" FINAL"); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("fast_rate", func(b *testing.B) { timeQueryRange(b, e, start, end) })
}

// appendBenchCounters appends n counters over 20 sites every minute for the
// 24 h before testNow (and ten minutes more), integrating the benchmarks'
// realistic power readings (load curve and noise) so that values decode as
// a meter's do, and returns the day's bounds.
func appendBenchCounters(b *testing.B, app storage.Appendable, n int) (start, end time.Time) {
	end = testNow.Truncate(time.Minute)
	start = end.Add(-24 * time.Hour)
	lsets := make([]labels.Labels, n)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", fmt.Sprintf("site-%02d", i%20),
			"node", fmt.Sprintf("node-%05d", i))
	}
	counter := make([]float64, n)
	for ts := start.Add(-10 * time.Minute); !ts.After(end); ts = ts.Add(time.Minute) {
		a := app.Appender(b.Context())
		for i, ls := range lsets {
			counter[i] += loadgen.Watts(i, ts.UnixMilli()) * 60
			if _, err := a.Append(0, ls, ts.UnixMilli(), counter[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := a.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	return start, end
}

// timeQueryRange times the day's sum(rate) through the handler, reporting
// this process's CPU per query too.
func timeQueryRange(b *testing.B, e *testEnv, start, end time.Time) {
	p := url.Values{"query": {`sum by (site) (rate(greenloop_energy_joules_total[5m]))`},
		"start": {fmt.Sprint(start.Unix())}, "end": {fmt.Sprint(end.Unix())}, "step": {"60"}}
	target := "/api/v1/query_range?" + p.Encode()
	cpu0 := processCPU()
	for b.Loop() {
		if rec := e.do(req{target: target}); rec.Code != 200 || rec.Body.Len() < 100_000 {
			b.Fatalf("%d %.200s", rec.Code, rec.Body)
		}
	}
	// CPU time is what a busy machine does not distort much.
	b.ReportMetric((processCPU()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
}
