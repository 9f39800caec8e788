package accountingapi

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/service/servicetest"
	"github.com/greenloop/greenloop/internal/sample"
)

const pvSelector = `greenloop_energy_joules_total{site="fra1",component="pv"}`

// pvKW is the on-site PV power of the fixture's hours: hour 2 generates
// 1 MW while the site draws 500 kW (a 500 kWh surplus).
var pvKW = map[int]float64{1: 100, 2: 1000}

// pvCounter is the PV energy counter, sampled every minute like
// servicetest.Counter (the hours' power outside [From, To) as its first
// and last hour).
func pvCounter() sample.Series {
	s := sample.Series{Labels: []sample.Label{{Name: "__name__", Value: "greenloop_energy_joules_total"},
		{Name: "site", Value: "fra1"}, {Name: "component", Value: "pv"}}}
	j := 0.0
	for t := servicetest.From.Add(-10 * time.Minute); !t.After(servicetest.To.Add(10 * time.Minute)); t = t.Add(time.Minute) {
		s.Points = append(s.Points, sample.Point{T: t.UnixMilli(), V: j})
		h := min(max(int(t.Sub(servicetest.From)/time.Hour), 0), 5)
		j += pvKW[h] * 1000 * 60
	}
	return s
}

// A site with a PV meter: /api/v1/emissions prices the hourly grid import
// (facility − PV, at least 0), says so, reports the hour-2 surplus and never
// a negative hour; /api/v1/kpis' CUE uses the same Scope 2.
func TestEmissionsGridImport(t *testing.T) {
	e := newEnv(t)
	e.store.Write(t, "acme", pvCounter())
	var kg, grid, fac float64
	for h := range 6 {
		imp := max(0, servicetest.HourPowerKW(h)-pvKW[h])
		grid, fac = grid+imp, fac+servicetest.HourPowerKW(h)
		if h != servicetest.MissingHour {
			kg += imp * servicetest.HourIntensity(h) / 1000
		}
	}
	var got struct {
		emissionsJSON
		Source     string   `json:"energy_source"`
		GridKWh    float64  `json:"grid_import_kwh"`
		FacKWh     float64  `json:"facility_energy_kwh"`
		OnsiteKWh  float64  `json:"onsite_generation_kwh"`
		PVKWh      float64  `json:"onsite_renewable_kwh"`
		SurplusKWh float64  `json:"onsite_surplus_kwh"`
		Warnings   []string `json:"warnings"`
	}
	e.getJSON("/api/v1/emissions?"+q("site", "fra1", "from", from, "to", to, "method", "location", "step", "1h"), tokScheduler, 200, &got)
	if got.Source != "grid_import" || !near(got.EnergyKWh, grid) || !near(got.GridKWh, grid) || !near(got.EmissionsKg, kg) ||
		!near(got.FacKWh, fac) || !near(got.PVKWh, 1100) || !near(got.OnsiteKWh, 600) || !near(got.SurplusKWh, 500) {
		t.Errorf("got %+v, want grid %v kWh, %v kg", got, grid, kg)
	}
	if len(got.Series) != 6 {
		t.Fatalf("series %+v", got.Series)
	}
	for h, p := range got.Series {
		want := max(0, servicetest.HourPowerKW(h)-pvKW[h])
		if !near(p.EnergyKWh, want) || p.EmissionsKg < 0 || (p.Intensity != nil && !near(p.EmissionsKg, want**p.Intensity/1000)) {
			t.Errorf("hour %d: %+v, want %v kWh", h, p, want)
		}
	}
	if len(got.Warnings) == 0 || !strings.Contains(strings.Join(got.Warnings, "\n"), "exceeded the facility energy in 1 hour(s), first "+servicetest.From.Add(2*time.Hour).Format(time.RFC3339)) {
		t.Errorf("warnings %q", got.Warnings)
	}

	var k map[string]any
	e.getJSON("/api/v1/kpis?"+q("site", "fra1", "from", from, "to", to), tokScheduler, 200, &k)
	if cue, ok := k["cue_location"].(float64); !ok || !near(cue, kg/(fac*0.8)) || !near(k["grid_import_kwh"].(float64), grid) ||
		!near(k["onsite_surplus_kwh"].(float64), 500) || math.IsNaN(cue) {
		t.Errorf("kpis %v, want cue %v", k, kg/(fac*0.8))
	}
}
