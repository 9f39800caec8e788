package kpi

import (
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/emissions"
	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/quantity"
)

var (
	y2025 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	y2026 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

func kwh(v float64, meters ...string) *Energy {
	return &Energy{Value: quantity.Energy(v) * quantity.KilowattHour, Completeness: 1, Meters: meters}
}

// TestWorkedExample reproduces spec §5 (calendar year 2025, 8 760 h) through
// the emissions package: PUE 1.300, WUE 0.80, ERF 0.100, REF 0.792, CUE 0.446 / 0.163.
func TestWorkedExample(t *testing.T) {
	// Scope 1: 5 500 L diesel × 2.66 kg/L + 10 kg R-134a × 1 530.
	s1, err := emissions.ComputeScope1(
		[]emissions.FuelUse{{Fuel: "diesel", Volume: 5500 * quantity.Litre, PerLitre: 2.66 * quantity.KilogramCO2e}},
		[]emissions.RefrigerantLeak{{Gas: "R-134a", Mass: 10 * quantity.Kilogram, GWP100: 1530}})
	if err != nil {
		t.Fatal(err)
	}
	// Grid import 15 220 000 kWh, spread evenly over the 8 760 hours, at a
	// grid average of 350 g/kWh every hour.
	grid := &energy.Result{From: y2025, To: y2026, Completeness: 1}
	cs := &carbon.Series{Zone: "DE"}
	for h := y2025; h.Before(y2026); h = h.Add(time.Hour) {
		grid.Buckets = append(grid.Buckets, energy.Bucket{Start: h, End: h.Add(time.Hour),
			Energy: 15_220_000 * quantity.KilowattHour / 8760, Completeness: 1})
		cs.Points = append(cs.Points, carbon.Point{Time: h, LCA: 350, Direct: 300})
	}
	lb, err := emissions.Location(emissions.LocationInput{Site: "dc1", Energy: grid, Intensity: cs})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(lb.Emissions.Tonnes()-5327.0) > 1e-6 {
		t.Fatalf("location-based %v t, want 5 327.0", lb.Emissions.Tonnes())
	}
	mb, err := emissions.Market(emissions.MarketInput{Site: "dc1", Zone: "DE", Energy: grid,
		Instruments: []emissions.Instrument{
			{ID: "go-2025", Type: emissions.GuaranteeOfOrigin, CertIDs: []string{"GO-2025-A"}, Site: "dc1", From: y2025, To: y2026, Energy: 9_000_000 * quantity.KilowattHour},
			{ID: "ppa-2025", Type: emissions.PPAPhysical, CertIDs: []string{"PPA-2025-A"}, Site: "dc1", From: y2025, To: y2026, Energy: 3_000_000 * quantity.KilowattHour},
		},
		Residual: &emissions.Factor{Zone: "DE", Intensity: 600, Source: "residual mix (illustrative)", Year: 2025}})
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(mb.Emissions.Tonnes()-1932.0) > 1e-6 {
		t.Fatalf("market-based %v t, want 1 932.0", mb.Emissions.Tonnes())
	}

	in := Inputs{
		From: y2025, To: y2026, ReportingYear: 2026,
		Facility:         *kwh(15_600_000, "facility"),
		BackupGenerators: kwh(20_000, "genset"),
		IT:               *kwh(12_000_000, "ups"),
		ITMeterPoint:     UPSOutput,
		InstalledITPower: 2000 * quantity.Kilowatt,
		Water:            &Volume{Value: 9600 * quantity.CubicMetre, Completeness: 1, Meters: []string{"water"}},
		WUECategory:      2,
		PotableWater:     &Volume{Value: 6000 * quantity.CubicMetre, Completeness: 1},
		HeatReused:       kwh(1_560_000, "heat"),
		RenewableGO:      kwh(9_000_000),
		RenewablePPA:     kwh(3_000_000),
		RenewableOnsite:  kwh(360_000, "pv"),
		Scope1:           &Emissions{Value: s1.Total, Completeness: 1},
		Scope2Location:   &Emissions{Value: lb.Emissions, Completeness: lb.Completeness},
		Scope2Market:     &Emissions{Value: mb.Emissions, Completeness: mb.Completeness},
		FactorYear:       2025,
	}
	r := Compute(in)
	if err := r.Blocking(); err != nil {
		t.Fatalf("blocking issues: %v", err)
	}
	if len(r.Issues) != 0 {
		t.Errorf("issues %+v, want none", r.Issues)
	}
	for _, w := range []struct {
		id, shown, format string
		exact             float64
		unit, category    string
	}{
		{"pue", "1.300", "%.3f", 1.3, "", "PUE1"},
		{"wue", "0.80", "%.2f", 0.8, "L/kWh", "WUE2"},
		{"erf", "0.100", "%.3f", 0.1, "", ""},
		{"ref", "0.792", "%.3f", 12.36 / 15.6, "", ""},
		{"cue_location", "0.446", "%.3f", (29.93 + 5327.0) / 12000, "kgCO2e/kWh", "location"},
		{"cue_market", "0.163", "%.3f", (29.93 + 1932.0) / 12000, "kgCO2e/kWh", "market"},
	} {
		k, ok := r.Get(w.id)
		if !ok {
			t.Errorf("%s not computed", w.id)
			continue
		}
		if got := fmt.Sprintf(w.format, k.Value); got != w.shown || math.Abs(k.Value-w.exact) > 1e-12 {
			t.Errorf("%s = %v (%s), want %v (%s)", w.id, k.Value, got, w.exact, w.shown)
		}
		if k.Unit != w.unit || k.Category != w.category || k.CompletenessPct != 100 {
			t.Errorf("%s: unit %q category %q completeness %v; want %q %q 100", w.id, k.Unit, k.Category, k.CompletenessPct, w.unit, w.category)
		}
	}
	if got := r.ERESTotal.KWh(); math.Abs(got-12_360_000) > 1e-6 {
		t.Errorf("ERES-TOT %v kWh, want 12 360 000", got)
	}
	if got := r.MeanITLoad.KW(); math.Abs(got-1369.86) > 0.01 {
		t.Errorf("mean IT load %v kW, want about 1 370", got)
	}
	if b, _ := json.Marshal(r); !strings.Contains(string(b), `"eres_total_kwh":12360000,"mean_it_load_kw":1369.86`) {
		t.Errorf("result JSON %s", b)
	}
	if _, ok := r.Get("cer"); ok {
		t.Error("CER computed without cooling meters")
	}
	pue, _ := r.Get("pue")
	if fmt.Sprint(pue.Meters) != "[facility ups]" {
		t.Errorf("PUE meters %v, want [facility ups]", pue.Meters)
	}
	b, _ := json.Marshal(pue)
	for _, k := range []string{`"period_start":"2025-01-01T00:00:00Z"`, `"category":"PUE1"`, `"meter_ids":["facility","ups"]`, `"completeness_pct":100`, `"estimated_share_pct":0`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("PUE JSON lacks %s: %s", k, b)
		}
	}
}

func TestCategories(t *testing.T) {
	for _, tc := range []struct {
		p    ITMeterPoint
		want string
		err  bool
	}{{UPSOutput, "PUE1", false}, {PDUOutput, "PUE2", false}, {ITInput, "PUE3", false}, {CustomPoint, "", false}, {"rack", "", true}} {
		got, err := tc.p.Category()
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("%q: %q, %v; want %q, error %v", tc.p, got, err, tc.want, tc.err)
		}
	}
}

func TestValidation(t *testing.T) {
	base := func() Inputs {
		return Inputs{From: y2025, To: y2026, Facility: *kwh(1300), IT: *kwh(1000), ITMeterPoint: PDUOutput}
	}
	for _, tc := range []struct {
		name   string
		mod    func(*Inputs)
		sev    Severity
		field  string
		absent string // a KPI that must not be computed
	}{
		{"EIT zero", func(in *Inputs) { in.IT = *kwh(0) }, Blocking, "energy_it_kwh", "pue"},
		{"EDC below EIT", func(in *Inputs) { in.Facility = *kwh(900) }, Blocking, "energy_total_kwh", ""},
		{"generators above EDC", func(in *Inputs) { in.BackupGenerators = kwh(2000) }, Blocking, "energy_backup_gen_kwh", ""},
		{"potable above total water", func(in *Inputs) {
			in.Water = &Volume{Value: 1 * quantity.CubicMetre, Completeness: 1}
			in.PotableWater = &Volume{Value: 2 * quantity.CubicMetre, Completeness: 1}
		}, Blocking, "water_potable_input_m3", ""},
		{"ERF above 1", func(in *Inputs) { in.HeatReused = kwh(1400) }, Blocking, "erf", ""},
		{"not the previous calendar year", func(in *Inputs) { in.ReportingYear = 2025 }, Blocking, "period_start", ""},
		{"partial year outside it", func(in *Inputs) { in.ReportingYear = 2025; in.PartialYear = true }, Blocking, "period_start", ""},
		{"unknown meter point", func(in *Inputs) { in.ITMeterPoint = "rack" }, Blocking, "energy_it_meter_basis", ""},
		{"WUE category 3", func(in *Inputs) { in.Water = &Volume{Value: 1, Completeness: 1}; in.WUECategory = 3 }, Blocking, "wue_category", ""},
		{"PUE implausible", func(in *Inputs) { in.Facility = *kwh(1020) }, Warning, "pue", ""},
		{"REF above 1", func(in *Inputs) { in.RenewableGO = kwh(1000); in.RenewableOnsite = kwh(400) }, Warning, "ref", ""},
		{"mean IT load above PDIT", func(in *Inputs) {
			in.IT = *kwh(8760 * 600)
			in.Facility = *kwh(8760 * 800)
			in.InstalledITPower = 550 * quantity.Kilowatt
		}, Warning, "pd_it_kw", ""},
		{"PDIT below 500 kW", func(in *Inputs) { in.InstalledITPower = 100 * quantity.Kilowatt }, Warning, "pd_it_kw", ""},
		{"low completeness", func(in *Inputs) { in.IT.Completeness = 0.9 }, Warning, "pue", ""},
		{"factor year", func(in *Inputs) { in.FactorYear = 2022 }, Warning, "emission_factor_year", ""},
		{"CER without cooling energy", func(in *Inputs) { in.Cooling = kwh(0); in.HeatRemoved = kwh(10) }, Warning, "cer", "cer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := base()
			tc.mod(&in)
			r := Compute(in)
			found := false
			for _, i := range r.Issues {
				if i.Severity == tc.sev && i.Field == tc.field {
					found = true
				}
			}
			if !found {
				t.Errorf("issues %+v, want a %s issue on %s", r.Issues, tc.sev, tc.field)
			}
			if (r.Blocking() != nil) != (tc.sev == Blocking) {
				t.Errorf("Blocking() = %v", r.Blocking())
			}
			if tc.absent != "" {
				if _, ok := r.Get(tc.absent); ok {
					t.Errorf("%s computed", tc.absent)
				}
			}
		})
	}
	// The base case is clean, and PDU metering is category 2.
	r := Compute(base())
	if len(r.Issues) != 0 {
		t.Errorf("base issues %+v", r.Issues)
	}
	if k, _ := r.Get("pue"); k.Category != "PUE2" || k.Value != 1.3 {
		t.Errorf("PUE %+v, want 1.3 PUE2", k)
	}
}

func TestCERAndShares(t *testing.T) {
	in := Inputs{From: y2025, To: y2026, Facility: *kwh(1300), IT: *kwh(1000), ITMeterPoint: UPSOutput,
		Cooling:     &Energy{Value: 200 * quantity.KilowattHour, Completeness: 0.97, Meters: []string{"chiller"}},
		HeatRemoved: &Energy{Value: 1000 * quantity.KilowattHour, Estimated: 100 * quantity.KilowattHour, Completeness: 0.99, Meters: []string{"heat"}},
	}
	r := Compute(in)
	k, ok := r.Get("cer")
	if !ok || k.Value != 5 || math.Abs(k.CompletenessPct-97) > 1e-9 || math.Abs(k.EstimatedSharePct-10) > 1e-9 {
		t.Errorf("CER %+v, want 5 with 97 %% completeness and 10 %% estimated", k)
	}
}

func TestAggregate(t *testing.T) {
	// Two sites: PUE 1.2 over 10 GWh and 1.5 over 30 GWh → (12 + 45) / 40 = 1.425.
	got := Aggregate([]Weighted{{1.2, 10 * quantity.GigawattHour}, {1.5, 30 * quantity.GigawattHour}})
	if math.Abs(got-1.425) > 1e-12 {
		t.Errorf("aggregate %v, want 1.425", got)
	}
	if !math.IsNaN(Aggregate(nil)) {
		t.Error("aggregate of nothing is not NaN")
	}
}
