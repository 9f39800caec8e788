package summary

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/greenloop/greenloop/internal/config"
)

var t0 = time.Date(2025, 1, 2, 0, 0, 0, 0, time.UTC)

func openDB(t *testing.T) *tsdb.DB {
	t.Helper()
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func engine() *promql.Engine {
	return promql.NewEngine(promql.EngineOpts{MaxSamples: 10_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
}

// data is a set of series to write, each a function of time sampled every step over [from, to].
type data []struct {
	ls       labels.Labels
	from, to time.Time
	step     time.Duration
	value    func(time.Time) float64
}

func (d *data) add(ls labels.Labels, from, to time.Time, step time.Duration, value func(time.Time) float64) {
	*d = append(*d, struct {
		ls       labels.Labels
		from, to time.Time
		step     time.Duration
		value    func(time.Time) float64
	}{ls, from, to, step, value})
}

// write stores the samples in time order, one commit per instant, as scrapes would.
func (d data) write(t *testing.T, db *tsdb.DB) {
	t.Helper()
	minT, maxT := d[0].from, d[0].to
	for _, s := range d {
		if s.from.Before(minT) {
			minT = s.from
		}
		if s.to.After(maxT) {
			maxT = s.to
		}
	}
	for ts := minT; !ts.After(maxT); ts = ts.Add(time.Minute) {
		app := db.Appender(context.Background())
		for _, s := range d {
			if ts.Before(s.from) || ts.After(s.to) || ts.Sub(s.from)%s.step != 0 {
				continue
			}
			if _, err := app.Append(0, s.ls, ts.UnixMilli(), s.value(ts)); err != nil {
				t.Fatal(err)
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
}

func constant(v float64) func(time.Time) float64 { return func(time.Time) float64 { return v } }

// counter integrates a constant power from t0.
func counter(watts float64) func(time.Time) float64 {
	return func(ts time.Time) float64 { return watts * ts.Sub(t0).Seconds() }
}

func site(id, zone string) config.Site {
	return config.Site{ID: id, Name: strings.ToUpper(id), Zone: zone, ITCapacityKW: 200}
}

// writeSite writes a site's meters: constant IT and facility power, their
// counters from 0 at t0, and per-rack inlet temperatures, for 3 hours at 60 s.
func writeSite(d *data, id string, itW, facW float64) {
	end := t0.Add(3 * time.Hour)
	m := func(metric, component string, extra ...string) labels.Labels {
		return labels.FromStrings(append([]string{"__name__", metric, "site", id, "component", component}, extra...)...)
	}
	d.add(m("greenloop_power_watts", "it", "node", "it-meter"), t0, end, time.Minute, constant(itW))
	d.add(m("greenloop_power_watts", "facility", "node", "facility-meter"), t0, end, time.Minute, constant(facW))
	d.add(m("greenloop_energy_joules_total", "it", "node", "it-meter"), t0, end, time.Minute, counter(itW))
	d.add(m("greenloop_energy_joules_total", "facility", "node", "facility-meter"), t0, end, time.Minute, counter(facW))
	d.add(m("greenloop_temperature_celsius", "inlet", "rack", "r01"), t0, end, time.Minute, constant(22))
	d.add(m("greenloop_temperature_celsius", "inlet", "rack", "r02"), t0, end, time.Minute, constant(25))
	// Node and PDU readings of the same site: they must not be added to IT or facility.
	d.add(m("greenloop_power_watts", "package", "node", "n1", "source", "rapl", "sensor", "intel-rapl:0"), t0, end, time.Minute, constant(150))
	d.add(m("greenloop_energy_joules_total", "package", "node", "n1", "source", "rapl", "sensor", "intel-rapl:0"), t0, end, time.Minute, counter(150))
	d.add(m("greenloop_power_watts", "branch", "node", "pdu-a", "source", "snmp"), t0, end, time.Minute, constant(itW/2))
	d.add(m("greenloop_energy_joules_total", "branch", "node", "pdu-a", "source", "snmp"), t0, end, time.Minute, counter(itW/2))
}

// writeCI writes one zone's intensity the way a provider does: one sample at the start of each hour.
func writeCI(d *data, zone, provider string, perHour ...float64) {
	for h, v := range perHour {
		ts := t0.Add(time.Duration(h) * time.Hour)
		d.add(labels.FromStrings("__name__", "greenloop_grid_carbon_intensity_grams_per_kwh", "zone", zone,
			"provider", provider, "signal", "average", "kind", "actual"), ts, ts, time.Hour, constant(v))
	}
}

func near(t *testing.T, what string, got *float64, want, rel float64) {
	t.Helper()
	if got == nil {
		t.Errorf("%s: nil, want %v", what, want)
		return
	}
	if math.Abs(*got-want) > rel*math.Abs(want) {
		t.Errorf("%s: %v, want %v (±%.2f%%)", what, *got, want, rel*100)
	}
}

// TestKnownDataset: 100 kW IT, 130 kW facility, 400 g/kWh for 3 hours.
func TestKnownDataset(t *testing.T) {
	db := openDB(t)
	var d data
	writeSite(&d, "fra1", 100_000, 130_000)
	writeCI(&d, "DE", "test", 400, 400, 400, 400)
	writeCI(&d, "FR", "test", 50, 50, 50, 50) // another zone: not used

	d.write(t, db)
	sums, err := Compute(context.Background(), db, engine(), []config.Site{site("fra1", "DE")}, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	s := sums[0]
	t.Logf("PUE %v, energy %v kWh, CO2e %v kg", *s.PUE, *s.EnergyTodayKWh, *s.CO2eTodayKg)
	near(t, "IT power", s.ITPowerW, 100_000, 1e-9)
	near(t, "facility power", s.FacilityPowerW, 130_000, 1e-9)
	near(t, "PUE", s.PUE, 1.30, 0.005)
	if s.PUEBasis != PUEFromEnergy {
		t.Errorf("PUE basis %q", s.PUEBasis)
	}
	near(t, "inlet", s.InletTempC, 23.5, 1e-9)
	near(t, "carbon intensity", s.CarbonIntensity, 400, 1e-9)
	if s.CarbonProvider != "test" {
		t.Errorf("provider %q", s.CarbonProvider)
	}
	near(t, "energy today", s.EnergyTodayKWh, 390, 0.005)
	near(t, "CO2e today", s.CO2eTodayKg, 156, 0.005)
	if !s.Since.Equal(t0) || !s.At.Equal(t0.Add(3*time.Hour)) || s.ID != "fra1" || s.Zone != "DE" || len(s.Warnings) != 0 {
		t.Errorf("summary %+v", s)
	}
}

// TestHourlyIntensityAndRunningHour: each hour's energy meets that hour's
// intensity, and the running hour counts too.
func TestHourlyIntensityAndRunningHour(t *testing.T) {
	db := openDB(t)
	var d data
	writeSite(&d, "fra1", 100_000, 130_000)
	writeCI(&d, "DE", "test", 300, 400, 500, 600)

	d.write(t, db)
	sums, err := Compute(context.Background(), db, engine(), []config.Site{site("fra1", "DE")}, t0.Add(150*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	s := sums[0]
	near(t, "energy", s.EnergyTodayKWh, 325, 0.005)
	// 130 kWh × 300 g + 130 kWh × 400 g + 65 kWh × 500 g.
	near(t, "CO2e", s.CO2eTodayKg, 123.5, 0.005)
	near(t, "carbon intensity now", s.CarbonIntensity, 500, 1e-9)

	// At 03:00 the running hour is done: 130 × (300+400+500) g.
	sums, err = Compute(context.Background(), db, engine(), []config.Site{site("fra1", "DE")}, t0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	near(t, "CO2e at 03:00", sums[0].CO2eTodayKg, 156, 0.005)
}

// TestSeveralSites: one query per figure serves every site, each with its own
// data; a site without data gets nils; a counter reset does not lose energy.
func TestSeveralSites(t *testing.T) {
	db := openDB(t)
	var d data
	writeSite(&d, "fra1", 100_000, 130_000)
	writeSite(&d, "par1", 50_000, 60_000)
	writeCI(&d, "DE", "test", 400, 400, 400, 400)
	writeCI(&d, "FR", "a", 50, 50, 50, 50)
	writeCI(&d, "FR", "b", 70, 70, 70, 70)
	// Site rst: its facility counter restarts from zero at 01:30 (meter replaced).
	end := t0.Add(3 * time.Hour)
	d.add(labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", "rst", "component", "facility"), t0, end, time.Minute,
		func(ts time.Time) float64 {
			if d := ts.Sub(t0); d >= 90*time.Minute {
				return 10_000 * (d - 90*time.Minute).Seconds()
			}
			return 10_000 * ts.Sub(t0).Seconds()
		})

	sites := []config.Site{site("fra1", "DE"), site("empty", "PL"), site("par1", "FR"), site("rst", "DE")}
	d.write(t, db)
	sums, err := Compute(context.Background(), db, engine(), sites, end)
	if err != nil {
		t.Fatal(err)
	}
	if len(sums) != 4 || sums[0].ID != "fra1" || sums[1].ID != "empty" || sums[2].ID != "par1" {
		t.Fatalf("order: %+v", sums)
	}
	near(t, "fra1 energy", sums[0].EnergyTodayKWh, 390, 0.005)
	near(t, "par1 energy", sums[2].EnergyTodayKWh, 180, 0.005)
	near(t, "par1 PUE", sums[2].PUE, 1.2, 0.005)
	near(t, "par1 carbon intensity (mean of two providers)", sums[2].CarbonIntensity, 60, 1e-9)
	near(t, "par1 CO2e", sums[2].CO2eTodayKg, 180*0.060, 0.005)
	if sums[2].CarbonProvider != "a,b" {
		t.Errorf("par1 provider %q", sums[2].CarbonProvider)
	}
	e := sums[1]
	if e.ITPowerW != nil || e.FacilityPowerW != nil || e.PUE != nil || e.InletTempC != nil || e.CarbonIntensity != nil || e.EnergyTodayKWh != nil || e.CO2eTodayKg != nil {
		t.Errorf("site without data: %+v", e)
	}
	// 30 kWh over the 3 hours despite the reset; rate() gives its power.
	near(t, "rst energy", sums[3].EnergyTodayKWh, 30, 0.01)
	near(t, "rst facility power from the counter", sums[3].FacilityPowerW, 10_000, 1e-6)
	if sums[3].PUE != nil {
		t.Errorf("rst PUE without an IT meter: %v", *sums[3].PUE)
	}

	tot := Total(sums)
	if tot.Sites != 4 || math.Abs(tot.ITPowerW-150_000) > 1e-6 || math.Abs(tot.FacilityPowerW-200_000) > 1e-6 {
		t.Errorf("totals %+v", tot)
	}
	near(t, "fleet PUE", tot.PUE, 190_000.0/150_000, 1e-9)
	near(t, "fleet energy", &tot.EnergyTodayKWh, 390+180+30, 0.005)
	near(t, "fleet CO2e", &tot.CO2eTodayKg, 156+10.8+12, 0.005)
	near(t, "fleet intensity", tot.CarbonIntensityToday, (156+10.8+12)*1000/(390+180+30), 0.005)
}

// TestFallbacks: PUE from power gauges when there are no counters; a bad
// meter selector is a warning on its site, not an error.
func TestFallbacks(t *testing.T) {
	db := openDB(t)
	var d data
	end := t0.Add(time.Hour)
	d.add(labels.FromStrings("__name__", "greenloop_power_watts", "site", "g", "component", "it"), t0, end, time.Minute, constant(1000))
	d.add(labels.FromStrings("__name__", "greenloop_power_watts", "site", "g", "component", "facility"), t0, end, time.Minute, constant(1400))
	bad := site("bad", "DE")
	bad.Meters = map[string]string{MeterFacilityEnergy: `sum(foo)`, MeterITEnergy: `foo{`}
	d.write(t, db)
	sums, err := Compute(context.Background(), db, engine(), []config.Site{site("g", "DE"), bad}, end)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "PUE", sums[0].PUE, 1.4, 1e-9)
	if sums[0].PUEBasis != PUEFromPower || sums[0].EnergyTodayKWh != nil {
		t.Errorf("%+v", sums[0])
	}
	if w := strings.Join(sums[1].Warnings, "; "); !strings.Contains(w, "meters.facility_energy") || !strings.Contains(w, "meters.it_energy") {
		t.Errorf("warnings %q", w)
	}
}

// TestCustomMeters: configured selectors replace the canonical ones.
func TestCustomMeters(t *testing.T) {
	db := openDB(t)
	var d data
	end := t0.Add(time.Hour)
	d.add(labels.FromStrings("__name__", "ups_output_joules_total", "dc", "x"), t0, end, time.Minute, counter(2000))
	d.add(labels.FromStrings("__name__", "utility_joules_total", "dc", "x", "feed", "1"), t0, end, time.Minute, counter(1500))
	d.add(labels.FromStrings("__name__", "utility_joules_total", "dc", "x", "feed", "2"), t0, end, time.Minute, counter(1500))
	s := site("x", "DE")
	s.Meters = map[string]string{MeterITEnergy: `ups_output_joules_total{dc="x"}`, MeterFacilityEnergy: `utility_joules_total{dc="x"}`}
	d.write(t, db)
	sums, err := Compute(context.Background(), db, engine(), []config.Site{s}, end)
	if err != nil {
		t.Fatal(err)
	}
	near(t, "PUE over two feeds", sums[0].PUE, 1.5, 0.005)
	near(t, "energy", sums[0].EnergyTodayKWh, 3, 0.005)
	near(t, "IT power from the counter", sums[0].ITPowerW, 2000, 1e-6)
}

func TestFillNearest(t *testing.T) {
	v := []float64{0, 2, 0, 0, 5, 0}
	have := []bool{false, true, false, false, true, false}
	if !fillNearest(v, have) {
		t.Fatal("false")
	}
	want := []float64{2, 2, 2, 5, 5, 5}
	for i := range v {
		if v[i] != want[i] {
			t.Fatalf("got %v, want %v", v, want)
		}
	}
	if fillNearest([]float64{0}, []bool{false}) {
		t.Error("nothing to fill from")
	}
}
