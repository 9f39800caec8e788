package service

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/accounting/emissions"
	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/accounting/service/servicetest"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
)

// The EU report fixture: the servicetest facility (400 … 650 kW in the six
// hours, and 10 minutes at 400 kW before and at 650 kW after them), an IT
// meter at 0.8 of it, and, where a case asks, a PV plant and a back-up
// generator with their own hourly profiles. Hour index -1 is the hour before
// servicetest.From, 6 the hour after servicetest.To.
var (
	pvKW  = map[int]float64{1: 120, 2: 300, 3: 80} // on-site renewable, consumed on site
	genKW = map[int]float64{4: 60}                 // back-up generator test run
)

// hourIntensity is the grid intensity of every hour the meters touch (-1 … 6).
func hourIntensity(h int) float64 { return 250 + 37*float64(h+1) + 11*float64((h+1)%3) }

// facKWh is the facility energy of hour h (-1 … 6).
func facKWh(h int) float64 {
	switch h {
	case -1:
		return servicetest.HourPowerKW(0) / 6
	case 6:
		return servicetest.HourPowerKW(5) / 6
	}
	return servicetest.HourPowerKW(h)
}

// profileKWh is a profile's energy in hour h (-1 … 6): the first and last
// hour's power for the 10 minutes outside the six hours, like the counter.
func profileKWh(p map[int]float64, h int) float64 {
	switch h {
	case -1:
		return p[0] / 6
	case 6:
		return p[5] / 6
	}
	return p[h]
}

// profileCounter is an energy counter (J) sampled every minute from From-10m
// to To+10m whose power in hour h is p[h] kW (hours outside as profileKWh).
func profileCounter(site, component string, p map[int]float64) sample.Series {
	s := sample.Series{Labels: []sample.Label{{Name: "__name__", Value: "greenloop_energy_joules_total"},
		{Name: "site", Value: site}, {Name: "component", Value: component}}}
	j := 5e8
	for t := servicetest.From.Add(-10 * time.Minute); !t.After(servicetest.To.Add(10 * time.Minute)); t = t.Add(time.Minute) {
		s.Points = append(s.Points, sample.Point{T: t.UnixMilli(), V: j})
		h := min(max(int(t.Sub(servicetest.From)/time.Hour), 0), 5)
		j += p[h] * 1000 * 60
	}
	return s
}

func allHoursIntensity(zone string) []providers.Point {
	var pts []providers.Point
	for h := -1; h <= 6; h++ {
		pts = append(pts, providers.Point{Zone: zone, Time: servicetest.From.Add(time.Duration(h) * time.Hour), Duration: time.Hour,
			Intensity: carbon.Intensity(hourIntensity(h)), Kind: providers.Actual, Signal: providers.Average})
	}
	return pts
}

const (
	pvSel  = `greenloop_energy_joules_total{site="fra1",component="pv"}`
	genSel = `greenloop_energy_joules_total{site="fra1",component="generator"}`
)

type euEnv struct {
	acct *Accountant
	svc  *report.Service
	site config.Site
}

func newEUEnv(t *testing.T, site config.Site, others ...config.Site) *euEnv {
	t.Helper()
	st := servicetest.New(t)
	st.Write(t, "", servicetest.Counter("fra1", "facility", 1), servicetest.Counter("fra1", "it", 0.8),
		profileCounter("fra1", "pv", pvKW), profileCounter("fra1", "generator", genKW))
	st.WriteIntensity(t, "", "electricitymaps", allHoursIntensity("DE"))
	dir := t.TempDir()
	clock := func() time.Time { return servicetest.Now }
	inputs, err := report.NewFileInputStore(filepath.Join(dir, "inputs"), nil, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := report.NewFileSnapshotStore(filepath.Join(dir, "snapshots"), nil)
	if err != nil {
		t.Fatal(err)
	}
	acct := New(Options{Store: st.DB, Sites: append([]config.Site{site}, others...), Providers: []string{"electricitymaps"}})
	return &euEnv{acct: acct, svc: &report.Service{Inputs: inputs, Snapshots: snaps, Now: clock}, site: site}
}

func (e *euEnv) put(t *testing.T, site string, year int, fields string) {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(fields), &m); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Inputs.Put(context.Background(), "default", site, year, m, "alice"); err != nil {
		t.Fatal(err)
	}
}

func (e *euEnv) report(t *testing.T) *report.Report {
	t.Helper()
	var buf bytes.Buffer
	r, err := e.acct.EUReport(context.Background(), e.svc, "", "fra1", 2025, report.FormatJSON, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(buf.Bytes()) {
		t.Fatalf("export is not JSON: %.200s", buf.String())
	}
	return r
}

// deref prints a nil figure as <nil>.
func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func relNear(a, b, tol float64) bool { return math.Abs(a-b) <= tol*math.Max(1, math.Abs(b)) }

func fieldNum(t *testing.T, r *report.Report, id string) float64 {
	t.Helper()
	fv := r.Fields[id]
	x, ok := fv.Number()
	if !ok {
		t.Fatalf("%s has no number: %+v", id, fv)
	}
	return x
}

func hasIssue(is []report.Issue, rule string, parts ...string) bool {
	for _, i := range is {
		if i.Rule != rule {
			continue
		}
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(i.Message, p)
		}
		if ok {
			return true
		}
	}
	return false
}

var ppaFrom, ppaTo = time.Date(2025, 7, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)

func euSite(meters bool, instruments ...config.Instrument) config.Site {
	s := config.Site{ID: "fra1", Name: "Frankfurt 1", Zone: "DE", ITCapacityKW: 800,
		ResidualMix: []config.EmissionFactor{{GPerKWh: 700, Source: "AIB 2025", Year: 2025}}, Instruments: instruments}
	if meters {
		s.Meters = map[string]string{"renewable_onsite": pvSel, "backup_generator_energy": genSel}
	}
	return s
}

var (
	go1  = config.Instrument{ID: "go1", Type: "GO", Registry: "UBA HKNR", CertIDs: []string{"GO-1"}, From: servicetest.From, To: servicetest.To, EnergyMWh: 1}
	ppa1 = config.Instrument{ID: "ppa1", Type: "PPA_physical", CertIDs: []string{"PPA-GO-7"}, From: ppaFrom, To: ppaTo, EnergyMWh: 2}
)

// A site with configured instruments and metered PV and generator: the
// report takes the instruments pro rata for the year, derives ERES and REF
// from them, prices the grid import hour by hour (location-based) and with
// the instruments and the residual mix (market-based).
func TestEUReportConfiguredInstrumentsAndGridImport(t *testing.T) {
	// By hand: the hours' energy, the PPA's share of 2025 (184 of 365 days).
	var edc, pv, gen, lbKg float64
	for h := -1; h <= 6; h++ {
		f, p, g := facKWh(h), profileKWh(pvKW, h), profileKWh(genKW, h)
		edc, pv, gen = edc+f, pv+p, gen+g
		lbKg += (f - p - g) * hourIntensity(h) / 1000
	}
	grid := edc - pv - gen
	goKWh, ppaKWh := 1000.0, 2000.0*184/365
	mbT := (grid - goKWh - ppaKWh) * 0.700 / 1000

	cases := []struct {
		name        string
		instruments []config.Instrument
		wantGOO     float64
		wantPPA     float64
		wantMBT     float64
		wantN       int
		ppaSource   string
	}{
		{"GO and pro-rata PPA", []config.Instrument{go1, ppa1}, goKWh, ppaKWh, mbT, 2, "derived: sum of 1 PPA"},
		// Without a configured PPA, ERES-PPA is 0 from the configuration (so ERES-TOT and REF exist).
		{"GO only", []config.Instrument{go1}, goKWh, 0, (grid - goKWh) * 0.700 / 1000, 1, "configuration: none of sites[fra1].instruments[go1] is a PPA"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEUEnv(t, euSite(true, c.instruments...))
			r := e.report(t)
			ins := r.Fields[report.FInstruments]
			list, _ := ins.Value.([]report.Instrument)
			if len(list) != c.wantN || ins.Quality != report.QualityEntered || !strings.HasPrefix(ins.Source, "configuration: sites[fra1].instruments[go1]") {
				t.Fatalf("contractual_instruments %+v", ins)
			}
			if list[0].Type != "GO" || list[0].CertIDs[0] != "GO-1" || list[0].BeneficiaryDCID != "fra1" || list[0].Vintage != "2025-06" || list[0].Country != "DE" ||
				!relNear(float64(list[0].KWh), goKWh, 1e-12) {
				t.Errorf("GO instrument %+v", list[0])
			}
			if c.wantN == 2 && (!relNear(float64(list[1].KWh), ppaKWh, 1e-12) || list[1].Vintage != "2025" ||
				!strings.Contains(ins.Source, "pro rata")) {
				t.Errorf("PPA instrument %+v, source %q", list[1], ins.Source)
			}
			checks := []struct {
				id   string
				want float64
				tol  float64
			}{
				{report.FEDC, edc, 1e-9}, {report.FERESOS, pv, 1e-9}, {report.FEDCBG, gen, 1e-9},
				{report.FERESGOO, c.wantGOO, 1e-9}, {report.FERESPPA, c.wantPPA, 1e-9},
				{report.FERESTot, c.wantGOO + c.wantPPA + pv, 1e-9}, {report.FGridImport, grid, 1e-9},
				{report.FREF, (c.wantGOO + c.wantPPA + pv) / edc, 1e-9},
			}
			for _, ck := range checks {
				if got := fieldNum(t, r, ck.id); !relNear(got, ck.want, ck.tol) {
					t.Errorf("%s = %v, want %v", ck.id, got, ck.want)
				}
			}
			if src := r.Fields[report.FERESPPA].Source; !strings.HasPrefix(src, c.ppaSource) {
				t.Errorf("ERES-PPA source %q, want prefix %q", src, c.ppaSource)
			}
			g := r.Fields[report.FGridImport]
			if g.Quality != report.QualityMeasured || !strings.Contains(g.Source, "meter "+pvSel) || !strings.Contains(g.Source, "meter "+genSel) {
				t.Errorf("grid import %+v", g)
			}
			em := r.Emissions
			if em.Scope2LBT == nil || !relNear(*em.Scope2LBT, lbKg/1000, 1e-9) {
				t.Errorf("Scope 2 location-based %v t, want %v t (hourly grid import × intensity)", deref(em.Scope2LBT), lbKg/1000)
			}
			if em.Scope2MBT == nil || !relNear(*em.Scope2MBT, c.wantMBT, 1e-9) {
				t.Errorf("Scope 2 market-based %v t, want %v t", deref(em.Scope2MBT), c.wantMBT)
			}
			if em.InstrumentsSharePct == nil || !relNear(*em.InstrumentsSharePct, 100*(c.wantGOO+c.wantPPA)/grid, 1e-9) {
				t.Errorf("instrument share %v", deref(em.InstrumentsSharePct))
			}
			if hasIssue(r.Validation.Errors, "certificate_unique") || hasIssue(r.Validation.Errors, "eres_sum") || hasIssue(r.Validation.Errors, "instruments_exceed_consumption") {
				t.Errorf("unexpected errors %+v", r.Validation.Errors)
			}
		})
	}
}

// Double claims across the two sources of instruments: the report's entries
// and the configuration (this site's, another site's, another year's).
func TestEUReportDoubleClaims(t *testing.T) {
	entered := func(cert string) string {
		return `{"contractual_instruments": [{"instrument_type": "GO", "cert_ids": ["` + cert + `"], "beneficiary_dc_id": "fra1", "kwh": 500}]}`
	}
	go9 := config.Instrument{ID: "go9", Type: "GO", CertIDs: []string{"GO-9"}, From: servicetest.From, To: servicetest.To, EnergyMWh: 1}
	go8 := config.Instrument{ID: "go8", Type: "GO", CertIDs: []string{"GO-8"}, From: time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC),
		To: time.Date(2024, 4, 1, 0, 0, 0, 0, time.UTC), EnergyMWh: 1}
	cases := []struct {
		name      string
		site      config.Site
		others    []config.Site
		entry     string
		wantRule  string
		wantParts []string
		wantWarn  bool // configured_instruments_ignored
	}{
		{"entered and configured for this site", euSite(false, go1), nil, entered("GO-1"), "certificate_unique",
			[]string{"GO-1", "claimed twice", "sites[fra1].instruments[go1]", "contractual_instruments"}, true},
		{"entered here, configured at another site", euSite(false), []config.Site{{ID: "ham1", Zone: "DE", Instruments: []config.Instrument{go9}}},
			entered("GO-9"), "certificate_unique", []string{"GO-9", `"ham1"`, "2025"}, false},
		{"entered here, configured for this site in 2024", euSite(false, go8), nil, entered("GO-8"), "certificate_unique",
			[]string{"GO-8", `"fra1"`, "2024"}, false},
		{"configured here, entered at another site", euSite(false, go1), []config.Site{{ID: "ham1", Zone: "DE"}}, "", "certificate_unique",
			[]string{"GO-1", `"ham1"`}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEUEnv(t, c.site, c.others...)
			if c.entry != "" {
				e.put(t, "fra1", 2025, c.entry)
			} else {
				e.put(t, "ham1", 2025, `{"contractual_instruments": [{"instrument_type": "GO", "cert_ids": ["GO-1"], "beneficiary_dc_id": "ham1", "kwh": 10}]}`)
			}
			r := e.report(t)
			if !hasIssue(r.Validation.Errors, c.wantRule, c.wantParts...) {
				t.Errorf("want a %s error naming %q, got %+v", c.wantRule, c.wantParts, r.Validation.Errors)
			}
			if got := hasIssue(r.Validation.Warnings, "configured_instruments_ignored"); got != c.wantWarn {
				t.Errorf("configured_instruments_ignored warning %v, want %v: %+v", got, c.wantWarn, r.Validation.Warnings)
			}
			// Entries win: the report's instruments are the entered ones.
			if c.entry != "" {
				list, _ := r.Fields[report.FInstruments].Value.([]report.Instrument)
				if len(list) != 1 || list[0].KWh != 500 || !strings.HasPrefix(r.Fields[report.FInstruments].Source, "entered by alice") {
					t.Errorf("instruments %+v", r.Fields[report.FInstruments])
				}
			}
			// A final snapshot is refused, naming the certificate; nothing is stored.
			_, _, err := e.acct.FreezeEUReport(context.Background(), e.svc, "", "fra1", 2025, false, "alice")
			if !errors.Is(err, report.ErrBlocking) || !strings.Contains(err.Error(), c.wantParts[0]) {
				t.Errorf("final freeze: %v", err)
			}
			snaps, err := e.svc.Snapshots.List(context.Background(), "default", "fra1", 0)
			if err != nil || len(snaps) != 0 {
				t.Errorf("snapshots %v %v", snaps, err)
			}
		})
	}
}

// Grid import without metered generator or PV: estimated, from the entries
// where the officer gave them; the location-based Scope 2 equals the hourly
// emissions computation.
func TestEUReportGridImportDerivation(t *testing.T) {
	var edc float64
	for h := -1; h <= 6; h++ {
		edc += facKWh(h)
	}
	cases := []struct {
		name        string
		entries     string
		wantKWh     float64
		wantQuality report.Quality
		wantSource  []string
	}{
		{"nothing metered or entered", "", edc, report.QualityEstimated,
			[]string{"energy_backup_gen_kwh not metered, not entered: taken as 0", "renewable_onsite_kwh not metered, not entered: taken as 0"}},
		{"generator and PV entered", `{"energy_backup_gen_kwh": 30, "renewable_onsite_kwh": {"value": 100, "quality": "estimated"}}`, edc - 130,
			report.QualityEstimated, []string{"energy_backup_gen_kwh entered by alice", "renewable_onsite_kwh estimated by alice"}},
		{"grid import entered from the invoices", `{"grid_import_kwh": 3000}`, 3000, report.QualityEntered, []string{"entered by alice"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEUEnv(t, euSite(false))
			if c.entries != "" {
				e.put(t, "fra1", 2025, c.entries)
			}
			r := e.report(t)
			g := r.Fields[report.FGridImport]
			if got := fieldNum(t, r, report.FGridImport); !relNear(got, c.wantKWh, 1e-9) || g.Quality != c.wantQuality {
				t.Errorf("grid import %v kWh %s, want %v %s", got, g.Quality, c.wantKWh, c.wantQuality)
			}
			for _, p := range c.wantSource {
				if !strings.Contains(g.Source, p) {
					t.Errorf("grid import source %q lacks %q", g.Source, p)
				}
			}
			// Location-based: the grid import at the year's effective factor of
			// the hourly accounting; with every hour priced and grid import =
			// EDC, exactly the hourly result.
			loc, err := e.acct.Emissions(context.Background(), "", Request{Site: "fra1", From: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
				To: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Method: emissions.LocationBased})
			if err != nil {
				t.Fatal(err)
			}
			want := loc.Emissions.Kg() / 1000 * c.wantKWh / loc.Energy.KWh()
			if lb := r.Emissions.Scope2LBT; lb == nil || !relNear(*lb, want, 1e-9) {
				t.Errorf("Scope 2 location-based %v t, want %v t", deref(lb), want)
			}
			if c.name == "nothing metered or entered" && !relNear(want, loc.Emissions.Kg()/1000, 1e-9) {
				t.Errorf("grid import = EDC but Scope 2 LB %v t differs from the hourly result %v t", want, loc.Emissions.Kg()/1000)
			}
		})
	}
}

func TestConfiguredInstruments(t *testing.T) {
	y0, y1 := YearPeriod(2025)
	mix := config.Instrument{ID: "mix", Type: "supplier_mix", From: y0, To: y1, EnergyMWh: 10, FactorGPerKWh: 250, Zone: "FR",
		CancelledAt: time.Date(2026, 2, 3, 10, 0, 0, 0, time.UTC)}
	old := config.Instrument{ID: "old", Type: "GO", CertIDs: []string{"X"}, From: y0.AddDate(-1, 0, 0), To: y0, EnergyMWh: 5}
	cases := []struct {
		name    string
		in      config.Instrument
		want    int
		kwh     float64
		vintage string
		check   func(report.Instrument) bool
	}{
		{"whole year supplier mix", mix, 1, 10000, "2025", func(i report.Instrument) bool {
			return i.EmissionFactor != nil && relNear(float64(*i.EmissionFactor), 0.25, 1e-12) && i.Country == "FR" && i.CancellationDate == "2026-02-03"
		}},
		{"PPA over two years", ppa1, 1, 2000.0 * 184 / 365, "2025", func(i report.Instrument) bool { return i.EmissionFactor == nil && i.Country == "" }},
		{"previous year", old, 0, 0, "", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ConfiguredInstruments(config.Site{ID: "fra1", Zone: "DE-LU", Instruments: []config.Instrument{c.in}}, y0, y1)
			if len(got) != c.want {
				t.Fatalf("%d instruments, want %d", len(got), c.want)
			}
			if c.want == 0 {
				return
			}
			i := got[0].Instrument
			if !relNear(float64(i.KWh), c.kwh, 1e-12) || i.Vintage != c.vintage || i.BeneficiaryDCID != "fra1" || got[0].Path != "sites[fra1].instruments["+c.in.ID+"]" || !c.check(i) {
				t.Errorf("%+v (%s)", i, got[0].Path)
			}
		})
	}
}
