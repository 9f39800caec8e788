package service

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/greenloop/greenloop/accounting/kpi"
	"github.com/greenloop/greenloop/accounting/quantity"
	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/internal/config"
)

// UseReports gives KPIs the EU report's entries: the CUE then adds the
// Scope 1 entered for each report year (scope1_sources), apportioned to the
// period. Call it before serving.
func (a *Accountant) UseReports(svc *report.Service) { a.reports = svc }

// scope1 is a site's direct emissions over [from, to): for each calendar
// year (UTC, the report's) the period overlaps, the Scope 1 of the sources
// entered for that year's report times the share of the year in the period
// (direct emissions are entered per year, not metered). It returns nil and
// a note saying why when any of those years has no complete entry: a CUE
// is then Scope 2 only, and says so, rather than adding part of Scope 1.
func (a *Accountant) scope1(ctx context.Context, site config.Site, from, to time.Time) (*kpi.Emissions, string, error) {
	if a.reports == nil || a.reports.Inputs == nil {
		return nil, "Scope 1 not included in the CUE: no EU report entries on this server", nil
	}
	opts := report.DefaultOptions()
	if a.reports.Options != nil {
		opts = *a.reports.Options
	}
	f, _ := report.DefaultCatalogue().Field(report.FScope1Sources)
	var total float64 // kg
	var missing, used []string
	for y := from.UTC().Year(); y <= to.Add(-time.Nanosecond).UTC().Year(); y++ {
		ys, ye := YearPeriod(y)
		share := float64(minTime(to, ye).Sub(maxTime(from, ys))) / float64(ye.Sub(ys))
		in, err := a.reports.Inputs.Get(ctx, site.SiteTenant(), site.ID, y)
		if err != nil {
			return nil, "", fmt.Errorf("site %q Scope 1 entries of %d: %w", site.ID, y, err)
		}
		e, ok := in.Current(report.FScope1Sources)
		if !ok {
			missing = append(missing, fmt.Sprintf("%d (not entered)", y))
			continue
		}
		v, err := report.ParseValue(f, e.Value)
		if err != nil {
			missing = append(missing, fmt.Sprintf("%d (stored entry invalid: %v)", y, err))
			continue
		}
		l, _ := v.([]report.Scope1Source)
		if v == nil {
			missing = append(missing, fmt.Sprintf("%d (cleared)", y))
			continue
		}
		res := report.Scope1Emissions(l, opts)
		if !res.Complete {
			missing = append(missing, fmt.Sprintf("%d (%s)", y, strings.Join(res.Notes, "; ")))
			continue
		}
		total += res.Tonnes * 1000 * share
		used = append(used, fmt.Sprintf("%d × %.4f", y, share))
	}
	if len(missing) > 0 {
		return nil, fmt.Sprintf("Scope 1 not included in the CUE: %s of %s for %s", report.FScope1Sources, site.ID, strings.Join(missing, ", ")), nil
	}
	return &kpi.Emissions{Value: quantity.CO2e(total * float64(quantity.KilogramCO2e)), Completeness: 1,
		Source: "Scope 1 entered for the EU report (" + report.FScope1Sources + "), year share " + strings.Join(used, ", ")}, "", nil
}
