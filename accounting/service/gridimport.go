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
// their meters (meters backup_generator_energy and renewable_onsite), else
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

// gridLocation computes the location-based emissions of the site's grid
// import hour by hour: each hour's facility energy minus its metered
// back-up generator and on-site renewable energy, times the hour's grid
// intensity. Hourly grid import may be negative where on-site generation
// exceeds the site's draw in an hour; it is kept so that the hours sum to
// the annual EDC − EDC-BG − ERES-OS.
func (a *Accountant) gridLocation(ctx context.Context, site config.Site, from, to time.Time) (*Emissions, error) {
	hourly := func(keys ...string) (*energy.Result, error) {
		return a.energyOf(ctx, site, energy.Query{From: from, To: to, Buckets: energy.Bucketing{Calendar: energy.Hour}, Logger: a.log,
			Selectors: selectors(site, keys...)})
	}
	grid, err := hourly(kpi.MeterFacilityEnergy, kpi.MeterFacilityPower)
	if err != nil {
		return nil, fmt.Errorf("%w: site %q hourly facility energy: %w", ErrNoData, site.ID, err)
	}
	sels := []string{grid.Selector}
	for _, key := range []string{kpi.MeterBackupGenerator, kpi.MeterOnsiteRenewable} {
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
		byStart := make(map[int64]energy.Bucket, len(t.Buckets))
		for _, b := range t.Buckets {
			byStart[b.Start.UnixMilli()] = b
		}
		for i := range grid.Buckets {
			b := &grid.Buckets[i]
			if tb, ok := byStart[b.Start.UnixMilli()]; ok {
				b.Energy -= tb.Energy
				b.Estimated += tb.Estimated
				b.Completeness = min(b.Completeness, tb.Completeness)
			}
		}
		grid.Total -= t.Total
		sels = append(sels, "− "+t.Selector)
	}
	grid.Selector = strings.Join(sels, " ")
	res, provs, err := a.location(ctx, site, grid, nil)
	if err != nil {
		return nil, err
	}
	return &Emissions{Result: res, Source: SourceFacility, EnergySelector: grid.Selector, IntensityProviders: provs}, nil
}
