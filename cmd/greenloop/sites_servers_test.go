package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/accounting/service/servicetest"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/internal/sample"
	"github.com/greenloop/greenloop/web"
)

// sitesServer is one greenloop server stack, built as runServe builds it.
type sitesServer struct {
	name   string
	cfg    config.Server
	opened *openedStore
	rt     *siteRuntime
	h      http.Handler
}

// startSitesServer builds a server on the ClickHouse at addr with
// sites_store clickhouse refreshed every refresh, auth from tokens: the
// store, the site runtime, the web server, the fleet page, the admin site
// API and the accounting, in serve.go's order.
func startSitesServer(t *testing.T, name, addr, tokens, refresh string) *sitesServer {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`listen: 127.0.0.1:0
data_dir: %s
storage:
  backend: clickhouse
  clickhouse: {addrs: [%s], database: sites_e2e, retention: 1000d}
auth: {tokens_file: %s}
sites_store: clickhouse
sites_refresh_interval: %s
sites:
  - {id: fra1, name: Frankfurt 1, zone: DE, tenant: t1}
  - {id: nyc1, name: New York 1, zone: US-NY-NYIS, tenant: t2}
`, filepath.Join(dir, "data"), addr, tokens, refresh)
	file := filepath.Join(dir, "server.yaml")
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	reg := prometheus.NewRegistry()
	opened, err := openStore(ctx, cfg, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { opened.Close() })
	writer, err := ingest.NewWriter(opened.Store, ingest.WriterOptions{MaxAge: opened.maxAge, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	engine := promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})
	rt, err := startSites(ctx, cfg, opened.Store, cfg.Sites, reg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.stop)
	forecasts := newForecastOverlay(cfg, reg, log)
	srv, err := web.New(web.Deps{Store: opened.Store, Writer: writer, Engine: engine, SiteSource: rt.Sites,
		Registry: reg, Logger: log, Overlay: forecasts}, webOptions(cfg))
	if err != nil {
		t.Fatal(err)
	}
	registerUI(srv, log, opened.Store, engine, rt.Sites, cfg.Auth.Enabled())
	if err := rt.register(srv); err != nil {
		t.Fatal(err)
	}
	stop, err := startAccounting(ctx, srv, log, cfg, opened.Store, writer, nil, rt.Sites, forecasts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return &sitesServer{name: name, cfg: cfg, opened: opened, rt: rt, h: srv.Handler()}
}

// do sends a request with token and returns its status and body.
func (s *sitesServer) do(method, path, token, body string) (int, []byte) {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	s.h.ServeHTTP(rec, req)
	return rec.Code, rec.Body.Bytes()
}

// siteIDs lists the ids of /api/v1/sites for token.
func (s *sitesServer) siteIDs(t *testing.T, token string) []string {
	t.Helper()
	code, body := s.do("GET", "/api/v1/sites", token, "")
	var out struct {
		Sites []struct {
			ID   string `json:"id"`
			Zone string `json:"zone"`
		} `json:"sites"`
	}
	if code != 200 || json.Unmarshal(body, &out) != nil {
		t.Fatalf("%s: GET /api/v1/sites: %d %s", s.name, code, body)
	}
	var ids []string
	for _, x := range out.Sites {
		ids = append(ids, x.ID+"/"+x.Zone)
	}
	slices.Sort(ids)
	return ids
}

// fleetIDs lists the sites of the fleet page's feed for token.
func (s *sitesServer) fleetIDs(t *testing.T, token string) []string {
	t.Helper()
	code, body := s.do("GET", "/api/v1/fleet", token, "")
	var out struct {
		Sites []struct {
			ID string `json:"id"`
		} `json:"sites"`
	}
	if code != 200 || json.Unmarshal(body, &out) != nil {
		t.Fatalf("%s: GET /api/v1/fleet: %d %s", s.name, code, body)
	}
	var ids []string
	for _, x := range out.Sites {
		ids = append(ids, x.ID)
	}
	slices.Sort(ids)
	return ids
}

// Two servers on one ClickHouse with sites_store clickhouse: a site put
// through A's admin API is served by B after B's refresh, with the same
// figures; another tenant sees none of it; deleted through B, it is gone
// from A after A's refresh; a file site cannot be overwritten.
func TestSitesSharedByServers(t *testing.T) {
	chtest.Require(t)
	ch, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ch.Stop() })
	const (
		admin1 = "t1-admin-secret"
		admin2 = "t2-admin-secret"
	)
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte(hashLine(admin1, "t1 admin t1 admin")+hashLine(admin2, "t2 admin t2 admin")), 0o600); err != nil {
		t.Fatal(err)
	}
	// A refreshes every second; B only when told to (an hour), so that the
	// test knows when B has read the table.
	a := startSitesServer(t, "A", ch.Addr, tokens, "1s")
	b := startSitesServer(t, "B", ch.Addr, tokens, "1h")

	// The meters of ams2 and the intensity of its zone NL, tenant t1, in the
	// shared store, before the site exists anywhere.
	ctx := context.Background()
	w, err := ingest.NewWriter(a.opened.Store, ingest.WriterOptions{Clock: func() time.Time { return servicetest.Now }, MaxAge: 72 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var pts []providers.Point
	for h := range 6 {
		pts = append(pts, providers.Point{Zone: "NL", Time: servicetest.From.Add(time.Duration(h) * time.Hour), Duration: time.Hour,
			Intensity: carbon.Intensity(servicetest.HourIntensity(h)), Kind: providers.Actual, Signal: providers.Average})
	}
	series := append([]sample.Series{servicetest.Counter("ams2", "facility", 1), servicetest.Counter("ams2", "it", 0.8)},
		providers.Series("electricitymaps", pts)...)
	if res, err := w.WriteSeries(ctx, ingest.WriteOptions{Tenant: "t1"}, series); err != nil || res.RejectedCount > 0 {
		t.Fatalf("write meters and intensity: %+v, %v", res, err)
	}
	// By hand: facility 400..650 kWh in hours 0..5 at 300..350 g/kWh.
	var wantKWh, wantKg float64
	for h := range 6 {
		wantKWh += servicetest.HourPowerKW(h)
		wantKg += servicetest.HourPowerKW(h) * servicetest.HourIntensity(h) / 1000
	}

	period := "from=" + url.QueryEscape(servicetest.From.Format(time.RFC3339)) + "&to=" + url.QueryEscape(servicetest.To.Format(time.RFC3339))
	kpis := "/api/v1/kpis?site=ams2&" + period
	emis := "/api/v1/emissions?site=ams2&" + period
	for _, s := range []*sitesServer{a, b} {
		if got, want := s.siteIDs(t, admin1), []string{"fra1/DE"}; !slices.Equal(got, want) {
			t.Fatalf("%s: t1's sites at start %v, want %v", s.name, got, want)
		}
		if code, body := s.do("GET", kpis, admin1, ""); code != 404 {
			t.Fatalf("%s: kpis of ams2 before it exists: %d %s", s.name, code, body)
		}
	}

	// PUT through A: in force on A at once.
	code, body := a.do("PUT", "/api/v1/admin/sites/ams2", admin1,
		`{"name": "Amsterdam 2", "zone": "NL", "it_capacity_kw": 500, "location": {"lat": 52.37, "lon": 4.9}}`)
	if code != 201 {
		t.Fatalf("PUT ams2 through A: %d %s", code, body)
	}
	if got, want := a.siteIDs(t, admin1), []string{"ams2/NL", "fra1/DE"}; !slices.Equal(got, want) {
		t.Fatalf("A: t1's sites after the PUT %v, want %v", got, want)
	}
	// B has not refreshed yet: it does not know the site.
	if got := b.siteIDs(t, admin1); slices.Contains(got, "ams2/NL") {
		t.Fatalf("B knows ams2 before its refresh: %v", got)
	}
	if code, _ := b.do("GET", emis, admin1, ""); code != 404 {
		t.Fatalf("B: emissions of ams2 before its refresh: %d, want 404", code)
	}
	if err := b.rt.syncer.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	if got, want := b.siteIDs(t, admin1), []string{"ams2/NL", "fra1/DE"}; !slices.Equal(got, want) {
		t.Fatalf("B: t1's sites after its refresh %v, want %v", got, want)
	}

	// The same figures through both servers.
	answers := map[string][2][]byte{}
	for _, path := range []string{kpis, emis} {
		var got [2][]byte
		for i, s := range []*sitesServer{a, b} {
			code, body := s.do("GET", path, admin1, "")
			if code != 200 {
				t.Fatalf("%s: GET %s: %d %s", s.name, path, code, body)
			}
			got[i] = body
		}
		if !bytes.Equal(got[0], got[1]) {
			t.Errorf("A and B answer %s differently:\nA %s\nB %s", path, got[0], got[1])
		}
		answers[path] = got
	}
	var e struct {
		EnergyKWh   float64  `json:"energy_kwh"`
		EmissionsKg float64  `json:"emissions_kg"`
		Providers   []string `json:"intensity_providers"`
	}
	if err := json.Unmarshal(answers[emis][1], &e); err != nil {
		t.Fatal(err)
	}
	if !nearly(e.EnergyKWh, wantKWh) || !nearly(e.EmissionsKg, wantKg) || !slices.Equal(e.Providers, []string{"electricitymaps"}) {
		t.Errorf("B: emissions of ams2 %+v, want %v kWh, %v kg from electricitymaps", e, wantKWh, wantKg)
	}
	var k struct {
		PUE         *float64 `json:"pue"`
		CUELocation *float64 `json:"cue_location"`
	}
	if err := json.Unmarshal(answers[kpis][1], &k); err != nil {
		t.Fatal(err)
	}
	if k.PUE == nil || !nearly(*k.PUE, 1/0.8) || k.CUELocation == nil || !nearly(*k.CUELocation, wantKg/(wantKWh*0.8)) {
		t.Errorf("B: kpis of ams2 %s", answers[kpis][1])
	}
	for _, s := range []*sitesServer{a, b} {
		if got, want := s.fleetIDs(t, admin1), []string{"ams2", "fra1"}; !slices.Equal(got, want) {
			t.Errorf("%s: t1's fleet %v, want %v", s.name, got, want)
		}
	}

	// Tenant t2 sees none of it, on either server.
	for _, s := range []*sitesServer{a, b} {
		if got, want := s.siteIDs(t, admin2), []string{"nyc1/US-NY-NYIS"}; !slices.Equal(got, want) {
			t.Errorf("%s: t2's sites %v, want %v", s.name, got, want)
		}
		if got, want := s.fleetIDs(t, admin2), []string{"nyc1"}; !slices.Equal(got, want) {
			t.Errorf("%s: t2's fleet %v, want %v", s.name, got, want)
		}
		for _, path := range []string{kpis, emis} {
			if code, body := s.do("GET", path, admin2, ""); code != 404 {
				t.Errorf("%s: t2 reads %s: %d %s, want 404", s.name, path, code, body)
			}
		}
		code, body := s.do("GET", "/api/v1/admin/sites", admin2, "")
		if code != 200 || bytes.Contains(body, []byte("ams2")) || !bytes.Contains(body, []byte("nyc1")) {
			t.Errorf("%s: t2's admin list: %d %s", s.name, code, body)
		}
		if code, body := s.do("DELETE", "/api/v1/admin/sites/ams2", admin2, ""); code != 404 {
			t.Errorf("%s: t2 deletes t1's ams2: %d %s, want 404", s.name, code, body)
		}
	}

	// A file site cannot be overwritten through either server.
	for _, s := range []*sitesServer{a, b} {
		if code, body := s.do("PUT", "/api/v1/admin/sites/fra1", admin1, `{"name": "Frankfurt One", "zone": "DE"}`); code != 409 {
			t.Errorf("%s: PUT over the file site fra1: %d %s, want 409", s.name, code, body)
		}
	}

	// DELETE through B: gone on B at once, on A after its refresh.
	if code, body := b.do("DELETE", "/api/v1/admin/sites/ams2", admin1, ""); code != 204 {
		t.Fatalf("DELETE ams2 through B: %d %s", code, body)
	}
	if code, _ := b.do("GET", kpis, admin1, ""); code != 404 {
		t.Errorf("B: kpis of ams2 after its DELETE: %d, want 404", code)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, _ := a.do("GET", kpis, admin1, "")
		if code == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A: kpis of ams2 still %d 10 s after the DELETE through B (refresh 1s)", code)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, s := range []*sitesServer{a, b} {
		if got, want := s.siteIDs(t, admin1), []string{"fra1/DE"}; !slices.Equal(got, want) {
			t.Errorf("%s: t1's sites after the DELETE %v, want %v", s.name, got, want)
		}
		if got, want := s.fleetIDs(t, admin1), []string{"fra1"}; !slices.Equal(got, want) {
			t.Errorf("%s: t1's fleet after the DELETE %v, want %v", s.name, got, want)
		}
	}
}

// nearly compares figures computed through float sums in different orders.
func nearly(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }
