package clickhouse_test

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/tsdb"
)

func newEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{MaxSamples: 100_000_000, Timeout: 2 * time.Minute, LookbackDelta: 5 * time.Minute})
}

// promInstant evaluates a query that returns one number.
func promInstant(t testing.TB, q storage.Queryable, expr string, at int64) float64 {
	t.Helper()
	qry, err := newEngine().NewInstantQuery(context.Background(), q, nil, expr, time.UnixMilli(at))
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatalf("%s: %v", expr, res.Err)
	}
	v, err := res.Vector()
	if err != nil || len(v) != 1 {
		t.Fatalf("%s: %v (%v)", expr, res.Value, err)
	}
	return v[0].F
}

// fleet writes the same data into every store: 4 sites x 5 nodes, power
// (gauge) and energy (counter) every 15 s for 3 hours, with some jitter and a
// gap, ending at end.
func fleet(t testing.TB, end int64, stores ...storage.Appendable) {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	var batch []sampleT
	for _, site := range []string{"fra1", "fra2", "par1", "waw1"} {
		for n := range 5 {
			p := labels.FromStrings("__name__", "greenloop_power_watts", "site", site, "node", fmt.Sprint("n", n))
			e := labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", site, "node", fmt.Sprint("n", n))
			var energy float64
			for ts := end - 3*3_600_000; ts <= end; ts += 15_000 {
				if n == 3 && ts > end-7_200_000 && ts < end-6_000_000 {
					continue // a node that was off for a while
				}
				jitter := int64(0)
				if n == 4 {
					jitter = int64(rng.IntN(3000)) // an irregular scraper
				}
				w := 100 + 50*math.Sin(float64(ts)/1e6) + rng.Float64()*10
				energy += w * 15
				if n == 2 && ts == end-5_400_000 {
					energy = 0 // a counter reset
				}
				batch = append(batch, sampleT{p, ts + jitter, w}, sampleT{e, ts + jitter, energy})
			}
		}
	}
	for _, s := range stores {
		mustCommit(t, s, batch)
	}
}

// TestSameAnswersAsTSDB runs the same PromQL over the embedded TSDB and
// ClickHouse holding the same data; answers must agree within 1e-9 relative.
// The minute- and hour-aligned range queries read the rollups.
func TestSameAnswersAsTSDB(t *testing.T) {
	st := open(t, newDB(t))
	defer st.Close()
	ts, err := tsdb.Open(t.TempDir(), tsdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ts.Close()
	end := time.Now().Add(-time.Hour).Truncate(time.Hour).UnixMilli()
	fleet(t, end, st, ts)

	queries := []string{
		`greenloop_power_watts`,
		`rate(greenloop_energy_joules_total[5m])`,
		`increase(greenloop_energy_joules_total[1h])`,
		`sum by (site) (greenloop_power_watts)`,
		`avg_over_time(greenloop_power_watts[10m])`,
		`max_over_time(greenloop_power_watts[10m])`,
		`min_over_time(greenloop_power_watts{node=~"n[34]"}[1h])`,
		`last_over_time(greenloop_power_watts{site!="fra1"}[2m])`,
		`sum(rate(greenloop_energy_joules_total{site=~"fra.*"}[15m])) by (node)`,
		`count_over_time(greenloop_power_watts{node!~"n0|n1"}[30m])`,
	}
	type rng struct {
		name       string
		start, end int64
		step       time.Duration
	}
	ranges := []rng{
		{"instant", end - 30*60_000 + 7_000, end - 30*60_000 + 7_000, 0},
		{"range 15s unaligned", end - 3_600_000 + 5_000, end - 1_800_000, 15 * time.Second},
		{"range 60s aligned (1m rollup)", end - 7_200_000, end, time.Minute},
		{"range 5m aligned (1m rollup)", end - 3*3_600_000, end, 5 * time.Minute},
		{"range 1h aligned (1h rollup)", end - 3*3_600_000, end + 3_600_000, time.Hour},
	}
	eng := newEngine()
	for _, r := range ranges {
		m0, h0 := clickhouse.RollupReads(st)
		for _, q := range queries {
			run := func(qu storage.Queryable) promql.Matrix {
				var (
					qry promql.Query
					err error
				)
				if r.step == 0 {
					qry, err = eng.NewInstantQuery(context.Background(), qu, nil, q, time.UnixMilli(r.start))
				} else {
					qry, err = eng.NewRangeQuery(context.Background(), qu, nil, q, time.UnixMilli(r.start), time.UnixMilli(r.end), r.step)
				}
				if err != nil {
					t.Fatal(err)
				}
				defer qry.Close()
				res := qry.Exec(context.Background())
				if res.Err != nil {
					t.Fatalf("%s %s: %v", r.name, q, res.Err)
				}
				switch v := res.Value.(type) {
				case promql.Matrix:
					// Copy: Close hands the points back to the engine's pool.
					m := make(promql.Matrix, len(v))
					for i, s := range v {
						m[i] = promql.Series{Metric: s.Metric.Copy(), Floats: slices.Clone(s.Floats)}
					}
					return m
				case promql.Vector:
					var m promql.Matrix
					for _, s := range v {
						m = append(m, promql.Series{Metric: s.Metric.Copy(), Floats: []promql.FPoint{{T: s.T, F: s.F}}})
					}
					return m
				}
				t.Fatalf("%s: unexpected %T", q, res.Value)
				return nil
			}
			want, got := run(ts), run(st)
			if msg := diffMatrix(want, got); msg != "" {
				t.Errorf("%s: %s: %s", r.name, q, msg)
			}
			if len(want) == 0 {
				t.Errorf("%s: %s: empty on the TSDB, the test proves nothing", r.name, q)
			}
		}
		m1, h1 := clickhouse.RollupReads(st)
		// Per range: the plain selectors, sum by, max/min/last_over_time read rollups.
		wantM, wantH := uint64(0), uint64(0)
		switch r.name {
		case "range 60s aligned (1m rollup)", "range 5m aligned (1m rollup)":
			wantM = 5
		case "range 1h aligned (1h rollup)":
			wantH = 3 // the two instant selections and min_over_time[1h]...
			wantM = 2 // ... but max_over_time[10m] and last_over_time[2m] are minutes
		}
		if m1-m0 != wantM || h1-h0 != wantH {
			t.Errorf("%s: %d reads of the 1m rollup and %d of the 1h one, want %d and %d", r.name, m1-m0, h1-h0, wantM, wantH)
		}
	}
}

func diffMatrix(want, got promql.Matrix) string {
	// Instant vectors come in the store's order (the TSDB's is by series id).
	slices.SortFunc(want, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	slices.SortFunc(got, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	if len(want) != len(got) {
		return fmt.Sprintf("%d series, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if labels.Compare(w.Metric, g.Metric) != 0 {
			return fmt.Sprintf("series %d is %s, want %s", i, g.Metric, w.Metric)
		}
		if len(w.Floats) != len(g.Floats) {
			return fmt.Sprintf("%s: %d points, want %d", w.Metric, len(g.Floats), len(w.Floats))
		}
		for j := range w.Floats {
			a, b := w.Floats[j], g.Floats[j]
			if a.T != b.T || math.Abs(a.F-b.F) > 1e-9*math.Max(math.Abs(a.F), 1e-300) && !(math.IsNaN(a.F) && math.IsNaN(b.F)) {
				return fmt.Sprintf("%s point %d: got %v@%d want %v@%d", w.Metric, j, b.F, b.T, a.F, a.T)
			}
		}
	}
	return ""
}

// TestSparseSeriesReadRaw: at one sample a minute the minute rollup holds as
// many rows as raw and costs more to read, so Select reads raw.
func TestSparseSeriesReadRaw(t *testing.T) {
	st := open(t, newDB(t))
	defer st.Close()
	end := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC).UnixMilli()
	l := labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1")
	var batch []sampleT
	for ts := end - 3*3_600_000 + 60_000; ts <= end; ts += 60_000 {
		batch = append(batch, sampleT{l, ts, float64(ts / 60_000 % 97)})
	}
	mustCommit(t, st, batch)
	m0, _ := clickhouse.RollupReads(st)
	qry, err := newEngine().NewRangeQuery(context.Background(), st, nil, "greenloop_power_watts", time.UnixMilli(end-3_600_000), time.UnixMilli(end), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	m, err := res.Matrix()
	if err != nil || len(m) != 1 || len(m[0].Floats) != 61 || m[0].Floats[60].F != float64(end/60_000%97) {
		t.Fatalf("result %v (%v)", res.Value, err)
	}
	if m1, _ := clickhouse.RollupReads(st); m1 != m0 {
		t.Errorf("%d reads of the minute rollup for a series sampled once a minute, want 0", m1-m0)
	}
}
