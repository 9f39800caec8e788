package report

import (
	"strings"
	"time"
)

// Meter is one series behind a measured value and how complete its data
// over the period is.
type Meter struct {
	// Selector names the series, e.g. greenloop_energy_joules_total{site="fra1",component="facility"}.
	Selector string `json:"selector"`
	// CompletenessPct is the share of the period covered by real samples, 0–100.
	CompletenessPct float64 `json:"completeness_pct"`
}

// Reading is one measured annual sum and its provenance.
type Reading[Q ~float64] struct {
	Value  Q       `json:"value"`
	Meters []Meter `json:"meters,omitempty"`
	// EstimatedSharePct is the share of Value that was gap-filled, 0–100;
	// above zero the field's quality is "estimated".
	EstimatedSharePct float64 `json:"estimated_share_pct,omitempty"`
}

func (r *Reading[Q]) quality() Quality {
	if r.EstimatedSharePct > 0 {
		return QualityEstimated
	}
	return QualityMeasured
}

func (r *Reading[Q]) source() string {
	if len(r.Meters) == 0 {
		return "measured"
	}
	parts := make([]string, len(r.Meters))
	for i, m := range r.Meters {
		parts[i] = "meter " + m.Selector
	}
	return strings.Join(parts, " + ")
}

// completeness returns the lowest completeness of the reading's meters (100 without meters).
func (r *Reading[Q]) completeness() float64 {
	c := 100.0
	for _, m := range r.Meters {
		c = min(c, m.CompletenessPct)
	}
	return c
}

// Month is one calendar month's energy, for the monthly charts and the
// consistency check against the annual sums.
type Month struct {
	Month string `json:"month"` // YYYY-MM
	EDC   KWh    `json:"edc_kwh"`
	EIT   KWh    `json:"eit_kwh"`
}

// EmissionFactor is one grid or residual-mix factor and where it comes from (spec §6.4).
type EmissionFactor struct {
	Source         string       `json:"source"` // e.g. EEA, AIB
	DatasetVersion string       `json:"dataset_version"`
	Year           int          `json:"year"` // the year the factor describes
	Value          KgCO2ePerKWh `json:"value_kg_per_kwh"`
	Gases          string       `json:"gases"`     // CO2 or CO2e
	LCAScope       string       `json:"lca_scope"` // direct or lifecycle
	Zone           string       `json:"zone,omitempty"`
}

// MixShares is the composition of an electricity mix in percent (summing to 100).
type MixShares struct {
	FossilPct    float64 `json:"fossil_pct"`
	NuclearPct   float64 `json:"nuclear_pct"`
	RenewablePct float64 `json:"renewable_pct"`
	Source       string  `json:"source,omitempty"`
}

// Scope 1 source kinds.
const (
	Scope1Fuel        = "fuel"
	Scope1Refrigerant = "refrigerant"
)

// Scope1Source is one direct emission source: a fuel burnt (generator,
// boiler, CHP) or a refrigerant leak (kg topped up).
type Scope1Source struct {
	Kind string `json:"kind"` // fuel or refrigerant
	// Name is the fuel (a key of Options.FuelNCV, e.g. "diesel") or the
	// refrigerant (a key of Options.GWP100, e.g. "R-134a").
	Name     string  `json:"name"`
	Quantity float64 `json:"quantity"`
	Unit     string  `json:"unit"` // L, kg, kWh, m³
	// Factor is kgCO2e per unit; zero takes Options.GWP100 for a refrigerant.
	Factor float64 `json:"factor_kg_per_unit"`
	// Renewable marks a renewable fuel (biodiesel, HVO) for ESRS E1-5.
	Renewable bool   `json:"renewable,omitempty"`
	Source    string `json:"source,omitempty"`
}

// ExternalKPIs are KPI values computed elsewhere (accounting/kpi); the
// report computes its own from the annual sums and warns where they differ.
type ExternalKPIs struct {
	PUE, WUE, ERF, REF, CUELB, CUEMB *float64
}

// Measured holds everything the collectors and the accounting measured or
// computed for one site and period. Nil readings are "no data".
type Measured struct {
	// PeriodStart and PeriodEnd bound the data (end exclusive, UTC); zero
	// means "the report's period".
	PeriodStart, PeriodEnd time.Time

	EDC             *Reading[KWh]         // energy_total_kwh
	EDCBackup       *Reading[KWh]         // energy_backup_gen_kwh
	EIT             *Reading[KWh]         // energy_it_kwh
	OnsiteRenewable *Reading[KWh]         // renewable_onsite_kwh
	HeatReused      *Reading[KWh]         // waste_heat_reused_kwh
	GridImport      *Reading[KWh]         // grid_import_kwh; default EDC − EDC-BG − ERES-OS
	PPA             *Reading[KWh]         // renewable_ppa_kwh when metered
	Water           *Reading[CubicMetres] // water_input_m3
	PotableWater    *Reading[CubicMetres] // water_potable_input_m3
	WasteHeatTemp   *Reading[Celsius]     // waste_heat_temp_avg_c
	IntakeSetpoint  *Reading[Celsius]     // it_intake_setpoint_avg_c
	// CoolingDegreeDays is the external (X) CDD figure.
	CoolingDegreeDays *Reading[float64]

	Monthly []Month

	// LocationFactor is the grid-average factor (location-based Scope 2),
	// ResidualFactor the residual mix (market-based Scope 2 for untracked
	// load), ResidualMix the residual mix's composition (ESRS E1-5).
	LocationFactor *EmissionFactor
	ResidualFactor *EmissionFactor
	ResidualMix    *MixShares

	Scope1 []Scope1Source

	// KPIs computed by accounting/kpi, cross-checked.
	KPIs ExternalKPIs

	// CertificatesElsewhere maps certificate ids to the claims already made
	// with them (by other data centres, or by this one for another year),
	// for the one certificate → one DC → one period rule.
	CertificatesElsewhere map[string]CertificateClaim
}

// CertificateClaim is where a certificate is already allocated.
type CertificateClaim struct {
	DataCentreID string `json:"data_centre_id"`
	Year         int    `json:"year"`
}

// F64 returns a pointer to v, for ExternalKPIs.
func F64(v float64) *float64 { return &v }
