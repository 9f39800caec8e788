package rollup

import (
	"context"
	"math"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/energy/promsource"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/sample"
)

var t0 = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// countingWriter counts the points written through it.
type countingWriter struct {
	w      Writer
	mu     sync.Mutex
	points int
}

func (c *countingWriter) WriteSeries(ctx context.Context, o ingest.WriteOptions, s []sample.Series) (ingest.Result, error) {
	c.mu.Lock()
	for _, x := range s {
		c.points += len(x.Points)
	}
	c.mu.Unlock()
	return c.w.WriteSeries(ctx, o, s)
}

type env struct {
	store    *tsdb.Store
	late     *ingest.LateWrites
	tracked  ingest.Store // raw writes through it are recorded in late
	clk      *clock
	writer   *countingWriter
	backfill *countingWriter
}

func newEnv(t *testing.T, now time.Time) *env {
	t.Helper()
	s, err := tsdb.Open(t.TempDir(), tsdb.Options{Retention: 60 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	e := &env{store: s, clk: &clock{t: now}}
	e.late = ingest.NewLateWrites(10*time.Minute, time.Hour, e.clk.Now)
	e.tracked = ingest.TrackLate(s, e.late)
	// Roll-ups go through the tracked store too, as when the server wires
	// one store for everything: the job's own writes then count as late.
	w, err := ingest.NewWriter(e.tracked, ingest.WriterOptions{Clock: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	bw, err := ingest.NewWriter(s.Backfill(), ingest.WriterOptions{Clock: e.clk.Now, MaxAge: 400 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e.writer, e.backfill = &countingWriter{w: w}, &countingWriter{w: bw}
	return e
}

func (e *env) job(t *testing.T, o Options) *Job {
	t.Helper()
	o.Source, o.Writer, o.Backfill, o.Late, o.Clock = e.store, e.writer, e.backfill, e.late, e.clk.Now
	j, err := NewJob(o)
	if err != nil {
		t.Fatal(err)
	}
	return j
}

// appendSamples appends samples of one series through app's store.
func appendSamples(t *testing.T, st storage.Appendable, ls labels.Labels, ts []int64, vs []float64) {
	t.Helper()
	app := st.Appender(context.Background())
	for i := range ts {
		if _, err := app.Append(0, ls, ts[i], vs[i]); err != nil {
			t.Fatalf("append %s at %d: %v", ls, ts[i], err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
}

// counterData is a 15 s counter over [from, to): power p(t) in W, with a
// device reset at reset (counting from 0 again) and no samples in the gaps.
func counterData(from, to time.Time, p func(time.Time) float64, reset time.Time, gaps [][2]time.Time) ([]int64, []float64) {
	var ts []int64
	var vs []float64
	v := 7e8
	for tm := from; tm.Before(to); tm = tm.Add(15 * time.Second) {
		v += p(tm) * 15
		if !reset.IsZero() && !tm.Before(reset) && tm.Before(reset.Add(15*time.Second)) {
			v = p(tm) * 7 // the counter restarted a few seconds ago
		}
		skip := false
		for _, g := range gaps {
			if tm.After(g[0]) && tm.Before(g[1]) {
				skip = true
			}
		}
		if !skip {
			ts = append(ts, tm.UnixMilli())
			vs = append(vs, v)
		}
	}
	return ts, vs
}

func powerData(from, to time.Time, p func(time.Time) float64) ([]int64, []float64) {
	var ts []int64
	var vs []float64
	for tm := from; tm.Before(to); tm = tm.Add(15 * time.Second) {
		ts = append(ts, tm.UnixMilli())
		vs = append(vs, p(tm))
	}
	return ts, vs
}

func wave(base, amp float64) func(time.Time) float64 {
	return func(tm time.Time) float64 {
		return base + amp*math.Sin(float64(tm.Unix()%7200)/7200*2*math.Pi)
	}
}

// rawEnergy is energy.Compute over the raw samples.
func rawEnergy(t *testing.T, q storage.Queryable, sel string, from, to time.Time, b energy.Bucketing) *energy.Result {
	t.Helper()
	r, err := energy.Compute(context.Background(), promsource.New(q), energy.Query{Selectors: []string{sel}, From: from, To: to, Buckets: b})
	if err != nil {
		t.Fatalf("raw energy of %s: %v", sel, err)
	}
	return r
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func sameResult(t *testing.T, what string, got, want *energy.Result) {
	t.Helper()
	if got.Series != want.Series || len(got.Buckets) != len(want.Buckets) {
		t.Fatalf("%s: %d series, %d buckets; want %d, %d", what, got.Series, len(got.Buckets), want.Series, len(want.Buckets))
	}
	for i := range want.Buckets {
		g, w := got.Buckets[i], want.Buckets[i]
		if !g.Start.Equal(w.Start) || !g.End.Equal(w.End) || !near(float64(g.Energy), float64(w.Energy)) ||
			!near(float64(g.Estimated), float64(w.Estimated)) || !near(g.Completeness, w.Completeness) {
			t.Errorf("%s bucket %d: got %s–%s %v J (est %v) c=%v; want %s–%s %v J (est %v) c=%v", what, i,
				g.Start.Format(time.RFC3339), g.End.Format(time.RFC3339), float64(g.Energy), float64(g.Estimated), g.Completeness,
				w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339), float64(w.Energy), float64(w.Estimated), w.Completeness)
		}
	}
	if !near(float64(got.Total), float64(want.Total)) || !near(got.Completeness, want.Completeness) {
		t.Errorf("%s: total %v J c=%v, want %v J c=%v", what, float64(got.Total), got.Completeness, float64(want.Total), want.Completeness)
	}
}

// storedPoints returns the stored points of one roll-up series.
func storedPoints(t *testing.T, q storage.Queryable, ms ...*labels.Matcher) map[int64]float64 {
	t.Helper()
	qr, err := q.Querier(math.MinInt64/2, math.MaxInt64/2)
	if err != nil {
		t.Fatal(err)
	}
	defer qr.Close()
	set := qr.Select(context.Background(), false, nil, ms...)
	out := map[int64]float64{}
	n := 0
	for set.Next() {
		n++
		it := set.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			out[ts] = v
		}
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	if n > 1 {
		t.Fatalf("%d series match %v, want at most 1", n, ms)
	}
	return out
}

func eq(n, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchEqual, n, v) }

const counterName, powerName = "greenloop_energy_joules_total", "greenloop_power_watts"

func TestRollupEqualsRawAndFollowsLateData(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t0.Add(6*time.Hour+12*time.Minute))
	// Two tenants; acme's n1 has a reset at 01:30, a 20 min gap inside hour
	// 2 and a 15 min gap across 03:00, which is also a batch boundary.
	acme1 := labels.FromStrings("__name__", counterName, "site", "fra1", "node", "n1", "tenant", "acme")
	acme2 := labels.FromStrings("__name__", counterName, "site", "fra1", "node", "n2", "tenant", "acme")
	globex := labels.FromStrings("__name__", counterName, "site", "fra1", "node", "n1", "tenant", "globex")
	plug := labels.FromStrings("__name__", powerName, "site", "fra1", "node", "plug", "tenant", "acme")
	from, to := t0.Add(-2*time.Minute), t0.Add(8*time.Hour+15*time.Minute)
	gaps := [][2]time.Time{{t0.Add(2*time.Hour + 20*time.Minute), t0.Add(2*time.Hour + 40*time.Minute)}, {t0.Add(2*time.Hour + 52*time.Minute), t0.Add(3*time.Hour + 7*time.Minute)}}
	ts, vs := counterData(from, to, wave(120e3, 30e3), t0.Add(90*time.Minute), gaps)
	appendSamples(t, e.store, acme1, ts, vs)
	ts, vs = counterData(from, to, wave(80e3, 10e3), time.Time{}, nil)
	appendSamples(t, e.store, acme2, ts, vs)
	ts, vs = counterData(from, to, wave(50e3, 5e3), time.Time{}, nil)
	appendSamples(t, e.store, globex, ts, vs)
	ts, vs = powerData(from, to, wave(900, 300))
	appendSamples(t, e.store, plug, ts, vs)

	j := e.job(t, Options{BatchHours: 3, Start: t0})
	more, err := j.RunOnce(ctx)
	if err != nil || more {
		t.Fatalf("first run: more %v err %v", more, err)
	}
	st := j.Stats()
	if st.HoursComputed != 6 || st.SeriesHours != 24 || !st.Next.Equal(t0.Add(6*time.Hour)) {
		t.Fatalf("first run: %+v, want 6 hours, 24 series-hours, next 06:00", st)
	}

	// Each roll-up equals energy.Compute of its raw series, hour by hour,
	// and lies at the hour's start.
	for _, ls := range []labels.Labels{acme1, acme2, globex, plug} {
		want := rawEnergy(t, e.store, ls.String(), t0, t0.Add(6*time.Hour), energy.Bucketing{Calendar: energy.Hour})
		ms := []*labels.Matcher{eq(SourceMetricLabel, ls.Get("__name__"))}
		ls.Range(func(l labels.Label) {
			if l.Name != "__name__" {
				ms = append(ms, eq(l.Name, l.Value))
			}
		})
		en := storedPoints(t, e.store, append(ms, eq("__name__", EnergyMetric))...)
		co := storedPoints(t, e.store, append(ms, eq("__name__", CompletenessMetric))...)
		es := storedPoints(t, e.store, append(ms, eq("__name__", EstimatedMetric))...)
		if len(en) != 6 {
			t.Fatalf("%s: %d roll-up points, want 6", ls, len(en))
		}
		for _, b := range want.Buckets {
			h := b.Start.UnixMilli()
			v, ok := en[h]
			if !ok || !near(v, float64(b.Energy)) {
				t.Errorf("%s %s: roll-up %v (present %v), raw %v", ls, b.Start.Format(time.TimeOnly), v, ok, float64(b.Energy))
			}
			c, ok := co[h]
			if !ok {
				c = 1
			}
			if c != b.Completeness {
				t.Errorf("%s %s: completeness %v, raw %v", ls, b.Start.Format(time.TimeOnly), c, b.Completeness)
			}
			if es[h] != float64(b.Estimated) {
				t.Errorf("%s %s: estimated %v, raw %v", ls, b.Start.Format(time.TimeOnly), es[h], float64(b.Estimated))
			}
		}
	}
	// The gappy hours are what the test is about: check they are there.
	n1 := rawEnergy(t, e.store, acme1.String(), t0, t0.Add(6*time.Hour), energy.Bucketing{Calendar: energy.Hour})
	if n1.Resets != 1 || n1.Buckets[2].Completeness >= 0.7 || n1.Buckets[2].Estimated == 0 || n1.Buckets[3].Estimated == 0 {
		t.Fatalf("test data: resets %d, hour 2 completeness %v estimated %v, hour 3 estimated %v", n1.Resets, n1.Buckets[2].Completeness, n1.Buckets[2].Estimated, n1.Buckets[3].Estimated)
	}

	// Tenants: each sees its own roll-ups and the same figures as raw.
	for _, tenant := range []string{"acme", "globex"} {
		q := ingest.TenantQueryable(e.store, tenant)
		got, err := HourlyEnergy(ctx, q, `greenloop_energy_joules_total{site="fra1"}`, t0, t0.Add(6*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		sameResult(t, tenant, got, rawEnergy(t, q, `greenloop_energy_joules_total{site="fra1"}`, t0, t0.Add(6*time.Hour), energy.Bucketing{Calendar: energy.Hour}))
	}
	if got := storedPoints(t, e.store, eq("__name__", EnergyMetric), eq("tenant", "globex")); len(got) != 6 {
		t.Errorf("globex: %d roll-up points with its tenant label, want 6", len(got))
	}

	// A device's buffered samples for the gap across 03:00 arrive late: the
	// counter rose early in the gap, so hour 2 gets more than the linear
	// estimate gave it and hour 3 less. Both are re-computed.
	var lts []int64
	var lvs []float64
	allTs, allVs := counterData(from, to, wave(120e3, 30e3), t0.Add(90*time.Minute), nil)
	g0, g1 := gaps[1][0].UnixMilli(), gaps[1][1].UnixMilli()
	var v0, v1 float64
	for i, x := range allTs {
		if x == g0 {
			v0 = allVs[i]
		}
		if x == g1 {
			v1 = allVs[i]
		}
	}
	for _, x := range allTs {
		if x > g0 && x < g1 {
			lts = append(lts, x)
			lvs = append(lvs, v0+(v1-v0)*math.Sqrt(float64(x-g0)/float64(g1-g0)))
		}
	}
	e.clk.Set(t0.Add(6*time.Hour + 20*time.Minute))
	appendSamples(t, e.tracked, acme1, lts, lvs)
	n1sel := []*labels.Matcher{eq("__name__", EnergyMetric), eq("node", "n1"), eq("tenant", "acme")}
	before := storedPoints(t, e.store, n1sel...)
	if _, err := j.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	st2 := j.Stats()
	// Every hour: the first run's own roll-up writes were late writes too.
	if st2.HoursComputed-st.HoursComputed != 6 {
		t.Errorf("second run computed %d hours, want 6 (the late hours and those the roll-ups themselves marked)", st2.HoursComputed-st.HoursComputed)
	}
	pts := storedPoints(t, e.store, n1sel...)
	h2, h3 := t0.Add(2*time.Hour).UnixMilli(), t0.Add(3*time.Hour).UnixMilli()
	if len(pts) != 8 || pts[h2] != before[h2] || pts[h3] != before[h3] {
		t.Fatalf("after late data: points %v; want 8, the first versions kept", pts)
	}
	want := rawEnergy(t, e.store, acme1.String(), t0, t0.Add(6*time.Hour), energy.Bucketing{Calendar: energy.Hour})
	if !near(pts[h2+1], float64(want.Buckets[2].Energy)) || !near(pts[h3+1], float64(want.Buckets[3].Energy)) {
		t.Errorf("hours 2, 3 after late data: roll-ups %v %v, raw %v %v", pts[h2+1], pts[h3+1], float64(want.Buckets[2].Energy), float64(want.Buckets[3].Energy))
	}
	if pts[h2+1] < pts[h2]*1.03 || pts[h3+1] > pts[h3]*0.97 {
		t.Errorf("late data moved too little: hour 2 %v → %v, hour 3 %v → %v", pts[h2], pts[h2+1], pts[h3], pts[h3+1])
	}
	aq := ingest.TenantQueryable(e.store, "acme")
	n1Sel := `greenloop_energy_joules_total{site="fra1",node="n1"}`
	got, err := HourlyEnergy(ctx, aq, n1Sel, t0, t0.Add(6*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, "acme n1 after late data", got, rawEnergy(t, aq, n1Sel, t0, t0.Add(6*time.Hour), energy.Bucketing{Calendar: energy.Hour}))
	// The site's group sum took the new versions too.
	siteSel := `greenloop_energy_joules_total{site="fra1"}`
	rq := &recordingQueryable{q: aq}
	got, err = HourlyEnergy(ctx, rq, siteSel, t0, t0.Add(6*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, "acme site after late data", got, rawEnergy(t, aq, siteSel, t0, t0.Add(6*time.Hour), energy.Bucketing{Calendar: energy.Hour}))
	if rq.readsSeriesRollups() {
		t.Errorf("the site's energy read the series' roll-ups, not the group sums: %q", rq.selects)
	}

	// The re-computation's own writes (hours 2 and 3, in two batches) marked
	// hours 1 to 4 once more: the next run computes them again, finds the
	// same figures and writes nothing; the one after does nothing.
	written := e.writer.points
	e.clk.Set(t0.Add(6*time.Hour + 25*time.Minute))
	if _, err := j.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	st3 := j.Stats()
	if st3.HoursComputed-st2.HoursComputed != 4 || e.writer.points != written {
		t.Errorf("third run: %d hours, %d points written; want 4 hours, 0 points", st3.HoursComputed-st2.HoursComputed, e.writer.points-written)
	}
	if _, err := j.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if st4 := j.Stats(); st4.HoursComputed != st3.HoursComputed {
		t.Errorf("fourth run computed %d hours, want 0", st4.HoursComputed-st3.HoursComputed)
	}

	// Restart: a new job finds the roll-ups, re-checks only the recent
	// hours (Recheck) and rolls up the two new ones.
	e.clk.Set(t0.Add(8*time.Hour + 15*time.Minute))
	e.late = ingest.NewLateWrites(10*time.Minute, time.Hour, e.clk.Now) // a new process
	j2 := e.job(t, Options{BatchHours: 1, Recheck: 2 * time.Hour, Start: t0})
	written = e.writer.points
	if _, err := j2.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	st5 := j2.Stats()
	if e.writer.points == written {
		t.Errorf("after restart: the two new hours wrote no points")
	}
	if st5.HoursComputed != 4 || !st5.Next.Equal(t0.Add(8*time.Hour)) {
		t.Errorf("after restart: %d hours computed, next %s; want 4 (2 re-checked, 2 new), 08:00", st5.HoursComputed, st5.Next)
	}
	// Re-checked hours 04 and 05 are unchanged (4 series each).
	if st5.Unchanged != 8 {
		t.Errorf("after restart: %d unchanged series-hours, want 8", st5.Unchanged)
	}
	got, err = HourlyEnergy(ctx, ingest.TenantQueryable(e.store, "acme"), `greenloop_energy_joules_total{node="n2"}`, t0, t0.Add(8*time.Hour+15*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, "acme n2 with the current hour", got, rawEnergy(t, ingest.TenantQueryable(e.store, "acme"), `greenloop_energy_joules_total{node="n2"}`, t0, t0.Add(8*time.Hour+15*time.Minute), energy.Bucketing{Calendar: energy.Hour}))
}

// Catch-up from the oldest raw sample, the old hours through the backfill
// writer; the reader equals energy.Compute for every kind of bucketing,
// including the hour not rolled up yet and hours cut by bucket edges.
func TestCatchUpBackfillAndReader(t *testing.T) {
	ctx := context.Background()
	now := t0.Add(5*24*time.Hour + 20*time.Minute)
	e := newEnv(t, now)
	from, to := t0.Add(17*time.Minute), now
	for i, p := range []float64{40e3, 55e3, 70e3} {
		ls := labels.FromStrings("__name__", counterName, "site", "fra1", "node", string(rune('a'+i)))
		var gaps [][2]time.Time
		switch i {
		case 1: // two and a half hours offline on day 2
			gaps = [][2]time.Time{{t0.Add(26*time.Hour + 10*time.Minute), t0.Add(28*time.Hour + 40*time.Minute)}}
		case 2: // offline across midnight, a boundary of the daily batches
			gaps = [][2]time.Time{{t0.Add(47*time.Hour + 5*time.Minute), t0.Add(49*time.Hour + 35*time.Minute)}}
		}
		ts, vs := counterData(from, to, wave(p, p/4), time.Time{}, gaps)
		appendSamples(t, e.store.Backfill(), ls, ts, vs) // days old: as blocks
	}
	plug := labels.FromStrings("__name__", powerName, "site", "fra1", "node", "plug")
	ts, vs := powerData(from, to, wave(300, 100))
	appendSamples(t, e.store.Backfill(), plug, ts, vs)

	j := e.job(t, Options{})
	more, err := j.RunOnce(ctx)
	if err != nil || more {
		t.Fatalf("catch-up: more %v err %v", more, err)
	}
	st := j.Stats()
	if st.HoursComputed != 120 || !st.Next.Equal(t0.Add(120*time.Hour)) {
		t.Fatalf("catch-up: %+v, want 120 hours from 00:00 (the oldest sample's hour)", st)
	}
	// Hours starting before the out-of-order window less an hour (now −
	// 71 h: 50 of them) went as blocks, the 70 others to the head; one
	// energy point per series and hour, plus sparse completeness/estimated,
	// plus per group sum (2: site fra1's counters and its power gauges) and
	// hour an energy and a covered point (and sparse estimated ones).
	if e.backfill.points < 50*(4+2*2) || e.backfill.points > 50*(4+2*2)+30 || e.writer.points < 70*(4+2*2) || e.writer.points > 70*(4+2*2)+20 {
		t.Errorf("points written: backfill %d, writer %d; want 400 and 560 (+ a few)", e.backfill.points, e.writer.points)
	}
	if st.GroupPointsWritten < (50+70)*2*2 {
		t.Errorf("group points written %d, want at least %d", st.GroupPointsWritten, (50+70)*2*2)
	}

	berlin, _ := time.LoadLocation("Europe/Berlin")
	kolkata, _ := time.LoadLocation("Asia/Kolkata")
	cases := []struct {
		name     string
		sel      []string
		from, to time.Time
		b        energy.Bucketing
		lookback time.Duration
	}{
		{"hourly with the current hour", []string{`greenloop_energy_joules_total{site="fra1"}`}, t0, now, energy.Bucketing{Calendar: energy.Hour}, 0},
		{"days in Berlin from 00:30", []string{`greenloop_energy_joules_total`}, t0.Add(30 * time.Minute), now, energy.Bucketing{Calendar: energy.Day, Location: berlin}, 0},
		{"days in Kolkata (UTC+5:30)", []string{`greenloop_energy_joules_total{node=~"a|b"}`}, t0, t0.Add(96 * time.Hour), energy.Bucketing{Calendar: energy.Day, Location: kolkata}, 0},
		// Node b's 2.5 h gap crosses hours cut by bucket edges, read raw: a
		// lookback longer than the gap lets them see the samples around it,
		// as energy.Compute does within one range.
		{"90 min steps", []string{`greenloop_energy_joules_total{node="b"}`}, t0.Add(10 * time.Minute), t0.Add(100 * time.Hour), energy.Bucketing{Step: 90 * time.Minute}, 3 * time.Hour},
		{"one bucket", []string{`greenloop_energy_joules_total`}, t0, now, energy.Bucketing{}, 0},
		// The increase across node c's gap is split between the two batches
		// as energy.Compute splits it within one range.
		{"gap across a batch boundary", []string{`greenloop_energy_joules_total{node="c"}`}, t0.Add(24 * time.Hour), t0.Add(72 * time.Hour), energy.Bucketing{Calendar: energy.Hour}, 0},
		{"power when no counter", []string{`greenloop_energy_joules_total{node="plug"}`, `greenloop_power_watts{node="plug"}`}, t0, t0.Add(48 * time.Hour), energy.Bucketing{Calendar: energy.Hour}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := energy.Query{Selectors: c.sel, From: c.from, To: c.to, Buckets: c.b, Lookback: c.lookback}
			got, err := Compute(ctx, e.store, q)
			if err != nil {
				t.Fatal(err)
			}
			want, err := energy.Compute(ctx, promsource.New(e.store), q)
			if err != nil {
				t.Fatal(err)
			}
			if got.Selector != want.Selector {
				t.Errorf("selector %q, want %q", got.Selector, want.Selector)
			}
			sameResult(t, c.name, got, want)
		})
	}

	// The reader takes each hour's latest version: a (forged) newer version
	// of node a's hour 30 shows in the result.
	h30 := t0.Add(30 * time.Hour)
	before, err := HourlyEnergy(ctx, e.store, `greenloop_energy_joules_total{node="a"}`, h30, h30.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	forged := labels.FromStrings("__name__", EnergyMetric, SourceMetricLabel, counterName, "site", "fra1", "node", "a")
	bw := e.store.Backfill().Appender(ctx)
	if _, err := bw.Append(0, forged, h30.UnixMilli()+5, 42); err != nil {
		t.Fatal(err)
	}
	if err := bw.Commit(); err != nil {
		t.Fatal(err)
	}
	after, err := HourlyEnergy(ctx, e.store, `greenloop_energy_joules_total{node="a"}`, h30, h30.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if before.Total < 1e8 || after.Total != 42 {
		t.Errorf("hour 30 of node a: %v J, then %v J after a newer version of 42 J", float64(before.Total), float64(after.Total))
	}

	// Late samples into an hour far behind the out-of-order window (an
	// import through the backfill) are re-computed, through the backfill.
	iw, err := ingest.NewWriter(ingest.TrackLate(e.store.Backfill(), e.late), ingest.WriterOptions{Clock: e.clk.Now, MaxAge: 400 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// Node b's gap on day 2 gets its readings: a flat counter (the machine was off), then a step.
	var pts []sample.Point
	allTs, allVs := counterData(from, to, wave(55e3, 55e3/4), time.Time{}, nil)
	var v0 float64
	for i, x := range allTs {
		if x == t0.Add(26*time.Hour+10*time.Minute).UnixMilli() {
			v0 = allVs[i]
		}
	}
	for x := t0.Add(26*time.Hour + 10*time.Minute + 15*time.Second); x.Before(t0.Add(28*time.Hour + 40*time.Minute)); x = x.Add(15 * time.Second) {
		pts = append(pts, sample.Point{T: x.UnixMilli(), V: v0})
	}
	res, err := iw.WriteSeries(ctx, ingest.WriteOptions{}, []sample.Series{{Labels: []sample.Label{{Name: "__name__", Value: counterName}, {Name: "site", Value: "fra1"}, {Name: "node", Value: "b"}}, Points: pts}})
	if err != nil || res.RejectedCount > 0 {
		t.Fatalf("late import: %+v %v", res, err)
	}
	bfBefore := e.backfill.points
	e.clk.Set(now.Add(5 * time.Minute))
	if _, err := j.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if e.backfill.points == bfBefore {
		t.Error("the re-computed old hours were not written through the backfill")
	}
	sel := `greenloop_energy_joules_total{node="b"}`
	got, err := HourlyEnergy(ctx, e.store, sel, t0.Add(24*time.Hour), t0.Add(30*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := rawEnergy(t, e.store, sel, t0.Add(24*time.Hour), t0.Add(30*time.Hour), energy.Bucketing{Calendar: energy.Hour})
	sameResult(t, "node b after the import", got, want)
	if want.Buckets[3].Completeness != 1 || want.Buckets[3].Estimated != 0 {
		t.Errorf("test data: hour 27 of node b not filled by the import: %+v", want.Buckets[3])
	}
}

// A counter gap still open when its hour is rolled up: once the series
// resumes (with current samples, not late ones), the hour is computed again
// and gets its share of the increase across the gap.
func TestOpenGapClosesLater(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t0.Add(2*time.Hour+12*time.Minute))
	ls := labels.FromStrings("__name__", counterName, "site", "fra1", "node", "n1")
	ts, vs := counterData(t0.Add(-time.Minute), t0.Add(8*time.Hour), wave(100e3, 20e3), time.Time{}, nil)
	var before, after int
	for i, x := range ts {
		if x <= t0.Add(time.Hour+50*time.Minute).UnixMilli() {
			before = i + 1
		}
		if x < t0.Add(2*time.Hour+20*time.Minute).UnixMilli() {
			after = i + 1
		}
	}
	appendSamples(t, e.store, ls, ts[:before], vs[:before])
	j := e.job(t, Options{Start: t0})
	if _, err := j.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	h1 := t0.Add(time.Hour).UnixMilli()
	first := storedPoints(t, e.store, eq("__name__", EnergyMetric))[h1]

	e.clk.Set(t0.Add(2*time.Hour + 25*time.Minute))
	appendSamples(t, e.tracked, ls, ts[after:after+20], vs[after:after+20])
	if _, err := j.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	pts := storedPoints(t, e.store, eq("__name__", EnergyMetric))
	want, err := energy.Compute(ctx, promsource.New(e.store), energy.Query{Selectors: []string{ls.String()}, From: t0, To: t0.Add(2 * time.Hour),
		Buckets: energy.Bucketing{Calendar: energy.Hour}, Lookback: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 3 || !near(pts[h1+1], float64(want.Buckets[1].Energy)) || pts[h1+1] < first*1.1 {
		t.Errorf("hour 1: first %v J, then %v (points %v); want %v J, with a sixth of the gap's increase", first, pts[h1+1], pts, float64(want.Buckets[1].Energy))
	}
}
