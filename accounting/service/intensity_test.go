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

	"github.com/prometheus/common/model"
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
			labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, providers.MetricName))
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

// stepClock is a clock that moves only when the test advances it: Sleep
// blocks until then (or until its context ends).
type stepClock struct {
	mu       sync.Mutex
	now      time.Time
	sleepers map[*sleeper]bool
}

type sleeper struct {
	ctx   context.Context
	until time.Time
	wake  chan struct{}
}

func newStepClock(now time.Time) *stepClock {
	return &stepClock{now: now, sleepers: map[*sleeper]bool{}}
}

func (c *stepClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *stepClock) Sleep(ctx context.Context, d time.Duration) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	c.mu.Lock()
	s := &sleeper{ctx: ctx, until: c.now.Add(d), wake: make(chan struct{})}
	c.sleepers[s] = true
	c.mu.Unlock()
	select {
	case <-s.wake:
		return nil
	case <-ctx.Done():
		c.mu.Lock()
		delete(c.sleepers, s)
		c.mu.Unlock()
		return ctx.Err()
	}
}

// advance moves the clock by d and wakes the sleepers due.
func (c *stepClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	for s := range c.sleepers {
		if !s.until.After(c.now) {
			close(s.wake)
			delete(c.sleepers, s)
		}
	}
}

// waitSleeping waits until n goroutines whose context is live sleep and
// cond holds, for at most 10 s.
func (c *stepClock) waitSleeping(t *testing.T, what string, n int, cond func() bool) {
	t.Helper()
	live := func() int {
		c.mu.Lock()
		defer c.mu.Unlock()
		k := 0
		for s := range c.sleepers {
			if s.ctx.Err() == nil {
				k++
			}
		}
		return k
	}
	deadline := time.Now().Add(10 * time.Second)
	for live() != n || !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d goroutines asleep (want %d), condition %v after 10 s", what, live(), n, cond())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// zoneProvider answers hourly values per zone and records each call.
type zoneProvider struct {
	mu    sync.Mutex
	calls []string // "zone from"
}

func zoneValue(zone string, t time.Time) float64 {
	return float64(len(zone)*1000+int(zone[0])) + float64(t.Unix()/3600%100)
}

func (p *zoneProvider) Name() string { return "electricitymaps" }

func (p *zoneProvider) Intensity(_ context.Context, zone string, from, to time.Time, sig providers.Signal) ([]providers.Point, error) {
	p.mu.Lock()
	p.calls = append(p.calls, zone+" "+from.UTC().Format(time.RFC3339))
	p.mu.Unlock()
	var out []providers.Point
	for t := from.Truncate(time.Hour); t.Before(to); t = t.Add(time.Hour) {
		if !t.Before(from) {
			out = append(out, providers.Point{Zone: zone, Time: t, Duration: time.Hour, Intensity: carbon.Intensity(zoneValue(zone, t)), Kind: providers.Actual, Signal: sig})
		}
	}
	return out, nil
}

func (p *zoneProvider) Forecast(_ context.Context, zone string, from, _ time.Time, sig providers.Signal) ([]providers.Point, error) {
	return []providers.Point{{Zone: zone, Time: from.Truncate(time.Hour).Add(time.Hour), Intensity: 77, Kind: providers.Forecast, Signal: sig}}, nil
}

func (p *zoneProvider) Latest(context.Context, string, providers.Signal) (providers.Point, error) {
	return providers.Point{}, providers.ErrUnsupported
}

// callsOf returns the calls for zone.
func (p *zoneProvider) callsOf(zone string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, c := range p.calls {
		if strings.HasPrefix(c, zone+" ") {
			out = append(out, c)
		}
	}
	return out
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes and reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// With Sites, the zones follow the sites in force: a site added in a new
// zone between two polls gets the zone's history at the next one, without a
// restart, through the same provider client; a zone no site has any more is
// no longer fetched.
func TestIntensityZonesFollowSites(t *testing.T) {
	st := servicetest.New(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	start := servicetest.Now.Add(-time.Hour) // the store's writer refuses samples after servicetest.Now
	clock := newStepClock(start)
	prov := &zoneProvider{}
	de, nl := config.Site{ID: "fra1", Zone: "DE"}, config.Site{ID: "ams1", Zone: "NL"}
	var sitesMu sync.Mutex
	inForce := []config.Site{de}
	setSites := func(s ...config.Site) {
		sitesMu.Lock()
		inForce = s
		sitesMu.Unlock()
	}
	var logs lockedBuffer
	const interval = 15 * time.Minute
	svc, err := NewIntensityService(IntensityOptions{
		Sources: []Source{{Provider: prov, Zones: []string{"DE"}, Signal: providers.Average}},
		Carbon:  config.Carbon{Providers: []config.CarbonProvider{{Type: "electricitymaps"}}},
		Sites: func() []config.Site {
			sitesMu.Lock()
			defer sitesMu.Unlock()
			return inForce
		},
		Writer: st.Writer, Backfill: st.Backfill, Window: 72 * time.Hour, History: 24 * time.Hour, Interval: interval,
		Tenants: func(string) []string { return []string{"acme"} },
		Clock:   clock, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	calls := func(zone string) func() bool { return func() bool { return len(prov.callsOf(zone)) > 0 } }

	// DE polled, and the zones checked: two goroutines asleep.
	clock.waitSleeping(t, "start", 2, calls("DE"))
	if got := prov.callsOf("NL"); len(got) != 0 {
		t.Fatalf("NL fetched before any site is there: %v", got)
	}
	// A site in NL comes between two polls: fetched from its history on at
	// the next, with the DE poll going on.
	setSites(de, nl)
	clock.advance(interval)
	clock.waitSleeping(t, "NL added", 3, calls("NL"))
	now := start.Add(interval)
	if got, want := prov.callsOf("NL"), []string{"NL " + now.Add(-24*time.Hour).UTC().Format(time.RFC3339)}; !slices.Equal(got, want) {
		t.Errorf("NL calls %v, want the history %v", got, want)
	}
	if n := len(prov.callsOf("DE")); n != 2 {
		t.Errorf("%d DE calls, want 2 (history, then the recent hours)", n)
	}
	if l := logs.String(); !strings.Contains(l, "carbon-intensity zones follow the sites") || !strings.Contains(l, "added=[NL]") ||
		!strings.Contains(l, "new_client=false") {
		t.Errorf("no log of the change:\n%s", l)
	}
	a := New(Options{Store: st.DB, Sites: []config.Site{nl}, MultiTenant: true})
	from := now.Add(-24 * time.Hour).Truncate(time.Hour).Add(time.Hour)
	s, provs, err := a.Intensity(context.Background(), a.QueryableFor("acme"), "NL", from, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := int(now.Sub(from)/time.Hour) + 1; len(s.Points) != want || !slices.Equal(provs, []string{"electricitymaps"}) {
		t.Fatalf("NL: %d hours from %v, want %d", len(s.Points), provs, want)
	}
	for _, p := range s.Points {
		if float64(p.LCA) != zoneValue("NL", p.Time) {
			t.Fatalf("NL at %s: %v, want %v", p.Time, p.LCA, zoneValue("NL", p.Time))
		}
	}
	if f := svc.Forecast("NL"); len(f) != 1 || f[0].Intensity != 77 {
		t.Errorf("Forecast(NL) = %+v", f)
	}

	// The DE site goes: DE is no longer fetched, nor its forecast kept.
	setSites(nl)
	clock.advance(interval)
	clock.waitSleeping(t, "DE removed", 2, func() bool { return strings.Contains(logs.String(), "removed=[DE]") })
	deCalls := len(prov.callsOf("DE"))
	nlCalls := len(prov.callsOf("NL"))
	clock.advance(interval)
	clock.waitSleeping(t, "after DE removed", 2, func() bool { return len(prov.callsOf("NL")) > nlCalls })
	if n := len(prov.callsOf("DE")); n != deCalls {
		t.Errorf("DE fetched %d times after its site went", n-deCalls)
	}
	if f := svc.Forecast("DE"); f != nil {
		t.Errorf("Forecast(DE) after its site went: %+v", f)
	}
	// The same sites again: nothing changes, nothing is logged.
	before := strings.Count(logs.String(), "zones follow the sites")
	clock.advance(interval)
	clock.waitSleeping(t, "unchanged", 2, func() bool { return len(prov.callsOf("NL")) > nlCalls+1 })
	if after := strings.Count(logs.String(), "zones follow the sites"); after != before {
		t.Errorf("%d changes logged with the sites unchanged", after-before)
	}
	// No site left: nothing is polled, the zones are still checked.
	setSites()
	clock.advance(interval)
	clock.waitSleeping(t, "no site", 1, func() bool { return strings.Contains(logs.String(), "removed=[NL]") })
}

// followSites gives the sites' zones to the providers without zones of
// their own, keeping their clients; WattTime is built again for a new
// located zone; one that cannot be built keeps its zones, the others follow.
func TestFollowSites(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "de.csv")
	if err := os.WriteFile(csv, []byte("zone,timestamp,g_per_kwh\nDE,2025-06-10T00:00:00Z,300\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tok := filepath.Join(dir, "token")
	if err := os.WriteFile(tok, []byte("tok\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("GL_TEST_WT_PW", "pw")
	c := config.Carbon{Providers: []config.CarbonProvider{
		{Type: "csv", Path: csv},
		{Type: "electricitymaps", TokenFile: tok},
		{Type: "ukgrid"},
		{Type: "static", Zone: "PL"},
		{Type: "entsoe", TokenFile: tok, Zones: []string{"FR"}},
		{Type: "watttime", Username: "u", PasswordEnv: "GL_TEST_WT_PW", BaseURL: "http://127.0.0.1:1"},
	}}
	loc := func(lat, lon float64) config.Location { return config.Location{Lat: lat, Lon: lon} }
	start := []config.Site{{ID: "a", Zone: "DE", Location: loc(50.1, 8.7)}}
	cur, err := BuildSources(c, start, providers.SystemClock{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	zones := func(srcs []Source) []string {
		var out []string
		for _, s := range srcs {
			out = append(out, strings.Join(s.Zones, ","))
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		sites   []config.Site
		zones   []string
		rebuilt []bool
		err     string
	}{
		{"unchanged", start, []string{"", "DE", "GB", "PL", "FR", "DE"}, []bool{false, false, false, false, false, false}, ""},
		{"new zone with a location", append(slices.Clone(start), config.Site{ID: "b", Zone: "NL", Location: loc(52.4, 4.9)}),
			[]string{"", "DE,NL", "GB", "PL", "FR", "DE,NL"}, []bool{false, false, false, false, false, true}, ""},
		{"new zone without a location", append(slices.Clone(start), config.Site{ID: "b", Zone: "NL"}),
			[]string{"", "DE,NL", "GB", "PL", "FR", "DE"}, []bool{false, false, false, false, false, false}, ""},
		{"no located site: WattTime keeps its zones", []config.Site{{ID: "b", Zone: "NL"}},
			[]string{"", "NL", "GB", "PL", "FR", "DE"}, []bool{false, false, false, false, false, false},
			"carbon.providers[5] (watttime): zone: must name the WattTime region"},
		{"no site", nil, []string{"", "", "GB", "PL", "FR", "DE"}, []bool{false, false, false, false, false, false},
			"carbon.providers[5] (watttime)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rebuilt, err := followSites(c, cur, tc.sites, providers.SystemClock{}, nil)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("err %v, want %q", err, tc.err)
			}
			if got := zones(out); !slices.Equal(got, tc.zones) {
				t.Errorf("zones %q, want %q", got, tc.zones)
			}
			if !slices.Equal(rebuilt, tc.rebuilt) {
				t.Errorf("rebuilt %v, want %v", rebuilt, tc.rebuilt)
			}
			for i := range out {
				if same := out[i].Provider == cur[i].Provider; same == tc.rebuilt[i] {
					t.Errorf("source %d (%s): same client %v, rebuilt %v", i, out[i].Provider.Name(), same, tc.rebuilt[i])
				}
			}
			if out[0].Points == nil || len(out[0].Points) != 1 {
				t.Errorf("the csv source lost its points: %+v", out[0])
			}
		})
	}
	if got := zones(cur); !slices.Equal(got, []string{"", "DE", "GB", "PL", "FR", "DE"}) {
		t.Errorf("followSites modified cur: %q", got)
	}
	if _, _, err := followSites(c, cur[:2], start, providers.SystemClock{}, nil); err == nil {
		t.Error("sources not aligned with the providers: no error")
	}
	if _, err := NewIntensityService(IntensityOptions{Writer: servicetest.New(t).Writer, Sources: cur[:2], Carbon: c,
		Sites: func() []config.Site { return start }}); err == nil {
		t.Error("NewIntensityService took sources not aligned with carbon.providers")
	}
}
