package rollup

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/energy"
)

// staticReadings aggregates in-memory series per left-open UTC hour, as the
// ClickHouse hourly rollup table does.
type staticReadings map[string][]energy.StaticSeries

func (s staticReadings) HourlyReadings(_ context.Context, sel string, from, to time.Time) ([]ReadingSeries, error) {
	var out []ReadingSeries
	for _, ser := range s[sel] {
		rs := ReadingSeries{Labels: ser.Labels}
		for i, t := range ser.T {
			v := ser.V[i]
			start := floorHour(t - 1) // (start, start+1h]
			if start < from.UnixMilli() || start >= to.UnixMilli() {
				continue
			}
			n := len(rs.Hours)
			if n == 0 || rs.Hours[n-1].Start != start {
				rs.Hours = append(rs.Hours, Reading{Start: start, First: v, Max: v})
				n++
			}
			h := &rs.Hours[n-1]
			h.LastT, h.Last, h.Sum, h.Count = t, v, h.Sum+v, h.Count+1
			h.Max = max(h.Max, v)
		}
		if len(rs.Hours) > 0 {
			out = append(out, rs)
		}
	}
	return out, nil
}

// gen makes samples every step from start (inclusive) to end (exclusive), skipping [gapLo, gapHi).
func gen(start, end time.Time, step time.Duration, gapLo, gapHi time.Time, f func(t time.Time) float64) ([]int64, []float64) {
	var ts []int64
	var vs []float64
	for t := start; t.Before(end); t = t.Add(step) {
		if !t.Before(gapLo) && t.Before(gapHi) {
			continue
		}
		ts = append(ts, t.UnixMilli())
		vs = append(vs, f(t))
	}
	return ts, vs
}

func TestComputeReadingsMatchesRaw(t *testing.T) {
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// counter: 250 W with a daily sine, integrated; resets to 0 at 05:20:15.
	counter := func(reset time.Time) func(time.Time) float64 {
		return func(t time.Time) float64 {
			s := t.Sub(day).Seconds()
			e := 250*s + 50*3600/(2*math.Pi)*(1-math.Cos(2*math.Pi*s/86400))
			if !reset.IsZero() && !t.Before(reset) {
				e -= 250 * reset.Sub(day).Seconds()
			}
			return e
		}
	}
	power := func(t time.Time) float64 { return 400 + 80*math.Sin(2*math.Pi*t.Sub(day).Seconds()/7200) }
	cases := []struct {
		name         string
		metric       string
		step, phase  time.Duration
		gapLo, gapHi time.Time
		reset        time.Time
		from, to     time.Time
		buckets      energy.Bucketing
		interval     time.Duration
	}{
		{name: "counter aligned 15s", metric: "greenloop_energy_joules_total", step: 15 * time.Second,
			from: day.Add(2 * time.Hour), to: day.Add(20 * time.Hour), buckets: energy.Bucketing{Calendar: energy.Hour}},
		{name: "counter off-phase 15s, reset", metric: "greenloop_energy_joules_total", step: 15 * time.Second, phase: 7 * time.Second,
			reset: day.Add(5*time.Hour + 20*time.Minute + 7*time.Second), from: day.Add(time.Hour), to: day.Add(23 * time.Hour), buckets: energy.Bucketing{Calendar: energy.Hour}},
		{name: "counter gap across hours", metric: "greenloop_energy_joules_total", step: 30 * time.Second, phase: 11 * time.Second,
			gapLo: day.Add(6*time.Hour + 10*time.Minute), gapHi: day.Add(9*time.Hour + 40*time.Minute),
			from: day.Add(time.Hour), to: day.Add(23 * time.Hour), buckets: energy.Bucketing{Calendar: energy.Hour}},
		{name: "power 15s off-phase, gap, 6h buckets", metric: "greenloop_power_watts", step: 15 * time.Second, phase: 4 * time.Second,
			gapLo: day.Add(3*time.Hour + 50*time.Minute), gapHi: day.Add(5*time.Hour + 5*time.Minute),
			from: day.Add(time.Hour), to: day.Add(19 * time.Hour), buckets: energy.Bucketing{Step: 6 * time.Hour}},
		{name: "power aligned, range beyond the data", metric: "greenloop_power_watts", step: time.Minute,
			from: day.Add(-2 * time.Hour), to: day.Add(26 * time.Hour), buckets: energy.Bucketing{Calendar: energy.Hour}},
		{name: "counter with nominal interval", metric: "greenloop_energy_joules_total", step: 10 * time.Second, phase: 3 * time.Second,
			interval: 10 * time.Second, from: day, to: day.Add(12 * time.Hour), buckets: energy.Bucketing{Calendar: energy.Day}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := power
			if c.metric != "greenloop_power_watts" {
				f = counter(c.reset)
			}
			sel := c.metric + `{site="fra1"}`
			var src []energy.StaticSeries
			for i, dev := range []string{"a", "b"} {
				ts, vs := gen(day.Add(c.phase+time.Duration(i)*time.Second), day.Add(24*time.Hour), c.step, c.gapLo, c.gapHi, f)
				src = append(src, energy.StaticSeries{Labels: map[string]string{"__name__": c.metric, "site": "fra1", "device": dev}, T: ts, V: vs})
			}
			q := energy.Query{Selectors: []string{sel}, From: c.from, To: c.to, Buckets: c.buckets, Interval: c.interval}
			want, err := energy.Compute(context.Background(), energy.StaticSource{sel: src}, q)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ComputeReadings(context.Background(), staticReadings{sel: src}, q)
			if err != nil {
				t.Fatal(err)
			}
			assertSameResult(t, got, want)
		})
	}
}

func assertSameResult(t *testing.T, got, want *energy.Result) {
	t.Helper()
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b))) }
	if got.Series != want.Series || got.Selector != want.Selector || got.Resets != want.Resets || got.Wraps != want.Wraps {
		t.Errorf("series %d selector %s resets %d wraps %d, want %d %s %d %d", got.Series, got.Selector, got.Resets, got.Wraps,
			want.Series, want.Selector, want.Resets, want.Wraps)
	}
	if !near(float64(got.Total), float64(want.Total)) || !near(float64(got.Estimated), float64(want.Estimated)) || !near(got.Completeness, want.Completeness) {
		t.Errorf("total %v estimated %v completeness %v, want %v %v %v", got.Total, got.Estimated, got.Completeness, want.Total, want.Estimated, want.Completeness)
	}
	if len(got.Buckets) != len(want.Buckets) {
		t.Fatalf("%d buckets, want %d", len(got.Buckets), len(want.Buckets))
	}
	for i, b := range got.Buckets {
		w := want.Buckets[i]
		if !b.Start.Equal(w.Start) || !near(float64(b.Energy), float64(w.Energy)) || !near(float64(b.Estimated), float64(w.Estimated)) || !near(b.Completeness, w.Completeness) {
			t.Errorf("bucket %d: %s %v est %v compl %v, want %s %v est %v compl %v", i, b.Start.Format(time.TimeOnly), b.Energy, b.Estimated, b.Completeness,
				w.Start.Format(time.TimeOnly), w.Energy, w.Estimated, w.Completeness)
		}
	}
	if len(got.Gaps) != len(want.Gaps) {
		t.Errorf("gaps %v, want %v", got.Gaps, want.Gaps)
		return
	}
	for i := range got.Gaps {
		if got.Gaps[i] != want.Gaps[i] {
			t.Errorf("gap %d: %+v, want %+v", i, got.Gaps[i], want.Gaps[i])
		}
	}
}

func TestComputeReadingsRefusesPartialHours(t *testing.T) {
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	q := energy.Query{Selectors: []string{"x_joules_total"}, From: day.Add(30 * time.Minute), To: day.Add(5 * time.Hour)}
	if _, err := ComputeReadings(context.Background(), staticReadings{}, q); !errors.Is(err, ErrNotHourly) {
		t.Errorf("half-hour start: %v, want ErrNotHourly", err)
	}
	q.From = day
	if _, err := ComputeReadings(context.Background(), staticReadings{}, q); !errors.Is(err, energy.ErrNoSeries) {
		t.Errorf("no series: %v, want ErrNoSeries", err)
	}
}
