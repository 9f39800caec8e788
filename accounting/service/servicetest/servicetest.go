// Package servicetest builds a real embedded store filled with a site's
// meters and grid intensity, for the tests of the accounting service, its
// API and the report command.
package servicetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/sample"
)

// Now is the fixture's clock: a day after From.
var Now = time.Date(2025, 6, 11, 0, 0, 0, 0, time.UTC)

// From and To bound the fixture's six metered hours.
var (
	From = time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC)
	To   = From.Add(6 * time.Hour)
)

// HourPowerKW is the constant facility power in each hour of [From, To):
// 400, 450, ... 650 kW, so hour h uses HourPowerKW(h) kWh.
func HourPowerKW(h int) float64 { return 400 + 50*float64(h) }

// HourIntensity is the grid intensity of hour h in gCO2e/kWh; hour
// MissingHour has none.
func HourIntensity(h int) float64 { return 300 + 10*float64(h) }

// MissingHour is the hour of [From, To) without an intensity.
const MissingHour = 3

// Store is an embedded TSDB in a temporary directory with its writers.
type Store struct {
	Dir      string
	DB       *tsdb.Store
	Writer   *ingest.Writer
	Backfill *ingest.Writer
}

// New opens a store in t.TempDir(), closed at the end of the test.
func New(t testing.TB) *Store {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	db, err := tsdb.Open(dir, tsdb.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	clock := func() time.Time { return Now }
	w, err := ingest.NewWriter(db, ingest.WriterOptions{Clock: clock, MaxAge: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	bw, err := ingest.NewWriter(db.Backfill(), ingest.WriterOptions{Clock: clock, MaxAge: 14 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return &Store{Dir: dir, DB: db, Writer: w, Backfill: bw}
}

// Write stores series for tenant ("" = single-tenant), failing the test on any refusal.
func (s *Store) Write(t testing.TB, tenant string, series ...sample.Series) {
	t.Helper()
	res, err := s.Writer.WriteSeries(context.Background(), ingest.WriteOptions{Tenant: tenant}, series)
	if err != nil {
		t.Fatal(err)
	}
	if res.RejectedCount > 0 {
		t.Fatalf("%d samples refused, first %+v", res.RejectedCount, res.Rejected[0])
	}
}

// WriteBackfill stores series as history blocks (the backfill writer), failing the test on any refusal.
func (s *Store) WriteBackfill(t testing.TB, tenant string, series ...sample.Series) {
	t.Helper()
	res, err := s.Backfill.WriteSeries(context.Background(), ingest.WriteOptions{Tenant: tenant}, series)
	if err != nil {
		t.Fatal(err)
	}
	if res.RejectedCount > 0 {
		t.Fatalf("%d samples refused, first %+v", res.RejectedCount, res.Rejected[0])
	}
}

// Counter returns an energy counter (J) sampled every minute from From-10m to
// To+10m, whose power is HourPowerKW(h)×scale in hour h (and the first/last
// hour's power outside [From, To)).
func Counter(site, component string, scale float64) sample.Series {
	s := sample.Series{Labels: []sample.Label{{Name: "__name__", Value: "greenloop_energy_joules_total"},
		{Name: "site", Value: site}, {Name: "component", Value: component}}}
	j := 1e9 // an arbitrary start
	for t := From.Add(-10 * time.Minute); !t.After(To.Add(10 * time.Minute)); t = t.Add(time.Minute) {
		s.Points = append(s.Points, sample.Point{T: t.UnixMilli(), V: j})
		h := min(max(int(t.Sub(From)/time.Hour), 0), 5)
		j += HourPowerKW(h) * scale * 1000 * 60 // W × s
	}
	return s
}

// Intensity returns the hourly intensity points of zone over [From, To)
// without MissingHour, as a provider would give them.
func Intensity(zone string) []providers.Point {
	var pts []providers.Point
	for h := range 6 {
		if h == MissingHour {
			continue
		}
		pts = append(pts, providers.Point{Zone: zone, Time: From.Add(time.Duration(h) * time.Hour), Duration: time.Hour,
			Intensity: carbon.Intensity(HourIntensity(h)), Kind: providers.Actual, Signal: providers.Average})
	}
	return pts
}

// WriteIntensity stores points as provider's series for tenant.
func (s *Store) WriteIntensity(t testing.TB, tenant, provider string, pts []providers.Point) {
	t.Helper()
	s.Write(t, tenant, providers.Series(provider, pts)...)
}
