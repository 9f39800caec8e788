package report

import (
	"fmt"
	"math"
	"slices"
)

// MixRow is one line of the ESRS E1-5 table.
type MixRow struct {
	Label    string  `json:"label"`
	Category string  `json:"category"` // fossil, nuclear, renewable
	MWh      float64 `json:"mwh"`
}

// EnergyMix is the ESRS E1-5 energy consumption and mix table (MWh, final
// energy, fuels at their lower heating value). Self-generated electricity
// from fuel counts once, as fuel (AR 32(e)); purchased electricity counts
// as renewable only under a contractual instrument (AR 32(j)); the rest is
// split with the residual mix.
type EnergyMix struct {
	Available bool     `json:"available"`
	Reason    string   `json:"reason,omitempty"`
	Rows      []MixRow `json:"rows"`

	FossilMWh    float64 `json:"fossil_mwh"`
	NuclearMWh   float64 `json:"nuclear_mwh"`
	RenewableMWh float64 `json:"renewable_mwh"`
	TotalMWh     float64 `json:"total_mwh"`
	FossilPct    float64 `json:"fossil_pct"`
	NuclearPct   float64 `json:"nuclear_pct"`
	RenewablePct float64 `json:"renewable_pct"`

	RenewableFuelsMWh         float64 `json:"renewable_fuels_mwh"`          // (i)
	RenewablePurchasedMWh     float64 `json:"renewable_purchased_mwh"`      // (ii)
	RenewableSelfGeneratedMWh float64 `json:"renewable_self_generated_mwh"` // (iii)
	// Energy production (§39).
	ProductionRenewableMWh    float64  `json:"production_renewable_mwh"`
	ProductionNonRenewableMWh float64  `json:"production_non_renewable_mwh"`
	Notes                     []string `json:"notes"`
}

func fieldNum(r *Report, id string) (float64, bool) {
	fv, ok := r.Fields[id]
	if !ok {
		return 0, false
	}
	return fv.Number()
}

func fieldInstruments(r *Report) []Instrument {
	l, _ := r.Fields[FInstruments].Value.([]Instrument)
	return l
}

// ownInstruments returns the instruments whose beneficiary is the report's DC.
func ownInstruments(r *Report) []Instrument {
	var out []Instrument
	for _, in := range fieldInstruments(r) {
		if in.BeneficiaryDCID == r.DataCentreID {
			out = append(out, in)
		}
	}
	return out
}

// fuelMWh returns a fuel source's energy in MWh at its lower heating value.
func fuelMWh(s Scope1Source, opts Options) (float64, bool) {
	if s.Unit == "kWh" {
		return s.Quantity / 1000, true
	}
	ncv, ok := opts.FuelNCV[s.Name+"/"+s.Unit]
	if !ok {
		return 0, false
	}
	return s.Quantity * ncv / 1000, true
}

func energyMix(r *Report, m *Measured, opts Options) EnergyMix {
	e := EnergyMix{Rows: []MixRow{}, Notes: []string{}}
	grid, okGrid := fieldNum(r, FGridImport)
	onsite, okOS := fieldNum(r, FERESOS)
	if !okGrid || !okOS {
		e.Reason = "needs grid_import_kwh (or EDC, EDC-BG and ERES-OS) and renewable_onsite_kwh"
		return e
	}
	e.Available = true
	add := func(label, cat string, mwh float64) {
		e.Rows = append(e.Rows, MixRow{Label: label, Category: cat, MWh: mwh})
		switch cat {
		case "fossil":
			e.FossilMWh += mwh
		case "nuclear":
			e.NuclearMWh += mwh
		case "renewable":
			e.RenewableMWh += mwh
		}
	}
	for _, s := range m.Scope1 {
		if s.Kind != Scope1Fuel {
			continue
		}
		mwh, ok := fuelMWh(s, opts)
		if !ok {
			e.Notes = append(e.Notes, fmt.Sprintf("fuel %s in %s has no net calorific value in the options (fuel_ncv_kwh_per_unit %q); left out", s.Name, s.Unit, s.Name+"/"+s.Unit))
			e.Available = false
			continue
		}
		if s.Renewable {
			add("Renewable fuel: "+s.Name, "renewable", mwh)
			e.RenewableFuelsMWh += mwh
		} else {
			add("Fuel: "+s.Name, "fossil", mwh)
		}
	}
	// Purchased electricity covered by renewable contractual instruments.
	var renKWh float64
	if ins := ownInstruments(r); len(ins) > 0 {
		for _, in := range ins {
			if in.Renewable() {
				renKWh += float64(in.KWh)
			}
		}
	} else {
		goo, _ := fieldNum(r, FERESGOO)
		ppa, _ := fieldNum(r, FERESPPA)
		renKWh = goo + ppa
	}
	renKWh = math.Min(renKWh, grid)
	add("Purchased electricity with renewable instruments (GO, PPA, green tariff)", "renewable", renKWh/1000)
	e.RenewablePurchasedMWh = renKWh / 1000
	add("Self-generated renewable electricity (on-site)", "renewable", onsite/1000)
	e.RenewableSelfGeneratedMWh = onsite / 1000
	untracked := (grid - renKWh) / 1000
	if mix := m.ResidualMix; mix != nil {
		fossil, ren := mix.FossilPct, mix.RenewablePct
		renLabel := "renewable"
		if opts.ResidualRenewableAs != "renewable" {
			fossil, ren = fossil+ren, 0
			renLabel = ""
			if mix.RenewablePct > 0 {
				e.Notes = append(e.Notes, fmt.Sprintf("the residual mix's renewable share (%.2f %%) is counted as fossil (residual_renewable_as=fossil)", mix.RenewablePct))
			}
		}
		add("Untracked grid electricity, residual mix: fossil", "fossil", untracked*fossil/100)
		add("Untracked grid electricity, residual mix: nuclear", "nuclear", untracked*mix.NuclearPct/100)
		if renLabel != "" {
			add("Untracked grid electricity, residual mix: renewable", "renewable", untracked*ren/100)
			e.RenewablePurchasedMWh += untracked * ren / 100
		}
	} else {
		add("Untracked grid electricity (no residual mix composition: counted as fossil)", "fossil", untracked)
		e.Notes = append(e.Notes, "no residual mix composition given; untracked grid electricity counted as fossil")
	}
	e.TotalMWh = e.FossilMWh + e.NuclearMWh + e.RenewableMWh
	if e.TotalMWh > 0 {
		e.FossilPct = 100 * e.FossilMWh / e.TotalMWh
		e.NuclearPct = 100 * e.NuclearMWh / e.TotalMWh
		e.RenewablePct = 100 * e.RenewableMWh / e.TotalMWh
	}
	e.ProductionRenewableMWh = onsite / 1000
	if bg, ok := fieldNum(r, FEDCBG); ok {
		e.ProductionNonRenewableMWh = bg / 1000
	}
	return e
}

// EmissionRow is one line of the ESRS E1-6 table.
type EmissionRow struct {
	Scope      string  `json:"scope"` // 1, 2_lb, 2_mb
	Label      string  `json:"label"`
	Quantity   float64 `json:"quantity"`
	Unit       string  `json:"unit"`
	Factor     float64 `json:"factor"`
	FactorUnit string  `json:"factor_unit"`
	TCO2e      float64 `json:"tco2e"`
}

// Emissions is the ESRS E1-6 gross Scope 1 and Scope 2 table (tCO2e);
// Scope 3 is out of this report's scope.
type Emissions struct {
	Rows      []EmissionRow `json:"rows"`
	Scope1T   *float64      `json:"scope1_tco2e"`
	Scope2LBT *float64      `json:"scope2_location_based_tco2e"`
	Scope2MBT *float64      `json:"scope2_market_based_tco2e"`
	TotalLBT  *float64      `json:"total_location_based_tco2e"`
	TotalMBT  *float64      `json:"total_market_based_tco2e"`
	// InstrumentsSharePct is the share of purchased electricity covered by
	// contractual instruments; InstrumentTypes lists their types.
	InstrumentsSharePct *float64        `json:"contractual_instruments_share_pct"`
	InstrumentTypes     []string        `json:"contractual_instrument_types"`
	LocationFactor      *EmissionFactor `json:"location_factor"`
	ResidualFactor      *EmissionFactor `json:"residual_factor"`
	Notes               []string        `json:"notes"`
}

// Scope1Result is the direct emissions of a list of Scope 1 sources.
type Scope1Result struct {
	Rows   []EmissionRow
	Tonnes float64
	// Notes name the sources left out; Complete is false when any was.
	Notes    []string
	Complete bool
}

// Scope1Emissions sums the sources' emissions: a fuel's quantity × its
// factor, a refrigerant's kg × its factor or else the options' GWP100. A
// refrigerant with neither is left out and makes the result incomplete.
func Scope1Emissions(sources []Scope1Source, opts Options) Scope1Result {
	res := Scope1Result{Complete: true}
	for _, s := range sources {
		f := s.Factor
		unit := "kgCO2e/" + s.Unit
		if f == 0 && s.Kind == Scope1Refrigerant {
			g, ok := opts.GWP100[s.Name]
			if !ok {
				res.Notes = append(res.Notes, fmt.Sprintf("refrigerant %s has no factor and no GWP100 in the options; left out", s.Name))
				res.Complete = false
				continue
			}
			f, unit = g, "GWP100 (kgCO2e/kg)"
		}
		t := s.Quantity * f / 1000
		res.Tonnes += t
		res.Rows = append(res.Rows, EmissionRow{Scope: "1", Label: s.Kind + ": " + s.Name, Quantity: s.Quantity, Unit: s.Unit, Factor: f, FactorUnit: unit, TCO2e: t})
	}
	return res
}

func emissions(r *Report, m *Measured, opts Options) Emissions {
	e := Emissions{Rows: []EmissionRow{}, InstrumentTypes: []string{}, Notes: []string{}, LocationFactor: m.LocationFactor, ResidualFactor: m.ResidualFactor}
	if m.Scope1 == nil {
		e.Notes = append(e.Notes, "no Scope 1 sources entered ("+FScope1Sources+"): Scope 1 and the totals are not available; enter an empty list when the site had none")
	} else {
		s1 := Scope1Emissions(m.Scope1, opts)
		e.Rows = append(e.Rows, s1.Rows...)
		e.Notes = append(e.Notes, s1.Notes...)
		if s1.Complete {
			e.Scope1T = Ptr(s1.Tonnes)
		}
	}
	grid, okGrid := fieldNum(r, FGridImport)
	if !okGrid {
		e.Notes = append(e.Notes, "no purchased electricity (grid_import_kwh): Scope 2 not available")
		return e
	}
	if f := m.LocationFactor; f != nil {
		t := f.Value.Times(KWh(grid)).Tonnes()
		e.Rows = append(e.Rows, EmissionRow{Scope: "2_lb", Label: "Purchased electricity × grid average (" + f.Source + ")", Quantity: grid, Unit: "kWh",
			Factor: float64(f.Value), FactorUnit: "kgCO2e/kWh", TCO2e: t})
		e.Scope2LBT = Ptr(t)
	} else {
		e.Notes = append(e.Notes, "no location-based emission factor: Scope 2 location-based not available")
	}
	ins := ownInstruments(r)
	if len(ins) == 0 {
		goo, _ := fieldNum(r, FERESGOO)
		ppa, _ := fieldNum(r, FERESPPA)
		if goo > 0 {
			ins = append(ins, Instrument{Type: InstrumentGO, KWh: KWh(goo)})
		}
		if ppa > 0 {
			ins = append(ins, Instrument{Type: InstrumentPPAPhysical, KWh: KWh(ppa)})
		}
	}
	var covered, mb float64
	for _, in := range ins {
		covered += float64(in.KWh)
		t := in.Factor().Times(in.KWh).Tonnes()
		mb += t
		label := in.Type
		if in.Registry != "" {
			label += " (" + in.Registry + ")"
		}
		e.Rows = append(e.Rows, EmissionRow{Scope: "2_mb", Label: "Contractual instrument: " + label, Quantity: float64(in.KWh), Unit: "kWh",
			Factor: float64(in.Factor()), FactorUnit: "kgCO2e/kWh", TCO2e: t})
		if !slices.Contains(e.InstrumentTypes, in.Type) {
			e.InstrumentTypes = append(e.InstrumentTypes, in.Type)
		}
	}
	slices.Sort(e.InstrumentTypes)
	if grid > 0 {
		e.InstrumentsSharePct = Ptr(100 * math.Min(covered, grid) / grid)
	}
	uncovered := math.Max(0, grid-covered)
	switch {
	case m.ResidualFactor != nil:
		t := m.ResidualFactor.Value.Times(KWh(uncovered)).Tonnes()
		e.Rows = append(e.Rows, EmissionRow{Scope: "2_mb", Label: "Untracked electricity × residual mix (" + m.ResidualFactor.Source + ")", Quantity: uncovered, Unit: "kWh",
			Factor: float64(m.ResidualFactor.Value), FactorUnit: "kgCO2e/kWh", TCO2e: t})
		e.Scope2MBT = Ptr(mb + t)
	case uncovered == 0:
		e.Scope2MBT = Ptr(mb)
	default:
		e.Notes = append(e.Notes, "no residual-mix factor for untracked electricity: Scope 2 market-based not available")
	}
	if e.Scope1T != nil && e.Scope2LBT != nil {
		e.TotalLBT = Ptr(*e.Scope1T + *e.Scope2LBT)
	}
	if e.Scope1T != nil && e.Scope2MBT != nil {
		e.TotalMBT = Ptr(*e.Scope1T + *e.Scope2MBT)
	}
	return e
}
