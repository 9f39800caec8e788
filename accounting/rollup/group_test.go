package rollup

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/sample"
)

// recordingQueryable notes the selects made through it.
type recordingQueryable struct {
	q       storage.Queryable
	mu      sync.Mutex
	selects []string
}

func (r *recordingQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := r.q.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return recordingQuerier{Querier: q, r: r}, nil
}

type recordingQuerier struct {
	storage.Querier
	r *recordingQueryable
}

func (q recordingQuerier) Select(ctx context.Context, sorted bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	s := ""
	if hints != nil && hints.Func == "series" {
		s = "index-only "
	}
	for _, m := range ms {
		s += m.String() + " "
	}
	q.r.mu.Lock()
	q.r.selects = append(q.r.selects, s)
	q.r.mu.Unlock()
	return q.Querier.Select(ctx, sorted, hints, ms...)
}

// readsSeriesRollups says whether a select read the series' roll-up samples.
func (r *recordingQueryable) readsSeriesRollups() bool {
	for _, s := range r.selects {
		if !strings.HasPrefix(s, "index-only") && strings.Contains(s, EnergyMetric+`"`) {
			return true
		}
	}
	return false
}

// A site's canonical selector is answered from the group sums, as the
// series' roll-ups and the raw samples answer it; other selectors, and hours
// rolled up before group sums existed, from the series' roll-ups.
func TestGroupSums(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, t0.Add(30*time.Hour))
	from, to := t0, t0.Add(24*time.Hour)
	type ser struct {
		ls   labels.Labels
		gaps [][2]time.Time
	}
	sers := []ser{
		{ls: labels.FromStrings("__name__", counterName, "site", "fra1", "component", "it", "node", "n1")},
		{ls: labels.FromStrings("__name__", counterName, "site", "fra1", "component", "it", "node", "n2"),
			gaps: [][2]time.Time{{t0.Add(5*time.Hour + 10*time.Minute), t0.Add(7*time.Hour + 20*time.Minute)}}},
		{ls: labels.FromStrings("__name__", counterName, "site", "fra1", "component", "facility")},
		{ls: labels.FromStrings("__name__", counterName, "site", "ams1", "component", "it", "node", "a1")},
	}
	// One commit for all the series: appended series by series, the later
	// ones would land out of order in a head the first one already made
	// compactable, and the TSDB library can panic when an out-of-order chunk
	// is written to disk while its head compaction cuts a new chunk file
	// ("expected newly cut file to have sequence:offset").
	app := e.store.Appender(ctx)
	for i, s := range sers {
		ts, vs := counterData(from.Add(-time.Hour), to.Add(time.Hour), wave(300+float64(i)*40, 50), time.Time{}, s.gaps)
		for k := range ts {
			if _, err := app.Append(0, s.ls, ts[k], vs[k]); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	j := e.job(t, Options{Metrics: []string{counterName}, Start: t0})
	if _, err := j.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if j.Stats().GroupPointsWritten == 0 {
		t.Fatal("the job wrote no group sums")
	}
	cases := []struct {
		name, sel string
		groups    bool
		buckets   energy.Bucketing
	}{
		{"IT meters, hourly", `greenloop_energy_joules_total{site="fra1",component="it"}`, true, energy.Bucketing{Calendar: energy.Hour}},
		{"the whole site, daily", `greenloop_energy_joules_total{site="fra1"}`, true, energy.Bucketing{Calendar: energy.Day}},
		{"every site, 6 h", `greenloop_energy_joules_total{component=~"it|facility"}`, true, energy.Bucketing{Step: 6 * time.Hour}},
		{"one node: the series' roll-ups", `greenloop_energy_joules_total{site="fra1",node="n2"}`, false, energy.Bucketing{Calendar: energy.Hour}},
	}
	for _, c := range cases {
		rq := &recordingQueryable{q: e.store}
		got, err := Compute(ctx, rq, energy.Query{Selectors: []string{c.sel}, From: from, To: to, Buckets: c.buckets})
		if err != nil {
			t.Fatal(err)
		}
		sameResult(t, c.name, got, rawEnergy(t, e.store, c.sel, from, to, c.buckets))
		if rq.readsSeriesRollups() == c.groups {
			t.Errorf("%s: series' roll-ups read %v, want %v: %q", c.name, !c.groups, !c.groups, rq.selects)
		}
	}

	// Hours rolled up before group sums existed: the series' roll-ups only.
	legacy := newEnv(t, t0.Add(30*time.Hour))
	r := rawEnergy(t, e.store, `greenloop_energy_joules_total{site="fra1",component="it",node=~"n.*"}`, from, to, energy.Bucketing{Calendar: energy.Hour})
	f := NewFirstWrite(from, 24)
	for _, s := range sers[:2] {
		one := rawEnergy(t, e.store, counterName+`{node="`+s.ls.Get("node")+`"}`, from, to, energy.Bucketing{Calendar: energy.Hour})
		var hs []HourFigures
		for _, b := range one.Buckets {
			hs = append(hs, HourFigures{Energy: float64(b.Energy), Completeness: b.Completeness, Estimated: float64(b.Estimated)})
		}
		if err := f.Add(s.ls.Map(), hs); err != nil {
			t.Fatal(err)
		}
	}
	out, err := f.Series()
	if err != nil {
		t.Fatal(err)
	}
	var noGroups []sample.Series
	for _, s := range out[""] {
		if !strings.Contains(s.Labels[0].Value, "group") {
			noGroups = append(noGroups, s)
		}
	}
	if len(noGroups) == len(out[""]) {
		t.Fatal("FirstWrite gave no group sums")
	}
	if _, err := legacy.backfill.WriteSeries(ctx, ingest.WriteOptions{}, noGroups); err != nil {
		t.Fatal(err)
	}
	rq := &recordingQueryable{q: legacy.store}
	got, err := Compute(ctx, rq, energy.Query{Selectors: []string{`greenloop_energy_joules_total{site="fra1",component="it"}`}, From: from, To: to,
		Buckets: energy.Bucketing{Calendar: energy.Hour}})
	if err != nil {
		t.Fatal(err)
	}
	sameResult(t, "without group sums", got, r)
	if !rq.readsSeriesRollups() {
		t.Error("without group sums, the series' roll-ups were not read")
	}
}
