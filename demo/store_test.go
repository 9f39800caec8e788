package demo_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/greenloop/greenloop/accounting/summary"
	"github.com/greenloop/greenloop/demo"
	"github.com/greenloop/greenloop/internal/sample"
)

// TestFleetThroughStoreAndSummary writes demo history into a real TSDB and
// checks the first page's figures against the fleet's own samples.
func TestFleetThroughStoreAndSummary(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()

	midnight := time.Date(2026, 2, 3, 0, 0, 0, 0, time.UTC)
	from, now := midnight.Add(-20*time.Minute), midnight.Add(2*time.Hour+30*time.Minute)
	f := demo.New(1)
	// Keep the facility and IT meters and carbon intensity of every site for the expectations.
	type key struct{ site, what string }
	kept := map[key]map[int64]float64{}
	err = f.Generate(from, now, time.Minute, func(b []sample.Series) error {
		app := db.Appender(context.Background())
		for _, s := range b {
			lb := labels.NewScratchBuilder(len(s.Labels))
			for _, l := range s.Labels {
				lb.Add(l.Name, l.Value)
			}
			lb.Sort()
			ls := lb.Labels()
			for _, p := range s.Points {
				if _, err := app.Append(0, ls, p.T, p.V); err != nil {
					return err
				}
			}
			what := ""
			switch {
			case s.Get("__name__") == demo.MetricEnergy && s.Get("component") == "facility":
				what = "fac"
			case s.Get("__name__") == demo.MetricEnergy && s.Get("component") == "it":
				what = "it"
			case s.Get("__name__") == demo.MetricPower && s.Get("component") == "it":
				what = "itW"
			case s.Get("__name__") == demo.MetricCarbonIntensity:
				what = "ci"
			}
			if what != "" {
				k := key{s.Get("site"), what}
				if kept[k] == nil {
					kept[k] = map[int64]float64{}
				}
				for _, p := range s.Points {
					kept[k][p.T] = p.V
				}
			}
		}
		return app.Commit()
	})
	if err != nil {
		t.Fatal(err)
	}

	eng := promql.NewEngine(promql.EngineOpts{MaxSamples: 50_000_000, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	sums, err := summary.Compute(context.Background(), db, eng, f.Sites(), now)
	if err != nil {
		t.Fatal(err)
	}
	ms := func(t time.Time) int64 { return t.UnixMilli() }
	for _, s := range sums {
		fac, it, ci := kept[key{s.ID, "fac"}], kept[key{s.ID, "it"}], kept[key{s.ID, "ci"}]
		if s.ITPowerW == nil || *s.ITPowerW != kept[key{s.ID, "itW"}][ms(now)] {
			t.Errorf("%s: IT power %v, want the last gauge %v", s.ID, s.ITPowerW, kept[key{s.ID, "itW"}][ms(now)])
		}
		wantPUE := (fac[ms(now)] - fac[ms(now.Add(-15*time.Minute))]) / (it[ms(now)] - it[ms(now.Add(-15*time.Minute))])
		if s.PUE == nil || math.Abs(*s.PUE-wantPUE) > 0.002*wantPUE || *s.PUE < 1.05 || *s.PUE > 2 {
			t.Errorf("%s: PUE %v, want %.4f", s.ID, s.PUE, wantPUE)
		}
		var kwh, kg float64
		for h := midnight; h.Before(now); h = h.Add(time.Hour) {
			end := h.Add(time.Hour)
			if end.After(now) {
				end = now
			}
			e := (fac[ms(end)] - fac[ms(h)]) / 3.6e6
			kwh += e
			kg += e * ci[ms(h)] / 1000
		}
		if s.EnergyTodayKWh == nil || math.Abs(*s.EnergyTodayKWh-kwh) > 0.005*kwh {
			t.Errorf("%s: energy today %v kWh, want %.1f", s.ID, s.EnergyTodayKWh, kwh)
		}
		if s.CO2eTodayKg == nil || math.Abs(*s.CO2eTodayKg-kg) > 0.005*kg {
			t.Errorf("%s: CO2e today %v kg, want %.1f", s.ID, s.CO2eTodayKg, kg)
		}
		if s.CarbonIntensity == nil || *s.CarbonIntensity != ci[ms(now)] {
			t.Errorf("%s: carbon intensity %v, want %v", s.ID, s.CarbonIntensity, ci[ms(now)])
		}
		if s.InletTempC == nil || *s.InletTempC < 17 || *s.InletTempC > 30 {
			t.Errorf("%s: inlet %v", s.ID, s.InletTempC)
		}
		t.Logf("%s: IT %.0f kW, PUE %.3f, inlet %.1f °C, CI %.0f (%s), today %.0f kWh, %.0f kg",
			s.ID, *s.ITPowerW/1000, *s.PUE, *s.InletTempC, *s.CarbonIntensity, s.CarbonProvider, *s.EnergyTodayKWh, *s.CO2eTodayKg)
	}
}
