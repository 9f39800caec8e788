package service

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/accounting/emissions"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
)

// BenchmarkEmissionsYear: a year of a facility counter at 15 min (35 040
// samples) and 8 760 hourly intensities in a real TSDB (as history blocks),
// location-based emissions with a daily series, as GET /api/v1/emissions
// computes them.
func BenchmarkEmissionsYear(b *testing.B) {
	db, err := tsdb.Open(filepath.Join(b.TempDir(), "data"), tsdb.Options{Retention: 3 * 365 * 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(1, 0, 0)
	now := to.Add(24 * time.Hour)
	w, err := ingest.NewWriter(db.Backfill(), ingest.WriterOptions{Clock: func() time.Time { return now }, MaxAge: 3 * 365 * 24 * time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	counter := sample.Series{Labels: []sample.Label{{Name: "__name__", Value: "greenloop_energy_joules_total"}, {Name: "site", Value: "fra1"}, {Name: "component", Value: "facility"}}}
	var pts []providers.Point
	j := 0.0
	for t := from.Add(-15 * time.Minute); !t.After(to.Add(15 * time.Minute)); t = t.Add(15 * time.Minute) {
		counter.Points = append(counter.Points, sample.Point{T: t.UnixMilli(), V: j})
		j += 500e3 * 900
		if t.Minute() == 0 && !t.Before(from) && t.Before(to) {
			pts = append(pts, providers.Point{Zone: "DE", Time: t, Intensity: carbon.Intensity(300 + t.Hour()), Kind: providers.Actual, Signal: providers.Average})
		}
	}
	if _, err := w.WriteSeries(context.Background(), ingest.WriteOptions{}, append([]sample.Series{counter}, providers.Series("electricitymaps", pts)...)); err != nil {
		b.Fatal(err)
	}
	a := New(Options{Store: db, Sites: []config.Site{{ID: "fra1", Zone: "DE"}}})
	req := Request{Site: "fra1", From: from, To: to, Method: emissions.LocationBased, Step: 24 * time.Hour}
	b.ReportAllocs()
	for b.Loop() {
		res, err := a.Emissions(context.Background(), "", req)
		if err != nil {
			b.Fatal(err)
		}
		if len(res.Series) != 365 || res.Completeness < 0.999 {
			b.Fatalf("%d days, completeness %v", len(res.Series), res.Completeness)
		}
	}
}
