package forecast

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/tsdb"
)

var now = time.Date(2025, 6, 10, 12, 20, 0, 0, time.UTC)

// hourly returns n hourly points from the hour after now, valued base+i.
func hourly(from time.Time, n int, base float64) []providers.Point {
	var out []providers.Point
	for i := range n {
		out = append(out, providers.Point{Zone: "ignored", Time: from.Add(time.Duration(i) * time.Hour), Intensity: carbon.Intensity(base + float64(i)),
			Kind: providers.Forecast, Signal: providers.Average})
	}
	return out
}

func newOverlay() *Overlay {
	return New(Options{History: time.Hour, Horizon: 24 * time.Hour, Now: func() time.Time { return now }})
}

type got struct {
	lset string
	pts  []string // "t=v", t in minutes from now
}

// read selects from o through q (the overlay itself or a wrapper) and
// returns every series with its points.
func read(t *testing.T, q storage.Queryable, mint, maxt time.Time, hints *storage.SelectHints, ms ...*labels.Matcher) []got {
	t.Helper()
	qr, err := q.Querier(mint.UnixMilli(), maxt.UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer qr.Close()
	set := qr.Select(context.Background(), true, hints, ms...)
	var out []got
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		g := got{lset: s.Labels().String()}
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			ts, v := it.At()
			g.pts = append(g.pts, fmt.Sprintf("%d=%g", (ts-now.UnixMilli())/60000, v))
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out = append(out, g)
	}
	if err := set.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func eq(name, v string) *labels.Matcher { return labels.MustNewMatcher(labels.MatchEqual, name, v) }

func TestOverlaySelect(t *testing.T) {
	o := newOverlay()
	next := now.Truncate(time.Hour).Add(time.Hour) // 13:00, 40 min ahead
	o.Set(Key{Tenant: "acme", Zone: "DE", Provider: "electricitymaps", Signal: providers.Average}, hourly(next, 3, 300))
	o.Set(Key{Tenant: "acme", Zone: "FR", Provider: "electricitymaps", Signal: providers.Average}, hourly(next, 2, 50))
	o.Set(Key{Tenant: "beta", Zone: "DE", Provider: "electricitymaps", Signal: providers.Average}, hourly(next, 1, 310))
	o.Set(Key{Zone: "CAISO_NORTH", Provider: "watttime", Signal: providers.Marginal}, hourly(next.Add(-2*time.Hour), 4, 400))

	const (
		acmeDE = `{__name__="greenloop_grid_carbon_intensity_grams_per_kwh", kind="forecast", provider="electricitymaps", signal="average", tenant="acme", zone="DE"}`
		acmeFR = `{__name__="greenloop_grid_carbon_intensity_grams_per_kwh", kind="forecast", provider="electricitymaps", signal="average", tenant="acme", zone="FR"}`
		betaDE = `{__name__="greenloop_grid_carbon_intensity_grams_per_kwh", kind="forecast", provider="electricitymaps", signal="average", tenant="beta", zone="DE"}`
		wt     = `{__name__="greenloop_grid_carbon_intensity_grams_per_kwh", kind="forecast", provider="watttime", signal="marginal", zone="CAISO_NORTH"}`
	)
	all := func(ms ...*labels.Matcher) []*labels.Matcher { return ms }
	for _, tc := range []struct {
		name       string
		mint, maxt time.Time
		hints      *storage.SelectHints
		ms         []*labels.Matcher
		want       []got
	}{
		{"by name, sorted by labels", now.Add(-48 * time.Hour), now.Add(48 * time.Hour), nil,
			all(eq("__name__", providers.MetricName)),
			[]got{
				{acmeDE, []string{"40=300", "100=301", "160=302"}},
				{acmeFR, []string{"40=50", "100=51"}},
				{betaDE, []string{"40=310"}},
				// 11:00 is 80 min ago, beyond the hour of history: dropped.
				{wt, []string{"-20=401", "40=402", "100=403"}},
			}},
		{"regex and not-equal", now.Add(-48 * time.Hour), now.Add(48 * time.Hour), nil,
			all(labels.MustNewMatcher(labels.MatchRegexp, "zone", "D.|F."), labels.MustNewMatcher(labels.MatchNotEqual, "tenant", "beta")),
			[]got{{acmeDE, []string{"40=300", "100=301", "160=302"}}, {acmeFR, []string{"40=50", "100=51"}}}},
		{"name regex, missing label matches empty", now.Add(-48 * time.Hour), now.Add(48 * time.Hour), nil,
			all(labels.MustNewMatcher(labels.MatchRegexp, "__name__", "greenloop_grid_.*"), eq("tenant", "")),
			[]got{{wt, []string{"-20=401", "40=402", "100=403"}}}},
		{"other name", now.Add(-48 * time.Hour), now.Add(48 * time.Hour), nil,
			all(eq("__name__", "greenloop_energy_joules_total")), nil},
		{"kind actual finds nothing", now.Add(-48 * time.Hour), now.Add(48 * time.Hour), nil,
			all(eq("kind", "actual")), nil},
		{"querier range", now.Add(time.Hour), now.Add(2 * time.Hour), nil,
			all(eq("zone", "DE"), eq("tenant", "acme")),
			[]got{{acmeDE, []string{"100=301"}}}},
		{"hints narrow the querier range", now.Add(-48 * time.Hour), now.Add(48 * time.Hour),
			&storage.SelectHints{Start: now.Add(30 * time.Minute).UnixMilli(), End: now.Add(40 * time.Minute).UnixMilli()},
			all(eq("provider", "electricitymaps")),
			[]got{{acmeDE, []string{"40=300"}}, {acmeFR, []string{"40=50"}}, {betaDE, []string{"40=310"}}}},
		{"series without points in range are left out", now.Add(-48 * time.Hour), now.Add(48 * time.Hour),
			&storage.SelectHints{Start: now.Add(90 * time.Minute).UnixMilli(), End: now.Add(3 * time.Hour).UnixMilli()},
			all(eq("kind", "forecast")),
			[]got{{acmeDE, []string{"100=301", "160=302"}}, {acmeFR, []string{"100=51"}}, {wt, []string{"100=403"}}}},
		{"limit", now.Add(-48 * time.Hour), now.Add(48 * time.Hour),
			&storage.SelectHints{Start: math.MinInt64, End: math.MaxInt64, Limit: 1},
			all(eq("kind", "forecast")),
			[]got{{acmeDE, []string{"40=300", "100=301", "160=302"}}}},
		{"past the window", now.Add(25 * time.Hour), now.Add(48 * time.Hour), nil, all(eq("kind", "forecast")), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := read(t, o, tc.mint, tc.maxt, tc.hints, tc.ms...)
			if !slices.EqualFunc(g, tc.want, func(a, b got) bool { return a.lset == b.lset && slices.Equal(a.pts, b.pts) }) {
				t.Errorf("got  %v\nwant %v", g, tc.want)
			}
		})
	}
}

func TestOverlaySetReplacesAndBounds(t *testing.T) {
	o := newOverlay()
	k := Key{Zone: "DE", Provider: "electricitymaps", Signal: providers.Average}
	next := now.Truncate(time.Hour).Add(time.Hour)
	o.Set(k, hourly(next, 5, 100))
	// A revised forecast replaces the whole series, even where it is shorter.
	rev := hourly(next, 2, 200)
	// Out of order, a duplicate timestamp (the last wins), one point too far ahead and one too old.
	rev = append(rev, providers.Point{Time: next, Intensity: 250}, providers.Point{Time: now.Add(25 * time.Hour), Intensity: 1},
		providers.Point{Time: now.Add(-2 * time.Hour), Intensity: 2})
	slices.Reverse(rev)
	o.Set(k, rev)
	pts := o.Points(k)
	var s []string
	for _, p := range pts {
		s = append(s, fmt.Sprintf("%s=%g", p.Time.Format("15:04"), p.Intensity.GramsPerKWh()))
		if p.Zone != "DE" || p.Kind != providers.Forecast || p.Signal != providers.Average {
			t.Errorf("point %+v", p)
		}
	}
	if want := []string{"13:00=200", "14:00=201"}; !slices.Equal(s, want) {
		t.Errorf("points %v, want %v", s, want)
	}
	// Of two points at one timestamp, in the order given, the last wins.
	o.Set(k, []providers.Point{{Time: next, Intensity: 1}, {Time: next, Intensity: 2}})
	if p := o.Points(k); len(p) != 1 || p[0].Intensity != 2 {
		t.Errorf("duplicate timestamp: %+v, want the last given (2)", p)
	}
	o.Set(k, nil)
	if p := o.Points(k); p != nil {
		t.Errorf("empty forecast left %+v", p)
	}
	if g := read(t, o, now.Add(-time.Hour), now.Add(time.Hour), nil); g != nil {
		t.Errorf("removed key still read: %v", g)
	}
}

// Points age out of the window as the clock moves, without a new Set.
func TestOverlayAgesOut(t *testing.T) {
	var mu sync.Mutex
	clock := now
	o := New(Options{History: 30 * time.Minute, Horizon: 24 * time.Hour, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }})
	k := Key{Zone: "DE", Provider: "p", Signal: providers.Average}
	next := now.Truncate(time.Hour).Add(time.Hour)
	o.Set(k, hourly(next, 3, 10))
	mu.Lock()
	clock = next.Add(90 * time.Minute) // 13:00 is 90 min old, 14:00 30 min
	mu.Unlock()
	if p := o.Points(k); len(p) != 2 || p[0].Intensity != 11 || p[1].Intensity != 12 {
		t.Errorf("points %+v, want 14:00=11 and 15:00=12", p)
	}
}

// Wrapped by ingest.TenantQueryable, as the web server does, a tenant
// sees its own forecasts only, without the tenant label.
func TestOverlayTenantConfinement(t *testing.T) {
	o := newOverlay()
	next := now.Truncate(time.Hour).Add(time.Hour)
	o.Set(Key{Tenant: "acme", Zone: "DE", Provider: "electricitymaps", Signal: providers.Average}, hourly(next, 1, 300))
	o.Set(Key{Tenant: "beta", Zone: "DE", Provider: "electricitymaps", Signal: providers.Average}, hourly(next, 1, 999))
	o.Set(Key{Tenant: "beta", Zone: "PL", Provider: "electricitymaps", Signal: providers.Average}, hourly(next, 1, 700))
	const de = `{__name__="greenloop_grid_carbon_intensity_grams_per_kwh", kind="forecast", provider="electricitymaps", signal="average", zone="DE"}`
	for _, tc := range []struct {
		tenant string
		ms     []*labels.Matcher
		want   []got
	}{
		{"acme", []*labels.Matcher{eq("zone", "DE")}, []got{{de, []string{"40=300"}}}},
		{"acme", []*labels.Matcher{eq("zone", "PL")}, nil},
		// Asking for another tenant's copy finds nothing.
		{"acme", []*labels.Matcher{eq("tenant", "beta")}, nil},
		{"beta", []*labels.Matcher{eq("zone", "DE")}, []got{{de, []string{"40=999"}}}},
		{"gamma", []*labels.Matcher{eq("kind", "forecast")}, nil},
	} {
		g := read(t, ingest.TenantQueryable(o, tc.tenant), now.Add(-time.Hour), now.Add(2*time.Hour), nil, tc.ms...)
		if !slices.EqualFunc(g, tc.want, func(a, b got) bool { return a.lset == b.lset && slices.Equal(a.pts, b.pts) }) {
			t.Errorf("tenant %s %v: got %v, want %v", tc.tenant, tc.ms, g, tc.want)
		}
	}
	q, err := ingest.TenantQueryable(o, "acme").Querier(now.Add(-time.Hour).UnixMilli(), now.Add(2*time.Hour).UnixMilli())
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	vals, _, err := q.LabelValues(context.Background(), "zone", nil)
	if err != nil || !slices.Equal(vals, []string{"DE"}) {
		t.Errorf("acme's zones %v %v, want [DE]", vals, err)
	}
	names, _, err := q.LabelNames(context.Background(), nil)
	if want := []string{"__name__", "kind", "provider", "signal", "zone"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("acme's label names %v %v, want %v", names, err, want)
	}
}

func TestOverlayLabelQueries(t *testing.T) {
	o := newOverlay()
	next := now.Truncate(time.Hour).Add(time.Hour)
	o.Set(Key{Zone: "FR", Provider: "electricitymaps", Signal: providers.Average}, hourly(next, 1, 1))
	o.Set(Key{Zone: "DE", Provider: "electricitymaps", Signal: providers.Average}, hourly(next, 1, 1))
	o.Set(Key{Zone: "CAISO_NORTH", Provider: "watttime", Signal: providers.Marginal}, hourly(next.Add(3*time.Hour), 1, 1))
	ctx := context.Background()
	for _, tc := range []struct {
		mint, maxt time.Time
		name       string
		hints      *storage.LabelHints
		ms         []*labels.Matcher
		want       []string
	}{
		{now, now.Add(24 * time.Hour), "zone", nil, nil, []string{"CAISO_NORTH", "DE", "FR"}},
		{now, now.Add(24 * time.Hour), "zone", &storage.LabelHints{Limit: 2}, nil, []string{"CAISO_NORTH", "DE"}},
		{now, now.Add(24 * time.Hour), "zone", nil, []*labels.Matcher{eq("provider", "electricitymaps")}, []string{"DE", "FR"}},
		{now, now.Add(2 * time.Hour), "provider", nil, nil, []string{"electricitymaps"}}, // watttime's point is later
		{now, now.Add(24 * time.Hour), "signal", nil, nil, []string{"average", "marginal"}},
		{now, now.Add(24 * time.Hour), "tenant", nil, nil, nil},
		{now.Add(-2 * time.Hour), now.Add(-time.Hour), "zone", nil, nil, nil},
	} {
		q, err := o.Querier(tc.mint.UnixMilli(), tc.maxt.UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		vals, _, err := q.LabelValues(ctx, tc.name, tc.hints, tc.ms...)
		if err != nil || !slices.Equal(vals, tc.want) {
			t.Errorf("%s %v over %s..%s: %v %v, want %v", tc.name, tc.ms, tc.mint.Format("15:04"), tc.maxt.Format("15:04"), vals, err, tc.want)
		}
		q.Close()
	}
	q, _ := o.Querier(now.UnixMilli(), now.Add(24*time.Hour).UnixMilli())
	names, _, err := q.LabelNames(ctx, nil, eq("zone", "DE"))
	if want := []string{"__name__", "kind", "provider", "signal", "zone"}; err != nil || !slices.Equal(names, want) {
		t.Errorf("label names %v %v, want %v", names, err, want)
	}
	ctx, cancel := context.WithCancel(ctx)
	cancel()
	if set := q.Select(ctx, true, nil); set.Next() || set.Err() == nil {
		t.Error("cancelled select did not fail")
	}
}

// The overlay's series carry exactly the labels the store holds for the
// same forecast written through a tenant's writer, so the two merge.
func TestLabelsMatchStore(t *testing.T) {
	st, err := tsdb.Open(filepath.Join(t.TempDir(), "data"), tsdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := ingest.NewWriter(st, ingest.WriterOptions{Clock: func() time.Time { return now }, MaxAge: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, tenant := range []string{"", "acme"} {
		k := Key{Tenant: tenant, Zone: "DE", Provider: "electricitymaps", Signal: providers.Marginal}
		pts := []providers.Point{{Zone: "DE", Time: now.Add(-time.Hour), Intensity: 1, Kind: providers.Forecast, Signal: providers.Marginal}}
		if _, err := w.WriteSeries(context.Background(), ingest.WriteOptions{Tenant: tenant}, providers.Series("electricitymaps", pts)); err != nil {
			t.Fatal(err)
		}
		q, err := st.Querier(math.MinInt64, math.MaxInt64)
		if err != nil {
			t.Fatal(err)
		}
		ms := []*labels.Matcher{eq("zone", "DE")}
		if tenant != "" {
			ms = append(ms, eq("tenant", tenant))
		} else {
			ms = append(ms, eq("tenant", ""))
		}
		set := q.Select(context.Background(), false, nil, ms...)
		if !set.Next() {
			t.Fatalf("tenant %q: nothing stored", tenant)
		}
		if got, want := set.At().Labels(), Labels(k); !labels.Equal(got, want) {
			t.Errorf("tenant %q: store %s, overlay %s", tenant, got, want)
		}
		q.Close()
	}
}

func TestOverlayMetrics(t *testing.T) {
	o := newOverlay()
	next := now.Truncate(time.Hour).Add(time.Hour)
	for _, tenant := range []string{"acme", "beta"} { // copies count once
		o.Set(Key{Tenant: tenant, Zone: "DE", Provider: "electricitymaps", Signal: providers.Average}, hourly(next, 24, 1))
	}
	o.Set(Key{Zone: "CAISO_NORTH", Provider: "watttime", Signal: providers.Marginal}, hourly(next, 3, 1))
	want := `
# HELP greenloop_carbon_forecast_points Points of the latest carbon-intensity forecast served for reads (ahead of now, and up to the overlay's history behind), by provider, zone and signal.
# TYPE greenloop_carbon_forecast_points gauge
greenloop_carbon_forecast_points{provider="electricitymaps",signal="average",zone="DE"} 24
greenloop_carbon_forecast_points{provider="watttime",signal="marginal",zone="CAISO_NORTH"} 3
`
	if err := testutil.CollectAndCompare(o, strings.NewReader(want), "greenloop_carbon_forecast_points"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(o, "greenloop_carbon_forecast_updated_timestamp_seconds"); n != 2 {
		t.Errorf("%d updated gauges, want 2", n)
	}
}

func TestOverlayConcurrent(t *testing.T) {
	o := newOverlay()
	k := Key{Zone: "DE", Provider: "p", Signal: providers.Average}
	next := now.Truncate(time.Hour).Add(time.Hour)
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			for j := range 200 {
				o.Set(k, hourly(next, 1+j%5, float64(i)))
			}
		})
		wg.Go(func() {
			for range 200 {
				g := read(t, o, now, now.Add(24*time.Hour), nil)
				if len(g) > 1 || (len(g) == 1 && len(g[0].pts) == 0) {
					t.Errorf("read %v", g)
					return
				}
			}
		})
	}
	wg.Wait()
}
