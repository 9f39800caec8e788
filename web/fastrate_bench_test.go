package web

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

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
			end := testNow.Truncate(time.Minute)
			start := end.Add(-24 * time.Hour)
			lsets := make([]labels.Labels, n)
			for i := range lsets {
				lsets[i] = labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", fmt.Sprintf("site-%02d", i%20),
					"node", fmt.Sprintf("node-%05d", i))
			}
			// Counters integrating the benchmarks' realistic power readings
			// (load curve and noise), so that values decode as a meter's do.
			counter := make([]float64, n)
			for ts := start.Add(-10 * time.Minute); !ts.After(end); ts = ts.Add(time.Minute) {
				app := e.store.Appender(b.Context())
				for i, ls := range lsets {
					counter[i] += loadgen.Watts(i, ts.UnixMilli()) * 60
					if _, err := app.Append(0, ls, ts.UnixMilli(), counter[i]); err != nil {
						b.Fatal(err)
					}
				}
				if err := app.Commit(); err != nil {
					b.Fatal(err)
				}
			}
			// Settle the store (head compacted into blocks, as a server's
			// background loop does) so that no compaction runs while timed.
			if err := e.store.Compact(b.Context()); err != nil {
				b.Fatal(err)
			}
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
		})
	}
}
