package service

import (
	"context"
	"io"

	"github.com/greenloop/greenloop/accounting/report"
)

// EUReport previews a site's EU data-centre report for a calendar year
// (measured values from the store, entries from svc.Inputs) and exports it
// to w in format f. The API and `greenloop report eu` both call it.
func (a *Accountant) EUReport(ctx context.Context, svc *report.Service, tenant, siteID string, year int, f report.Format, w io.Writer) (*report.Report, error) {
	site, err := a.Site(tenant, siteID)
	if err != nil {
		return nil, err
	}
	m, _, err := a.ReportMeasured(ctx, site, year)
	if err != nil {
		return nil, err
	}
	var others []string
	for _, s := range a.Sites(tenant) {
		if s.ID != site.ID {
			others = append(others, s.ID)
		}
	}
	// The report stores key entries by the site's tenant ("default" in
	// single-tenant mode); Site has checked that the caller may see it.
	r, err := svc.Preview(ctx, site.SiteTenant(), site, year, m, others)
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
	site, err := a.Site(tenant, siteID)
	if err != nil {
		return report.Snapshot{}, nil, err
	}
	m, _, err := a.ReportMeasured(ctx, site, year)
	if err != nil {
		return report.Snapshot{}, nil, err
	}
	var others []string
	for _, s := range a.Sites(tenant) {
		if s.ID != site.ID {
			others = append(others, s.ID)
		}
	}
	return svc.Freeze(ctx, site.SiteTenant(), site, year, m, others, draft, by)
}
