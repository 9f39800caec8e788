package service

import (
	"context"
	"io"
	"log/slog"
	"time"

	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/internal/config"
)

// EUReport previews a site's EU data-centre report for a calendar year
// (measured values from the store, entries from svc.Inputs, completed from
// the site configuration) and exports it to w in format f. The API and
// `greenloop report eu` both call it.
//
// From the configuration the report takes the contractual instruments
// (sites[].instruments overlapping the year, pro rata, quality entered,
// unless instruments are entered for the report: entries win, with a
// warning; a certificate both entered and configured is a blocking error),
// and the purchased grid electricity EDC − EDC-BG − ERES-OS (measured when
// every term is metered, estimated otherwise; see DeriveGridImport), whose
// location-based Scope 2 factor comes from the hourly accounting.
func (a *Accountant) EUReport(ctx context.Context, svc *report.Service, tenant, siteID string, year int, f report.Format, w io.Writer) (*report.Report, error) {
	r, _, err := a.previewEUReport(ctx, svc, tenant, siteID, year)
	if err != nil {
		return nil, err
	}
	if err := report.Export(w, r, f, report.ExportMeta{}); err != nil {
		return nil, err
	}
	return r, nil
}

// FreezeEUReport builds a site's EU report as EUReport does and freezes it as
// a snapshot (final, or draft when draft is set) with its content hash. A
// final freeze of a report with blocking validation errors fails with
// report.ErrBlocking and stores nothing; the report is returned either way.
func (a *Accountant) FreezeEUReport(ctx context.Context, svc *report.Service, tenant, siteID string, year int, draft bool, by string) (report.Snapshot, *report.Report, error) {
	r, site, err := a.previewEUReport(ctx, svc, tenant, siteID, year)
	if err != nil {
		return report.Snapshot{}, nil, err
	}
	snap, err := report.Freeze(site.SiteTenant(), r, report.FreezeOptions{Draft: draft, By: by, Now: serviceNow(svc)})
	if err != nil {
		return report.Snapshot{}, r, err
	}
	if err := svc.Snapshots.Save(ctx, snap); err != nil {
		return report.Snapshot{}, r, err
	}
	log := svc.Log
	if log == nil {
		log = a.log
	}
	log.InfoContext(ctx, "report frozen", slog.String("tenant", snap.Tenant), slog.String("site", site.ID), slog.Int("year", year),
		slog.String("id", snap.ID), slog.String("status", snap.Status), slog.String("sha256", snap.SHA256))
	return snap, r, nil
}

func serviceNow(svc *report.Service) time.Time {
	if svc.Now == nil {
		return time.Now()
	}
	return svc.Now()
}

// previewEUReport builds the report: measured values, the entries with the
// configuration's instruments added where none are entered, then the
// sources and validation issues of what came from the configuration.
func (a *Accountant) previewEUReport(ctx context.Context, svc *report.Service, tenant, siteID string, year int) (*report.Report, config.Site, error) {
	site, err := a.Site(tenant, siteID)
	if err != nil {
		return nil, site, err
	}
	// The report stores key entries by the site's tenant ("default" in
	// single-tenant mode); Site has checked that the caller may see it.
	rtenant := site.SiteTenant()
	entries, err := svc.Inputs.Get(ctx, rtenant, site.ID, year)
	if err != nil {
		return nil, site, err
	}
	d, err := a.reportMeasured(ctx, site, year, entries)
	if err != nil {
		return nil, site, err
	}
	var others []config.Site
	var otherIDs []string
	for _, s := range a.Sites(tenant) {
		if s.ID != site.ID {
			others = append(others, s)
			otherIDs = append(otherIDs, s.ID)
		}
	}
	opts := report.DefaultOptions()
	if svc.Options != nil {
		opts = *svc.Options
	}
	plan, err := planInstruments(ctx, svc.Inputs, entries, rtenant, site, year, opts, serviceNow(svc))
	if err != nil {
		return nil, site, err
	}
	// Configured certificates claimed by other sites or years join those
	// the report finds in the other entries.
	claims := configuredClaims(site, others, year)
	for id, c := range d.m.CertificatesElsewhere {
		claims[id] = c
	}
	d.m.CertificatesElsewhere = claims

	osvc := *svc
	osvc.Inputs = overlayInputs{InputStore: svc.Inputs, tenant: rtenant, site: site.ID, year: year, add: plan.add}
	r, err := osvc.Preview(ctx, rtenant, site, year, d.m, otherIDs)
	if err != nil {
		return nil, site, err
	}
	for id, src := range plan.sources {
		if fv, ok := r.Fields[id]; ok && fv.Value != nil {
			fv.Source = src
			r.Fields[id] = fv
		}
	}
	if g := d.grid; g != nil && !g.UseEntry {
		if fv, ok := r.Fields[report.FGridImport]; ok && fv.Value != nil {
			fv.Source, fv.Quality = g.Source(), g.Quality()
			r.Fields[report.FGridImport] = fv
		}
	}
	r.Validation.Errors = append(r.Validation.Errors, plan.errors...)
	r.Validation.Warnings = append(r.Validation.Warnings, plan.warnings...)
	return r, site, nil
}
