package service

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
)

// TestClickHouseEnergyMatchesRaw writes the same meters into a real
// ClickHouse server and checks that the SQL rollup path (ClickHouseEnergy)
// gives the raw path's figures, and that a tenant sees its own series only.
func TestClickHouseEnergyMatchesRaw(t *testing.T) {
	chtest.Require(t)
	srv, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: []string{srv.Addr}, Database: "energysource", FlushInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })

	day := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	app := st.Appender(ctx)
	add := func(ls labels.Labels, phase, step time.Duration, gapLo, gapHi time.Duration, f func(s float64) float64) {
		for d := phase; d < 24*time.Hour; d += step {
			if d >= gapLo && d < gapHi {
				continue
			}
			if _, err := app.Append(0, ls, day.Add(d).UnixMilli(), f(d.Seconds())); err != nil {
				t.Fatal(err)
			}
		}
	}
	counter := func(ls ...string) labels.Labels {
		return labels.FromStrings(append([]string{"__name__", "greenloop_energy_joules_total"}, ls...)...)
	}
	power := func(ls ...string) labels.Labels {
		return labels.FromStrings(append([]string{"__name__", "greenloop_power_watts"}, ls...)...)
	}
	// Tenant a: two facility counters (one off-phase with a reset at
	// 07:30:07, one with a gap of 2 h 20 min) and two power gauges (one with a gap).
	add(counter("tenant", "a", "site", "fra1", "pdu", "1"), 0, 15*time.Second, 0, 0, func(s float64) float64 {
		return 1e6 + 300*s + 4e5*math.Sin(s/7000)
	})
	add(counter("tenant", "a", "site", "fra1", "pdu", "2"), 7*time.Second, 15*time.Second, 0, 0, func(s float64) float64 {
		if s >= 7.5*3600+7 {
			return 200 * (s - 7.5*3600)
		}
		return 200 * s
	})
	add(counter("tenant", "a", "site", "fra1", "pdu", "3"), 3*time.Second, 30*time.Second, 5*time.Hour+10*time.Minute, 7*time.Hour+30*time.Minute,
		func(s float64) float64 { return 150 * s })
	add(power("tenant", "a", "site", "fra1", "pdu", "1"), 2*time.Second, 15*time.Second, 0, 0, func(s float64) float64 { return 300 + 50*math.Sin(s/3000) })
	add(power("tenant", "a", "site", "fra1", "pdu", "2"), 0, 15*time.Second, 13*time.Hour+50*time.Minute, 15*time.Hour+5*time.Minute,
		func(s float64) float64 { return 200 + 20*math.Cos(s/5000) })
	// Tenant b: the same selector, ten times the energy.
	add(counter("tenant", "b", "site", "fra1", "pdu", "1"), 0, 15*time.Second, 0, 0, func(s float64) float64 { return 3000 * s })
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}

	// RawSamples -1: always the hourly rollup table, whose figures are compared here.
	sources := map[string]EnergySource{"raw": RawEnergy{Store: st}, "clickhouse": ClickHouseEnergy{Store: st, RawSamples: -1}}
	cases := []struct {
		name, tenant, sel string
		from, to          time.Time
		buckets           energy.Bucketing
	}{
		{"counters hourly", "a", `greenloop_energy_joules_total{site="fra1"}`, day.Add(time.Hour), day.Add(23 * time.Hour), energy.Bucketing{Calendar: energy.Hour}},
		{"power hourly", "a", `greenloop_power_watts{site="fra1"}`, day.Add(time.Hour), day.Add(23 * time.Hour), energy.Bucketing{Calendar: energy.Hour}},
		{"counters daily, range past the data", "a", `greenloop_energy_joules_total{site="fra1"}`, day.Add(-3 * time.Hour), day.Add(27 * time.Hour), energy.Bucketing{Calendar: energy.Day}},
		{"half-hour range goes raw", "a", `greenloop_power_watts{site="fra1"}`, day.Add(90 * time.Minute), day.Add(10 * time.Hour), energy.Bucketing{Calendar: energy.Hour}},
		{"tenant b", "b", `greenloop_energy_joules_total{site="fra1"}`, day.Add(time.Hour), day.Add(23 * time.Hour), energy.Bucketing{Calendar: energy.Hour}},
		{"a selector naming tenant b, read as a", "a", `greenloop_energy_joules_total{site="fra1",tenant="b"}`, day.Add(time.Hour), day.Add(23 * time.Hour), energy.Bucketing{Calendar: energy.Hour}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			q := energy.Query{Selectors: []string{c.sel}, From: c.from, To: c.to, Buckets: c.buckets}
			res := map[string]*energy.Result{}
			for name, src := range sources {
				r, err := src.Energy(ctx, c.tenant, q)
				if c.name == "a selector naming tenant b, read as a" {
					if !errors.Is(err, energy.ErrNoSeries) {
						t.Errorf("%s: tenant a read %v, %v; want ErrNoSeries", name, r, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				res[name] = r
			}
			if len(res) == 0 {
				return
			}
			assertSameEnergy(t, res["clickhouse"], res["raw"])
			switch c.tenant {
			case "b":
				// 3000 W × 22 h, and nothing of tenant a.
				if res["clickhouse"].Series != 1 || math.Abs(res["clickhouse"].Total.KWh()-66) > 1e-9 {
					t.Errorf("tenant b: %d series, %v; want 1 series, 66 kWh", res["clickhouse"].Series, res["clickhouse"].Total)
				}
			}
			if c.name == "counters hourly" {
				r := res["clickhouse"]
				if r.Series != 3 || r.Resets != 1 || r.Estimated.KWh() < 0.1 || len(r.Gaps) != 1 {
					t.Errorf("tenant a counters: %d series, %d resets, %v estimated, gaps %v; want 3, 1, the gap's energy, 1 gap", r.Series, r.Resets, r.Estimated, r.Gaps)
				}
			}
		})
	}
	// The figures above came from the rollup table, not raw samples.
	rs, err := (&chReadings{st: st, tenant: "a"}).HourlyReadings(ctx, `greenloop_energy_joules_total{site="fra1"}`, day, day.Add(24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 3 {
		t.Fatalf("tenant a: hourly readings of %d counters, want 3", len(rs))
	}
	for _, r := range rs {
		if r.Labels["tenant"] != "a" || len(r.Hours) < 21 || r.Hours[1].Count < 100 {
			t.Errorf("readings of %v: %d hours, %+v", r.Labels, len(r.Hours), r.Hours[:min(2, len(r.Hours))])
		}
	}
	if _, err := (ClickHouseEnergy{Store: st}).Energy(ctx, "c", energy.Query{Selectors: []string{`greenloop_energy_joules_total{site="fra1"}`},
		From: day, To: day.Add(time.Hour), Buckets: energy.Bucketing{Calendar: energy.Hour}}); !errors.Is(err, energy.ErrNoSeries) {
		t.Errorf("tenant c (no series): %v, want ErrNoSeries", err)
	}
}

func assertSameEnergy(t *testing.T, got, want *energy.Result) {
	t.Helper()
	near := func(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b))) }
	if got.Series != want.Series || got.Resets != want.Resets || got.Wraps != want.Wraps || len(got.Gaps) != len(want.Gaps) {
		t.Errorf("series %d resets %d wraps %d gaps %v, want %d %d %d %v", got.Series, got.Resets, got.Wraps, got.Gaps,
			want.Series, want.Resets, want.Wraps, want.Gaps)
	}
	if !near(float64(got.Total), float64(want.Total)) || !near(float64(got.Estimated), float64(want.Estimated)) || !near(got.Completeness, want.Completeness) {
		t.Errorf("total %v estimated %v completeness %v, want %v %v %v", got.Total, got.Estimated, got.Completeness, want.Total, want.Estimated, want.Completeness)
	}
	if len(got.Buckets) != len(want.Buckets) {
		t.Fatalf("%d buckets, want %d", len(got.Buckets), len(want.Buckets))
	}
	for i, b := range got.Buckets {
		w := want.Buckets[i]
		if !near(float64(b.Energy), float64(w.Energy)) || !near(float64(b.Estimated), float64(w.Estimated)) || !near(b.Completeness, w.Completeness) {
			t.Errorf("bucket %s: %v est %v compl %v, want %v est %v compl %v", b.Start.Format(time.TimeOnly), b.Energy, b.Estimated, b.Completeness,
				w.Energy, w.Estimated, w.Completeness)
		}
	}
}

// TestClickHouseEnergyIrregular: a power gauge sampled irregularly (a burst
// of samples in half an hour, then sparse) gives different energy from the
// hourly rollup table than from raw samples. Within the raw retention and
// under RawSamples, ClickHouseEnergy reads raw samples and gives the
// embedded figures exactly; above the cap, or older than the raw samples,
// it reads the rollup table.
func TestClickHouseEnergyIrregular(t *testing.T) {
	chtest.Require(t)
	srv, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	day := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC)
	now := day.Add(26 * time.Hour)
	st, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: []string{srv.Addr}, Database: "irregular", FlushInterval: -1,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	app := st.Appender(ctx)
	ls := labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1", "sensor", "mqtt-7")
	n := 0
	for h := range 24 {
		base := day.Add(time.Duration(h) * time.Hour)
		// 1 kW for 20 minutes in 1 s samples, then 100 W every 5 minutes.
		for d := time.Duration(0); d < 20*time.Minute; d += time.Second {
			if _, err := app.Append(0, ls, base.Add(d).UnixMilli(), 1000); err != nil {
				t.Fatal(err)
			}
			n++
		}
		for d := 20 * time.Minute; d < time.Hour; d += 5 * time.Minute {
			if _, err := app.Append(0, ls, base.Add(d).UnixMilli(), 100); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	q := energy.Query{Selectors: []string{`greenloop_power_watts{site="fra1",sensor="mqtt-7"}`}, From: day.Add(2 * time.Hour), To: day.Add(22 * time.Hour),
		Buckets: energy.Bucketing{Calendar: energy.Hour}, Interval: 5 * time.Minute} // the sparse interval: no gaps
	raw, err := RawEnergy{Store: st}.Energy(ctx, "", q)
	if err != nil {
		t.Fatal(err)
	}
	// By hand, per hour (trapezoids): 1 kW over [0, 20 min − 1 s), the
	// step to 100 W over the next second, 100 W to 55 min, and the rise to
	// the next hour's 1 kW over the last 5 minutes.
	wantKWh := 20 * (1000*(20*60-1) + (1000+100)/2.0*1 + 100*35*60 + (100+1000)/2.0*300) / 3.6e6
	if math.Abs(raw.Total.KWh()-wantKWh) > 1e-9 {
		t.Fatalf("raw %v kWh, want %v", raw.Total.KWh(), wantKWh)
	}
	for _, c := range []struct {
		name    string
		limit   int64
		now     time.Time
		wantRaw bool
	}{
		{"default cap, recent", 0, now, true},
		{"cap above the samples", int64(n), now, true},
		{"cap below the samples", int64(n) / 2, now, false},
		{"always the table", -1, now, false},
		{"older than the raw samples", 0, day.Add(30 * 24 * time.Hour), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			now = c.now
			got, err := ClickHouseEnergy{Store: st, RawSamples: c.limit}.Energy(ctx, "", q)
			if err != nil {
				t.Fatal(err)
			}
			same := math.Abs(got.Total.KWh()-raw.Total.KWh()) <= 1e-9*raw.Total.KWh()
			t.Logf("%v kWh (raw samples: %v kWh)", got.Total.KWh(), raw.Total.KWh())
			if same != c.wantRaw {
				t.Errorf("%v kWh, raw %v kWh: same %v, want %v", got.Total.KWh(), raw.Total.KWh(), same, c.wantRaw)
			}
			if c.wantRaw {
				assertSameEnergy(t, got, raw)
			}
		})
	}
}
