package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/forecast"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/accounting/service/servicetest"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
)

// fakeClock advances by every Sleep; after stopAfter sleeps it cancels the run.
type fakeClock struct {
	mu        sync.Mutex
	now       time.Time
	sleeps    []time.Duration
	stopAfter int
	cancel    context.CancelFunc
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	stop := len(c.sleeps) >= c.stopAfter
	c.mu.Unlock()
	if stop {
		c.cancel()
	}
	return ctx.Err()
}

// fakeProvider answers from a fixed table of hourly values; its first
// `quota` calls answer 429.
type fakeProvider struct {
	mu     sync.Mutex
	quota  int
	calls  []string
	values func(t time.Time) float64
}

func (p *fakeProvider) Name() string { return "fake" }

func (p *fakeProvider) Intensity(_ context.Context, zone string, from, to time.Time, sig providers.Signal) ([]providers.Point, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls = append(p.calls, "intensity "+from.UTC().Format(time.RFC3339))
	if p.quota > 0 {
		p.quota--
		return nil, &providers.QuotaError{Provider: "fake", RetryAfter: 17 * time.Minute}
	}
	var out []providers.Point
	for t := from.Truncate(time.Hour); t.Before(to); t = t.Add(time.Hour) {
		if t.Before(from) {
			continue
		}
		out = append(out, providers.Point{Zone: zone, Time: t, Duration: time.Hour, Intensity: carbon.Intensity(p.values(t)), Kind: providers.Actual, Signal: sig})
	}
	return out, nil
}

func (p *fakeProvider) Forecast(_ context.Context, zone string, from, to time.Time, sig providers.Signal) ([]providers.Point, error) {
	return []providers.Point{{Zone: zone, Time: from.Truncate(time.Hour).Add(time.Hour), Intensity: 123, Kind: providers.Forecast, Signal: sig}}, nil
}

func (p *fakeProvider) Latest(context.Context, string, providers.Signal) (providers.Point, error) {
	return providers.Point{}, providers.ErrUnsupported
}

func TestIntensityServiceStoresHistoryAndBacksOffOnQuota(t *testing.T) {
	st := servicetest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	now := servicetest.Now
	clock := &fakeClock{now: now, stopAfter: 3, cancel: cancel}
	value := func(t time.Time) float64 { return float64(t.Unix()/3600%1000) + 0.5 }
	prov := &fakeProvider{quota: 1, values: value}
	var logs bytes.Buffer
	svc, err := NewIntensityService(IntensityOptions{
		Sources: []Source{{Provider: prov, Zones: []string{"DE"}, Signal: providers.Average}},
		Writer:  st.Writer, Backfill: st.Backfill, Window: 72 * time.Hour,
		History: 5 * 24 * time.Hour, Interval: 15 * time.Minute,
		Tenants: func(string) []string { return []string{"acme", "beta"} },
		Clock:   clock, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// Quota first: wait what the provider asked (17 min), then history, then a regular interval.
	if len(clock.sleeps) != 3 || clock.sleeps[0] != 17*time.Minute || clock.sleeps[1] != 15*time.Minute {
		t.Errorf("sleeps %v", clock.sleeps)
	}
	if !strings.Contains(logs.String(), "quota exceeded") {
		t.Errorf("logs: %s", logs.String())
	}
	// History (5 days, partly older than the 72 h window → backfill) is
	// stored for both tenants and reads back hour by hour.
	a := New(Options{Store: st.DB, Sites: []config.Site{{ID: "x", Zone: "DE", Tenant: "beta"}}, MultiTenant: true})
	from := now.Add(-5 * 24 * time.Hour).Add(17 * time.Minute).Truncate(time.Hour).Add(time.Hour)
	for _, site := range []config.Site{{ID: "x", Tenant: "acme"}, {ID: "x", Tenant: "beta"}} {
		s, provs, err := a.Intensity(context.Background(), a.Queryable(site), "DE", from, now)
		if err != nil {
			t.Fatal(err)
		}
		if want := int(now.Sub(from) / time.Hour); len(s.Points) != want {
			t.Fatalf("tenant %s: %d hours, want %d", site.Tenant, len(s.Points), want)
		}
		for _, p := range s.Points {
			if float64(p.LCA) != value(p.Time) {
				t.Fatalf("%s: %v, want %v", p.Time, p.LCA, value(p.Time))
			}
		}
		if len(provs) != 1 || provs[0] != "fake" {
			t.Errorf("providers %v", provs)
		}
	}
	if f := svc.Forecast("DE"); len(f) != 1 || f[0].Intensity != 123 {
		t.Errorf("forecast %+v", f)
	}
	// The third call asks only for the recent hours.
	if len(prov.calls) != 3 || !strings.HasPrefix(prov.calls[2], "intensity "+now.Add(32*time.Minute-time.Hour-30*time.Minute).UTC().Format("2006-01-02T15")) {
		t.Errorf("calls %v", prov.calls)
	}
}

func TestBackoff(t *testing.T) {
	s, err := NewIntensityService(IntensityOptions{Writer: servicetest.New(t).Writer, Interval: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range map[int]time.Duration{1: time.Minute, 2: 2 * time.Minute, 3: 4 * time.Minute, 4: 8 * time.Minute, 5: 15 * time.Minute, 30: 15 * time.Minute} {
		if got := s.backoff(n); got != want {
			t.Errorf("backoff(%d) = %s, want %s", n, got, want)
		}
	}
}

func TestBuildSources(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "de.csv")
	if err := os.WriteFile(csv, []byte("zone,timestamp,g_per_kwh\nDE,2025-06-10T00:00:00Z,300\nDE,2025-06-10T01:00:00Z,310\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "em.token")
	if err := os.WriteFile(tok, []byte("s3cr3t-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sites := []config.Site{{ID: "a", Zone: "DE"}, {ID: "b", Zone: "FR"}, {ID: "c", Zone: "DE"}}
	srcs, err := BuildSources(config.Carbon{Providers: []config.CarbonProvider{
		{Type: "csv", Path: csv}, {Type: "electricitymaps", TokenFile: tok}, {Type: "ukgrid"}, {Type: "static", Zone: "PL"},
	}}, sites, providers.SystemClock{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(srcs) != 4 || len(srcs[0].Points) != 2 || srcs[0].Points[1].Intensity != 310 {
		t.Fatalf("sources %+v", srcs)
	}
	if z := strings.Join(srcs[1].Zones, ","); z != "DE,FR" || srcs[1].Provider.Name() != "electricitymaps" {
		t.Errorf("electricitymaps zones %q", z)
	}
	if z := strings.Join(srcs[2].Zones, ","); z != "GB" {
		t.Errorf("ukgrid zones %q", z)
	}
	t.Setenv("GL_TEST_EMPTY", "")
	_, err = BuildSources(config.Carbon{Providers: []config.CarbonProvider{
		{Type: "csv", Path: filepath.Join(dir, "missing.csv")},
		{Type: "entsoe", TokenEnv: "GL_TEST_EMPTY"},
		{Type: "electricitymaps", TokenFile: filepath.Join(dir, "nope")},
	}}, sites, providers.SystemClock{}, nil)
	for _, want := range []string{"carbon.providers[0] (csv)", "carbon.providers[1] (entsoe): token_env: environment variable GL_TEST_EMPTY is empty", "carbon.providers[2] (electricitymaps): token_file"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("missing %q in %v", want, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "s3cr3t") {
		t.Error("secret in error")
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("want a wrapped ErrNotExist: %v", err)
	}
}

// A watttime provider without zones serves the sites' zones through their
// locations: one /v3/region-from-loc look-up per zone, at the first site's
// location, and the data asked for that region.
func TestBuildSourcesWattTimeLocations(t *testing.T) {
	var mu sync.Mutex
	var lookups, regions []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.URL.Path {
		case "/login":
			fmt.Fprint(w, `{"token":"tok"}`)
		case "/v3/region-from-loc":
			lookups = append(lookups, r.URL.Query().Get("latitude")+","+r.URL.Query().Get("longitude"))
			fmt.Fprint(w, `{"region":"CAISO_NORTH","region_full_name":"California ISO Northern","signal_type":"co2_moer"}`)
		default:
			regions = append(regions, r.URL.Query().Get("region"))
			http.Error(w, `{"error":"not in this test"}`, http.StatusBadRequest)
		}
	}))
	defer srv.Close()
	t.Setenv("GL_TEST_WT_PW", "pw")
	sites := []config.Site{{ID: "a", Zone: "US-CAL-CISO", Location: config.Location{Lat: 37.77, Lon: -122.42}},
		{ID: "b", Zone: "US-CAL-CISO", Location: config.Location{Lat: 38.5, Lon: -121.5}}, {ID: "c", Zone: "DE"}}
	wt := config.CarbonProvider{Type: "watttime", Username: "u", PasswordEnv: "GL_TEST_WT_PW", BaseURL: srv.URL, LoginURL: srv.URL + "/login"}
	srcs, err := BuildSources(config.Carbon{Providers: []config.CarbonProvider{wt}}, sites, providers.SystemClock{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if z := strings.Join(srcs[0].Zones, ","); z != "US-CAL-CISO" {
		t.Fatalf("zones %q, want the one zone with a location", z)
	}
	p, ok := srcs[0].Provider.(*providers.WattTime)
	if !ok {
		t.Fatalf("provider %T", srcs[0].Provider)
	}
	region, err := p.Region(context.Background(), "US-CAL-CISO")
	if err != nil || region != "CAISO_NORTH" {
		t.Fatalf("region %q, %v", region, err)
	}
	if _, err := p.Region(context.Background(), "US-CAL-CISO"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if strings.Join(lookups, ";") != "37.77,-122.42" {
		t.Errorf("look-ups %v, want one at the first site's location", lookups)
	}
	mu.Unlock()
	// No zone and no site location: nothing to ask WattTime for.
	_, err = BuildSources(config.Carbon{Providers: []config.CarbonProvider{wt}}, []config.Site{{ID: "c", Zone: "DE"}}, providers.SystemClock{}, nil)
	if err == nil || !strings.Contains(err.Error(), "carbon.providers[0] (watttime): zone: must name the WattTime region") {
		t.Errorf("err %v", err)
	}
}

// revisingProvider has no actual values; its forecast, fetched at issue
// time f (the n-th fetch), holds a point every 30 minutes from f rounded
// down to the half hour up to f+2h, valued n*1000 + minutes since base.
type revisingProvider struct {
	mu     sync.Mutex
	base   time.Time
	issues []time.Time
}

func (p *revisingProvider) Name() string { return "electricitymaps" }

func (p *revisingProvider) Intensity(context.Context, string, time.Time, time.Time, providers.Signal) ([]providers.Point, error) {
	return nil, nil
}

func (p *revisingProvider) Forecast(_ context.Context, zone string, from, _ time.Time, sig providers.Signal) ([]providers.Point, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.issues = append(p.issues, from)
	n := len(p.issues)
	var out []providers.Point
	for t := from.Truncate(30 * time.Minute); !t.After(from.Add(2 * time.Hour)); t = t.Add(30 * time.Minute) {
		out = append(out, providers.Point{Zone: zone, Time: t, Duration: 30 * time.Minute,
			Intensity: carbon.Intensity(float64(n*1000) + t.Sub(p.base).Minutes()), Kind: providers.Forecast, Signal: sig})
	}
	return out, nil
}

func (p *revisingProvider) Latest(context.Context, string, providers.Signal) (providers.Point, error) {
	return providers.Point{}, providers.ErrUnsupported
}

// recordingWriter counts every sample written, by labels and time.
type recordingWriter struct {
	w      SeriesWriter
	mu     sync.Mutex
	counts map[string]int // "tenant labels@minutes"
	base   time.Time
}

func (r *recordingWriter) WriteSeries(ctx context.Context, o ingest.WriteOptions, series []sample.Series) (ingest.Result, error) {
	r.mu.Lock()
	for _, s := range series {
		for _, p := range s.Points {
			r.counts[fmt.Sprintf("%s %v@%d", o.Tenant, s.Labels, (p.T-r.base.UnixMilli())/60000)]++
		}
	}
	r.mu.Unlock()
	return r.w.WriteSeries(ctx, o, series)
}

// Each forecast point is stored once, when due, with the value of the
// latest forecast fetched before its time and the overlay's labels; the
// overlay holds the latest forecast only, from its issue time on; the
// accounting reads none of it.
func TestIntensityServiceArchivesForecasts(t *testing.T) {
	st := servicetest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	base := servicetest.Now.Add(-4 * time.Hour) // the store's writer refuses samples after servicetest.Now
	clock := &fakeClock{now: base, stopAfter: 7, cancel: cancel}
	prov := &revisingProvider{base: base}
	rec := &recordingWriter{w: st.Writer, counts: map[string]int{}, base: base}
	overlay := forecast.New(forecast.Options{Now: clock.Now})
	svc, err := NewIntensityService(IntensityOptions{
		Sources: []Source{{Provider: prov, Zones: []string{"DE"}, Signal: providers.Average}},
		Writer:  rec, Backfill: st.Backfill, Window: 72 * time.Hour, History: 24 * time.Hour, Interval: 20 * time.Minute,
		Tenants:   func(string) []string { return []string{"acme", "beta"} },
		Forecasts: overlay, Clock: clock,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// Fetches at 0, 20, ... 120 min. The point at 0 was fetched at its own
	// time only: it is no forecast, and never stored.
	if len(prov.issues) != 7 {
		t.Fatalf("%d fetches, want 7", len(prov.issues))
	}
	want := map[int]float64{ // minute → value of the latest forecast fetched before it
		30:  2030, // fetched at 20 (2nd)
		60:  3060, // at 40 (3rd)
		90:  5090, // at 80 (5th)
		120: 6120, // at 100 (6th); at 120 the 7th had it, but too late
	}
	for _, tenant := range []string{"acme", "beta"} {
		lset := forecast.Labels(forecast.Key{Tenant: tenant, Zone: "DE", Provider: "electricitymaps", Signal: providers.Average})
		q, err := st.DB.Querier(base.UnixMilli(), servicetest.Now.UnixMilli())
		if err != nil {
			t.Fatal(err)
		}
		set := q.Select(context.Background(), false, nil, labels.MustNewMatcher(labels.MatchEqual, ingest.TenantLabel, tenant),
			labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, providers.MetricName))
		got := map[int]float64{}
		n := 0
		for set.Next() {
			n++
			if !labels.Equal(set.At().Labels(), lset) {
				t.Errorf("stored %s, want the overlay's %s", set.At().Labels(), lset)
			}
			it := set.At().Iterator(nil)
			for it.Next() == chunkenc.ValFloat {
				ts, v := it.At()
				got[int((ts-base.UnixMilli())/60000)] = v
			}
		}
		q.Close()
		if n != 1 || !maps.Equal(got, want) {
			t.Errorf("tenant %s: %d series, stored %v, want %v", tenant, n, got, want)
		}
	}
	// Once each: 4 points × 2 tenants, nothing else written.
	if len(rec.counts) != 8 {
		t.Errorf("writes %v, want 8 distinct samples", rec.counts)
	}
	for k, n := range rec.counts {
		if n != 1 {
			t.Errorf("%s written %d times", k, n)
		}
	}
	// The overlay holds the 7th forecast (fetched at 120) from after 120:
	// the 6th's values of 150..210 were replaced.
	for _, tenant := range []string{"acme", "beta"} {
		var got []string
		for _, p := range overlay.Points(forecast.Key{Tenant: tenant, Zone: "DE", Provider: "electricitymaps", Signal: providers.Average}) {
			got = append(got, fmt.Sprintf("%g@%g", p.Intensity.GramsPerKWh(), p.Time.Sub(base).Minutes()))
		}
		if w := []string{"7150@150", "7180@180", "7210@210", "7240@240"}; !slices.Equal(got, w) {
			t.Errorf("tenant %s overlay %v, want %v", tenant, got, w)
		}
	}
	if f := svc.Forecast("DE"); len(f) != 5 || f[0].Time != base.Add(120*time.Minute) || f[0].Intensity != 7120 {
		t.Errorf("Forecast(DE) = %+v, want the 7th fetch as given, from 120", f)
	}
	// The accounting never counts forecasts: there is no actual value.
	a := New(Options{Store: st.DB, Sites: []config.Site{{ID: "x", Zone: "DE", Tenant: "acme"}}, MultiTenant: true})
	s, _, err := a.Intensity(context.Background(), a.QueryableFor("acme"), "DE", base, servicetest.Now)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Points) != 0 {
		t.Errorf("accounting read forecast samples: %+v", s.Points)
	}
}

func TestForecastArchive(t *testing.T) {
	t0 := time.Date(2025, 6, 10, 12, 0, 0, 0, time.UTC)
	pt := func(min int, v float64, sig providers.Signal) providers.Point {
		return providers.Point{Time: t0.Add(time.Duration(min) * time.Minute), Intensity: carbon.Intensity(v), Signal: sig}
	}
	a := forecastArchive{}
	a.add(t0, []providers.Point{pt(0, 1, ""), pt(30, 2, ""), pt(60, 3, providers.Marginal)}, providers.Average)
	a.add(t0.Add(40*time.Minute), []providers.Point{pt(30, 9, ""), pt(60, 4, providers.Marginal), pt(90, 5, "")}, providers.Average)
	var got []string
	for _, p := range a.take("DE", t0.Add(60*time.Minute)) {
		got = append(got, fmt.Sprintf("%s %s %s %g %s", p.Zone, p.Time.Format("15:04"), p.Signal, p.Intensity.GramsPerKWh(), p.Kind))
	}
	want := []string{"DE 12:30 average 2 forecast", "DE 13:00 marginal 4 forecast"}
	if !slices.Equal(got, want) {
		t.Errorf("due %v, want %v", got, want)
	}
	if rest := a.take("DE", t0.Add(2*time.Hour)); len(rest) != 1 || rest[0].Intensity != 5 {
		t.Errorf("left %+v, want 13:30 = 5 only", rest)
	}
	if len(a) != 0 {
		t.Errorf("archive not emptied: %v", a)
	}
}
