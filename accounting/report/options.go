package report

import (
	"maps"
	"slices"
)

// Options holds the thresholds and the unconfirmed ([U] in the spec)
// choices of the report, so an operator can override them without a code
// change. Start from DefaultOptions and change what differs.
type Options struct {
	// Catalogue is the field set; nil is DefaultCatalogue().
	Catalogue *Catalogue `json:"-"`

	// CompletenessMinPct: a meter below it gets a warning (spec §8: 95 %).
	CompletenessMinPct float64 `json:"completeness_min_pct"`
	// PUEWarnMin and PUEWarnMax bound plausible PUE values (spec §8: 1.05, 3).
	PUEWarnMin float64 `json:"pue_warn_min"`
	PUEWarnMax float64 `json:"pue_warn_max"`
	// ScopeThresholdKW is the EED art. 12 threshold of installed IT power (500 kW).
	ScopeThresholdKW float64 `json:"scope_threshold_kw"`
	// KPITolerance is the relative difference between a KPI computed
	// elsewhere and the report's own above which a warning is raised.
	KPITolerance float64 `json:"kpi_tolerance"`
	// MonthlyTolerance is the relative difference between the sum of the
	// monthly values and the annual sum above which a warning is raised.
	MonthlyTolerance float64 `json:"monthly_tolerance"`
	// SumTolerance is the relative tolerance of the equality rules (ERES-TOT
	// = GOO + PPA + OS), for rounding in entered values.
	SumTolerance float64 `json:"sum_tolerance"`

	// FuelNCV is the net calorific value in kWh per unit, keyed "fuel/unit"
	// (e.g. "diesel/L": 10 [U]), for ESRS E1-5 fuel input.
	FuelNCV map[string]float64 `json:"fuel_ncv_kwh_per_unit"`
	// GWP100 maps a refrigerant to its 100-year GWP (IPCC AR6 [U]); used
	// when a Scope 1 refrigerant source has no factor.
	GWP100 map[string]float64 `json:"gwp100"`
	// ResidualRenewableAs says how the renewable share of the residual mix
	// counts in ESRS E1-5: "fossil" (default, conservative [U]) or "renewable".
	ResidualRenewableAs string `json:"residual_renewable_as"`
	// PPATypesForERESPPA are the instrument types summed into ERES-PPA when
	// it is not entered (default physical PPAs only [U]).
	PPATypesForERESPPA []string `json:"ppa_types_for_eres_ppa"`
	// Decimals is how many decimals each KPI is shown with.
	Decimals map[string]int `json:"decimals"`
}

// DefaultOptions returns the defaults of the spec.
func DefaultOptions() Options {
	return Options{
		CompletenessMinPct:  95,
		PUEWarnMin:          1.05,
		PUEWarnMax:          3,
		ScopeThresholdKW:    500,
		KPITolerance:        0.005,
		MonthlyTolerance:    0.005,
		SumTolerance:        1e-6,
		FuelNCV:             map[string]float64{"diesel/L": 10, "hvo/L": 9.5, "natural_gas/m³": 10.5, "natural_gas/kWh": 1, "diesel/kWh": 1},
		GWP100:              map[string]float64{"R-134a": 1530, "R-32": 771, "R-125": 3740, "R-410A": 2255.5, "R-1234ze(E)": 1.37, "CO2": 1, "R-744": 1},
		ResidualRenewableAs: "fossil",
		PPATypesForERESPPA:  []string{InstrumentPPAPhysical},
		Decimals:            map[string]int{"pue": 3, "wue": 2, "erf": 3, "ref": 3, "cue_lb": 3, "cue_mb": 3},
	}
}

func (o Options) clone() Options {
	o.FuelNCV = maps.Clone(o.FuelNCV)
	o.GWP100 = maps.Clone(o.GWP100)
	o.PPATypesForERESPPA = slices.Clone(o.PPATypesForERESPPA)
	o.Decimals = maps.Clone(o.Decimals)
	return o
}

func (o Options) catalogue() *Catalogue {
	if o.Catalogue == nil {
		return DefaultCatalogue()
	}
	return o.Catalogue
}
