package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/greenloop/greenloop/accounting/emissions"
	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/kpi"
	"github.com/greenloop/greenloop/accounting/quantity"
	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/internal/config"
)

// YearPeriod is the calendar year (UTC) a report covers.
func YearPeriod(year int) (from, to time.Time) {
	return time.Date(year, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(year+1, 1, 1, 0, 0, 0, 0, time.UTC)
}

// ReportMeasured fills the measured part of a site's EU report for a
// calendar year: the meters' annual sums with their completeness, monthly
// facility and IT energy, the purchased grid electricity (see GridImport),
// the effective location-based factor of the year's hourly accounting of
// that electricity, the residual mix, and the KPIs for the report's
// cross-check. Facility and IT meters are required (ErrNoData otherwise);
// what else is missing is left nil and the report says so. Without the
// report's entries, a term of the grid import that is not metered counts as
// zero (EUReport uses the entries).
func (a *Accountant) ReportMeasured(ctx context.Context, site config.Site, year int) (report.Measured, []string, error) {
	d, err := a.reportMeasured(ctx, site, year, report.Inputs{})
	return d.m, d.notes, err
}

// reportData is what reportMeasured found: the measured values, notes, and
// how the grid import was derived (for the report field's source).
type reportData struct {
	m     report.Measured
	notes []string
	grid  *GridImport
}

func (a *Accountant) reportMeasured(ctx context.Context, site config.Site, year int, entries report.Inputs) (reportData, error) {
	from, to := YearPeriod(year)
	d := reportData{m: report.Measured{PeriodStart: from, PeriodEnd: to}}
	m := &d.m
	in, err := a.MeasureInputs(ctx, site, from, to)
	if err != nil {
		return d, err
	}
	if in.Facility.Completeness == 0 && in.Facility.Value == 0 {
		return d, fmt.Errorf("%w: site %q has no facility meter samples in %d", ErrNoData, site.ID, year)
	}
	m.EDC = energyReading(&in.Facility)
	m.EIT = energyReading(&in.IT)
	m.EDCBackup = energyReading(in.BackupGenerators)
	m.OnsiteRenewable = energyReading(in.RenewableOnsite)
	m.HeatReused = energyReading(in.HeatReused)
	m.Water = volumeReading(in.Water)
	m.PotableWater = volumeReading(in.PotableWater)

	monthly := func(keys ...string) (*energy.Result, error) {
		return a.energyOf(ctx, site, energy.Query{From: from, To: to, Buckets: energy.Bucketing{Calendar: energy.Month}, Logger: a.log,
			Selectors: selectors(site, keys...)})
	}
	fac, err1 := monthly(kpi.MeterFacilityEnergy, kpi.MeterFacilityPower)
	it, err2 := monthly(kpi.MeterITEnergy, kpi.MeterITPower)
	if err := errors.Join(err1, err2); err != nil {
		return d, fmt.Errorf("site %q monthly energy: %w", site.ID, err)
	}
	for i := range fac.Buckets {
		mo := report.Month{Month: fac.Buckets[i].Start.UTC().Format("2006-01"), EDC: report.KWh(fac.Buckets[i].Energy.KWh())}
		if i < len(it.Buckets) {
			mo.EIT = report.KWh(it.Buckets[i].Energy.KWh())
		}
		m.Monthly = append(m.Monthly, mo)
	}

	g, err := DeriveGridImport(in, entries)
	if err != nil {
		return d, fmt.Errorf("site %q grid import: %w", site.ID, err)
	}
	d.grid = g
	if g.UseEntry {
		d.notes = append(d.notes, "grid_import_kwh: the entered value is used, as not every term of EDC − EDC-BG − ERES-OS is metered")
	} else {
		m.GridImport = g.Reading()
	}
	d.notes = append(d.notes, g.Notes...)

	tenant := site.SiteTenant()
	if !a.multiTenant {
		tenant = ""
	}
	var loc *Emissions
	if g.HourlyTerms() {
		loc, err = a.gridLocation(ctx, site, from, to)
	} else {
		loc, err = a.Emissions(ctx, tenant, Request{Site: site.ID, From: from, To: to, Method: emissions.LocationBased, Step: time.Hour})
	}
	switch {
	case err == nil:
		m.LocationFactor = effectiveFactor(site, loc, g.HourlyTerms())
	case errors.Is(err, ErrNoIntensity) || errors.Is(err, ErrNoData):
		d.notes = append(d.notes, "location-based factor not available: "+err.Error())
	default:
		return d, err
	}
	if r := ResidualMix(site, from); r != nil {
		m.ResidualFactor = &report.EmissionFactor{Source: r.Source, Year: r.Year, Value: report.KgCO2ePerKWh(r.Intensity.KgPerKWh()),
			Gases: "CO2e", LCAScope: "lifecycle", Zone: site.Zone}
	}
	k, err := a.KPIs(ctx, tenant, site.ID, from, to)
	if err == nil {
		get := func(id string) *float64 {
			if v, ok := k.Result.Get(id); ok {
				return &v.Value
			}
			return nil
		}
		m.KPIs = report.ExternalKPIs{PUE: get("pue"), WUE: get("wue"), ERF: get("erf"), REF: get("ref"), CUELB: get("cue_location"), CUEMB: get("cue_market")}
		d.notes = append(d.notes, k.Notes...)
	} else if !errors.Is(err, ErrNoData) {
		return d, err
	}
	return d, nil
}

// effectiveFactor is the year's location-based emissions over the energy of
// the hours that had an intensity: the energy-weighted mean of the hourly
// grid intensity, which the report multiplies by the purchased electricity.
// gridWeighted says the hours were weighted by the grid import (EDC minus
// the metered generator and on-site renewable energy of each hour) rather
// than by the facility energy.
func effectiveFactor(site config.Site, r *Emissions, gridWeighted bool) *report.EmissionFactor {
	var known quantity.Energy
	var co2 quantity.CO2e
	for _, p := range r.Series {
		if p.IntensityKnown || p.Fallback {
			known += p.Energy
			co2 += p.Emissions
		}
	}
	if known <= 0 {
		return nil
	}
	src := "greenloop hourly location-based accounting"
	if len(r.IntensityProviders) > 0 {
		src += " (" + fmt.Sprint(r.IntensityProviders) + ")"
	}
	version := "hourly, weighted by facility energy"
	if gridWeighted {
		version = "hourly, weighted by grid import (EDC − EDC-BG − ERES-OS per hour)"
	}
	return &report.EmissionFactor{Source: src, DatasetVersion: version, Year: r.From.UTC().Year(),
		Value: report.KgCO2ePerKWh(co2.Kg() / known.KWh()), Gases: "CO2e", LCAScope: "lifecycle", Zone: site.Zone}
}

func energyReading(e *kpi.Energy) *report.Reading[report.KWh] {
	if e == nil {
		return nil
	}
	r := &report.Reading[report.KWh]{Value: report.KWh(e.Value.KWh())}
	for _, s := range e.Meters {
		r.Meters = append(r.Meters, report.Meter{Selector: s, CompletenessPct: 100 * e.Completeness})
	}
	if e.Value > 0 {
		r.EstimatedSharePct = 100 * float64(e.Estimated/e.Value)
	}
	return r
}

func volumeReading(v *kpi.Volume) *report.Reading[report.CubicMetres] {
	if v == nil {
		return nil
	}
	r := &report.Reading[report.CubicMetres]{Value: report.CubicMetres(float64(v.Value / quantity.CubicMetre))}
	for _, s := range v.Meters {
		r.Meters = append(r.Meters, report.Meter{Selector: s, CompletenessPct: 100 * v.Completeness})
	}
	if v.Value > 0 {
		r.EstimatedSharePct = 100 * float64(v.Estimated/v.Value)
	}
	return r
}
