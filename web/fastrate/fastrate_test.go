package fastrate

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	gltsdb "github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/prometheus/prometheus/util/kahansum"
)

func TestCompile(t *testing.T) {
	for _, tc := range []struct {
		q  string
		ok bool
	}{
		{`sum by (site) (rate(greenloop_energy_joules_total[5m]))`, true},
		{`sum(increase(greenloop_energy_joules_total{site="a"}[1h]))`, true},
		{`sum without (node) (rate(http_requests_total[2m]))`, true},
		{`rate(greenloop_energy_joules_total{rack=~"r.*"}[5m])`, true},
		{`(sum by (site) ((rate(x_count[5m]))))`, true},
		{`sum by (site) (rate(greenloop_power_watts[5m]))`, false}, // engine annotates: not a counter name
		{`sum by (site) (rate({__name__=~"x_total"}[5m]))`, false}, // no metric name
		{`sum by (site) (rate(x_total[5m] offset 1h))`, false},     // offset
		{`sum by (site) (rate(x_total[5m] @ 1700000000))`, false},  // @
		{`sum by (site) (rate(x_total[5m] @ end()))`, false},       // @ end()
		{`avg by (site) (rate(x_total[5m]))`, false},               // other aggregation
		{`topk(3, rate(x_total[5m]))`, false},                      // parameter
		{`sum by (__name__) (rate(x_total[5m]))`, false},           // grouping by name
		{`sum by (site) (irate(x_total[5m]))`, false},              // other function
		{`sum by (site) (rate(x_total[5m])) * 2`, false},           // binary
		{`sum by (site) (rate(sum(x_total)[5m:1m]))`, false},       // subquery
		{`x_total`, false},
	} {
		expr, err := parse(tc.q)
		if err != nil {
			t.Fatalf("%s: %v", tc.q, err)
		}
		if _, ok := Compile(expr); ok != tc.ok {
			t.Errorf("Compile(%s) = %v, want %v", tc.q, ok, tc.ok)
		}
	}
}

// series is one generated counter.
type series struct {
	lset labels.Labels
	ts   []int64
	vs   []float64
}

// genSeries makes counters with what the engine must handle: irregular
// intervals, gaps longer than the range, resets, stale markers, series that
// start and end inside the queried range, NaN and negative first values.
func genSeries(r *rand.Rand, n int, from, to int64) []series {
	var out []series
	for i := range n {
		lset := labels.FromStrings("__name__", "greenloop_energy_joules_total",
			"site", fmt.Sprintf("site-%d", i%4), "node", fmt.Sprintf("n%03d", i), "rack", fmt.Sprintf("r%d", i%3))
		if i%5 == 0 {
			lset = labels.FromStrings("__name__", "greenloop_energy_joules_total", "node", fmt.Sprintf("n%03d", i)) // no site label
		}
		s := series{lset: lset}
		interval := int64(15_000 + r.IntN(4)*15_000)
		start := from + r.Int64N((to-from)/4)
		end := to - r.Int64N((to-from)/4)
		v := r.Float64() * 1e6
		if i%7 == 0 {
			v = -r.Float64() * 100 // a counter that starts below zero
		}
		for t := start; t <= end; t += interval + r.Int64N(interval/3) - interval/6 {
			switch x := r.IntN(1000); {
			case x < 8: // reset
				v = r.Float64() * 1000
			case x < 12: // gap longer than any range queried
				t += 40 * 60_000
			case x < 14:
				s.ts, s.vs = append(s.ts, t), append(s.vs, math.Float64frombits(value.StaleNaN))
				continue
			case x < 15:
				s.ts, s.vs = append(s.ts, t), append(s.vs, math.NaN())
				continue
			default:
				v += r.Float64() * 5000
			}
			s.ts, s.vs = append(s.ts, t), append(s.vs, v)
		}
		out = append(out, s)
	}
	return out
}

// samplesOnly hides the DB's ChunkQuerier, so Eval reads samples.
type samplesOnly struct{ storage.Queryable }

func openDB(t *testing.T) *tsdb.DB {
	t.Helper()
	opts := tsdb.DefaultOptions()
	opts.MinBlockDuration = int64(time.Hour / time.Millisecond)
	opts.MaxBlockDuration = opts.MinBlockDuration
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// write appends the samples in time order, as a live store receives them.
func write(t *testing.T, db *tsdb.DB, ss []series) {
	t.Helper()
	type sample struct {
		s, i int
	}
	var all []sample
	for si, s := range ss {
		for i := range s.ts {
			all = append(all, sample{si, i})
		}
	}
	slices.SortStableFunc(all, func(a, b sample) int { return cmp.Compare(ss[a.s].ts[a.i], ss[b.s].ts[b.i]) })
	app := db.Appender(context.Background())
	for k, x := range all {
		if _, err := app.Append(0, ss[x.s].lset, ss[x.s].ts[x.i], ss[x.s].vs[x.i]); err != nil {
			t.Fatal(err)
		}
		if k%1000 == 999 {
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
			app = db.Appender(context.Background())
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

func newEngine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{MaxSamples: 1e9, Timeout: time.Minute, EnableAtModifier: true, EnableNegativeOffset: true})
}

// sameMatrix reports the first difference between two matrices, comparing
// values bit for bit (NaN equal to NaN).
func sameMatrix(want, got promql.Matrix) error {
	if len(want) != len(got) {
		return fmt.Errorf("%d series, want %d (got %v, want %v)", len(got), len(want), names(got), names(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if !labels.Equal(w.Metric, g.Metric) {
			return fmt.Errorf("series %d is %s, want %s", i, g.Metric, w.Metric)
		}
		if len(w.Histograms)+len(g.Histograms) > 0 {
			return fmt.Errorf("series %s: histograms", w.Metric)
		}
		if len(w.Floats) != len(g.Floats) {
			return fmt.Errorf("series %s: %d points, want %d", w.Metric, len(g.Floats), len(w.Floats))
		}
		for j := range w.Floats {
			wp, gp := w.Floats[j], g.Floats[j]
			same := math.Float64bits(wp.F) == math.Float64bits(gp.F) || (math.IsNaN(wp.F) && math.IsNaN(gp.F))
			if wp.T != gp.T || !same {
				return fmt.Errorf("series %s point %d: got %d=%v, want %d=%v", w.Metric, j, gp.T, gp.F, wp.T, wp.F)
			}
		}
	}
	return nil
}

func names(m promql.Matrix) []string {
	var out []string
	for _, s := range m {
		out = append(out, s.Metric.String())
	}
	return out
}

// TestEngineAgreement evaluates queries of every supported shape over
// generated data spread over blocks and the head, with the engine and with
// Eval, at several ranges, steps and phases, and wants the same answer bit
// for bit.
func TestEngineAgreement(t *testing.T) {
	const hour = int64(time.Hour / time.Millisecond)
	base := int64(1_700_000_000_000) / hour * hour
	from, to := base, base+6*hour
	r := rand.New(rand.NewPCG(1, 2))
	ss := genSeries(r, 60, from, to)
	db := openDB(t)
	write(t, db, ss)
	if err := db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(db.Blocks()) == 0 {
		t.Fatal("want the data spread over blocks and the head; no block was cut")
	}
	engine := newEngine()
	queries := []string{
		`sum by (site) (rate(greenloop_energy_joules_total[5m]))`,
		`sum by (site, rack) (increase(greenloop_energy_joules_total[1h]))`,
		`sum(rate(greenloop_energy_joules_total{site=~"site-[12]"}[2m]))`,
		`sum without (node) (rate(greenloop_energy_joules_total[10m]))`,
		`rate(greenloop_energy_joules_total{rack="r1"}[5m])`,
		`increase(greenloop_energy_joules_total[90s])`,
		`sum by (nolabel) (rate(greenloop_energy_joules_total[5m]))`,
	}
	windows := []struct {
		start, end int64
		step       time.Duration
	}{
		{from, to, time.Minute},
		{from + 7_000, to - 3*hour, 37 * time.Second},
		{from - hour, from + hour, 5 * time.Minute},
		{to - 30*60_000, to + hour, 15 * time.Second},
		{from + 2*hour, from + 2*hour, time.Minute}, // one step
	}
	ctx := context.Background()
	for _, qs := range queries {
		expr, err := parse(qs)
		if err != nil {
			t.Fatal(err)
		}
		plan, ok := Compile(expr)
		if !ok {
			t.Fatalf("%s: not compiled", qs)
		}
		for _, w := range windows {
			start, end := time.UnixMilli(w.start), time.UnixMilli(w.end)
			q, err := engine.NewRangeQuery(ctx, db, nil, qs, start, end, w.step)
			if err != nil {
				t.Fatal(err)
			}
			res := q.Exec(ctx)
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			want, err := res.Matrix()
			if err != nil {
				t.Fatal(err)
			}
			// The chunk path (the DB is a ChunkQueryable) and the sample path.
			for path, src := range map[string]storage.Queryable{"chunks": db, "samples": samplesOnly{db}} {
				got, err := plan.Eval(ctx, src, start, end, w.step)
				if err != nil {
					t.Fatalf("%s: %v", qs, err)
				}
				// The engine's matrix is sorted the same way for range queries.
				if err := sameMatrix(want, got); err != nil {
					t.Errorf("%s from %d to %d step %s, %s: %v", qs, w.start, w.end, w.step, path, err)
				}
				// The same in time shards, read once (chunks) or each on its own.
				n := int64(end.Sub(start)/w.step) + 1
				for _, shards := range [][][2]int64{{{0, n}}, {{0, n / 2}, {n / 2, n}}, {{0, 1}, {1, n / 3}, {n / 3, n}}} {
					if slices.ContainsFunc(shards, func(r [2]int64) bool { return r[0] >= r[1] }) {
						continue // too few steps for this split
					}
					ms, err := plan.EvalShards(ctx, src, start, w.step, shards)
					if err != nil {
						t.Fatalf("%s %v: %v", qs, shards, err)
					}
					if err := sameMatrix(want, joinShards(ms)); err != nil {
						t.Errorf("%s from %d to %d step %s, %s, shards %v: %v", qs, w.start, w.end, w.step, path, shards, err)
					}
				}
			}
			points := 0
			for _, s := range want {
				points += len(s.Floats)
			}
			if points == 0 && w.start < to && w.end > from {
				t.Errorf("%s from %d to %d: the engine answered nothing; the comparison proves nothing", qs, w.start, w.end)
			}
			q.Close()
		}
	}
}

// joinShards joins the matrices of consecutive time shards into one, sorted
// by labels.
func joinShards(ms []promql.Matrix) promql.Matrix {
	var out promql.Matrix
	idx := map[string]int{}
	for _, m := range ms {
		for _, s := range m {
			k := s.Metric.String()
			i, ok := idx[k]
			if !ok {
				i = len(out)
				idx[k] = i
				out = append(out, promql.Series{Metric: s.Metric})
			}
			out[i].Floats = append(out[i].Floats, s.Floats...)
		}
	}
	slices.SortFunc(out, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	return out
}

// TestHistogramsLeftToEngine: a native histogram among the samples makes
// Eval refuse, so the caller asks the engine.
func TestHistogramsLeftToEngine(t *testing.T) {
	db := openDB(t)
	app := db.Appender(context.Background())
	ls := labels.FromStrings("__name__", "req_count", "site", "a")
	for i := range 10 {
		h := &histogram.Histogram{Count: uint64(i + 1), Sum: float64(i), Schema: 0, ZeroThreshold: 0.001,
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{int64(i + 1)}}
		if _, err := app.AppendHistogram(0, ls, int64(i)*15_000, h, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	expr, _ := parse(`sum by (site) (rate(req_count[1m]))`)
	plan, ok := Compile(expr)
	if !ok {
		t.Fatal("not compiled")
	}
	_, err := plan.Eval(context.Background(), db, time.UnixMilli(60_000), time.UnixMilli(120_000), 15*time.Second)
	if err != ErrUnsupported {
		t.Fatalf("err = %v, want ErrUnsupported", err)
	}
}

// TestKnownValues checks a hand-computed case, independent of the engine:
// a counter rising 60 per 15 s sample has rate 4/s; with a reset, the
// increase carries on from the value before it.
func TestKnownValues(t *testing.T) {
	db := openDB(t)
	var a, b series
	a.lset = labels.FromStrings("__name__", "e_total", "site", "x", "node", "a")
	b.lset = labels.FromStrings("__name__", "e_total", "site", "x", "node", "b")
	for i := range 41 { // 0 .. 600 s
		t0 := int64(i) * 15_000
		a.ts, a.vs = append(a.ts, t0), append(a.vs, 1000+60*float64(i))
		v := 100 + 30*float64(i)
		if i >= 20 {
			v = 30 * float64(i-20) // reset to 0 at 300 s
		}
		b.ts, b.vs = append(b.ts, t0), append(b.vs, v)
	}
	write(t, db, []series{a, b})
	expr, _ := parse(`sum by (site) (increase(e_total[5m]))`)
	plan, _ := Compile(expr)
	at := time.UnixMilli(600_000)
	m, err := plan.Eval(context.Background(), db, at, at, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Window (300 s, 600 s]: 20 samples 315..600 s. a: 19 intervals × 60
	// = 1140 over 285 s, extrapolated to 300 s (15 s to the start is below
	// 1.1 × 15 s): 1200. b: 315 s..600 s is 30 per 15 s after the reset at
	// 300 s, which lies outside the window: also no reset inside: 19 × 30 =
	// 570 → 600. Sum 1800.
	if len(m) != 1 || len(m[0].Floats) != 1 || math.Abs(m[0].Floats[0].F-1800) > 1e-9 {
		t.Fatalf("got %v, want one point of 1800", m)
	}
	at = time.UnixMilli(450_000)
	m, err = plan.Eval(context.Background(), db, at, at, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	// Window (150 s, 450 s]: 165..450 s, 20 samples. a: 1200. b: rises 30 per
	// sample from 100+30·11=430 at 165 s to 670 at 285 s, resets to 0 at
	// 300 s and rises to 300 at 450 s: 300 − 430 + 670 = 540 over 285 s,
	// extrapolated by 15 s: 540 × 300/285 = 568.42...
	want := 1200 + 540*300.0/285
	if len(m) != 1 || math.Abs(m[0].Floats[0].F-want) > 1e-9 {
		t.Fatalf("got %v, want %v", m, want)
	}
}

func parse(q string) (parser.Expr, error) {
	return parser.NewParser(parser.Options{}).ParseExpr(q)
}

// Out-of-order samples (an agent's backlog) give a series overlapping
// chunks in the head; the answer is still the engine's.
func TestOutOfOrderChunks(t *testing.T) {
	opts := tsdb.DefaultOptions()
	opts.OutOfOrderTimeWindow = int64(72 * time.Hour / time.Millisecond)
	db, err := tsdb.Open(t.TempDir(), nil, nil, opts, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	base := int64(1_700_000_000_000)
	r := rand.New(rand.NewPCG(5, 6))
	var inOrder, late []series
	for i := range 8 {
		ls := labels.FromStrings("__name__", "e_total", "site", fmt.Sprintf("s%d", i%2), "node", fmt.Sprint(i))
		a, b := series{lset: ls}, series{lset: ls}
		v := 0.0
		for k := range 240 { // 2 h at 30 s
			v += r.Float64() * 100
			if k%2 == 0 || k > 200 {
				a.ts, a.vs = append(a.ts, base+int64(k)*30_000), append(a.vs, v)
			} else {
				b.ts, b.vs = append(b.ts, base+int64(k)*30_000), append(b.vs, v)
			}
		}
		inOrder, late = append(inOrder, a), append(late, b)
	}
	write(t, db, inOrder)
	appendAll(t, db, late) // older than the head's newest samples: out of order
	engine := newEngine()
	ctx := context.Background()
	const qs = `sum by (site) (rate(e_total[2m]))`
	start, end := time.UnixMilli(base+10*60_000), time.UnixMilli(base+110*60_000)
	q, err := engine.NewRangeQuery(ctx, db, nil, qs, start, end, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	res := q.Exec(ctx)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	want, _ := res.Matrix()
	expr, _ := parse(qs)
	plan, _ := Compile(expr)
	got, err := plan.Eval(ctx, db, start, end, 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(want) != 2 {
		t.Fatalf("engine: %d series", len(want))
	}
	if err := sameMatrix(want, got); err != nil {
		t.Error(err)
	}
}

// kahanInc must be Prometheus' kahansum.Inc to the bit, on ordinary sums,
// cancellation, overflow to infinity and NaN.
func TestKahanIncIsPrometheus(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	vals := []float64{0, 1, -1, 1e16, -1e16, 1e-300, math.MaxFloat64, -math.MaxFloat64, math.Inf(1), math.Inf(-1), math.NaN(), 0.1, 3}
	for range 20000 {
		vals = append(vals, (r.Float64()-0.5)*math.Pow(10, float64(r.IntN(40)-20)))
	}
	same := func(a, b float64) bool {
		return math.Float64bits(a) == math.Float64bits(b) || (math.IsNaN(a) && math.IsNaN(b))
	}
	for i := 0; i+2 < len(vals); i++ {
		inc, sum, c := vals[i], vals[i+1], vals[i+2]*1e-17
		ws, wc := kahansum.Inc(inc, sum, c)
		gs, gc := kahanInc(inc, sum, c)
		if !same(ws, gs) || !same(wc, gc) {
			t.Fatalf("kahanInc(%v, %v, %v) = %v, %v; kahansum.Inc %v, %v", inc, sum, c, gs, gc, ws, wc)
		}
	}
}

// Queries while samples are appended to the head's open chunks: the chunk
// path must not read a chunk being written (the race detector watches), and
// every answer must be one the engine could give at some moment, here
// checked as points that never decrease (the counters only rise).
func TestConcurrentAppend(t *testing.T) {
	db := openDB(t)
	base := int64(1_700_000_000_000)
	lsets := make([]labels.Labels, 50)
	for i := range lsets {
		lsets[i] = labels.FromStrings("__name__", "e_total", "site", fmt.Sprint(i%3), "node", fmt.Sprint(i))
	}
	var mu sync.Mutex
	next := base
	appendStep := func() {
		mu.Lock()
		defer mu.Unlock()
		app := db.Appender(context.Background())
		for i, ls := range lsets {
			if _, err := app.Append(0, ls, next, float64(next-base)/1000*float64(i+1)); err != nil {
				t.Error(err)
			}
		}
		if err := app.Commit(); err != nil {
			t.Error(err)
		}
		next += 15_000
	}
	for range 200 {
		appendStep()
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				appendStep()
			}
		}
	})
	expr, err := parse(`sum by (site) (rate(e_total[2m]))`)
	if err != nil {
		t.Fatal(err)
	}
	plan, _ := Compile(expr)
	for k := range 30 {
		start, end := time.UnixMilli(base+10*60_000), time.UnixMilli(base+4*3600_000)
		var m promql.Matrix
		if k%2 == 0 {
			m, err = plan.Eval(context.Background(), db, start, end, time.Minute)
		} else {
			// Time shards reading the series once, handing chunks between goroutines.
			n := int64(end.Sub(start)/time.Minute) + 1
			var ms []promql.Matrix
			ms, err = plan.EvalShards(context.Background(), db, start, time.Minute, [][2]int64{{0, n / 2}, {n / 2, n}})
			m = joinShards(ms)
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 3 {
			t.Fatalf("%d series", len(m))
		}
		for _, s := range m {
			checked := 0
			for _, p := range s.Floats {
				// Node i rises by i+1 per second, so over whole windows of
				// the data written before the queries began a site's sum is
				// the sum of its nodes' i+1.
				if p.T > base+199*15_000 {
					break
				}
				want := 0.0
				for i := range lsets {
					if fmt.Sprint(i%3) == s.Metric.Get("site") {
						want += float64(i + 1)
					}
				}
				if math.Abs(p.F-want) > 1e-9*want {
					t.Fatalf("%s: %v at %d, want %v", s.Metric, p.F, p.T, want)
				}
				checked++
			}
			if checked < 30 {
				t.Fatalf("%s: only %d points checked", s.Metric, checked)
			}
		}
	}
	close(done)
	wg.Wait()
}

// TestEngineAgreementRegular: counters sampled at exactly regular
// intervals (15 s, 30 s, 1 m, at every phase, starting and ending inside
// the range, some from zero so that the zero point of the extrapolation
// applies) take the regular path (regularRun) when the step is a multiple
// of the interval, and agree with the engine point for point; steps that
// are no multiple, and a series with a reset, take the general loop.
func TestEngineAgreementRegular(t *testing.T) {
	const hour = int64(time.Hour / time.Millisecond)
	base := int64(1_700_000_000_000) / hour * hour
	from, to := base, base+6*hour
	r := rand.New(rand.NewPCG(3, 4))
	var ss []series
	for i := range 48 {
		interval := []int64{15_000, 30_000, 60_000}[i%3]
		s := series{lset: labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", fmt.Sprintf("site-%d", i%4), "node", fmt.Sprintf("n%03d", i))}
		start := from + r.Int64N(hour) + []int64{0, 1, 7_000, interval - 1}[i%4]
		end := to - r.Int64N(hour)
		v := r.Float64() * 1e6
		if i%6 == 0 {
			v = 0 // the zero point lies inside the first windows
		}
		for t := start; t <= end; t += interval {
			if i == 5 && t > start+hour && t <= start+hour+interval {
				v = 10 // one reset: this series takes the general loop
			}
			s.ts, s.vs = append(s.ts, t), append(s.vs, v)
			v += r.Float64() * 3000
		}
		ss = append(ss, s)
	}
	db := openDB(t)
	write(t, db, ss)
	if err := db.Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	engine := newEngine()
	ctx := context.Background()
	for _, qs := range []string{
		`sum by (site) (rate(greenloop_energy_joules_total[5m]))`,
		`increase(greenloop_energy_joules_total[1m])`,
		`rate(greenloop_energy_joules_total[2m])`,
		`sum(increase(greenloop_energy_joules_total[1h]))`,
	} {
		expr, err := parse(qs)
		if err != nil {
			t.Fatal(err)
		}
		plan, _ := Compile(expr)
		for _, w := range []struct {
			start, end  int64
			step        time.Duration
			wantRegular bool
		}{
			{from, to, time.Minute, true},
			{from + 7_000, to - 2*hour, 30 * time.Second, true},
			{from - hour, to + hour, 2 * time.Minute, true},
			{from + 1, to, 15 * time.Second, true},
			{from, to, 37 * time.Second, false},
			{from, to, 45 * time.Second, true}, // a multiple of 15 s only
		} {
			start, end := time.UnixMilli(w.start), time.UnixMilli(w.end)
			q, err := engine.NewRangeQuery(ctx, db, nil, qs, start, end, w.step)
			if err != nil {
				t.Fatal(err)
			}
			want, err := q.Exec(ctx).Matrix()
			if err != nil {
				t.Fatal(err)
			}
			before := regularSteps.Load()
			got, err := plan.Eval(ctx, db, start, end, w.step)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameMatrix(want, got); err != nil {
				t.Errorf("%s from %d to %d step %s: %v", qs, w.start, w.end, w.step, err)
			}
			n := int64(end.Sub(start)/w.step) + 1
			ms, err := plan.EvalShards(ctx, db, start, w.step, [][2]int64{{0, n / 3}, {n / 3, n}})
			if err != nil {
				t.Fatal(err)
			}
			if err := sameMatrix(want, joinShards(ms)); err != nil {
				t.Errorf("%s from %d to %d step %s, two shards: %v", qs, w.start, w.end, w.step, err)
			}
			if ran := regularSteps.Load() > before; ran != w.wantRegular {
				t.Errorf("%s step %s: regular path taken %v, want %v", qs, w.step, ran, w.wantRegular)
			}
			q.Close()
		}
	}
}

// TestEngineAgreementStore runs the comparison on greenloop's embedded
// store, whose chunk querier reads the blocks itself (package
// ingest/tsdb): irregular and regular counters over several 2 h blocks and
// the head, every point the engine's, with and without time shards.
func TestEngineAgreementStore(t *testing.T) {
	const hour = int64(time.Hour / time.Millisecond)
	base := int64(1_700_000_000_000) / (2 * hour) * (2 * hour)
	from, to := base, base+9*hour
	st, err := gltsdb.Open(t.TempDir(), gltsdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	r := rand.New(rand.NewPCG(5, 6))
	ss := genSeries(r, 40, from, to)
	for i := range 20 { // regular ones too
		s := series{lset: labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", fmt.Sprintf("site-%d", i%4), "node", fmt.Sprintf("reg%02d", i))}
		v := 0.0
		for ts := from + int64(i)*1000; ts <= to; ts += 60_000 {
			s.ts, s.vs = append(s.ts, ts), append(s.vs, v)
			v += float64(100 + i)
		}
		ss = append(ss, s)
	}
	write(t, st.DB(), ss)
	if err := st.DB().Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(st.DB().Blocks()) < 2 {
		t.Fatalf("%d blocks, want several", len(st.DB().Blocks()))
	}
	engine := newEngine()
	ctx := context.Background()
	for _, qs := range []string{
		`sum by (site) (rate(greenloop_energy_joules_total[5m]))`,
		`increase(greenloop_energy_joules_total{site=~"site-[12]"}[10m])`,
	} {
		expr, _ := parse(qs)
		plan, _ := Compile(expr)
		for _, w := range []struct {
			start, end int64
			step       time.Duration
		}{{from, to, time.Minute}, {from + 7_000, to - 3*hour, 37 * time.Second}, {from + 3*hour, to + hour, 2 * time.Minute}} {
			start, end := time.UnixMilli(w.start), time.UnixMilli(w.end)
			q, err := engine.NewRangeQuery(ctx, st, nil, qs, start, end, w.step)
			if err != nil {
				t.Fatal(err)
			}
			want, err := q.Exec(ctx).Matrix()
			if err != nil {
				t.Fatal(err)
			}
			got, err := plan.Eval(ctx, st, start, end, w.step)
			if err != nil {
				t.Fatal(err)
			}
			if err := sameMatrix(want, got); err != nil {
				t.Errorf("%s from %d to %d step %s: %v", qs, w.start, w.end, w.step, err)
			}
			n := int64(end.Sub(start)/w.step) + 1
			ms, err := plan.EvalShards(ctx, st, start, w.step, [][2]int64{{0, n / 2}, {n / 2, n}})
			if err != nil {
				t.Fatal(err)
			}
			if err := sameMatrix(want, joinShards(ms)); err != nil {
				t.Errorf("%s from %d to %d step %s, shards: %v", qs, w.start, w.end, w.step, err)
			}
			if len(want) == 0 {
				t.Errorf("%s: the engine answered nothing", qs)
			}
			q.Close()
		}
	}
}
