package kpi

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/internal/config"
)

func TestMeasure(t *testing.T) {
	day := time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)
	mk := func(name string, f func(sec float64) float64) energy.StaticSeries {
		s := energy.StaticSeries{Labels: map[string]string{"__name__": name, "site": "fra1"}}
		for d := -time.Minute; d <= 24*time.Hour+time.Minute; d += time.Minute {
			s.T = append(s.T, day.Add(d).UnixMilli())
			s.V = append(s.V, f(d.Seconds()))
		}
		return s
	}
	site := config.Site{ID: "fra1", Zone: "DE", Meters: map[string]string{
		MeterFacilityPower: `greenloop_power_watts{site="fra1",component="facility",source="snmp"}`,
	}}
	src := energy.StaticSource{
		// IT: 100 kW as a counter; facility: 130 kW as power only (its energy key matches nothing).
		DefaultSelector("fra1", MeterITEnergy):   {mk("greenloop_energy_joules_total", func(s float64) float64 { return 1e5 * s })},
		site.Meters[MeterFacilityPower]:          {mk("greenloop_power_watts", func(float64) float64 { return 1.3e5 })},
		DefaultSelector("fra1", MeterWater):      {mk("greenloop_water_cubic_meters_total", func(s float64) float64 { return 50 + s/3600 })},
		DefaultSelector("fra1", MeterHeatReused): {mk("greenloop_heat_reused_joules_total", func(s float64) float64 { return 1.3e4 * s })},
	}
	in, err := Measure(context.Background(), src, site, day, day.Add(24*time.Hour), MeasureOptions{ITMeterPoint: UPSOutput, WUECategory: 2})
	if err != nil {
		t.Fatal(err)
	}
	r := Compute(in)
	for id, want := range map[string]float64{
		"pue": 1.3,
		"wue": 24000.0 / 2400, // 24 m³ = 24 000 L over 2 400 kWh
		"erf": 0.1,
	} {
		k, ok := r.Get(id)
		if !ok || math.Abs(k.Value-want) > 1e-9 || k.CompletenessPct != 100 {
			t.Errorf("%s = %+v, want %v at 100 %%", id, k, want)
		}
	}
	if pue, _ := r.Get("pue"); len(pue.Meters) != 2 || pue.Meters[0] != site.Meters[MeterFacilityPower] {
		t.Errorf("PUE meters %v, want the facility power selector first", pue.Meters)
	}
	if in.Cooling != nil || in.PotableWater != nil {
		t.Errorf("unconfigured meters read: %+v %+v", in.Cooling, in.PotableWater)
	}
	if _, err := Measure(context.Background(), energy.StaticSource{}, site, day, day.Add(time.Hour), MeasureOptions{}); !errors.Is(err, energy.ErrNoSeries) {
		t.Errorf("no facility meter: err %v, want ErrNoSeries", err)
	}
}
