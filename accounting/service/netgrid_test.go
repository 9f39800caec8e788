package service

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/accounting/emissions"
	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
)

// The year fixture: 2022 with the real hourly grid intensity of Germany
// (testdata/DE_2022_hourly_lca.csv, © Electricity Maps, ODbL) and a site's
// facility, IT, PV and back-up generator counters, sampled every 15 minutes
// at a constant power within each hour, so hour k's energy is exactly the
// profile's kW.
var yearFrom, yearTo = time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2023, 1, 1, 0, 0, 0, 0, time.UTC)

// yearProfiles are the hourly powers (kW) of a site's meters in 2022.
type yearProfiles struct {
	fac, it, pv, gen func(k int) float64
}

func baseProfiles() yearProfiles {
	fac := func(k int) float64 {
		hod, doy := float64(k%24), float64(k/24)
		return 1200 + 150*math.Sin(2*math.Pi*hod/24) + 80*math.Sin(2*math.Pi*doy/365) + float64((k*37)%50)
	}
	return yearProfiles{
		fac: fac,
		it:  func(k int) float64 { return fac(k)/1.32 - 20 },
		// PV: daylight half-sine, stronger in summer, at most 450 kW.
		pv: func(k int) float64 {
			hod, doy := float64(k%24), float64(k/24)
			return 450 * max(0, math.Sin(math.Pi*(hod-6)/12)) * (0.55 + 0.45*math.Sin(math.Pi*doy/365))
		},
		// Generator: a one-hour test run at 350 kW on the first day of each month at 10:00.
		gen: func(k int) float64 {
			t := yearFrom.Add(time.Duration(k) * time.Hour)
			if t.Day() == 1 && t.Hour() == 10 {
				return 350
			}
			return 0
		},
	}
}

// surplusHour is the hour (2022-06-15 12:00 UTC) where the bad-input case's
// generator meter reads 5 MW, far above the facility's draw.
var surplusHour = int(time.Date(2022, 6, 15, 12, 0, 0, 0, time.UTC).Sub(yearFrom) / time.Hour)

func yearHours() int { return int(yearTo.Sub(yearFrom) / time.Hour) }

// yearCounter is an energy counter (J) every 15 minutes from yearFrom-15m
// to yearTo+15m, at kw(k) in hour k (the first and last hour's power outside).
func yearCounter(component string, kw func(int) float64) sample.Series {
	s := sample.Series{Labels: []sample.Label{{Name: "__name__", Value: "greenloop_energy_joules_total"},
		{Name: "site", Value: "fra1"}, {Name: "component", Value: component}}}
	j, n := 1e9, yearHours()
	for t := yearFrom.Add(-15 * time.Minute); !t.After(yearTo.Add(15 * time.Minute)); t = t.Add(15 * time.Minute) {
		s.Points = append(s.Points, sample.Point{T: t.UnixMilli(), V: j})
		k := min(max(int(t.Sub(yearFrom)/time.Hour), 0), n-1)
		j += kw(k) * 1000 * 900
	}
	return s
}

// de2022 reads the testdata intensity, one value per hour of 2022.
func de2022(t testing.TB) []float64 {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", "DE_2022_hourly_lca.csv"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float64, yearHours())
	for i, r := range rows[1:] {
		ts, err := time.Parse(time.DateTime, r[0])
		if err != nil {
			t.Fatal(err)
		}
		v, err := strconv.ParseFloat(r[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		if k := int(ts.Sub(yearFrom) / time.Hour); k != i {
			t.Fatalf("row %d is hour %d", i, k)
		}
		out[i] = v
	}
	if len(rows)-1 != len(out) {
		t.Fatalf("%d rows, want %d", len(rows)-1, len(out))
	}
	return out
}

type yearEnv struct {
	acct *Accountant
	svc  *report.Service
}

func newYearEnv(t *testing.T, p yearProfiles, intensity []float64) *yearEnv {
	t.Helper()
	db, err := tsdb.Open(filepath.Join(t.TempDir(), "data"), tsdb.Options{Retention: 10 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	now := time.Date(2023, 3, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	w, err := ingest.NewWriter(db.Backfill(), ingest.WriterOptions{Clock: clock, MaxAge: 3 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	pts := make([]providers.Point, len(intensity))
	for k, v := range intensity {
		pts[k] = providers.Point{Zone: "DE", Time: yearFrom.Add(time.Duration(k) * time.Hour), Duration: time.Hour,
			Intensity: carbon.Intensity(v), Kind: providers.Actual, Signal: providers.Average}
	}
	series := append([]sample.Series{yearCounter("facility", p.fac), yearCounter("it", p.it), yearCounter("pv", p.pv),
		yearCounter("generator", p.gen)}, providers.Series("electricitymaps", pts)...)
	res, err := w.WriteSeries(context.Background(), ingest.WriteOptions{}, series)
	if err != nil {
		t.Fatal(err)
	}
	if res.RejectedCount > 0 {
		t.Fatalf("%d samples refused, first %+v", res.RejectedCount, res.Rejected[0])
	}
	site := config.Site{ID: "fra1", Name: "Frankfurt 1", Zone: "DE", ITCapacityKW: 1500,
		Meters:      map[string]string{"renewable_onsite": pvSel, "backup_generator_energy": genSel},
		ResidualMix: []config.EmissionFactor{{GPerKWh: 650, Source: "AIB 2022", Year: 2022}}}
	dir := t.TempDir()
	inputs, err := report.NewFileInputStore(filepath.Join(dir, "inputs"), nil, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := report.NewFileSnapshotStore(filepath.Join(dir, "snapshots"), nil)
	if err != nil {
		t.Fatal(err)
	}
	return &yearEnv{acct: New(Options{Store: db, Sites: []config.Site{site}, Providers: []string{"electricitymaps"}}),
		svc: &report.Service{Inputs: inputs, Snapshots: snaps, Now: clock}}
}

// A year of a site with facility, IT, PV and generator meters on the real
// 2022 intensity of Germany: /api/v1/emissions prices the hourly grid import
// (facility − generator − PV, clamped at 0 per hour), its figures agree with
// the EU report's Scope 2 (location and market) and the report raises no
// kpi_mismatch. In the bad-input case the generator meter reads 5 MW in one
// hour: that hour's import is 0 (never negative emissions), the surplus is
// reported, and report and API still agree, as EDC-BG and ERES-OS count only
// the generation consumed on site.
func TestGridImportYearReportAgreesWithEmissions(t *testing.T) {
	intensity := de2022(t)
	bad := baseProfiles()
	gen := bad.gen
	bad.gen = func(k int) float64 {
		if k == surplusHour {
			return 5000
		}
		return gen(k)
	}
	for _, c := range []struct {
		name    string
		p       yearProfiles
		surplus bool
	}{{"PV and generator test runs", baseProfiles(), false}, {"generator meter above the facility in one hour", bad, true}} {
		t.Run(c.name, func(t *testing.T) {
			// By hand, from the profiles.
			var facKWh, gridKWh, surplusKWh, pvKWh, genKWh, lbKg, facLBKg float64
			for k := range yearHours() {
				f, pv, g := c.p.fac(k), c.p.pv(k), c.p.gen(k)
				facKWh, pvKWh, genKWh = facKWh+f, pvKWh+pv, genKWh+g
				imp := max(0, f-pv-g)
				surplusKWh += max(0, pv+g-f)
				gridKWh += imp
				lbKg += imp * intensity[k] / 1000
				facLBKg += f * intensity[k] / 1000
			}
			mbKg := gridKWh * 0.650
			if c.surplus != (surplusKWh > 0) {
				t.Fatalf("fixture: surplus %v kWh", surplusKWh)
			}
			if math.Abs(facLBKg-lbKg) < 0.05*lbKg {
				t.Fatalf("fixture: facility pricing %v kg too close to grid-import pricing %v kg to tell them apart", facLBKg, lbKg)
			}

			e := newYearEnv(t, c.p, intensity)
			ctx := context.Background()
			loc, err := e.acct.Emissions(ctx, "", Request{Site: "fra1", From: yearFrom, To: yearTo, Method: emissions.LocationBased, Step: 24 * time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			mkt, err := e.acct.Emissions(ctx, "", Request{Site: "fra1", From: yearFrom, To: yearTo, Method: emissions.MarketBased})
			if err != nil {
				t.Fatal(err)
			}
			for _, ck := range []struct {
				name      string
				got, want float64
			}{
				{"location emissions_kg", loc.Emissions.Kg(), lbKg}, {"location energy_kwh", loc.Energy.KWh(), gridKWh},
				{"market emissions_kg", mkt.Emissions.Kg(), mbKg}, {"market energy_kwh", mkt.Energy.KWh(), gridKWh},
				{"facility", loc.Grid.Facility.KWh(), facKWh}, {"PV metered", loc.Grid.Renewable.KWh(), pvKWh},
				{"generator metered", loc.Grid.Generator.KWh(), genKWh}, {"surplus", loc.Grid.Surplus.KWh(), surplusKWh},
				{"generation used", loc.Grid.OnsiteUsed().KWh(), pvKWh + genKWh - surplusKWh},
			} {
				if !relNear(ck.got, ck.want, 1e-9) {
					t.Errorf("%s = %v, want %v", ck.name, ck.got, ck.want)
				}
			}
			if loc.Source != SourceGridImport || loc.Completeness < 0.9999 {
				t.Errorf("source %q, completeness %v", loc.Source, loc.Completeness)
			}
			// The API shape: required keys, grid fields, series consistent.
			var doc struct {
				EnergyKWh    *float64 `json:"energy_kwh"`
				EmissionsKg  *float64 `json:"emissions_kg"`
				Completeness *float64 `json:"completeness"`
				Site, Method string
				From, To     *time.Time
				Source       string   `json:"energy_source"`
				GridKWh      float64  `json:"grid_import_kwh"`
				FacilityKWh  float64  `json:"facility_energy_kwh"`
				OnsiteKWh    float64  `json:"onsite_generation_kwh"`
				SurplusKWh   *float64 `json:"onsite_surplus_kwh"`
				Warnings     []string `json:"warnings"`
				Series       []struct {
					T         time.Time `json:"t"`
					EnergyKWh float64   `json:"energy_kwh"`
					Intensity *float64  `json:"intensity_g_per_kwh"`
					Emissions float64   `json:"emissions_kg"`
				} `json:"series"`
			}
			b, err := json.Marshal(loc)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatal(err)
			}
			if doc.EnergyKWh == nil || doc.EmissionsKg == nil || doc.Completeness == nil || doc.Site != "fra1" || doc.Method != "location" ||
				doc.From == nil || doc.To == nil || doc.Source != SourceGridImport || len(doc.Series) != 365 {
				t.Fatalf("response shape: %.400s", b)
			}
			if !relNear(doc.GridKWh, *doc.EnergyKWh, 1e-12) || !relNear(doc.FacilityKWh, facKWh, 1e-9) ||
				!relNear(doc.OnsiteKWh, pvKWh+genKWh-surplusKWh, 1e-9) || doc.SurplusKWh == nil || !relNear(*doc.SurplusKWh, surplusKWh, 1e-9) {
				t.Errorf("grid fields: %+v", doc)
			}
			var sumKg, sumKWh float64
			for _, p := range doc.Series {
				if p.EnergyKWh < 0 || p.Emissions < 0 || p.Intensity == nil {
					t.Fatalf("series point %+v", p)
				}
				if !relNear(p.Emissions, p.EnergyKWh**p.Intensity/1000, 1e-9) {
					t.Errorf("series %s: %v kg ≠ %v kWh × %v g/kWh", p.T, p.Emissions, p.EnergyKWh, *p.Intensity)
				}
				sumKg, sumKWh = sumKg+p.Emissions, sumKWh+p.EnergyKWh
			}
			if !relNear(sumKg, *doc.EmissionsKg, 1e-9) || !relNear(sumKWh, *doc.EnergyKWh, 1e-9) {
				t.Errorf("series sum %v kg %v kWh, totals %v kg %v kWh", sumKg, sumKWh, *doc.EmissionsKg, *doc.EnergyKWh)
			}
			if warned := hasString(doc.Warnings, "exceeded the facility energy in 1 hour(s), first 2022-06-15T12:00:00Z"); warned != c.surplus {
				t.Errorf("surplus warning %v, want %v: %q", warned, c.surplus, doc.Warnings)
			}

			t.Logf("grid %.0f kWh of facility %.0f kWh, surplus %.0f kWh; location %.0f kg (facility-priced %.0f kg), market %.0f kg", gridKWh, facKWh, surplusKWh, lbKg, facLBKg, mbKg)

			// The report agrees within 0.1 % (in fact to rounding).
			var buf bytes.Buffer
			r, err := e.acct.EUReport(ctx, e.svc, "", "fra1", 2022, report.FormatJSON, &buf)
			if err != nil {
				t.Fatal(err)
			}
			em := r.Emissions
			if em.Scope2LBT == nil || math.Abs(*em.Scope2LBT*1000-loc.Emissions.Kg()) > 0.001*loc.Emissions.Kg() {
				t.Errorf("report Scope 2 location %v t, /emissions %v kg", deref(em.Scope2LBT), loc.Emissions.Kg())
			}
			if em.Scope2MBT == nil || math.Abs(*em.Scope2MBT*1000-mkt.Emissions.Kg()) > 0.001*mkt.Emissions.Kg() {
				t.Errorf("report Scope 2 market %v t, /emissions %v kg", deref(em.Scope2MBT), mkt.Emissions.Kg())
			}
			if got := fieldNum(t, r, report.FGridImport); !relNear(got, gridKWh, 1e-9) {
				t.Errorf("grid_import_kwh %v, want %v", got, gridKWh)
			}
			if hasIssue(r.Validation.Warnings, "kpi_mismatch") || hasIssue(r.Validation.Errors, "grid_import_negative") {
				t.Errorf("issues: %+v %+v", r.Validation.Warnings, r.Validation.Errors)
			}
			k, err := e.acct.KPIs(ctx, "", "fra1", yearFrom, yearTo)
			if err != nil {
				t.Fatal(err)
			}
			cue, ok := k.Result.Get("cue_location")
			if !ok || !relNear(cue.Value, lbKg/fieldNum(t, r, report.FEIT), 1e-9) {
				t.Errorf("cue_location %+v, want %v", cue, lbKg/fieldNum(t, r, report.FEIT))
			}
			if c.surplus != hasString(k.Notes, "onsite_surplus_kwh") {
				t.Errorf("KPI notes %q", k.Notes)
			}
		})
	}
}

func hasString(ss []string, part string) bool {
	for _, s := range ss {
		if bytes.Contains([]byte(s), []byte(part)) {
			return true
		}
	}
	return false
}
