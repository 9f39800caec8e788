package fastrate

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"
)

// BenchmarkSumRate24h is the foundation issue's dashboard query: 10,000
// counters (FASTRATE_BENCH_SERIES) over 20 sites, 24 h at 60 s, evaluated
// with the engine and with Eval on one core each, from the head of a TSDB.
func BenchmarkSumRate24h(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("FASTRATE_BENCH_SERIES")); err == nil && v > 0 {
		n = v
	}
	const step = int64(60_000)
	end := int64(1_700_006_400_000)
	start := end - 24*3600_000
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = 48 * 3600_000
	opts.MaxBlockDuration = opts.MinBlockDuration
	db, err := tsdb.Open(b.TempDir(), nil, nil, opts, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	lsets := make([]labels.Labels, n)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", fmt.Sprintf("site-%02d", i%20),
			"node", fmt.Sprintf("node-%05d", i), "component", "cpu")
	}
	for t := start - 10*step; t <= end; t += step {
		app := db.Appender(context.Background())
		for i, ls := range lsets {
			if _, err := app.Append(0, ls, t, float64((t-start)/1000)*float64(100+i%50)); err != nil {
				b.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	benchEngineAndFast(b, db, start, end)
}

// benchEngineAndFast times the 24 h sum(rate) over q from start to end (ms)
// with the engine and with Eval, as two sub-benchmarks.
func benchEngineAndFast(b *testing.B, q storage.Queryable, start, end int64) {
	const qs = `sum by (site) (rate(greenloop_energy_joules_total[5m]))`
	ctx := context.Background()
	s, e := time.UnixMilli(start), time.UnixMilli(end)
	b.Run("engine", func(b *testing.B) {
		engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e9, Timeout: time.Hour})
		for b.Loop() {
			qry, err := engine.NewRangeQuery(ctx, q, nil, qs, s, e, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			if r := qry.Exec(ctx); r.Err != nil {
				b.Fatal(r.Err)
			}
			qry.Close()
		}
	})
	b.Run("fastrate", func(b *testing.B) {
		expr, _ := parse(qs)
		plan, _ := Compile(expr)
		for b.Loop() {
			m, err := plan.Eval(ctx, q, s, e, time.Minute)
			if err != nil {
				b.Fatal(err)
			}
			if len(m) != 20 {
				b.Fatalf("%d series", len(m))
			}
		}
	})
}
