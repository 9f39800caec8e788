package emissions

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/quantity"
)

var (
	y2025 = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	y2026 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
)

func year(kwh float64) *energy.Result {
	return &energy.Result{From: y2025, To: y2026, Total: quantity.Energy(kwh) * quantity.KilowattHour, Completeness: 1,
		Buckets: []energy.Bucket{{Start: y2025, End: y2026, Energy: quantity.Energy(kwh) * quantity.KilowattHour, Completeness: 1}}}
}

func kWh(v float64) quantity.Energy { return quantity.Energy(v) * quantity.KilowattHour }

func TestMarketWorkedExample(t *testing.T) {
	// Spec §5: grid import 15 220 000 kWh; GOs 9 GWh and PPA 3 GWh at 0;
	// 3 220 000 kWh at the residual mix of 0.600 kg/kWh = 1 932.0 t.
	r, err := Market(MarketInput{
		Site: "fra1", Zone: "DE", Energy: year(15_220_000),
		Instruments: []Instrument{
			{ID: "ppa-wind-1", Type: PPAPhysical, CertIDs: []string{"DE-PPA-0001"}, Site: "fra1", Zone: "DE", Technology: "wind", From: y2025, To: y2026, Energy: kWh(3_000_000)},
			{ID: "go-lot-7", Type: GuaranteeOfOrigin, Registry: "UBA HKNR", CertIDs: []string{"NO-GO-77-000001..009000"}, Site: "fra1", Zone: "NO", Technology: "hydro", From: y2025, To: y2026, Energy: kWh(9_000_000)},
			{ID: "go-other-site", Type: GuaranteeOfOrigin, CertIDs: []string{"FR-GO-1"}, Site: "par1", From: y2025, To: y2026, Energy: kWh(1_000_000)},
		},
		Residual: &Factor{Zone: "DE", Intensity: 600, Source: "AIB European Residual Mix 2025", Year: 2025},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Emissions.Tonnes(); math.Abs(got-1932.0) > 1e-6 {
		t.Errorf("market-based %v t, want 1932.0", got)
	}
	if got := r.ResidualEnergy.KWh(); math.Abs(got-3_220_000) > 1e-6 {
		t.Errorf("residual %v kWh, want 3 220 000", got)
	}
	if len(r.Allocations) != 2 || r.Allocations[0].Instrument.ID != "go-lot-7" || r.Allocations[1].Instrument.ID != "ppa-wind-1" {
		t.Fatalf("allocations %+v, want the GO lot then the PPA (and not the other site's)", r.Allocations)
	}
	if len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], `zone "NO"`) {
		t.Errorf("warnings %q, want one about the Norwegian GO", r.Warnings)
	}
	b, _ := json.Marshal(r)
	for _, k := range []string{`"method":"market"`, `"emissions_kg":1932000`, `"residual_kwh":3220000`, `"residual_mix":{"zone":"DE","intensity_g_per_kwh":600`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON lacks %s: %s", k, b)
		}
	}
}

func TestMarketHierarchyAndProRata(t *testing.T) {
	half := y2025.AddDate(0, 6, 0) // 1 July 2025
	for _, tc := range []struct {
		name       string
		energy     *energy.Result
		ins        []Instrument
		residual   *Factor
		wantKg     float64
		wantApply  []float64 // kWh per allocation, in hierarchy order
		wantResKWh float64
	}{
		{
			name:   "supplier mix after certificates, residual for the rest",
			energy: year(1000),
			ins: []Instrument{
				{ID: "supplier", Type: SupplierMix, Site: "s", From: y2025, To: y2026, Energy: kWh(500), Factor: 100},
				{ID: "go", Type: GuaranteeOfOrigin, CertIDs: []string{"g1"}, Site: "s", From: y2025, To: y2026, Energy: kWh(300)},
			},
			residual: &Factor{Intensity: 500, Source: "AIB"},
			// 300 kWh × 0 + 500 kWh × 100 g + 200 kWh × 500 g = 150 kg.
			wantKg: (500*100 + 200*500) / 1000.0, wantApply: []float64{300, 500}, wantResKWh: 200,
		},
		{
			name:   "surplus expires",
			energy: year(1000),
			ins: []Instrument{
				{ID: "tariff", Type: GreenTariff, Site: "s", From: y2025, To: y2026, Energy: kWh(1500)},
			},
			wantKg: 0, wantApply: []float64{1000}, wantResKWh: 0,
		},
		{
			name: "a certificate year covering half of the report counts half",
			energy: &energy.Result{From: y2025, To: y2026, Buckets: []energy.Bucket{
				{Start: y2025, End: y2026, Energy: kWh(1000), Completeness: 1}}},
			ins: []Instrument{
				{ID: "go-h2", Type: GuaranteeOfOrigin, CertIDs: []string{"g2"}, Site: "s", From: half, To: half.AddDate(1, 0, 0), Energy: kWh(730)},
				{ID: "go-2024", Type: GuaranteeOfOrigin, CertIDs: []string{"g3"}, Site: "s", From: y2025.AddDate(-1, 0, 0), To: y2025, Energy: kWh(999)},
			},
			residual: &Factor{Intensity: 400, Source: "AIB"},
			// 1 Jul 2025 – 1 Jul 2026: 184 of 365 days fall in 2025 → 730 × 184/365 = 368 kWh.
			wantKg: (1000 - 368) * 400 / 1000.0, wantApply: []float64{368}, wantResKWh: 632,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Market(MarketInput{Site: "s", Energy: tc.energy, Instruments: tc.ins, Residual: tc.residual})
			if err != nil {
				t.Fatal(err)
			}
			if !near(r.Emissions.Kg(), tc.wantKg) || !near(r.ResidualEnergy.KWh(), tc.wantResKWh) {
				t.Errorf("%v kg, residual %v kWh; want %v kg, %v kWh", r.Emissions.Kg(), r.ResidualEnergy.KWh(), tc.wantKg, tc.wantResKWh)
			}
			if len(r.Allocations) != len(tc.wantApply) {
				t.Fatalf("%d allocations, want %d", len(r.Allocations), len(tc.wantApply))
			}
			for i, w := range tc.wantApply {
				if !near(r.Allocations[i].Applied.KWh(), w) {
					t.Errorf("allocation %d (%s) applied %v kWh, want %v", i, r.Allocations[i].Instrument.ID, r.Allocations[i].Applied.KWh(), w)
				}
			}
			// The series carries the same total.
			var sum float64
			for _, p := range r.Series {
				sum += p.Emissions.Kg()
			}
			if !near(sum, tc.wantKg) {
				t.Errorf("series sums to %v kg, want %v", sum, tc.wantKg)
			}
		})
	}
}

func TestMarketErrors(t *testing.T) {
	goA := Instrument{ID: "lot-a", Type: GuaranteeOfOrigin, CertIDs: []string{"X-1", "X-2"}, Site: "fra1", From: y2025, To: y2026, Energy: kWh(10)}
	goB := Instrument{ID: "lot-b", Type: GuaranteeOfOrigin, CertIDs: []string{"X-3", "X-2"}, Site: "ams1", From: y2025, To: y2026, Energy: kWh(10)}
	_, err := Market(MarketInput{Site: "fra1", Energy: year(100), Instruments: []Instrument{goA, goB}, Residual: &Factor{Intensity: 1}})
	var dc *DoubleClaimError
	if !errors.As(err, &dc) || dc.CertID != "X-2" || !errors.Is(err, ErrDoubleClaim) {
		t.Fatalf("certificate claimed by two sites: err %v, want a DoubleClaimError for X-2", err)
	}
	if !strings.Contains(err.Error(), `certificate "X-2" is claimed twice`) || !strings.Contains(err.Error(), `"lot-a"`) || !strings.Contains(err.Error(), `"lot-b"`) {
		t.Errorf("error %q should name the certificate and both instruments", err)
	}
	// The same instrument twice in the list is a double claim too.
	if _, err := Market(MarketInput{Site: "fra1", Energy: year(100), Instruments: []Instrument{goA, goA}, Residual: &Factor{Intensity: 1}}); !errors.Is(err, ErrDoubleClaim) {
		t.Errorf("same lot twice: err %v", err)
	}
	// Uncovered energy without a residual mix.
	if _, err := Market(MarketInput{Site: "fra1", Zone: "DE", Energy: year(100), Instruments: []Instrument{goA}}); err == nil || !strings.Contains(err.Error(), `no residual mix configured for zone "DE"`) {
		t.Errorf("no residual mix: err %v", err)
	}
	if _, err := Market(MarketInput{Site: "fra1", Zone: "DE", Energy: year(100), Residual: &Factor{Zone: "FR", Intensity: 1}}); err == nil {
		t.Error("residual mix of another zone: no error")
	}
	// A ledger refuses the same certificates in another period or for another site.
	var l Ledger
	in := MarketInput{Site: "fra1", Energy: year(100), Instruments: []Instrument{goA}, Residual: &Factor{Intensity: 1}, Ledger: &l}
	if _, err := Market(in); err != nil {
		t.Fatal(err)
	}
	if _, err := Market(in); err != nil {
		t.Errorf("recomputing the same report: %v", err)
	}
	h1 := &energy.Result{From: y2025, To: y2025.AddDate(0, 6, 0), Buckets: []energy.Bucket{{Start: y2025, End: y2025.AddDate(0, 6, 0), Energy: kWh(50)}}}
	in.Energy = h1
	if _, err := Market(in); !errors.As(err, &dc) || dc.CertID != "X-1" {
		t.Errorf("same certificates for another period: err %v, want a DoubleClaimError for X-1", err)
	}
	if err := CheckClaims([]Instrument{{ID: "bad", Type: "REC", Site: "s", From: y2025, To: y2025}}); err == nil ||
		!strings.Contains(err.Error(), `unknown type "REC"`) || !strings.Contains(err.Error(), "empty period") {
		t.Errorf("bad instrument: err %v", err)
	}
}

func TestMatchToyExample(t *testing.T) {
	// Spec §6.3: L = 1 000 kWh in each of 4 h; G = 1 500/1 200/300/0.
	start := time.Date(2025, 3, 3, 10, 0, 0, 0, time.UTC)
	load := hourly(start, 1000, 1000, 1000, 1000)
	var supply []Supply
	for i, g := range []float64{1500, 1200, 300, 0} {
		supply = append(supply, Supply{T: start.Add(time.Duration(i)*time.Hour + 20*time.Minute), Energy: kWh(g)})
	}
	supply = append(supply, Supply{T: start.Add(-time.Hour), Energy: kWh(5000)}) // outside the period
	cs := &carbonSeriesConst{}
	r, err := Match(MatchInput{Load: load, Supply: supply,
		GridCFE:   func(time.Time) (float64, bool) { return 0.4, true },
		Intensity: cs.series(start, 4, 500)})
	if err != nil {
		t.Fatal(err)
	}
	if !near(r.Hourly, 0.575) || !near(r.Annual, 0.75) || r.GridInclusive == nil || !near(*r.GridInclusive, 0.745) {
		t.Errorf("hourly %v annual %v grid-inclusive %v; want 0.575, 0.75, 0.745", r.Hourly, r.Annual, r.GridInclusive)
	}
	// Unmatched 0 + 0 + 700 + 1000 kWh at 500 g = 850 kg.
	if r.Emissions == nil || !near(r.Emissions.Kg(), 850) {
		t.Errorf("hourly market-based emissions %v, want 850 kg", r.Emissions)
	}
	b, _ := json.Marshal(r)
	if want := `{"load_kwh":4000,"supply_kwh":3000,"matched_kwh":2300,"hourly_cfe":0.575,"annual_cfe":0.75,"grid_inclusive_cfe":0.745,"emissions_kg":850}`; string(b) != want {
		t.Errorf("JSON\n got %s\nwant %s", b, want)
	}
	if !near(r.Matched.KWh(), 2300) || !near(r.Supply.KWh(), 3000) {
		t.Errorf("matched %v supply %v; want 2300, 3000", r.Matched, r.Supply)
	}
}

func TestScope1WorkedExample(t *testing.T) {
	// Spec §5: 5 500 L diesel × 2.66 kg/L + 10 kg R-134a × 1 530 = 29.93 t.
	s, err := ComputeScope1(
		[]FuelUse{{Fuel: "diesel", Volume: 5500 * quantity.Litre, PerLitre: 2.66 * quantity.KilogramCO2e, Source: "illustrative"}},
		[]RefrigerantLeak{{Gas: "R-134a", Mass: 10 * quantity.Kilogram, GWP100: 1530, Source: "IPCC AR6"}})
	if err != nil {
		t.Fatal(err)
	}
	if !near(s.Fuel.Tonnes(), 14.63) || !near(s.Refrigerant.Tonnes(), 15.3) || !near(s.Total.Tonnes(), 29.93) {
		t.Errorf("scope 1 %+v, want 14.63 + 15.3 = 29.93 t", s)
	}
	if _, err := ComputeScope1([]FuelUse{{Fuel: "diesel", Volume: -1}}, nil); err == nil {
		t.Error("negative fuel: no error")
	}
}

type carbonSeriesConst struct{}

func (carbonSeriesConst) series(start time.Time, hours int, g float64) *carbon.Series {
	s := &carbon.Series{Zone: "DE"}
	for i := range hours {
		s.Points = append(s.Points, carbon.Point{Time: start.Add(time.Duration(i) * time.Hour), LCA: carbon.Intensity(g), Direct: carbon.Intensity(g)})
	}
	return s
}
