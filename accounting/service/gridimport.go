package service

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/kpi"
	"github.com/greenloop/greenloop/accounting/quantity"
	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/internal/config"
)

// GridTerm is one term of the grid import: EDC, EDC-BG or ERES-OS.
type GridTerm struct {
	// Field is the report field of the term (energy_total_kwh, ...).
	Field string
	KWh   float64
	// Metered: the value comes from the site's meters; otherwise from the
	// report's entry (Entered) or taken as zero (neither).
	Metered, Entered bool
	// EstimatedKWh is the gap-filled part of a metered value, Completeness
	// the share of the period its meters cover (0 to 1).
	EstimatedKWh float64
	Completeness float64
	// Source says where the value comes from ("meter <selector>", "entered
	// by ...", "not metered, not entered: taken as 0").
	Source string
	Meters []string
}

// GridImport is the purchased grid electricity of a site's year, the
// energy Scope 2 (ESRS E1-6) prices: EDC − EDC-BG − ERES-OS (spec §5:
// back-up generator energy and on-site renewable generation are part of
// EDC, metered inside the data-centre boundary, and not purchased).
type GridImport struct {
	KWh   float64
	Terms []GridTerm // EDC, EDC-BG, ERES-OS
	// UseEntry: not every term is metered and the officer entered
	// grid_import_kwh, so the entry is kept (a measured value would replace it).
	UseEntry bool
	Notes    []string
}

// Measured reports whether every term is metered.
func (g *GridImport) Measured() bool {
	for _, t := range g.Terms {
		if !t.Metered {
			return false
		}
	}
	return true
}

// HourlyTerms reports whether a term other than EDC is metered, so the
// grid import has an hourly profile of its own.
func (g *GridImport) HourlyTerms() bool {
	for _, t := range g.Terms[1:] {
		if t.Metered {
			return true
		}
	}
	return false
}

// Quality is measured when every term is metered (without gap-filled
// energy), else estimated.
func (g *GridImport) Quality() report.Quality {
	if g.Measured() && g.estimatedKWh() == 0 {
		return report.QualityMeasured
	}
	return report.QualityEstimated
}

func (g *GridImport) estimatedKWh() float64 {
	var e float64
	for _, t := range g.Terms {
		e += t.EstimatedKWh
	}
	return e
}

// Source describes the derivation term by term.
func (g *GridImport) Source() string {
	parts := make([]string, len(g.Terms))
	for i, t := range g.Terms {
		parts[i] = fmt.Sprintf("%s %s", t.Field, t.Source)
	}
	return "derived: EDC − EDC-BG − ERES-OS; " + strings.Join(parts, "; ")
}

// Reading returns the grid import as the report's measured reading. It
// lists no meters: the terms' own fields carry their meters and
// completeness warnings, and Source names them. Its estimated share is the
// gap-filled energy of the meters plus the terms that are not metered
// (entered, or taken as zero), over the result; a figure resting on an
// unmetered term is estimated whatever that share, and EUReport sets the
// field's quality and source from Quality and Source.
func (g *GridImport) Reading() *report.Reading[report.KWh] {
	r := &report.Reading[report.KWh]{Value: report.KWh(g.KWh)}
	est := g.estimatedKWh()
	for _, t := range g.Terms {
		if !t.Metered {
			est += math.Abs(t.KWh)
		}
	}
	if g.KWh > 0 {
		r.EstimatedSharePct = min(100, 100*est/g.KWh)
	}
	return r
}

// DeriveGridImport computes the grid import from the metered inputs and the
// report's entries. EDC is the facility meter. EDC-BG and ERES-OS come from
// their meters (meters backup_generator_energy and renewable_onsite: the
// generation consumed on site, as MeasureInputs gives it, so that the
// result is the hourly grid import Emissions prices, see HourlyGrid), else
// from the officer's entries of energy_backup_gen_kwh and
// renewable_onsite_kwh, else count as zero (no generator, no on-site plant),
// which the source says. When a term is not metered and grid_import_kwh is
// entered (e.g. from the supplier's invoices), UseEntry is set.
func DeriveGridImport(in kpi.Inputs, entries report.Inputs) (*GridImport, error) {
	cat := report.DefaultCatalogue()
	g := &GridImport{}
	term := func(field string, e *kpi.Energy) (GridTerm, error) {
		t := GridTerm{Field: field}
		if e != nil {
			t.KWh, t.Metered, t.EstimatedKWh, t.Completeness, t.Meters = e.Value.KWh(), true, e.Estimated.KWh(), e.Completeness, e.Meters
			ms := make([]string, len(e.Meters))
			for i, s := range e.Meters {
				ms[i] = "meter " + s
			}
			t.Source = strings.Join(ms, " + ")
			return t, nil
		}
		if en, ok := entries.Current(field); ok && len(en.Value) > 0 {
			f, _ := cat.Field(field)
			v, err := report.ParseValue(f, en.Value)
			if err != nil {
				return t, err
			}
			if x, ok := v.(float64); ok {
				t.KWh, t.Entered = x, true
				t.Source = fmt.Sprintf("%s by %s at %s (not metered)", en.Quality, en.By, en.At.UTC().Format(time.RFC3339))
				return t, nil
			}
		}
		t.Source = "not metered, not entered: taken as 0"
		return t, nil
	}
	fac := in.Facility
	edc, _ := term(report.FEDC, &fac)
	bg, err1 := term(report.FEDCBG, in.BackupGenerators)
	os, err2 := term(report.FERESOS, in.RenewableOnsite)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	g.Terms = []GridTerm{edc, bg, os}
	g.KWh = edc.KWh - bg.KWh - os.KWh
	for _, t := range g.Terms[1:] {
		if !t.Metered && !t.Entered {
			g.Notes = append(g.Notes, fmt.Sprintf("grid_import_kwh: %s is neither metered nor entered and is taken as 0", t.Field))
		}
	}
	if en, ok := entries.Current(report.FGridImport); ok && len(en.Value) > 0 && !g.Measured() {
		g.UseEntry = true
	}
	return g, nil
}

// HourlyGrid is a site's purchased grid electricity hour by hour: each
// hour's facility energy minus the metered back-up generator and on-site
// renewable energy of that hour, clamped at zero.
//
// Clamping follows the GHG Protocol Scope 2 Guidance and ESRS E1 AR 32(f):
// Scope 2 prices the electricity the site buys and consumes; on-site
// generation above the site's draw in an hour (exported, or a meter error)
// is not consumption, earns no negative emissions and is not carried over
// to other hours. It is reported as Surplus instead. The generation the site
// did consume (GeneratorUsed, RenewableUsed: each source's share of the
// hour's generation, times the part of it the site used) is what EDC-BG and
// ERES-OS count, so the hours sum to EDC − EDC-BG − ERES-OS exactly.
type HourlyGrid struct {
	// Import is the grid import in hourly buckets; its Selector names the
	// facility meter minus the generation meters.
	Import *energy.Result
	// Facility is the facility energy (EDC) of the period.
	Facility quantity.Energy
	// Generator and Renewable are the metered back-up generator and
	// on-site renewable energy; GeneratorUsed and RenewableUsed the parts
	// of them consumed on site.
	Generator, Renewable         quantity.Energy
	GeneratorUsed, RenewableUsed quantity.Energy
	// Surplus is the generation above the facility energy, summed over the
	// hours where there was some (SurplusHours, the first of them in
	// FirstSurplus).
	Surplus      quantity.Energy
	SurplusHours int
	FirstSurplus time.Time
	// Meters are the generation meters' selectors.
	Meters []string
}

// OnsiteUsed is the on-site generation consumed on site.
func (g *HourlyGrid) OnsiteUsed() quantity.Energy { return g.GeneratorUsed + g.RenewableUsed }

// SurplusNote says, when there was a surplus, how much, when and how it was
// treated; "" otherwise.
func (g *HourlyGrid) SurplusNote() string {
	if g.SurplusHours == 0 {
		return ""
	}
	return fmt.Sprintf("on-site generation (%s) exceeded the facility energy in %d hour(s), first %s: the grid import of those hours is taken as 0, "+
		"and the surplus %s (exported, or a meter error) is reported as onsite_surplus_kwh, never as negative emissions",
		strings.Join(g.Meters, " + "), g.SurplusHours, g.FirstSurplus.UTC().Format(time.RFC3339), g.Surplus)
}

// hourlyGrid reads the site's hourly grid import over [from, to). It
// returns nil, nil when the site has no generation meter with series (no
// configured backup_generator_energy or renewable_onsite selector, or none
// of their series exist), so the facility energy is the grid import; and
// an error wrapping energy.ErrNoSeries when the facility meter has none.
func (a *Accountant) hourlyGrid(ctx context.Context, site config.Site, from, to time.Time) (*HourlyGrid, error) {
	hourly := func(keys ...string) (*energy.Result, error) {
		return a.energyOf(ctx, site, energy.Query{From: from, To: to, Buckets: energy.Bucketing{Calendar: energy.Hour}, Logger: a.log,
			Selectors: selectors(site, keys...)})
	}
	var gens [2]*energy.Result // generator, renewable
	for i, key := range []string{kpi.MeterBackupGenerator, kpi.MeterOnsiteRenewable} {
		if len(selectors(site, key)) == 0 {
			continue
		}
		t, err := hourly(key)
		if errors.Is(err, energy.ErrNoSeries) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("site %q hourly %s: %w", site.ID, key, err)
		}
		gens[i] = t
	}
	if gens[0] == nil && gens[1] == nil {
		return nil, nil
	}
	fac, err := hourly(kpi.MeterFacilityEnergy, kpi.MeterFacilityPower)
	if err != nil {
		return nil, fmt.Errorf("site %q hourly facility energy: %w", site.ID, err)
	}
	g := &HourlyGrid{Facility: fac.Total}
	sels := []string{fac.Selector}
	var byStart [2]map[int64]energy.Bucket
	for i, t := range gens {
		if t == nil {
			continue
		}
		byStart[i] = make(map[int64]energy.Bucket, len(t.Buckets))
		for _, b := range t.Buckets {
			byStart[i][b.Start.UnixMilli()] = b
		}
		sels = append(sels, "− "+t.Selector)
		g.Meters = append(g.Meters, t.Selector)
		fac.Completeness = min(fac.Completeness, t.Completeness)
		fac.Estimated += t.Estimated
	}
	fac.Total = 0
	for i := range fac.Buckets {
		b := &fac.Buckets[i]
		var gen [2]quantity.Energy
		for k := range gens {
			tb, ok := byStart[k][b.Start.UnixMilli()]
			if !ok {
				continue
			}
			gen[k] = max(tb.Energy, 0)
			b.Estimated += tb.Estimated
			b.Completeness = min(b.Completeness, tb.Completeness)
		}
		g.Generator += gen[0]
		g.Renewable += gen[1]
		total, draw := gen[0]+gen[1], max(b.Energy, 0)
		used := 1.0 // the share of the hour's generation consumed on site
		if total > draw {
			used = float64(draw / total)
			g.Surplus += total - draw
			if g.SurplusHours == 0 {
				g.FirstSurplus = b.Start
			}
			g.SurplusHours++
		}
		g.GeneratorUsed += gen[0] * quantity.Energy(used)
		g.RenewableUsed += gen[1] * quantity.Energy(used)
		b.Energy = max(draw-total, 0)
		b.Estimated = min(b.Estimated, b.Energy)
		fac.Total += b.Energy
	}
	fac.Estimated = min(fac.Estimated, fac.Total)
	fac.Selector = strings.Join(sels, " ")
	g.Import = fac
	return g, nil
}

// gridLocation computes the location-based emissions of the site's grid
// import hour by hour (see HourlyGrid): the figure the report's
// location-based factor comes from, equal to /api/v1/emissions'.
func (a *Accountant) gridLocation(ctx context.Context, site config.Site, from, to time.Time) (*Emissions, error) {
	g, err := a.hourlyGrid(ctx, site, from, to)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNoData, err)
	}
	if g == nil {
		return nil, fmt.Errorf("%w: site %q: no generation meter has series between %s and %s", ErrNoData, site.ID,
			from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
	}
	res, provs, err := a.location(ctx, site, g.Import, nil)
	if err != nil {
		return nil, err
	}
	out := &Emissions{Result: res, Source: SourceGridImport, EnergySelector: g.Import.Selector, IntensityProviders: provs, Grid: g}
	if n := g.SurplusNote(); n != "" {
		res.Warnings = append(res.Warnings, n)
	}
	return out, nil
}
