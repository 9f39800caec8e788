package emissions

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/quantity"
)

var y2022 = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)

// handIntensity reads the LCA column of the Electricity Maps export with
// nothing but encoding/csv, keyed by the hour's Unix time: an independent
// reading of the same file.
func handIntensity(t *testing.T) map[int64]float64 {
	t.Helper()
	f, err := os.Open("testdata/DE_2022_hourly.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	col := slices.Index(rows[0], "Carbon Intensity gCO₂eq/kWh (LCA)")
	if col < 0 {
		t.Fatalf("no LCA column in %q", rows[0])
	}
	out := map[int64]float64{}
	for _, r := range rows[1:] {
		ts, err := time.Parse("2006-01-02 15:04:05", r[0])
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseFloat(r[col], 64)
		if err != nil {
			t.Fatal(err)
		}
		out[ts.Unix()] = v
	}
	return out
}

func loadSeries(t *testing.T) *carbon.Series {
	t.Helper()
	f, err := os.Open("testdata/DE_2022_hourly.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := carbon.ParseElectricityMaps(f)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// yearTrace is a site drawing 400–600 kW on a daily cycle with noise,
// sampled every 15 minutes through 2022 (and 15 minutes either side), as a
// power gauge and as an energy counter (which resets once, in June).
type yearTrace struct {
	power, counter energy.StaticSeries
	// hourJ is the energy of each hour of 2022 by the counter's definition,
	// Σ P_i × 900 s over the samples starting in the hour.
	hourJ map[int64]float64
}

func makeYearTrace() yearTrace {
	rng := rand.New(rand.NewPCG(2022, 15))
	tr := yearTrace{
		power:   energy.StaticSeries{Labels: map[string]string{"__name__": "greenloop_power_watts", "site": "fra1", "component": "facility"}},
		counter: energy.StaticSeries{Labels: map[string]string{"__name__": "greenloop_energy_joules_total", "site": "fra1", "component": "facility"}},
		hourJ:   map[int64]float64{},
	}
	c := 7.5e12 // the meter's reading at the start
	reset := time.Date(2022, 6, 14, 9, 30, 0, 0, time.UTC)
	for ts := y2022.Add(-15 * time.Minute); !ts.After(y2022.AddDate(1, 0, 0).Add(15 * time.Minute)); ts = ts.Add(15 * time.Minute) {
		day := float64(ts.Hour()*60+ts.Minute()) / 1440
		p := 500e3 + 100e3*math.Sin(2*math.Pi*(day-0.25)) + rng.NormFloat64()*5e3
		tr.power.T = append(tr.power.T, ts.UnixMilli())
		tr.power.V = append(tr.power.V, p)
		tr.counter.T = append(tr.counter.T, ts.UnixMilli())
		tr.counter.V = append(tr.counter.V, c)
		// This sample's power is drawn until the next sample.
		c += p * 900
		if ts.Add(15 * time.Minute).Equal(reset) {
			c = p * 900 // the meter restarted at ts and has counted since
		}
		h := ts.Truncate(time.Hour)
		if !h.Before(y2022) && h.Before(y2022.AddDate(1, 0, 0)) {
			tr.hourJ[h.Unix()] += p * 900
		}
	}
	return tr
}

func TestLocationYearAgainstIndependentComputation(t *testing.T) {
	tr := makeYearTrace()
	ci := handIntensity(t)
	if len(ci) != 8760 || len(tr.hourJ) != 8760 {
		t.Fatalf("%d intensity hours, %d energy hours; want 8760", len(ci), len(tr.hourJ))
	}
	// The independent computation: Σ over the hours of kWh × g/kWh.
	var wantKg, wantKWh float64
	for h := y2022; h.Before(y2022.AddDate(1, 0, 0)); h = h.Add(time.Hour) {
		kwh := tr.hourJ[h.Unix()] / 3.6e6
		wantKWh += kwh
		wantKg += kwh * ci[h.Unix()] / 1000
	}
	series := loadSeries(t)
	for _, tc := range []struct {
		name string
		s    energy.StaticSeries
	}{{"counter", tr.counter}, {"power", tr.power}} {
		t.Run(tc.name, func(t *testing.T) {
			e, err := energy.Compute(context.Background(), energy.StaticSource{"sel": {tc.s}}, energy.Query{
				Selectors: []string{"sel"}, From: y2022, To: y2022.AddDate(1, 0, 0),
				Buckets: energy.Bucketing{Calendar: energy.Hour}, Interval: 15 * time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			r, err := Location(LocationInput{Site: "fra1", Energy: e, Intensity: series})
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %.3f kg (independent %.3f kg), %.3f kWh (independent %.3f kWh)", tc.name, r.Emissions.Kg(), wantKg, r.Energy.KWh(), wantKWh)
			if rel := math.Abs(r.Emissions.Kg()-wantKg) / wantKg; rel > 0.001 {
				t.Errorf("emissions %.1f kg, independent %.1f kg: off by %.4f %%", r.Emissions.Kg(), wantKg, rel*100)
			}
			if rel := math.Abs(r.Energy.KWh()-wantKWh) / wantKWh; rel > 0.001 {
				t.Errorf("energy %.1f kWh, independent %.1f kWh", r.Energy.KWh(), wantKWh)
			}
			if r.Completeness != 1 || len(r.MissingIntensity) != 0 || len(r.Series) != 8760 {
				t.Errorf("completeness %v, %d missing, %d points; want 1, 0, 8760", r.Completeness, len(r.MissingIntensity), len(r.Series))
			}
			// About 500 kW × 8760 h at DE's 2022 mean of about 474 g/kWh: roughly 2 000 t.
			if r.Emissions.Tonnes() < 1800 || r.Emissions.Tonnes() > 2300 {
				t.Errorf("emissions %.0f t, not plausible for 4.38 GWh in DE 2022", r.Emissions.Tonnes())
			}
		})
	}
}

// hourly returns an energy result of n hours from start with kwh[i] in hour i, all complete.
func hourly(start time.Time, kwh ...float64) *energy.Result {
	r := &energy.Result{From: start, To: start.Add(time.Duration(len(kwh)) * time.Hour), Completeness: 1}
	for i, k := range kwh {
		b := energy.Bucket{Start: start.Add(time.Duration(i) * time.Hour), End: start.Add(time.Duration(i+1) * time.Hour),
			Energy: quantity.Energy(k) * quantity.KilowattHour, Completeness: 1}
		r.Buckets = append(r.Buckets, b)
		r.Total += b.Energy
	}
	return r
}

func TestLocationMissingIntensity(t *testing.T) {
	start := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	cs := &carbon.Series{Zone: "DE", Points: []carbon.Point{
		{Time: start, LCA: 400, Direct: 300},
		// 01:00 and 02:00 are missing.
		{Time: start.Add(3 * time.Hour), LCA: 200, Direct: 100},
	}}
	e := hourly(start, 10, 20, 30, 40)
	e.Buckets[3].Completeness = 0.5
	fb := &Factor{Zone: "DE", Intensity: 380, Source: "EEA 2024", Year: 2024}
	for _, tc := range []struct {
		name         string
		in           LocationInput
		kg           float64
		completeness float64
		intensities  []any // float64 or nil
	}{
		{"no fallback: not counted, reported", LocationInput{Site: "fra1", Energy: e, Intensity: cs},
			(10*400 + 40*200) / 1000.0, (1 + 0 + 0 + 0.5) / 4, []any{400.0, nil, nil, 200.0}},
		{"fallback: flagged", LocationInput{Site: "fra1", Energy: e, Intensity: cs, Fallback: fb},
			(10*400 + 20*380 + 30*380 + 40*200) / 1000.0, (1 + 0 + 0 + 0.5) / 4, []any{400.0, 380.0, 380.0, 200.0}},
		{"direct signal", LocationInput{Site: "fra1", Energy: e, Intensity: cs, Signal: Direct},
			(10*300 + 40*100) / 1000.0, (1 + 0 + 0 + 0.5) / 4, []any{300.0, nil, nil, 100.0}},
		{"PUE overhead", LocationInput{Site: "fra1", Energy: e, Intensity: cs, Overhead: &Overhead{PUE: 1.5, Basis: "measured 2024"}},
			1.5 * (10*400 + 40*200) / 1000.0, (1 + 0 + 0 + 0.5) / 4, []any{400.0, nil, nil, 200.0}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Location(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			if !near(r.Emissions.Kg(), tc.kg) || !near(r.Completeness, tc.completeness) {
				t.Errorf("emissions %v kg, completeness %v; want %v, %v", r.Emissions.Kg(), r.Completeness, tc.kg, tc.completeness)
			}
			want := []time.Time{start.Add(time.Hour), start.Add(2 * time.Hour)}
			if !slices.EqualFunc(r.MissingIntensity, want, time.Time.Equal) {
				t.Errorf("missing %v, want %v", r.MissingIntensity, want)
			}
			if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "2 buckets without hourly intensity") {
				t.Errorf("warnings %q", r.Warnings)
			}
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			var j struct {
				Series []struct {
					Intensity *float64 `json:"intensity_g_per_kwh"`
					Fallback  bool     `json:"fallback"`
				} `json:"series"`
			}
			if err := json.Unmarshal(b, &j); err != nil {
				t.Fatal(err)
			}
			for i, w := range tc.intensities {
				got := j.Series[i].Intensity
				if (w == nil) != (got == nil) || (got != nil && *got != w.(float64)) {
					t.Errorf("point %d intensity %v, want %v", i, got, w)
				}
				if j.Series[i].Fallback != (tc.in.Fallback != nil && (i == 1 || i == 2)) {
					t.Errorf("point %d fallback flag %v", i, j.Series[i].Fallback)
				}
			}
		})
	}
	if _, err := Location(LocationInput{Site: "par1", Zone: "FR", Energy: e, Intensity: cs}); err == nil || !strings.Contains(err.Error(), `intensity series is for zone "DE"`) {
		t.Errorf("zone mismatch: err %v", err)
	}
	if _, err := Location(LocationInput{Energy: e, Intensity: cs, Overhead: &Overhead{PUE: 0.9}}); err == nil {
		t.Error("PUE 0.9: no error")
	}
	day := &energy.Result{From: start, To: start.Add(24 * time.Hour), Buckets: []energy.Bucket{{Start: start, End: start.Add(24 * time.Hour)}}}
	if _, err := Location(LocationInput{Energy: day, Intensity: cs}); !errors.Is(err, ErrNotHourly) {
		t.Errorf("daily buckets: err %v, want ErrNotHourly", err)
	}
}

func TestResultJSONShape(t *testing.T) {
	start := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	cs := &carbon.Series{Zone: "DE", Points: []carbon.Point{{Time: start, LCA: 350}}}
	r, err := Location(LocationInput{Site: "fra1", Energy: hourly(start, 2), Intensity: cs})
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"site":"fra1","from":"2025-05-01T00:00:00Z","to":"2025-05-01T01:00:00Z","method":"location","energy_kwh":2,"emissions_kg":0.7,"completeness":1,"series":[{"t":"2025-05-01T00:00:00Z","energy_kwh":2,"intensity_g_per_kwh":350,"emissions_kg":0.7}]}`
	if string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Max(math.Abs(a), math.Abs(b)))
}

func TestRebucket(t *testing.T) {
	start := time.Date(2025, 5, 1, 0, 0, 0, 0, time.UTC)
	cs := &carbon.Series{Zone: "DE", Points: []carbon.Point{
		{Time: start, LCA: 400}, {Time: start.Add(time.Hour), LCA: 100},
		// 02:00 missing; 03:00 at 300.
		{Time: start.Add(3 * time.Hour), LCA: 300},
	}}
	r, err := Location(LocationInput{Site: "fra1", Energy: hourly(start, 10, 30, 5, 20), Intensity: cs})
	if err != nil {
		t.Fatal(err)
	}
	two, err := Rebucket(r, energy.Bucketing{Step: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if len(two.Series) != 2 {
		t.Fatalf("%d points, want 2", len(two.Series))
	}
	// [00, 02): 40 kWh, 4 + 3 = 7 kg, 175 g/kWh, complete. [02, 04): 25 kWh, 6 kg over the 20 kWh with an intensity, half complete.
	for i, w := range []struct{ kwh, kg, g, c float64 }{{40, 7, 175, 1}, {25, 6, 300, 0.5}} {
		p := two.Series[i]
		if !near(p.Energy.KWh(), w.kwh) || !near(p.Emissions.Kg(), w.kg) || !near(p.Intensity.GramsPerKWh(), w.g) || !near(p.Completeness, w.c) || !p.IntensityKnown {
			t.Errorf("point %d: %+v, want %v kWh %v kg %v g/kWh completeness %v", i, p, w.kwh, w.kg, w.g, w.c)
		}
	}
	if two.Emissions != r.Emissions || two.Energy != r.Energy || len(r.Series) != 4 {
		t.Error("rebucketing changed the totals or the original")
	}
}
