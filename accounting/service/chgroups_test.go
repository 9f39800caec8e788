package service

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/rollup"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/config"
)

// groupClock is a settable clock shared by the stores and jobs of a test.
type groupClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *groupClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *groupClock) Set(t time.Time) { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }

// groupSeries is one raw series of the test site.
type groupSeries struct {
	ls             labels.Labels
	phase, step    time.Duration
	gapLo, gapHi   time.Duration // no samples in [gapLo, gapHi)
	value          func(s float64) float64
	from, to       time.Duration
	lateLo, lateHi time.Duration // samples of [lateLo, lateHi) are written late

}

var g0 = time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)

func groupTestSeries() []groupSeries {
	c := func(ls ...string) labels.Labels {
		return labels.FromStrings(append([]string{"__name__", "greenloop_energy_joules_total", "site", "fra1"}, ls...)...)
	}
	p := func(ls ...string) labels.Labels {
		return labels.FromStrings(append([]string{"__name__", "greenloop_power_watts", "site", "fra1"}, ls...)...)
	}
	end := 48*time.Hour + 30*time.Minute
	return []groupSeries{
		// IT counters: one with a reset, one with a gap of 2 h 20 min and
		// samples of 30 h to 31 h withheld until the late batch.
		{ls: c("component", "it", "node", "n1"), step: 15 * time.Second, to: end, value: func(s float64) float64 {
			if s >= 30*3600+7 {
				return 300 * (s - 30*3600)
			}
			return 1e6 + 300*s
		}},
		{ls: c("component", "it", "node", "n2"), phase: 7 * time.Second, step: 30 * time.Second, to: end,
			gapLo: 20*time.Hour + 10*time.Minute, gapHi: 22*time.Hour + 30*time.Minute,
			lateLo: 30 * time.Hour, lateHi: 31 * time.Hour,
			value: func(s float64) float64 { return 200*s + 4e4*math.Sin(s/7000) }},
		// A facility counter that starts a day late.
		{ls: c("component", "facility", "node", "f1"), step: 15 * time.Second, from: 24 * time.Hour, to: end,
			value: func(s float64) float64 { return 900 * s }},
		// IT power gauges, one with a gap; a facility gauge at a minute.
		{ls: p("component", "it", "node", "n1"), phase: 2 * time.Second, step: 15 * time.Second, to: end,
			value: func(s float64) float64 { return 300 + 50*math.Sin(s/3000) }},
		{ls: p("component", "it", "node", "n2"), step: 20 * time.Second, to: end, gapLo: 40 * time.Hour, gapHi: 41*time.Hour + 20*time.Minute,
			value: func(s float64) float64 { return 200 + 20*math.Cos(s/5000) }},
		{ls: p("component", "facility", "node", "f1"), step: time.Minute, to: end,
			value: func(s float64) float64 { return 950 + 30*math.Sin(s/9000) }},
		// Another tenant's series under the same site: never counted for tenant "".
		{ls: labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", "fra1", "component", "it", "node", "n1", "tenant", "b"),
			step: 15 * time.Second, to: end, value: func(s float64) float64 { return 5000 * s }},
	}
}

// writeGroupSeries appends the samples of ss (late: only the withheld ones).
func writeGroupSeries(t *testing.T, app storage.Appendable, ss []groupSeries, late bool) {
	t.Helper()
	a := app.Appender(context.Background())
	for _, s := range ss {
		for d := s.from + s.phase; d < s.to; d += s.step {
			if d >= s.gapLo && d < s.gapHi {
				continue
			}
			if (d >= s.lateLo && d < s.lateHi) != late {
				continue
			}
			if _, err := a.Append(0, s.ls, g0.Add(d).UnixMilli(), s.value(d.Seconds())); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := a.Commit(); err != nil {
		t.Fatal(err)
	}
}

// groupEnv is the same data in an embedded store with its roll-up job, and
// in ClickHouse with its group job.
type groupEnv struct {
	clk   *groupClock
	db    *tsdb.Store
	job   *rollup.Job
	ch    *clickhouse.Store
	eg    *clickhouse.EnergyGroups
	gjobs []*rollup.GroupJob
}

func newGroupEnv(t *testing.T, o clickhouse.Options, jobs int) *groupEnv {
	t.Helper()
	ctx := context.Background()
	e := &groupEnv{clk: &groupClock{t: g0.Add(48*time.Hour + 40*time.Minute)}}
	var err error
	if e.db, err = tsdb.Open(t.TempDir(), tsdb.Options{Retention: 60 * 24 * time.Hour}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.db.Close() })
	w, err := ingest.NewWriter(e.db, ingest.WriterOptions{Clock: e.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	bw, err := ingest.NewWriter(e.db.Backfill(), ingest.WriterOptions{Clock: e.clk.Now, MaxAge: 400 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if e.job, err = rollup.NewJob(rollup.Options{Source: e.db, Writer: w, Backfill: bw, Clock: e.clk.Now}); err != nil {
		t.Fatal(err)
	}
	o.FlushInterval, o.Now = -1, e.clk.Now
	if e.ch, err = clickhouse.Open(ctx, o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.ch.Close() })
	if e.eg, err = e.ch.EnergyGroups(ctx); err != nil {
		t.Fatal(err)
	}
	for range jobs {
		j, err := rollup.NewGroupJob(rollup.Options{Source: e.ch, Clock: e.clk.Now}, rollup.GroupOptions{Store: ClickHouseGroups{Groups: e.eg}})
		if err != nil {
			t.Fatal(err)
		}
		e.gjobs = append(e.gjobs, j)
	}
	return e
}

func (e *groupEnv) write(t *testing.T, ss []groupSeries, late bool) {
	t.Helper()
	writeGroupSeries(t, e.db, ss, late)
	writeGroupSeries(t, e.ch, ss, late)
}

// run runs the embedded job (re-computing [from, to) first when late) and
// every group job at once, each until it has no work left.
func (e *groupEnv) run(t *testing.T, from, to time.Time) {
	t.Helper()
	ctx := context.Background()
	if !from.IsZero() {
		e.job.Recompute(from, to)
	}
	for more := true; more; {
		var err error
		if more, err = e.job.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(e.gjobs))
	for i, j := range e.gjobs {
		wg.Go(func() {
			for more := true; more; {
				more, errs[i] = j.RunOnce(ctx)
				if errs[i] != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

func groupNear(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// sameFigures checks energy, estimated energy and completeness, in total and per bucket, and the series count.
func sameFigures(t *testing.T, what string, got, want *energy.Result) {
	t.Helper()
	if got.Series != want.Series || len(got.Buckets) != len(want.Buckets) {
		t.Fatalf("%s: %d series, %d buckets; want %d, %d", what, got.Series, len(got.Buckets), want.Series, len(want.Buckets))
	}
	if !groupNear(float64(got.Total), float64(want.Total)) || !groupNear(float64(got.Estimated), float64(want.Estimated)) ||
		!groupNear(got.Completeness, want.Completeness) {
		t.Fatalf("%s: total %v estimated %v completeness %v; want %v %v %v", what, float64(got.Total), float64(got.Estimated), got.Completeness,
			float64(want.Total), float64(want.Estimated), want.Completeness)
	}
	for i := range got.Buckets {
		g, w := got.Buckets[i], want.Buckets[i]
		if !g.Start.Equal(w.Start) || !groupNear(float64(g.Energy), float64(w.Energy)) || !groupNear(float64(g.Estimated), float64(w.Estimated)) ||
			!groupNear(g.Completeness, w.Completeness) {
			t.Fatalf("%s: bucket %s energy %v estimated %v completeness %v; want %s %v %v %v", what, g.Start, float64(g.Energy), float64(g.Estimated),
				g.Completeness, w.Start, float64(w.Energy), float64(w.Estimated), w.Completeness)
		}
	}
}

type groupCase struct {
	name, tenant string
	sels         []string
	from, to     time.Time
	buckets      energy.Bucketing
}

var groupCases = []groupCase{
	{"it counters hourly", "", []string{`greenloop_energy_joules_total{site="fra1",component="it"}`}, g0, g0.Add(49 * time.Hour), energy.Bucketing{Calendar: energy.Hour}},
	{"facility counter daily", "", []string{`greenloop_energy_joules_total{site="fra1",component="facility"}`}, g0, g0.Add(48 * time.Hour), energy.Bucketing{Calendar: energy.Day}},
	{"power it, one bucket", "", []string{`greenloop_power_watts{site="fra1",component="it"}`}, g0, g0.Add(49 * time.Hour), energy.Bucketing{}},
	{"site regexp, cut hours", "", []string{`greenloop_energy_joules_total{site=~"fra.*",component!="facility"}`}, g0.Add(90 * time.Minute), g0.Add(50*time.Hour + 10*time.Minute), energy.Bucketing{Calendar: energy.Hour}},
	{"counter then power", "", []string{`greenloop_energy_joules_total{site="fra1",component="none"}`, `greenloop_power_watts{site="fra1",component="facility"}`}, g0, g0.Add(48 * time.Hour), energy.Bucketing{Calendar: energy.Day}},
	// The facility counter starts at 24 h: before, it is no member, and the power gauge answers.
	{"facility counter before its start", "", []string{`greenloop_energy_joules_total{site="fra1",component="facility"}`, `greenloop_power_watts{site="fra1",component="facility"}`}, g0.Add(10 * time.Hour), g0.Add(22 * time.Hour), energy.Bucketing{Calendar: energy.Hour}},
	{"facility counter across its start", "", []string{`greenloop_energy_joules_total{site="fra1",component="facility"}`}, g0.Add(20 * time.Hour), g0.Add(30 * time.Hour), energy.Bucketing{Calendar: energy.Hour}},
	{"tenant b", "b", []string{`greenloop_energy_joules_total{site="fra1",component="it"}`}, g0, g0.Add(48 * time.Hour), energy.Bucketing{Calendar: energy.Day}},
}

// check compares every case's ClickHouse answer with the embedded one, and
// returns the ClickHouse results' total, estimated energy and completeness.
func (e *groupEnv) check(t *testing.T) map[string][3]float64 {
	t.Helper()
	ctx := context.Background()
	ch := ClickHouseEnergy{Store: e.ch, Groups: e.eg}
	emb := RollupEnergy{Store: e.db}
	totals := map[string][3]float64{}
	for _, c := range groupCases {
		q := energy.Query{Selectors: c.sels, From: c.from, To: c.to, Buckets: c.buckets}
		want, err := emb.Energy(ctx, c.tenant, q)
		if err != nil {
			t.Fatalf("%s: embedded: %v", c.name, err)
		}
		got, err := ch.Energy(ctx, c.tenant, q)
		if err != nil {
			t.Fatalf("%s: clickhouse: %v", c.name, err)
		}
		sameFigures(t, c.name, got, want)
		if got.Selector != want.Selector {
			t.Fatalf("%s: answered by %s, want %s", c.name, got.Selector, want.Selector)
		}
		totals[c.name] = [3]float64{float64(got.Total), float64(got.Estimated), got.Completeness}
	}
	return totals
}

// groupRows counts the rows of the group table.
func groupRows(t *testing.T, st *clickhouse.Store) uint64 {
	t.Helper()
	var n uint64
	if err := st.Conn().QueryRow(context.Background(), "SELECT count() FROM `"+st.Database()+"`.energy_group_1h").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestClickHouseGroupsEqualEmbedded writes a site's counters and gauges
// (resets, gaps, a second tenant) into the embedded store and ClickHouse,
// runs the roll-up job on one and the group job on the other, and checks
// that ClickHouseEnergy gives the embedded figures; then that a late batch
// into a rolled-up hour is found from ClickHouse itself and changes them
// alike, that a run without changes writes nothing, and that the KPIs of a
// site agree.
func TestClickHouseGroupsEqualEmbedded(t *testing.T) {
	chtest.Require(t)
	srv, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	ss := groupTestSeries()

	t.Run("single job", func(t *testing.T) {
		e := newGroupEnv(t, clickhouse.Options{Addrs: []string{srv.Addr}, Database: "groups_single"}, 1)
		e.write(t, ss, false)
		e.run(t, time.Time{}, time.Time{})
		// 48 hours, and the 2 before the first sample that its bucket
		// (g0 − 1h, g0] reaches (their sums are 0).
		hours := e.gjobs[0].Stats().HoursComputed
		if hours != 50 {
			t.Fatalf("group job computed %d hours, want 50", hours)
		}
		before := e.check(t)

		// Nothing changed: a run computes nothing and writes nothing.
		rows := groupRows(t, e.ch)
		e.run(t, time.Time{}, time.Time{})
		if st := e.gjobs[0].Stats(); st.HoursComputed != hours || groupRows(t, e.ch) != rows {
			t.Fatalf("idle run computed %d hours (want %d in all), rows %d -> %d", st.HoursComputed, hours, rows, groupRows(t, e.ch))
		}

		// The late batch: 30 h to 31 h of n2's counter, an hour rolled up long ago.
		e.clk.Set(e.clk.Now().Add(10 * time.Minute))
		e.write(t, ss, true)
		e.run(t, g0.Add(29*time.Hour), g0.Add(32*time.Hour))
		// The batch lies in 30 h to 31 h: hours 29 h to 31 h see it.
		if st := e.gjobs[0].Stats(); st.HoursComputed != hours+3 {
			t.Fatalf("after the late batch the group job computed %d hours in all, want %d + 3", st.HoursComputed, hours)
		}
		after := e.check(t)
		// The gap it fills was bridged: the same energy, less of it estimated, more covered.
		a, b := after["it counters hourly"], before["it counters hourly"]
		if !groupNear(a[0], b[0]) || a[1] >= b[1] || a[2] <= b[2] {
			t.Fatalf("late batch: IT energy, estimated, completeness %v -> %v; want the same energy, less estimated, more complete", b, a)
		}
		if after["facility counter daily"] != before["facility counter daily"] {
			t.Fatalf("late IT batch changed the facility energy: %v -> %v", before["facility counter daily"], after["facility counter daily"])
		}

		// The KPIs of the site agree.
		site := config.Site{ID: "fra1", Name: "Frankfurt 1", Zone: "DE", Meters: map[string]string{
			"facility_energy": `greenloop_power_watts{site="fra1",component="facility"}`,
			"it_energy":       `greenloop_energy_joules_total{site="fra1",component="it"}`,
		}}
		embA := New(Options{Store: e.db, Sites: []config.Site{site}, Rollups: true})
		chA := New(Options{Store: e.ch, Sites: []config.Site{site}, Energy: ClickHouseEnergy{Store: e.ch, Groups: e.eg}})
		kpis := func(a *Accountant) map[string]any {
			k, err := a.KPIs(context.Background(), "", "fra1", g0, g0.Add(48*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(k)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
		want, got := kpis(embA), kpis(chA)
		for _, k := range []string{"facility_energy_kwh", "it_energy_kwh", "pue", "completeness"} {
			w, ok1 := want[k].(float64)
			g, ok2 := got[k].(float64)
			if !ok1 || !ok2 || !groupNear(g, w) {
				t.Fatalf("KPI %s: clickhouse %v, embedded %v", k, got[k], want[k])
			}
		}

		// Reads come from the table, newest version first: a newer row for
		// 05:00 adds exactly its difference (no merge has run).
		ctx := context.Background()
		it := groupCases[0]
		q := energy.Query{Selectors: it.sels, From: it.from, To: it.to, Buckets: it.buckets}
		r0, err := ClickHouseEnergy{Store: e.ch, Groups: e.eg}.Energy(ctx, "", q)
		if err != nil {
			t.Fatal(err)
		}
		old := float64(r0.Buckets[5].Energy)
		h5 := g0.Add(5 * time.Hour).UnixMilli()
		own, _, err := e.eg.Sums(ctx, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "tenant", ""),
			labels.MustNewMatcher(labels.MatchEqual, "source_metric", "greenloop_energy_joules_total"),
			labels.MustNewMatcher(labels.MatchEqual, "component", "it")}, h5, h5+3600_000)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.eg.Write(ctx, []clickhouse.EnergyGroupRow{{SourceMetric: "greenloop_energy_joules_total", Site: "fra1", Component: "it",
			Hour: h5, Energy: own[h5].Energy + 1000, Covered: own[h5].Covered, Version: math.MaxUint64}}, nil); err != nil {
			t.Fatal(err)
		}
		r1, err := ClickHouseEnergy{Store: e.ch, Groups: e.eg}.Energy(ctx, "", q)
		if err != nil {
			t.Fatal(err)
		}
		if d := float64(r1.Total - r0.Total); math.Abs(d-1000) > 1e-6 || float64(r1.Buckets[5].Energy) != old+1000 {
			t.Fatalf("a newer row for 05:00 changed the total by %v, hour 05:00 %v -> %v; want +1000", d, old, float64(r1.Buckets[5].Energy))
		}

		// Other selectors fall back. A selector naming a node is no
		// group's: the hourly rollup table answers it.
		q = energy.Query{Selectors: []string{`greenloop_energy_joules_total{site="fra1",node="n1"}`}, From: g0, To: g0.Add(48 * time.Hour)}
		_, err = rollup.ComputeWith(context.Background(), e.ch, rollup.GroupQuery{Source: tenantGroups{g: e.eg}}, q)
		if !errors.Is(err, rollup.ErrNoGroupSums) {
			t.Fatalf("node selector: %v, want ErrNoGroupSums", err)
		}
		fb, err := ClickHouseEnergy{Store: e.ch, Groups: e.eg}.Energy(context.Background(), "", q)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := RawEnergy{Store: e.ch}.Energy(context.Background(), "", q)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(float64(fb.Total-raw.Total)) > 1e-6*float64(raw.Total) {
			t.Fatalf("node selector: %v, raw %v", float64(fb.Total), float64(raw.Total))
		}
		// Hours older than the raw samples and never computed: not from raw (it has none).
		e.clk.Set(g0.Add(20 * 24 * time.Hour))
		_, err = rollup.ComputeWith(context.Background(), e.ch, rollup.GroupQuery{Source: tenantGroups{g: e.eg}, RawSince: e.ch.RawSince()},
			energy.Query{Selectors: []string{`greenloop_energy_joules_total{site="fra1"}`}, From: g0.Add(-24 * time.Hour), To: g0.Add(48 * time.Hour)})
		if !errors.Is(err, rollup.ErrNoGroupSums) {
			t.Fatalf("hours before the raw samples: %v, want ErrNoGroupSums", err)
		}
	})

	t.Run("two jobs at once", func(t *testing.T) {
		e := newGroupEnv(t, clickhouse.Options{Addrs: []string{srv.Addr}, Database: "groups_two"}, 2)
		e.write(t, ss, false)
		e.run(t, time.Time{}, time.Time{})
		e.check(t)
		e.clk.Set(e.clk.Now().Add(10 * time.Minute))
		e.write(t, ss, true)
		e.run(t, g0.Add(29*time.Hour), g0.Add(32*time.Hour))
		e.check(t)
	})

	// On a cluster of two shards: Distributed tables, two jobs, a late batch.
	t.Run("cluster", func(t *testing.T) {
		dir := t.TempDir()
		var addrs []string
		var ports []int
		for range 2 {
			p, err := chtest.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			ports = append(ports, p)
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
		}
		cluster := chtest.Cluster{Name: "groups2", Shards: addrs}
		for i, p := range ports {
			s, err := chtest.Start(filepath.Join(dir, fmt.Sprint("shard", i)), p, cluster)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Stop() })
		}
		e := newGroupEnv(t, clickhouse.Options{Addrs: addrs, Database: "groups_cluster", Cluster: cluster.Name}, 2)
		e.write(t, ss, false)
		e.run(t, time.Time{}, time.Time{})
		e.check(t)
		e.clk.Set(e.clk.Now().Add(10 * time.Minute))
		e.write(t, ss, true)
		e.run(t, g0.Add(29*time.Hour), g0.Add(32*time.Hour))
		e.check(t)
	})

	// On a replicated cluster (one shard, two replicas sharing ZooKeeper):
	// the group tables are replicated like the store's, so both replicas
	// hold every row whichever one a job wrote to.
	t.Run("replicated", func(t *testing.T) {
		rc := chtest.StartReplicated(t, "groups_r", 1, 2)
		e := newGroupEnv(t, clickhouse.Options{Addrs: rc.Addrs(), Database: "groups_repl", Cluster: rc.Cluster.Name}, 2)
		e.write(t, ss, false)
		e.run(t, time.Time{}, time.Time{})
		e.check(t)
		want := groupRows(t, e.ch)
		for _, a := range rc.Addrs() {
			one, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{a}, Database: "groups_repl_probe"})
			if err != nil {
				t.Fatal(err)
			}
			var n uint64
			deadline := time.Now().Add(30 * time.Second)
			for {
				if err := one.Conn().QueryRow(context.Background(), "SELECT count() FROM groups_repl.energy_group_1h_local").Scan(&n); err != nil {
					t.Fatal(err)
				}
				if n == want || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			_ = one.Close()
			if n != want {
				t.Fatalf("replica %s holds %d group rows, want %d", a, n, want)
			}
		}
	})

}
