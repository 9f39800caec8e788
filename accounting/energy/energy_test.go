package energy

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // the zone database in the binary: the DST tests cannot skip
)

const (
	counterSel = `greenloop_energy_joules_total{site="fra1",component="it"}`
	powerSel   = `greenloop_power_watts{site="fra1",component="it"}`
)

var (
	counterLabels = map[string]string{"__name__": "greenloop_energy_joules_total", "site": "fra1", "component": "it"}
	powerLabels   = map[string]string{"__name__": "greenloop_power_watts", "site": "fra1", "component": "it"}
	h0            = time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)
)

// series builds a series from (offset, value) pairs relative to h0.
func series(labels map[string]string, pts ...any) StaticSeries {
	s := StaticSeries{Labels: labels}
	for i := 0; i < len(pts); i += 2 {
		s.T = append(s.T, h0.Add(pts[i].(time.Duration)).UnixMilli())
		s.V = append(s.V, toF(pts[i+1]))
	}
	return s
}

func toF(v any) float64 {
	switch v := v.(type) {
	case int:
		return float64(v)
	case float64:
		return v
	}
	panic("bad value")
}

// regular samples f(t) every step over [from, to] (offsets from h0), skipping [holeFrom, holeTo).
func regular(labels map[string]string, from, to, step time.Duration, f func(time.Duration) float64, holes ...time.Duration) StaticSeries {
	s := StaticSeries{Labels: labels}
	for d := from; d <= to; d += step {
		skip := false
		for i := 0; i < len(holes); i += 2 {
			if d > holes[i] && d < holes[i+1] {
				skip = true
			}
		}
		if !skip {
			s.T = append(s.T, h0.Add(d).UnixMilli())
			s.V = append(s.V, f(d))
		}
	}
	return s
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func TestCompute(t *testing.T) {
	type bucketWant struct {
		joules, estimated, completeness float64
	}
	hour := Bucketing{Calendar: Hour}
	tests := []struct {
		name     string
		src      StaticSource
		q        Query
		want     []bucketWant
		resets   int
		wraps    int
		gaps     []Gap
		complete float64
	}{
		{
			name: "constant power, hourly",
			src: StaticSource{powerSel: {regular(powerLabels, -time.Minute, 2*time.Hour+time.Minute, 15*time.Second,
				func(time.Duration) float64 { return 1000 })}},
			q:        Query{From: h0, To: h0.Add(2 * time.Hour), Buckets: hour, Interval: 15 * time.Second},
			want:     []bucketWant{{3.6e6, 0, 1}, {3.6e6, 0, 1}},
			complete: 1,
		},
		{
			name: "counter reset counts from zero",
			// 0 → 60 kJ → reset, 30 kJ → 90 kJ: 60 + 30 + 60 kJ.
			src:  StaticSource{counterSel: {series(counterLabels, 0*time.Second, 0, 60*time.Second, 60000, 120*time.Second, 30000, 180*time.Second, 90000)}},
			q:    Query{From: h0, To: h0.Add(3 * time.Minute), Interval: time.Minute},
			want: []bucketWant{{150000, 0, 1}}, resets: 1, complete: 1,
		},
		{
			name: "counter wrap with known range",
			// range 100 kJ: 0 → 60 → 90 → (wrap) 20 kJ: 60 + 30 + 30 kJ.
			src:  StaticSource{counterSel: {series(counterLabels, 0*time.Second, 0, 60*time.Second, 60000, 120*time.Second, 90000, 180*time.Second, 20000)}},
			q:    Query{From: h0, To: h0.Add(3 * time.Minute), Interval: time.Minute, WrapAt: 100000},
			want: []bucketWant{{120000, 0, 1}}, wraps: 1, complete: 1,
		},
		{
			name: "counter increase split linearly across an hour boundary",
			// 1200 J between 00:59 and 01:01: 600 J to each hour; each hour has 1 of 60 minutes covered.
			src:      StaticSource{counterSel: {series(counterLabels, 59*time.Minute, 5000, 61*time.Minute, 6200)}},
			q:        Query{From: h0, To: h0.Add(2 * time.Hour), Buckets: hour, Interval: time.Minute, GapFactor: 3},
			want:     []bucketWant{{600, 0, 1.0 / 60}, {600, 0, 1.0 / 60}},
			complete: 2.0 / 120,
			gaps: []Gap{
				{Series: `greenloop_energy_joules_total{component="it", site="fra1"}`, Start: h0, End: h0.Add(59 * time.Minute)},
				{Series: `greenloop_energy_joules_total{component="it", site="fra1"}`, Start: h0.Add(61 * time.Minute), End: h0.Add(2 * time.Hour)},
			},
		},
		{
			name: "power ramp across an hour boundary, trapezoid",
			// 0 W at 00:59 to 120 W at 01:01: mean 30 W for 60 s, then mean 90 W for 60 s.
			src:      StaticSource{powerSel: {series(powerLabels, 59*time.Minute, 0, 61*time.Minute, 120)}},
			q:        Query{From: h0.Add(30 * time.Minute), To: h0.Add(90 * time.Minute), Buckets: hour, Interval: 2 * time.Minute},
			want:     []bucketWant{{1800, 0, 1.0 / 30}, {5400, 0, 1.0 / 30}},
			complete: 2.0 / 60,
			gaps: []Gap{
				{Series: `greenloop_power_watts{component="it", site="fra1"}`, Start: h0.Add(30 * time.Minute), End: h0.Add(59 * time.Minute)},
				{Series: `greenloop_power_watts{component="it", site="fra1"}`, Start: h0.Add(61 * time.Minute), End: h0.Add(90 * time.Minute)},
			},
		},
		{
			name: "power gap is not bridged",
			// 1000 W every minute, nothing from 00:20 to 00:30: 50 minutes of energy.
			src: StaticSource{powerSel: {regular(powerLabels, -time.Minute, 61*time.Minute, time.Minute,
				func(time.Duration) float64 { return 1000 }, 20*time.Minute, 30*time.Minute)}},
			q:        Query{From: h0, To: h0.Add(time.Hour), Buckets: hour, Interval: time.Minute},
			want:     []bucketWant{{1000 * 50 * 60, 0, 50.0 / 60}},
			complete: 50.0 / 60,
			gaps:     []Gap{{Series: `greenloop_power_watts{component="it", site="fra1"}`, Start: h0.Add(20 * time.Minute), End: h0.Add(30 * time.Minute)}},
		},
		{
			name: "counter gap is spread as an estimate",
			// 1 kJ/s, same hole: the 600 kJ across it are measured but their timing is not.
			src: StaticSource{counterSel: {regular(counterLabels, -time.Minute, 61*time.Minute, time.Minute,
				func(d time.Duration) float64 { return 1000 * d.Seconds() }, 20*time.Minute, 30*time.Minute)}},
			q:        Query{From: h0, To: h0.Add(time.Hour), Buckets: hour, Interval: time.Minute},
			want:     []bucketWant{{3.6e6, 600000, 50.0 / 60}},
			complete: 50.0 / 60,
			gaps:     []Gap{{Series: `greenloop_energy_joules_total{component="it", site="fra1"}`, Start: h0.Add(20 * time.Minute), End: h0.Add(30 * time.Minute), Estimated: true}},
		},
		{
			name: "interval estimated from the data finds the gap",
			src: StaticSource{powerSel: {regular(powerLabels, -time.Minute, 61*time.Minute, time.Minute,
				func(time.Duration) float64 { return 1000 }, 20*time.Minute, 30*time.Minute)}},
			q:        Query{From: h0, To: h0.Add(time.Hour), Buckets: hour},
			want:     []bucketWant{{1000 * 50 * 60, 0, 50.0 / 60}},
			complete: 50.0 / 60,
			gaps:     []Gap{{Series: `greenloop_power_watts{component="it", site="fra1"}`, Start: h0.Add(20 * time.Minute), End: h0.Add(30 * time.Minute)}},
		},
		{
			name: "two series sum; a silent one halves completeness",
			src: StaticSource{powerSel: {
				regular(powerLabels, -time.Minute, 61*time.Minute, time.Minute, func(time.Duration) float64 { return 500 }),
				{Labels: map[string]string{"__name__": "greenloop_power_watts", "site": "fra1", "component": "it", "node": "b"}},
			}},
			q:        Query{From: h0, To: h0.Add(time.Hour), Buckets: hour, Interval: time.Minute},
			want:     []bucketWant{{500 * 3600, 0, 0.5}},
			complete: 0.5,
			gaps:     []Gap{{Series: `greenloop_power_watts{component="it", node="b", site="fra1"}`, Start: h0, End: h0.Add(time.Hour)}},
		},
		{
			name: "counters are preferred to power",
			src: StaticSource{
				counterSel: {series(counterLabels, 0*time.Second, 0, 60*time.Second, 1000)},
				powerSel:   {series(powerLabels, 0*time.Second, 5, 60*time.Second, 5)},
			},
			q:    Query{Selectors: []string{counterSel, powerSel}, From: h0, To: h0.Add(time.Minute), Interval: time.Minute},
			want: []bucketWant{{1000, 0, 1}}, complete: 1,
		},
		{
			name: "falls back to power when no counter matches",
			src:  StaticSource{powerSel: {series(powerLabels, 0*time.Second, 5, 60*time.Second, 5)}},
			q:    Query{Selectors: []string{counterSel, powerSel}, From: h0, To: h0.Add(time.Minute), Interval: time.Minute},
			want: []bucketWant{{300, 0, 1}}, complete: 1,
		},
		{
			name: "falls back to power when the counters have no samples in the range",
			src: StaticSource{
				counterSel: {{Labels: counterLabels}},
				powerSel:   {series(powerLabels, 0*time.Second, 5, 60*time.Second, 5)},
			},
			q:    Query{Selectors: []string{counterSel, powerSel}, From: h0, To: h0.Add(time.Minute), Interval: time.Minute},
			want: []bucketWant{{300, 0, 1}}, complete: 1,
		},
		{
			name:     "a single sample covers nothing",
			src:      StaticSource{powerSel: {series(powerLabels, 30*time.Second, 5)}},
			q:        Query{From: h0, To: h0.Add(time.Minute)},
			want:     []bucketWant{{0, 0, 0}},
			gaps:     []Gap{{Series: `greenloop_power_watts{component="it", site="fra1"}`, Start: h0, End: h0.Add(time.Minute)}},
			complete: 0,
		},
		{
			name: "stale markers and duplicates are skipped",
			src: StaticSource{powerSel: {series(powerLabels, 0*time.Second, 100, 30*time.Second, math.NaN(), 30*time.Second, 100,
				30*time.Second, 999, 60*time.Second, 100)}},
			q:    Query{From: h0, To: h0.Add(time.Minute), Interval: 30 * time.Second},
			want: []bucketWant{{6000, 0, 1}}, complete: 1,
		},
		{
			name: "kilowatt-hour counter",
			src: StaticSource{`x`: {series(map[string]string{"__name__": "pdu_energy_kilowatt_hours_total"},
				0*time.Second, 10.5, 60*time.Second, 11)}},
			q:    Query{Selectors: []string{"x"}, From: h0, To: h0.Add(time.Minute), Interval: time.Minute},
			want: []bucketWant{{0.5 * 3.6e6, 0, 1}}, complete: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			q := tc.q
			if q.Selectors == nil {
				for k := range tc.src {
					q.Selectors = append(q.Selectors, k)
				}
			}
			r, err := Compute(context.Background(), tc.src, q)
			if err != nil {
				t.Fatal(err)
			}
			// The sample-by-sample path gives the same result as the batch path.
			r1, err := Compute(context.Background(), oneByOne{tc.src}, q)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(r, r1) {
				t.Errorf("batch and one-by-one results differ:\n%+v\n%+v", r, r1)
			}
			if len(r.Buckets) != len(tc.want) {
				t.Fatalf("got %d buckets, want %d", len(r.Buckets), len(tc.want))
			}
			var total float64
			for i, w := range tc.want {
				b := r.Buckets[i]
				if !near(b.Energy.Joules(), w.joules) || !near(b.Estimated.Joules(), w.estimated) || !near(b.Completeness, w.completeness) {
					t.Errorf("bucket %d [%s, %s): got %v J (estimated %v J), completeness %v; want %v J (%v J), %v",
						i, b.Start.Format(time.TimeOnly), b.End.Format(time.TimeOnly), b.Energy.Joules(), b.Estimated.Joules(), b.Completeness, w.joules, w.estimated, w.completeness)
				}
				total += w.joules
			}
			if !near(r.Total.Joules(), total) {
				t.Errorf("total %v J, want %v J", r.Total.Joules(), total)
			}
			if !near(r.Completeness, tc.complete) {
				t.Errorf("completeness %v, want %v", r.Completeness, tc.complete)
			}
			if r.Resets != tc.resets || r.Wraps != tc.wraps {
				t.Errorf("resets %d wraps %d, want %d %d", r.Resets, r.Wraps, tc.resets, tc.wraps)
			}
			if len(r.Gaps) != len(tc.gaps) {
				t.Fatalf("gaps %+v, want %+v", r.Gaps, tc.gaps)
			}
			for i := range tc.gaps {
				g, w := r.Gaps[i], tc.gaps[i]
				if g.Series != w.Series || !g.Start.Equal(w.Start) || !g.End.Equal(w.End) || g.Estimated != w.Estimated {
					t.Errorf("gap %d: got %+v, want %+v", i, g, w)
				}
			}
		})
	}
}

func TestComputeDSTDays(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal("time zone database:", err)
	}
	for _, tc := range []struct {
		name     string
		from, to time.Time
		kwh      []float64
	}{
		// Spring forward on 30 March 2025: a 23-hour day.
		{"spring", time.Date(2025, 3, 29, 0, 0, 0, 0, berlin), time.Date(2025, 4, 1, 0, 0, 0, 0, berlin), []float64{24, 23, 24}},
		// Fall back on 26 October 2025: a 25-hour day.
		{"autumn", time.Date(2025, 10, 25, 0, 0, 0, 0, berlin), time.Date(2025, 10, 28, 0, 0, 0, 0, berlin), []float64{24, 25, 24}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// 1 kW sampled every 15 s, in UTC, through the whole range.
			s := StaticSeries{Labels: powerLabels}
			for ts := tc.from.Add(-time.Minute); !ts.After(tc.to.Add(time.Minute)); ts = ts.Add(15 * time.Second) {
				s.T = append(s.T, ts.UnixMilli())
				s.V = append(s.V, 1000)
			}
			r, err := Compute(context.Background(), StaticSource{powerSel: {s}}, Query{Selectors: []string{powerSel},
				From: tc.from, To: tc.to, Buckets: Bucketing{Calendar: Day, Location: berlin}, Interval: 15 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Buckets) != len(tc.kwh) {
				t.Fatalf("%d buckets, want %d", len(r.Buckets), len(tc.kwh))
			}
			for i, want := range tc.kwh {
				b := r.Buckets[i]
				if !near(b.Energy.KWh(), want) || !near(b.Completeness, 1) {
					t.Errorf("day %s: %v kWh, completeness %v; want %v kWh, 1", b.Start.In(berlin).Format(time.DateOnly), b.Energy.KWh(), b.Completeness, want)
				}
				if b.Start.In(berlin).Hour() != 0 {
					t.Errorf("day %d starts at %s, want local midnight", i, b.Start.In(berlin))
				}
			}
		})
	}
}

func TestEdges(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal("time zone database:", err)
	}
	y := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	f := func(name string, b Bucketing, from, to time.Time, wantN int, wantSecond time.Time) {
		t.Helper()
		e, err := b.Edges(from, to)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(e)-1 != wantN {
			t.Errorf("%s: %d buckets, want %d", name, len(e)-1, wantN)
		}
		if !wantSecond.IsZero() && !e[1].Equal(wantSecond) {
			t.Errorf("%s: second edge %s, want %s", name, e[1], wantSecond)
		}
		if !e[0].Equal(from) || !e[len(e)-1].Equal(to) {
			t.Errorf("%s: edges %s..%s, want %s..%s", name, e[0], e[len(e)-1], from, to)
		}
	}
	f("months of 2024", Bucketing{Calendar: Month}, y, y.AddDate(1, 0, 0), 12, time.Date(2024, 2, 1, 0, 0, 0, 0, time.UTC))
	f("hours of leap 2024", Bucketing{Calendar: Hour}, y, y.AddDate(1, 0, 0), 8784, y.Add(time.Hour))
	f("Berlin hours of 2024 (UTC range)", Bucketing{Calendar: Hour, Location: berlin}, y, y.AddDate(1, 0, 0), 8784, y.Add(time.Hour))
	f("years, partial first", Bucketing{Calendar: Year}, y.AddDate(0, 6, 0), y.AddDate(2, 0, 0), 2, y.AddDate(1, 0, 0))
	f("Berlin days in UTC range", Bucketing{Calendar: Day, Location: berlin}, y, y.Add(48*time.Hour), 3, y.Add(23*time.Hour))
	f("15 min steps", Bucketing{Step: 15 * time.Minute}, y, y.Add(time.Hour+time.Minute), 5, y.Add(15*time.Minute))
	f("one bucket", Bucketing{}, y, y.Add(time.Hour), 1, y.Add(time.Hour))
	if _, err := (Bucketing{Step: time.Millisecond}).Edges(y, y.AddDate(1, 0, 0)); !errors.Is(err, ErrTooManyBuckets) {
		t.Errorf("1 ms steps over a year: err %v, want ErrTooManyBuckets", err)
	}
	if _, err := (Bucketing{}).Edges(y, y); err == nil {
		t.Error("empty range: no error")
	}
}

func TestComputeErrors(t *testing.T) {
	ctx := context.Background()
	q := Query{Selectors: []string{"a", "b"}, From: h0, To: h0.Add(time.Hour)}
	if _, err := Compute(ctx, StaticSource{}, q); !errors.Is(err, ErrNoSeries) {
		t.Errorf("no series: err %v, want ErrNoSeries", err)
	}
	bad := StaticSource{"a": {series(map[string]string{"__name__": "greenloop_temperature_celsius", "site": "x"}, 0*time.Second, 1)}}
	_, err := Compute(ctx, bad, q)
	if !errors.Is(err, ErrUnknownMetric) || !strings.Contains(err.Error(), `greenloop_temperature_celsius{site="x"}`) {
		t.Errorf("temperature series: err %v, want ErrUnknownMetric naming the series", err)
	}
	water := StaticSource{"a": {series(map[string]string{"__name__": "greenloop_water_cubic_meters_total"}, 0*time.Second, 1)}}
	if _, err := Compute(ctx, water, q); err == nil || !strings.Contains(err.Error(), "measures volume") {
		t.Errorf("water series as energy: err %v", err)
	}
	if _, err := Compute(ctx, StaticSource{}, Query{Selectors: []string{"a"}, From: h0, To: h0.Add(time.Hour), GapFactor: 0.5}); err == nil {
		t.Error("gap factor 0.5: no error")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Compute(cctx, StaticSource{"a": {series(powerLabels, 0*time.Second, 1)}}, q); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err %v", err)
	}
}

func TestComputeVolume(t *testing.T) {
	wl := map[string]string{"__name__": "greenloop_water_cubic_meters_total", "site": "fra1"}
	// 0.5 m³ per hour for 2 hours, sampled every 5 minutes, with a meter reset at 01:00.
	s := regular(wl, -5*time.Minute, 125*time.Minute, 5*time.Minute, func(d time.Duration) float64 {
		if d >= time.Hour {
			return 0.5 * (d - time.Hour).Hours()
		}
		return 100 + 0.5*d.Hours()
	})
	r, err := ComputeVolume(context.Background(), StaticSource{"w": {s}}, Query{Selectors: []string{"w"}, From: h0, To: h0.Add(2 * time.Hour),
		Buckets: Bucketing{Calendar: Hour}, Interval: 5 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// The reset interval (00:55 → 01:00) counts its after-value, 0 m³: 5 minutes of
	// flow (1/24 m³) are lost, as they would be with any counter reset.
	want := []float64{500 - 500.0/12, 500}
	for i, w := range want {
		if !near(r.Buckets[i].Volume.Litres(), w) {
			t.Errorf("hour %d: %v L, want %v L", i, r.Buckets[i].Volume.Litres(), w)
		}
	}
	if r.Resets != 1 {
		t.Errorf("resets %d, want 1", r.Resets)
	}
	if _, err := ComputeVolume(context.Background(), StaticSource{"p": {series(powerLabels, 0*time.Second, 1)}}, Query{Selectors: []string{"p"}, From: h0, To: h0.Add(time.Hour)}); err == nil {
		t.Error("power as volume: no error")
	}
}

// oneByOne hides the BatchIterator of a StaticSource's iterators.
type oneByOne struct{ src StaticSource }

func (o oneByOne) Scan(ctx context.Context, sel string, from, to time.Time, visit func(map[string]string, SampleIterator) error) error {
	return o.src.Scan(ctx, sel, from, to, func(ls map[string]string, it SampleIterator) error {
		return visit(ls, struct{ SampleIterator }{it})
	})
}
