package service

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/accounting/service/servicetest"
	"github.com/greenloop/greenloop/internal/config"
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
