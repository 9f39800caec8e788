package report

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/greenloop/greenloop/internal/config"
)

var (
	testNow   = time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	enteredAt = time.Date(2026, 2, 20, 14, 0, 0, 0, time.UTC)
)

func testSite() config.Site {
	return config.Site{ID: "fra1", Name: "Frankfurt 1", Zone: "DE", ITCapacityKW: 2000}
}

// exampleEntries are the operator entries of the spec's worked example (§5).
func exampleEntries() map[string]any {
	return map[string]any{
		FReportingRoute:      "national:DE",
		FMSEntityRef:         "DE-ENT-0042",
		FMSDCRef:             "DE-DC-0042-01",
		FEvidence:            []string{"GO cancellation statement AIB 2026-01-15", "PPA contract 2024-07"},
		FDCName:              "Frankfurt 1",
		FOwnerName:           "Greenloop Hosting GmbH",
		FOwnerContact:        "dc-owner@example.com",
		FOperatorName:        "Greenloop Operations GmbH",
		FOperatorContact:     "noc@example.com",
		FLocationLAU:         "06412000",
		FDCType:              "colocation",
		FDCStructure:         "structure",
		FDCTypeMixedServices: false,
		FEntryIntoOperation:  "2019-04",
		FRedundancyElecHV:    "2N",
		FRedundancyElecLV:    "N+1",
		FRedundancyElecRack:  "2N",
		FRedundancyCoolRoom:  "N+2",
		FRedundancyCoolRack:  "N",
		FPDIT:                2000,
		FPDITBasis:           "installed",
		FFloorTotal:          12000,
		FFloorCR:             6500,
		FEITBasis:            "ups",
		FGridFunctions:       []string{"peak demand shifting", "firm frequency response"},
		FBatteryToGrid:       500,
		FWUECategory:         "2",
		FTWH:                 32.5,
		FTIN:                 24,
		FRefrigerantTypes:    []string{"R-134a", "R-1234ze(E)"},
		FCoolingDegreeDays:   95.4,
		FICTServers:          1.25e6,
		FServersCoverage:     100,
		FICTStorage:          42.5,
		FStorageCoverage:     92,
		FBandwidthIn:         12.5,
		FBandwidthOut:        12.5,
		FTrafficIn:           0.021,
		FTrafficOut:          0.034,
		FInstruments: []Instrument{
			{Type: InstrumentGO, Registry: "AIB/EECS", CertIDs: []string{"DE-GO-2025-000001", "DE-GO-2025-000002"}, Country: "NO", Technology: "hydro", Vintage: "2025", CancellationDate: "2026-01-15", BeneficiaryDCID: "fra1", KWh: 9_000_000},
			{Type: InstrumentPPAPhysical, Registry: "HKNR", CertIDs: []string{"DE-PPA-2025-77"}, ProductionDevice: "Windpark Nordsee 3", Country: "DE", Technology: "wind", Vintage: "2025", BeneficiaryDCID: "fra1", KWh: 3_000_000},
		},
	}
}

func rawEntries(t testing.TB, m map[string]any) map[string]json.RawMessage {
	t.Helper()
	out := map[string]json.RawMessage{}
	for k, v := range m {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out[k] = b
	}
	return out
}

// inputsOf runs entries through a FileInputStore, as the server would.
func inputsOf(t testing.TB, entries map[string]any) Inputs {
	t.Helper()
	st, err := NewFileInputStore(t.TempDir(), nil, func() time.Time { return enteredAt }, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.Put(ctx, "acme", "fra1", 2025, rawEntries(t, entries), "alice"); err != nil {
		t.Fatal(err)
	}
	in, err := st.Get(ctx, "acme", "fra1", 2025)
	if err != nil {
		t.Fatal(err)
	}
	return in
}

func meter(component string, pct float64) []Meter {
	return []Meter{{Selector: `greenloop_energy_joules_total{site="fra1",component="` + component + `"}`, CompletenessPct: pct}}
}

// exampleMeasured is the measured side of the worked example.
func exampleMeasured() Measured {
	edcMonths := []float64{1.2, 1.2, 1.25, 1.3, 1.35, 1.4, 1.45, 1.45, 1.35, 1.25, 1.2, 1.2}
	var months []Month
	for i, e := range edcMonths {
		months = append(months, Month{Month: time.Date(2025, time.Month(i+1), 1, 0, 0, 0, 0, time.UTC).Format("2006-01"), EDC: KWh(e * 1e6), EIT: 1e6})
	}
	return Measured{
		PeriodStart:     time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC),
		PeriodEnd:       time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
		EDC:             &Reading[KWh]{Value: 15_600_000, Meters: meter("facility", 99.9)},
		EDCBackup:       &Reading[KWh]{Value: 20_000, Meters: meter("generator", 100)},
		EIT:             &Reading[KWh]{Value: 12_000_000, Meters: meter("ups", 99.7)},
		OnsiteRenewable: &Reading[KWh]{Value: 360_000, Meters: meter("pv", 100)},
		HeatReused:      &Reading[KWh]{Value: 1_560_000, Meters: []Meter{{Selector: `greenloop_heat_reused_joules_total{site="fra1"}`, CompletenessPct: 98.5}}},
		Water:           &Reading[CubicMetres]{Value: 9600, Meters: []Meter{{Selector: `greenloop_water_cubic_meters_total{site="fra1",sensor="main"}`, CompletenessPct: 100}}},
		PotableWater:    &Reading[CubicMetres]{Value: 6000, Meters: []Meter{{Selector: `greenloop_water_cubic_meters_total{site="fra1",sensor="potable"}`, CompletenessPct: 100}}},
		Monthly:         months,
		LocationFactor:  &EmissionFactor{Source: "EEA", DatasetVersion: "2026-04", Year: 2025, Value: 0.350, Gases: "CO2e", LCAScope: "direct", Zone: "DE"},
		ResidualFactor:  &EmissionFactor{Source: "AIB", DatasetVersion: "2025 residual mix v1.0", Year: 2025, Value: 0.600, Gases: "CO2e", LCAScope: "direct", Zone: "DE"},
		ResidualMix:     &MixShares{FossilPct: 75, NuclearPct: 25, RenewablePct: 0, Source: "AIB 2025"},
		Scope1: []Scope1Source{
			{Kind: Scope1Fuel, Name: "diesel", Quantity: 5500, Unit: "L", Factor: 2.66, Source: "generator fuel log"},
			{Kind: Scope1Refrigerant, Name: "R-134a", Quantity: 10, Unit: "kg", Source: "F-gas log"},
		},
		KPIs: ExternalKPIs{PUE: F64(1.3), WUE: F64(0.8)},
	}
}

func exampleRequest(t testing.TB) Request {
	return Request{Tenant: "acme", Site: testSite(), Year: 2025, Measured: exampleMeasured(), Inputs: inputsOf(t, exampleEntries()), Now: testNow}
}

func build(t testing.TB, req Request) *Report {
	t.Helper()
	r, err := Build(req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// TestWorkedExample reproduces spec §5 exactly.
func TestWorkedExample(t *testing.T) {
	r := build(t, exampleRequest(t))
	if len(r.Validation.Errors) != 0 {
		t.Fatalf("worked example has blocking errors: %+v", r.Validation.Errors)
	}
	if len(r.Validation.Warnings) != 0 {
		t.Errorf("worked example has warnings: %+v", r.Validation.Warnings)
	}
	kpis := []struct {
		id      string
		display string
		exact   float64
	}{
		{KPIPUE, "1.300", 15.6 / 12.0},
		{KPIWUE, "0.80", 9600.0 / 12000.0},
		{KPIERF, "0.100", 1.56 / 15.6},
		{KPIREF, "0.792", 12.36 / 15.6},
		{KPICUELB, "0.446", (29930 + 5_327_000) / 12e6},
		{KPICUEMB, "0.163", (29930 + 1_932_000) / 12e6},
	}
	for _, c := range kpis {
		k := r.KPIs[c.id]
		if k.Value == nil {
			t.Errorf("%s not available: %s", c.id, k.Reason)
			continue
		}
		if k.Display != c.display || !near(*k.Value, c.exact, 1e-12) {
			t.Errorf("%s = %v (%s), want %v (%s)", c.id, *k.Value, k.Display, c.exact, c.display)
		}
	}
	fields := []struct {
		id   string
		want float64
	}{
		{FGridImport, 15_220_000}, {FERESTot, 12_360_000}, {FERESGOO, 9_000_000}, {FERESPPA, 3_000_000}, {FPUE, 1.3}, {FREF, 12.36 / 15.6},
	}
	for _, c := range fields {
		if x, ok := fieldNum(r, c.id); !ok || !near(x, c.want, 1e-9*c.want) {
			t.Errorf("%s = %v (%v), want %v", c.id, x, ok, c.want)
		}
	}
	if q := r.Fields[FEDC].Quality; q != QualityMeasured {
		t.Errorf("EDC quality %s", q)
	}
	if s := r.Fields[FEDC].Source; s != `meter greenloop_energy_joules_total{site="fra1",component="facility"}` {
		t.Errorf("EDC source %q", s)
	}
	if s := r.Fields[FFloorTotal].Source; s != "entered by alice at 2026-02-20T14:00:00Z" {
		t.Errorf("floor area source %q", s)
	}
	em := r.Emissions
	for _, c := range []struct {
		name string
		got  *float64
		want float64
	}{
		{"scope1", em.Scope1T, 29.93}, {"scope2 LB", em.Scope2LBT, 5327.0}, {"scope2 MB", em.Scope2MBT, 1932.0},
		{"total LB", em.TotalLBT, 5356.93}, {"total MB", em.TotalMBT, 1961.93}, {"instrument share", em.InstrumentsSharePct, 100 * 12.0 / 15.22},
	} {
		if c.got == nil || !near(*c.got, c.want, 1e-9) {
			t.Errorf("E1-6 %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	mix := r.EnergyMix
	for _, c := range []struct {
		name      string
		got, want float64
	}{
		{"total", mix.TotalMWh, 15635}, {"fossil", mix.FossilMWh, 55 + 2415}, {"nuclear", mix.NuclearMWh, 805}, {"renewable", mix.RenewableMWh, 12360},
		{"renewable %", math.Round(mix.RenewablePct*100) / 100, 79.05}, {"fossil %", math.Round(mix.FossilPct*100) / 100, 15.80},
		{"nuclear %", math.Round(mix.NuclearPct*100) / 100, 5.15},
		{"production renewable", mix.ProductionRenewableMWh, 360}, {"production non-renewable", mix.ProductionNonRenewableMWh, 20},
	} {
		if !near(c.got, c.want, 1e-6) {
			t.Errorf("E1-5 %s = %v, want %v", c.name, c.got, c.want)
		}
	}
	if r.ReportingYear != 2026 || r.PeriodStart != "2025-01-01" || r.PeriodEnd != "2025-12-31" || r.Hours() != 8760 {
		t.Errorf("period %d %s–%s %vh", r.ReportingYear, r.PeriodStart, r.PeriodEnd, r.Hours())
	}
	if k := r.KPIs[KPIPUE]; k.Category != "1" || k.CompletenessPct == nil || *k.CompletenessPct != 99.7 || len(k.MeterIDs) != 2 {
		t.Errorf("PUE metadata %+v", k)
	}
}

func TestComputeKPIs(t *testing.T) {
	kwh := func(v float64) *KWh { return Ptr(KWh(v)) }
	cases := []struct {
		name string
		in   AnnualSums
		want map[string]string // display; "n/a" when not available
	}{
		{"worked example", AnnualSums{EDC: kwh(15.6e6), EIT: kwh(12e6), Water: Ptr(CubicMetres(9600)), HeatReused: kwh(1.56e6), Renewable: kwh(12.36e6),
			Scope1: Ptr(KgCO2e(29930)), Scope2LB: Ptr(KgCO2e(5.327e6)), Scope2MB: Ptr(KgCO2e(1.932e6))},
			map[string]string{KPIPUE: "1.300", KPIWUE: "0.80", KPIERF: "0.100", KPIREF: "0.792", KPICUELB: "0.446", KPICUEMB: "0.163"}},
		{"small edge site", AnnualSums{EDC: kwh(43800), EIT: kwh(35040), Water: Ptr(CubicMetres(0)), HeatReused: kwh(0), Renewable: kwh(43800), Scope2LB: Ptr(KgCO2e(5000))},
			map[string]string{KPIPUE: "1.250", KPIWUE: "0.00", KPIERF: "0.000", KPIREF: "1.000", KPICUELB: "0.143", KPICUEMB: "n/a"}},
		{"no IT energy", AnnualSums{EDC: kwh(1000)},
			map[string]string{KPIPUE: "n/a", KPIWUE: "n/a", KPIERF: "n/a", KPIREF: "n/a", KPICUELB: "n/a"}},
		{"zero IT energy", AnnualSums{EDC: kwh(1000), EIT: kwh(0)}, map[string]string{KPIPUE: "n/a"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := ComputeKPIs(c.in, nil)
			for id, want := range c.want {
				if got[id].Display != want {
					t.Errorf("%s = %s, want %s (reason %q)", id, got[id].Display, want, got[id].Reason)
				}
				if (want == "n/a") != (got[id].Value == nil) {
					t.Errorf("%s value %v with display %s", id, got[id].Value, want)
				}
			}
		})
	}
}

func TestDeterministicBuild(t *testing.T) {
	req := exampleRequest(t)
	a, err := MarshalCanonical(build(t, req))
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		b, err := MarshalCanonical(build(t, req))
		if err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Fatal("two builds of the same request differ")
		}
	}
}
