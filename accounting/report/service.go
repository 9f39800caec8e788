package report

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/greenloop/greenloop/internal/config"
)

// Service ties the stores to Build and Freeze, for the HTTP API and the CLI:
// preview a report, freeze it into a snapshot, export snapshots.
type Service struct {
	Inputs    InputStore
	Snapshots SnapshotStore
	// Options; nil is DefaultOptions().
	Options *Options
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	Log *slog.Logger
}

func (s *Service) now() time.Time {
	if s.Now == nil {
		return time.Now()
	}
	return s.Now()
}

func (s *Service) log() *slog.Logger {
	if s.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Log
}

// Preview builds the report of a site and year from its stored entries and
// the measured values. Certificates entered for the site's other years and
// for otherSites (the tenant's other data centres) in the years around it
// count as claimed elsewhere, added to m.CertificatesElsewhere.
func (s *Service) Preview(ctx context.Context, tenant string, site config.Site, year int, m Measured, otherSites []string) (*Report, error) {
	in, err := s.Inputs.Get(ctx, tenant, site.ID, year)
	if err != nil {
		return nil, fmt.Errorf("preview %s/%d: %w", site.ID, year, err)
	}
	claims, err := CertificateClaims(ctx, s.Inputs, tenant, append([]string{site.ID}, otherSites...), []int{year - 2, year - 1, year, year + 1, year + 2})
	if err != nil {
		return nil, fmt.Errorf("preview %s/%d: %w", site.ID, year, err)
	}
	merged := make(map[string]CertificateClaim, len(claims)+len(m.CertificatesElsewhere))
	for id, cs := range claims {
		for _, c := range cs {
			if c.DataCentreID != site.ID || c.Year != year {
				merged[id] = c
				break
			}
		}
	}
	for id, c := range m.CertificatesElsewhere {
		merged[id] = c
	}
	m.CertificatesElsewhere = merged
	return Build(Request{Tenant: tenant, Site: site, Year: year, Measured: m, Inputs: in, Options: s.Options, Now: s.now()})
}

// Freeze previews the report and stores it as a snapshot: final, or draft
// when draft is set. A final freeze of a report with blocking errors fails
// with ErrBlocking (the preview is still returned).
func (s *Service) Freeze(ctx context.Context, tenant string, site config.Site, year int, m Measured, otherSites []string, draft bool, by string) (Snapshot, *Report, error) {
	r, err := s.Preview(ctx, tenant, site, year, m, otherSites)
	if err != nil {
		return Snapshot{}, nil, err
	}
	snap, err := Freeze(tenant, r, FreezeOptions{Draft: draft, By: by, Now: s.now()})
	if err != nil {
		return Snapshot{}, r, err
	}
	if err := s.Snapshots.Save(ctx, snap); err != nil {
		return Snapshot{}, r, err
	}
	s.log().InfoContext(ctx, "report frozen", "tenant", snap.Tenant, "site", site.ID, "year", year, "id", snap.ID, "status", snap.Status, "sha256", snap.SHA256)
	return snap, r, nil
}

// CertificateClaims maps every certificate id in the contractual
// instruments entered for the given sites and years to its claim (the
// beneficiary data centre and the year it was entered for), in site and
// year order; a certificate with more than one claim is a double claim.
func CertificateClaims(ctx context.Context, store InputStore, tenant string, sites []string, years []int) (map[string][]CertificateClaim, error) {
	out := map[string][]CertificateClaim{}
	f, _ := DefaultCatalogue().Field(FInstruments)
	ys := slices.Sorted(slices.Values(years))
	for _, site := range sites {
		for _, y := range ys {
			in, err := store.Get(ctx, tenant, site, y)
			if err != nil {
				return nil, fmt.Errorf("certificate claims of %s/%d: %w", site, y, err)
			}
			e, ok := in.Current(FInstruments)
			if !ok {
				continue
			}
			v, err := ParseValue(f, e.Value)
			if err != nil {
				continue // reported when that site's report is built
			}
			l, _ := v.([]Instrument)
			for _, ins := range l {
				for _, id := range ins.CertIDs {
					out[id] = append(out[id], CertificateClaim{DataCentreID: ins.BeneficiaryDCID, Year: y})
				}
			}
		}
	}
	return out, nil
}

// Validate checks the options.
func (o Options) Validate() error {
	var errs []error
	if o.CompletenessMinPct < 0 || o.CompletenessMinPct > 100 {
		errs = append(errs, fmt.Errorf("completeness_min_pct %v: want 0–100", o.CompletenessMinPct))
	}
	if o.PUEWarnMin < 1 || o.PUEWarnMax <= o.PUEWarnMin {
		errs = append(errs, fmt.Errorf("pue_warn_min %v / pue_warn_max %v: want 1 <= min < max", o.PUEWarnMin, o.PUEWarnMax))
	}
	if o.ResidualRenewableAs != "fossil" && o.ResidualRenewableAs != "renewable" {
		errs = append(errs, fmt.Errorf("residual_renewable_as %q: want fossil or renewable", o.ResidualRenewableAs))
	}
	for _, t := range o.PPATypesForERESPPA {
		if !containsStr(instrumentTypes, t) {
			errs = append(errs, fmt.Errorf("ppa_types_for_eres_ppa: unknown instrument type %q", t))
		}
	}
	for k, v := range o.FuelNCV {
		if !(v > 0) {
			errs = append(errs, fmt.Errorf("fuel_ncv_kwh_per_unit[%s] %v: want > 0", k, v))
		}
	}
	for k, v := range o.GWP100 {
		if !(v >= 0) {
			errs = append(errs, fmt.Errorf("gwp100[%s] %v: want >= 0", k, v))
		}
	}
	for _, x := range []struct {
		name string
		v    float64
	}{{"kpi_tolerance", o.KPITolerance}, {"monthly_tolerance", o.MonthlyTolerance}, {"sum_tolerance", o.SumTolerance}} {
		if !(x.v >= 0) {
			errs = append(errs, fmt.Errorf("%s %v: want >= 0", x.name, x.v))
		}
	}
	return errors.Join(errs...)
}
