// Package kpi computes a data centre's efficiency indicators per ISO/IEC
// 30134 and Delegated Regulation (EU) 2024/1364 Annex III — PUE, WUE, ERF,
// REF, CUE (location- and market-based) and CER — as ratios of sums over the
// same period, never as means of instantaneous ratios, each with its
// category, meters, completeness and estimated share, and checks the
// report's validation rules.
package kpi

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/quantity"
)

// ITMeterPoint is where the IT energy (EIT) is metered; it sets the PUE category.
type ITMeterPoint string

// IT metering points (ISO/IEC 30134-2, EN 50600-4-2; DR 2024/1364 Annex II 1(e)).
const (
	// UPSOutput: combined output of every UPS feeding IT — PUE category 1, the DR's default.
	UPSOutput ITMeterPoint = "ups"
	// PDUOutput: output of the power distribution units — PUE category 2.
	PDUOutput ITMeterPoint = "pdu"
	// ITInput: input of the IT equipment itself — PUE category 3.
	ITInput ITMeterPoint = "it_input"
	// CustomPoint: an operator-specified point (DR: no UPS); no ISO category.
	CustomPoint ITMeterPoint = "custom"
)

// Category returns the PUE category of the metering point: "PUE1", "PUE2",
// "PUE3", or "" for CustomPoint.
func (p ITMeterPoint) Category() (string, error) {
	switch p {
	case UPSOutput:
		return "PUE1", nil
	case PDUOutput:
		return "PUE2", nil
	case ITInput:
		return "PUE3", nil
	case CustomPoint:
		return "", nil
	}
	return "", fmt.Errorf("unknown IT meter point %q (want ups, pdu, it_input or custom)", string(p))
}

// Energy is one energy input: a measured sum (or an operator-entered figure).
type Energy struct {
	Value quantity.Energy
	// Completeness is the share of the period its meters covered, 0 to 1.
	Completeness float64
	// Estimated is the part of Value that was estimated (gap-filled).
	Estimated quantity.Energy
	// Meters names the meters (selectors or ids) it comes from.
	Meters []string
}

// EnergyOf takes an energy figure from a computed energy result; meters
// default to the selector used.
func EnergyOf(r *energy.Result, meters ...string) Energy {
	if len(meters) == 0 {
		meters = []string{r.Selector}
	}
	return Energy{Value: r.Total, Completeness: r.Completeness, Estimated: r.Estimated, Meters: meters}
}

// Volume is one water input.
type Volume struct {
	Value        quantity.Volume
	Completeness float64
	Estimated    quantity.Volume
	Meters       []string
}

// VolumeOf takes a volume figure from a computed volume result.
func VolumeOf(r *energy.VolumeResult, meters ...string) Volume {
	if len(meters) == 0 {
		meters = []string{r.Selector}
	}
	return Volume{Value: r.Total, Completeness: r.Completeness, Estimated: r.Estimated, Meters: meters}
}

// Emissions is one CO2e input, with the completeness of its computation.
type Emissions struct {
	Value        quantity.CO2e
	Completeness float64
	Source       string
}

// Inputs are a data centre's sums over one period. Optional inputs are
// pointers: a KPI whose input is nil is not computed (a zero input, such as
// no heat reused, gives a KPI of zero).
type Inputs struct {
	From, To time.Time
	// ReportingYear, when set, is the year the report is filed in: the
	// period must then be the previous calendar year in Location, unless
	// PartialYear (a data centre in operation less than a year).
	ReportingYear int
	PartialYear   bool
	Location      *time.Location

	// Facility is the total energy consumption EDC (before the supply transfer switchgear, all carriers).
	Facility Energy
	// BackupGenerators is EDC-BG, the part of EDC from back-up generators.
	BackupGenerators *Energy
	// IT is EIT, metered at ITMeterPoint.
	IT           Energy
	ITMeterPoint ITMeterPoint
	// InstalledITPower is PDIT, for the plausibility check of the mean IT load.
	InstalledITPower quantity.Power

	// Water is the total water input WIN, of WUECategory (1 potable, 2 all input; DR Annex II 1(h)).
	Water       *Volume
	WUECategory int
	// PotableWater is WIN-POT.
	PotableWater *Volume
	// HeatReused is EREUSE, heat reused outside the data centre boundary.
	HeatReused *Energy
	// Renewable sources (ERES-GOO, ERES-PPA, ERES-OS); REF needs at least one.
	RenewableGO, RenewablePPA, RenewableOnsite *Energy
	// Cooling is the (electric) energy of the cooling system; HeatRemoved the
	// heat it removed in the same period. CER needs both.
	Cooling, HeatRemoved *Energy

	// Scope1 and the Scope 2 figures give CUE: (Scope 1 + Scope 2) / EIT.
	Scope1         *Emissions
	Scope2Location *Emissions
	Scope2Market   *Emissions
	// FactorYear is the year of the emission-factor datasets used; a year
	// other than the period's is a warning.
	FactorYear int
}

// KPI is one indicator over a period.
type KPI struct {
	// ID is "pue", "wue", "erf", "ref", "cue_location", "cue_market" or "cer".
	ID      string  `json:"id"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Formula string  `json:"formula"`
	// Category is e.g. "PUE1", "WUE2", "location", "market"; empty when none applies.
	Category          string    `json:"category,omitempty"`
	From              time.Time `json:"period_start"`
	To                time.Time `json:"period_end"`
	Meters            []string  `json:"meter_ids"`
	CompletenessPct   float64   `json:"completeness_pct"`
	EstimatedSharePct float64   `json:"estimated_share_pct"`
}

// Severity of a validation issue.
type Severity string

// Severities (spec §8).
const (
	Blocking Severity = "blocking"
	Warning  Severity = "warning"
)

// Issue is one validation finding.
type Issue struct {
	Severity Severity `json:"severity"`
	Field    string   `json:"field"`
	Message  string   `json:"message"`
}

func (i Issue) Error() string { return i.Field + ": " + i.Message }

// Result holds the KPIs that could be computed and the validation issues.
type Result struct {
	KPIs   []KPI
	Issues []Issue
	// ERESTotal is ERES-TOT = GOO + PPA + OS.
	ERESTotal quantity.Energy
	// MeanITLoad is EIT over the period's duration.
	MeanITLoad quantity.Power
}

// MarshalJSON writes {"kpis","issues","eres_total_kwh","mean_it_load_kw"}.
func (r *Result) MarshalJSON() ([]byte, error) {
	kpis := r.KPIs
	if kpis == nil {
		kpis = []KPI{}
	}
	return json.Marshal(struct {
		KPIs       []KPI   `json:"kpis"`
		Issues     []Issue `json:"issues,omitempty"`
		ERESTotal  float64 `json:"eres_total_kwh"`
		MeanITLoad float64 `json:"mean_it_load_kw"`
	}{kpis, r.Issues, r.ERESTotal.KWh(), r.MeanITLoad.KW()})
}

// Get returns the KPI with id.
func (r *Result) Get(id string) (KPI, bool) {
	for _, k := range r.KPIs {
		if k.ID == id {
			return k, true
		}
	}
	return KPI{}, false
}

// Blocking returns the blocking issues joined, or nil.
func (r *Result) Blocking() error {
	var errs []error
	for _, i := range r.Issues {
		if i.Severity == Blocking {
			errs = append(errs, i)
		}
	}
	return errors.Join(errs...)
}

// Thresholds of the warnings (spec §8).
const (
	MinPlausiblePUE     = 1.05
	MaxPlausiblePUE     = 3.0
	MinCompleteness     = 0.95
	MinReportableITLoad = 500 * quantity.Kilowatt
)

type share struct {
	completeness float64
	estimated    float64 // share of the value
	meters       []string
}

func energyShare(e Energy) share {
	s := share{completeness: e.Completeness, meters: e.Meters}
	if e.Value != 0 {
		s.estimated = float64(e.Estimated / e.Value)
	}
	return s
}

func volumeShare(v Volume) share {
	s := share{completeness: v.Completeness, meters: v.Meters}
	if v.Value != 0 {
		s.estimated = float64(v.Estimated / v.Value)
	}
	return s
}

func emissionsShare(e Emissions) share {
	s := share{completeness: e.Completeness}
	if e.Source != "" {
		s.meters = []string{e.Source}
	}
	return s
}

// Compute computes every KPI its inputs allow and validates the inputs. A
// ratio whose denominator is not positive is left out (and reported).
func Compute(in Inputs) *Result {
	r := &Result{}
	issue := func(sev Severity, field, format string, a ...any) {
		r.Issues = append(r.Issues, Issue{Severity: sev, Field: field, Message: fmt.Sprintf(format, a...)})
	}
	add := func(id, unit, formula, category string, num, den float64, parts ...share) {
		k := KPI{ID: id, Value: num / den, Unit: unit, Formula: formula, Category: category, From: in.From, To: in.To,
			Meters: []string{}, CompletenessPct: 100}
		for _, p := range parts {
			k.CompletenessPct = math.Min(k.CompletenessPct, 100*p.completeness)
			k.EstimatedSharePct = math.Max(k.EstimatedSharePct, 100*p.estimated)
			for _, m := range p.meters {
				if !slices.Contains(k.Meters, m) {
					k.Meters = append(k.Meters, m)
				}
			}
		}
		r.KPIs = append(r.KPIs, k)
	}
	edc, eit := in.Facility.Value, in.IT.Value
	fac, it := energyShare(in.Facility), energyShare(in.IT)

	// Blocking rules.
	if !(eit > 0) {
		issue(Blocking, "energy_it_kwh", "EIT must be positive, got %s", eit)
	}
	if edc < eit {
		issue(Blocking, "energy_total_kwh", "EDC %s is less than EIT %s", edc, eit)
	}
	if bg := in.BackupGenerators; bg != nil && bg.Value > edc {
		issue(Blocking, "energy_backup_gen_kwh", "EDC-BG %s exceeds EDC %s", bg.Value, edc)
	}
	if in.Water != nil && in.PotableWater != nil && in.PotableWater.Value > in.Water.Value {
		issue(Blocking, "water_potable_input_m3", "WIN-POT %g m³ exceeds WIN %g m³", in.PotableWater.Value.CubicMetres(), in.Water.Value.CubicMetres())
	}
	if !in.To.After(in.From) {
		issue(Blocking, "period_end", "period end %s is not after its start %s", in.To.Format(time.RFC3339), in.From.Format(time.RFC3339))
	}
	if in.ReportingYear != 0 {
		loc := in.Location
		if loc == nil {
			loc = time.UTC
		}
		ys := time.Date(in.ReportingYear-1, 1, 1, 0, 0, 0, 0, loc)
		ye := time.Date(in.ReportingYear, 1, 1, 0, 0, 0, 0, loc)
		switch {
		case in.PartialYear && (in.From.Before(ys) || in.To.After(ye)):
			issue(Blocking, "period_start", "a partial year must lie within %d", in.ReportingYear-1)
		case !in.PartialYear && (!in.From.Equal(ys) || !in.To.Equal(ye)):
			issue(Blocking, "period_start", "period must be the calendar year %d (or set partial_year)", in.ReportingYear-1)
		}
	}

	pueCat, err := in.ITMeterPoint.Category()
	if err != nil {
		issue(Blocking, "energy_it_meter_basis", "%v", err)
	}
	if !(eit > 0) {
		return r
	}

	// PUE = EDC / EIT.
	pue := float64(edc / eit)
	add("pue", "", "EDC / EIT", pueCat, float64(edc), float64(eit), fac, it)
	if pue < MinPlausiblePUE || pue > MaxPlausiblePUE {
		issue(Warning, "pue", "PUE %.3f is outside the plausible range [%g, %g]", pue, MinPlausiblePUE, MaxPlausiblePUE)
	}

	// WUE = WIN / EIT, with EIT in MWh: m³/MWh = L/kWh.
	if w := in.Water; w != nil {
		cat := ""
		switch in.WUECategory {
		case 0:
		case 1, 2:
			cat = fmt.Sprintf("WUE%d", in.WUECategory)
		default:
			issue(Blocking, "wue_category", "want 1 or 2, got %d", in.WUECategory)
		}
		add("wue", "L/kWh", "WIN / EIT", cat, w.Value.Litres(), eit.KWh(), volumeShare(*w), it)
	}

	if edc > 0 {
		// ERF = EREUSE / EDC.
		if h := in.HeatReused; h != nil {
			erf := float64(h.Value / edc)
			add("erf", "", "EREUSE / EDC", "", float64(h.Value), float64(edc), energyShare(*h), fac)
			if erf < 0 || erf > 1 {
				issue(Blocking, "erf", "ERF %.3f is outside [0, 1]", erf)
			}
		}
		// REF = ERES-TOT / EDC, ERES-TOT = GOO + PPA + OS.
		var parts []share
		have := false
		for _, e := range []*Energy{in.RenewableGO, in.RenewablePPA, in.RenewableOnsite} {
			if e != nil {
				have = true
				r.ERESTotal += e.Value
				parts = append(parts, energyShare(*e))
			}
		}
		if have {
			ref := float64(r.ERESTotal / edc)
			add("ref", "", "(ERES-GOO + ERES-PPA + ERES-OS) / EDC", "", float64(r.ERESTotal), float64(edc), append(parts, fac)...)
			if ref > 1 {
				issue(Warning, "ref", "REF %.3f exceeds 1", ref)
			}
		}
	}

	// CUE = (Scope 1 + Scope 2) / EIT, kgCO2e/kWh.
	for _, v := range []struct {
		id, cat string
		s2      *Emissions
	}{{"cue_location", "location", in.Scope2Location}, {"cue_market", "market", in.Scope2Market}} {
		if v.s2 == nil {
			continue
		}
		total := v.s2.Value
		parts := []share{emissionsShare(*v.s2), it}
		if in.Scope1 != nil {
			total += in.Scope1.Value
			parts = append(parts, emissionsShare(*in.Scope1))
		}
		add(v.id, "kgCO2e/kWh", "(Scope 1 + Scope 2) / EIT", v.cat, total.Kg(), eit.KWh(), parts...)
	}

	// CER = Q_removed / E_cooling.
	if in.Cooling != nil && in.HeatRemoved != nil {
		if in.Cooling.Value > 0 {
			add("cer", "", "Q_removed / E_cooling", "", float64(in.HeatRemoved.Value), float64(in.Cooling.Value), energyShare(*in.HeatRemoved), energyShare(*in.Cooling))
		} else {
			issue(Warning, "cer", "cooling energy is not positive; CER not computed")
		}
	}

	// Warnings.
	if d := in.To.Sub(in.From); d > 0 {
		r.MeanITLoad = eit.Over(d)
		if in.InstalledITPower > 0 && r.MeanITLoad > in.InstalledITPower {
			issue(Warning, "pd_it_kw", "mean IT load %s exceeds the installed IT power demand %s", r.MeanITLoad, in.InstalledITPower)
		}
	}
	if in.InstalledITPower > 0 && in.InstalledITPower < MinReportableITLoad {
		issue(Warning, "pd_it_kw", "installed IT power demand %s is below %s: outside the reporting obligation", in.InstalledITPower, MinReportableITLoad)
	}
	for _, k := range r.KPIs {
		if k.CompletenessPct < 100*MinCompleteness {
			issue(Warning, k.ID, "meter completeness %.1f %% is below %g %%", k.CompletenessPct, 100*MinCompleteness)
		}
	}
	if in.FactorYear != 0 && in.FactorYear != in.From.Year() {
		issue(Warning, "emission_factor_year", "emission factors are for %d, the period is %d", in.FactorYear, in.From.Year())
	}
	return r
}

// Weighted is one data centre's KPI value and its EDC, for Aggregate.
type Weighted struct {
	Value float64
	EDC   quantity.Energy
}

// Aggregate returns the EDC-weighted mean Σ(KPI_i·EDC_i) / Σ EDC_i (DR Annex IV),
// and NaN when the total EDC is zero.
func Aggregate(ws []Weighted) float64 {
	var num, den float64
	for _, w := range ws {
		num += w.Value * float64(w.EDC)
		den += float64(w.EDC)
	}
	return quantity.Ratio(num, den)
}
