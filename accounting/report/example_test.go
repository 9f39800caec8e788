package report_test

import (
	"fmt"
	"time"

	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/internal/config"
)

// The KPIs of the spec's worked example, from annual sums alone.
func ExampleComputeKPIs() {
	k := report.ComputeKPIs(report.AnnualSums{
		EDC:        report.Ptr(report.KWh(15_600_000)),
		EIT:        report.Ptr(report.KWh(12_000_000)),
		Water:      report.Ptr(report.CubicMetres(9600)),
		HeatReused: report.Ptr(report.KWh(1_560_000)),
		Renewable:  report.Ptr(report.KWh(12_360_000)),
	}, nil)
	for _, id := range []string{report.KPIPUE, report.KPIWUE, report.KPIERF, report.KPIREF, report.KPICUELB} {
		fmt.Println(id, k[id].Display)
	}
	// Output:
	// pue 1.300
	// wue 0.80
	// erf 0.100
	// ref 0.792
	// cue_lb n/a
}

// Freezing refuses a report with blocking errors unless it is a draft.
func ExampleFreeze() {
	r, _ := report.Build(report.Request{
		Tenant: "acme", Year: 2025, Now: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC),
		Measured: report.Measured{
			EDC: &report.Reading[report.KWh]{Value: 1000},
			EIT: &report.Reading[report.KWh]{Value: 1200},
		},
		Inputs: report.Inputs{},
		Site:   siteFra1,
	})
	_, err := report.Freeze("acme", r, report.FreezeOptions{By: "bob"})
	fmt.Println(err != nil, len(r.Validation.Errors) > 0)
	s, _ := report.Freeze("acme", r, report.FreezeOptions{By: "bob", Draft: true})
	fmt.Println(s.Status)
	// Output:
	// true true
	// draft
}

var siteFra1 = config.Site{ID: "fra1", Name: "Frankfurt 1", Zone: "DE", ITCapacityKW: 800}
