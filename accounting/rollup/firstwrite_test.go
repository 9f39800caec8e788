package rollup

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/sample"
)

// captureWriter keeps what is written through it, by tenant.
type captureWriter struct {
	mu  sync.Mutex
	got map[string][]sample.Series
}

func (c *captureWriter) WriteSeries(_ context.Context, o ingest.WriteOptions, s []sample.Series) (ingest.Result, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.got[o.Tenant] = append(c.got[o.Tenant], s...)
	n := 0
	for _, x := range s {
		n += len(x.Points)
	}
	return ingest.Result{Accepted: n}, nil
}

func seriesString(ss []sample.Series) []string {
	var out []string
	for _, s := range ss {
		out = append(out, fmt.Sprint(s.Labels, s.Points))
	}
	sort.Strings(out)
	return out
}

// FirstWrite writes what the job writes for the first computation of hours.
func TestFirstWriteEqualsJob(t *testing.T) {
	e := newEnv(t, t0.Add(5*time.Hour))
	ls := labels.FromStrings("__name__", counterName, "site", "fra1", "node", "n1", "tenant", "acme")
	// A gap from 01:20 to 02:10: hours 01:00 and 02:00 are incomplete and estimated.
	ts, vs := counterData(t0, t0.Add(4*time.Hour), wave(300, 50), time.Time{}, [][2]time.Time{{t0.Add(80 * time.Minute), t0.Add(130 * time.Minute)}})
	appendSamples(t, e.store, ls, ts, vs)
	w := &captureWriter{got: map[string][]sample.Series{}}
	j, err := NewJob(Options{Source: e.store, Writer: w, Backfill: w, Metrics: []string{counterName}, Clock: e.clk.Now, Start: t0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	r, err := energy.Compute(context.Background(), energy.StaticSource{"s": {{Labels: ls.Map(), T: ts, V: vs}}},
		energy.Query{Selectors: []string{"s"}, From: t0, To: t0.Add(4 * time.Hour), Buckets: energy.Bucketing{Calendar: energy.Hour}, Lookback: 10 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	var hours []HourFigures
	for _, b := range r.Buckets {
		hours = append(hours, HourFigures{Energy: float64(b.Energy), Completeness: b.Completeness, Estimated: float64(b.Estimated)})
	}
	if r.Estimated == 0 || r.Completeness == 1 {
		t.Fatalf("the test data should have a counter gap: %+v", r)
	}
	f := NewFirstWrite(t0, len(hours))
	if err := f.Add(ls.Map(), hours); err != nil {
		t.Fatal(err)
	}
	if err := f.Add(ls.Map(), hours[1:]); err == nil {
		t.Error("Add took too few hours")
	}
	got, err := f.Series()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(w.got) != 1 {
		t.Fatalf("tenants %v, job wrote tenants %v", got, w.got)
	}
	g, want := seriesString(got["acme"]), seriesString(w.got["acme"])
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Errorf("FirstWrite:\n%v\njob wrote:\n%v", g, want)
	}
	if len(g) != 6 {
		t.Errorf("want energy, completeness and estimated series and their group sums, got %d", len(g))
	}
}
