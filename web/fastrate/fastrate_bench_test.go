package fastrate

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/greenloop/greenloop/test/bench/loadgen"
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
	appendCounters(b, db, lsets, start, end, step)
	benchEngineAndFast(b, db, start, end)
}

// appendCounters appends the benchmarks' counters: every series every step
// from ten steps before start to end, one commit per step.
func appendCounters(b *testing.B, app storage.Appendable, lsets []labels.Labels, start, end, step int64) {
	b.Helper()
	for t := start - 10*step; t <= end; t += step {
		a := app.Appender(context.Background())
		for i, ls := range lsets {
			if _, err := a.Append(0, ls, t, float64((t-start)/1000)*float64(100+i%50)); err != nil {
				b.Fatal(err)
			}
		}
		if err := a.Commit(); err != nil {
			b.Fatal(err)
		}
	}
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
	// As the server runs it on two cores: two time shards (on ClickHouse,
	// two queries at once; on the TSDB, the series read once).
	b.Run("fastrate-two-shards", func(b *testing.B) {
		expr, _ := parse(qs)
		plan, _ := Compile(expr)
		steps := (end-start)/time.Minute.Milliseconds() + 1
		for b.Loop() {
			ms, err := plan.EvalShards(ctx, q, s, time.Minute, [][2]int64{{0, steps / 2}, {steps / 2, steps}})
			if err != nil {
				b.Fatal(err)
			}
			if len(ms) != 2 || len(ms[0]) != 20 {
				b.Fatalf("%d shards", len(ms))
			}
		}
	})
}

// BenchmarkShards24h compares, on a day of 10,000 realistic counters
// compacted into blocks (FASTRATE_BENCH_SERIES), one-thread Eval, two time
// shards each running Eval, and EvalShards (two shards reading the series
// once), interleaved round by round so that a busy machine disturbs them
// alike; it reports each variant's fastest and median round.
func BenchmarkShards24h(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("FASTRATE_BENCH_SERIES")); err == nil && v > 0 {
		n = v
	}
	const step = int64(60_000)
	end := int64(1_700_006_400_000)
	start := end - 24*3600_000
	db := openBenchDB(b)
	lsets := make([]labels.Labels, n)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", fmt.Sprintf("site-%02d", i%20),
			"node", fmt.Sprintf("node-%05d", i), "component", "cpu")
	}
	counter := make([]float64, n)
	for t := start - 10*step; t <= end; t += step {
		app := db.Appender(context.Background())
		for i, ls := range lsets {
			counter[i] += loadgen.Watts(i, t) * 60
			if _, err := app.Append(0, ls, t, counter[i]); err != nil {
				b.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	if err := db.Compact(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.Logf("%d blocks", len(db.Blocks()))
	expr, _ := parse(`sum by (site) (rate(greenloop_energy_joules_total[5m]))`)
	plan, _ := Compile(expr)
	ctx := context.Background()
	s, e := time.UnixMilli(start), time.UnixMilli(end)
	steps := (end-start)/step + 1
	half := [][2]int64{{0, steps * 55 / 100}, {steps * 55 / 100, steps}}
	variants := []struct {
		name string
		run  func() error
	}{
		{"one-thread", func() error { _, err := plan.Eval(ctx, db, s, e, time.Minute); return err }},
		{"two-evals", func() error {
			var wg sync.WaitGroup
			errs := make([]error, 2)
			for i, r := range half {
				wg.Go(func() {
					_, errs[i] = plan.Eval(ctx, db, s.Add(time.Duration(r[0])*time.Minute), s.Add(time.Duration(r[1]-1)*time.Minute), time.Minute)
				})
			}
			wg.Wait()
			return errors.Join(errs...)
		}},
		{"EvalShards", func() error { _, err := plan.EvalShards(ctx, db, s, time.Minute, half); return err }},
		// The reading goroutine evaluates the last shard: give it less.
		{"EvalShards-70-30", func() error {
			_, err := plan.EvalShards(ctx, db, s, time.Minute, [][2]int64{{0, steps * 70 / 100}, {steps * 70 / 100, steps}})
			return err
		}},
	}
	took := make([][]time.Duration, len(variants))
	for b.Loop() {
		for i, v := range variants {
			t0 := time.Now()
			if err := v.run(); err != nil {
				b.Fatal(err)
			}
			took[i] = append(took[i], time.Since(t0))
		}
	}
	for i, v := range variants {
		slices.Sort(took[i])
		b.ReportMetric(took[i][0].Seconds(), v.name+"-min-s")
		b.ReportMetric(took[i][len(took[i])/2].Seconds(), v.name+"-median-s")
	}
}

// openBenchDB opens a TSDB that cuts 2 h blocks and compacts them up to
// 36 h, as greenloop's store does with its default 15-day retention.
func openBenchDB(b *testing.B) *tsdb.DB {
	b.Helper()
	opts := tsdb.DefaultOptions()
	opts.MaxBlockDuration = 36 * 3600_000
	db, err := tsdb.Open(b.TempDir(), nil, nil, opts, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	return db
}
