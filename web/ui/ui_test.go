package ui

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/summary"
	"github.com/greenloop/greenloop/internal/config"
)

func f(v float64) *float64 { return &v }

var at = time.Date(2026, 3, 10, 3, 0, 0, 0, time.UTC)

func sites() []summary.SiteSummary {
	return []summary.SiteSummary{
		{ID: "fra1", Name: "Frankfurt 1", Zone: "DE", Location: config.Location{Lat: 50.1, Lon: 8.7}, ITCapacityKW: 200,
			ITPowerW: f(100_000), FacilityPowerW: f(130_000), PUE: f(1.3), PUEBasis: summary.PUEFromEnergy,
			InletTempC: f(23.5), CarbonIntensity: f(358.7), CarbonProvider: "electricitymaps-2022-replay",
			EnergyTodayKWh: f(390), CO2eTodayKg: f(156), Since: at.Truncate(24 * time.Hour), At: at},
		{ID: "sto1", Name: "Stockholm <static>", Zone: "SE", ITCapacityKW: 150,
			CarbonIntensity: f(40), CarbonProvider: "static", Since: at.Truncate(24 * time.Hour), At: at,
			Warnings: []string{"meters.it_energy: bad"}},
	}
}

// server registers the page with a fake summary source that records the tenant it was asked for.
func server(t *testing.T, tenant string, sum func(ctx context.Context, tenant string) ([]summary.SiteSummary, error)) (*echo.Echo, *string) {
	t.Helper()
	e := echo.New()
	if tenant != "" {
		e.Use(func(next echo.HandlerFunc) echo.HandlerFunc {
			return func(c echo.Context) error { c.Set(ContextKeyTenant, tenant); return next(c) }
		})
	}
	var asked string
	Register(e, Deps{Summaries: func(ctx context.Context, tenant string) ([]summary.SiteSummary, error) {
		asked = tenant
		return sum(ctx, tenant)
	}})
	return e, &asked
}

func get(e *echo.Echo, path string) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec
}

func fixed(s []summary.SiteSummary, err error) func(context.Context, string) ([]summary.SiteSummary, error) {
	return func(context.Context, string) ([]summary.SiteSummary, error) { return s, err }
}

func TestPage(t *testing.T) {
	e, asked := server(t, "acme", fixed(sites(), nil))
	rec := get(e, "/")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if *asked != "acme" {
		t.Errorf("summaries asked for tenant %q, want acme", *asked)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("content type %q", ct)
	}
	if csp := rec.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
		t.Errorf("CSP %q", csp)
	}
	body := rec.Body.String()
	for _, want := range []string{
		`<tr data-site="fra1">`, "Frankfurt 1", `<span class="zone">DE</span>`,
		">100.0 kW<", "50 % of 200 kW", ">130.0 kW<", ">1.30<", ">23.5 °C<", "359 g/kWh", "2022 replay",
		">390.0 kWh<", ">156.0 kg<",
		// totals
		`data-total="it_power_watts"><span class="label">IT power</span><span class="value">100.0 kW<`,
		`data-total="pue"><span class="label">PUE</span><span class="value">1.30<`,
		`data-total="co2e_today_kg"><span class="label">CO₂e today</span><span class="value">156.0 kg<`,
		`data-total="carbon_intensity_today_grams_per_kwh"><span class="label">Intensity today</span><span class="value">400 g/kWh<`,
		// the static site, escaped, with its badge and warning
		"Stockholm &lt;static&gt;", `<span class="badge">static</span>`, `title="meters.it_energy: bad"`,
		"Updated 2026-03-10 03:00:00 UTC", "Today = since <span id=\"since\">00:00 UTC",
		carbon.Attribution,
		`<script src="/static/app.js?v=`, `<link rel="stylesheet" href="/static/style.css?v=`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<static>") {
		t.Error("site name not escaped")
	}
	if strings.Contains(body, "data-ready") {
		t.Error("data-ready must be set by the script after its first refresh, not by the server")
	}
	// The sto1 row has no power figures: dashes, not zeros.
	row := body[strings.Index(body, `<tr data-site="sto1">`):]
	row = row[:strings.Index(row, "</tr>")]
	if strings.Count(row, "—") < 6 {
		t.Errorf("sto1 row should show dashes for missing figures: %s", row)
	}
}

func TestFleetJSON(t *testing.T) {
	e, asked := server(t, "", fixed(sites(), nil))
	rec := get(e, "/api/v1/fleet")
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d: %s", rec.Code, rec.Body)
	}
	if *asked != "" {
		t.Errorf("tenant %q without auth", *asked)
	}
	var got Fleet
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Sites) != 2 || got.Sites[0].ID != "fra1" || *got.Sites[0].PUE != 1.3 || got.Totals.Sites != 2 ||
		got.Totals.ITPowerW != 100_000 || !got.At.Equal(at) || !got.Since.Equal(at.Truncate(24*time.Hour)) {
		t.Errorf("got %+v", got)
	}
	if got.Attribution != carbon.Attribution {
		t.Errorf("attribution %q", got.Attribution)
	}
	// Field names the script reads.
	for _, k := range []string{`"it_power_watts":100000`, `"facility_power_watts":130000`, `"pue":1.3`, `"inlet_temperature_celsius":23.5`,
		`"carbon_intensity_grams_per_kwh":358.7`, `"carbon_provider":"electricitymaps-2022-replay"`, `"energy_today_kwh":390`,
		`"co2e_today_kg":156`, `"it_capacity_kw":200`, `"it_power_watts":null`, `"totals":{"sites":2`, `"warnings":["meters.it_energy: bad"]`} {
		if !strings.Contains(rec.Body.String(), k) {
			t.Errorf("JSON lacks %s", k)
		}
	}
	if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
		t.Errorf("Cache-Control %q", cc)
	}
}

func TestEmptyFleet(t *testing.T) {
	e, _ := server(t, "", fixed(nil, nil))
	rec := get(e, "/api/v1/fleet")
	if !strings.Contains(rec.Body.String(), `"sites":[]`) || strings.Contains(rec.Body.String(), "attribution") {
		t.Errorf("body %s", rec.Body)
	}
	rec = get(e, "/")
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "No sites to show.") {
		t.Errorf("page %d: %s", rec.Code, rec.Body)
	}
}

func TestSummaryError(t *testing.T) {
	e, _ := server(t, "", fixed(nil, errors.New("secret storage detail")))
	rec := get(e, "/api/v1/fleet")
	if rec.Code != http.StatusInternalServerError {
		t.Errorf("fleet status %d", rec.Code)
	}
	rec = get(e, "/")
	if rec.Code != http.StatusInternalServerError || !strings.Contains(rec.Body.String(), "could not be computed") {
		t.Errorf("page %d: %s", rec.Code, rec.Body)
	}
	if strings.Contains(rec.Body.String(), "secret storage detail") {
		t.Error("page shows the internal error")
	}
	if !strings.Contains(rec.Body.String(), `<script src="/static/app.js`) {
		t.Error("the page must still load its script, to retry")
	}
}

func TestStatic(t *testing.T) {
	e, _ := server(t, "", fixed(nil, nil))
	for path, want := range map[string]string{
		"/static/app.js":    "javascript",
		"/static/style.css": "text/css",
	} {
		rec := get(e, path)
		if rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Content-Type"), want) || rec.Body.Len() < 500 {
			t.Errorf("%s: %d %q %d bytes", path, rec.Code, rec.Header().Get("Content-Type"), rec.Body.Len())
		}
	}
	for _, p := range []string{"/static/nope.js", "/static/", "/static/../ui.go", "/staticx"} {
		if rec := get(e, p); rec.Code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, rec.Code)
		}
	}
	page := get(e, "/").Body.String()
	m := regexp.MustCompile(`/static/app\.js\?v=[0-9a-f]+`).FindString(page)
	if rec := get(e, m); m == "" || rec.Code != http.StatusOK || !strings.Contains(rec.Header().Get("Cache-Control"), "immutable") {
		t.Errorf("versioned asset %q: %d %q", m, rec.Code, rec.Header().Get("Cache-Control"))
	}
	if cc := get(e, "/static/app.js").Header().Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("unversioned asset Cache-Control %q", cc)
	}
	var routes []string
	for _, r := range e.Routes() {
		routes = append(routes, r.Method+" "+r.Path)
	}
	for _, want := range []string{"GET " + PathPage, "GET " + PathFleet, "GET " + PublicPaths[0]} {
		if !slices.Contains(routes, want) {
			t.Errorf("routes %v lack %s", routes, want)
		}
	}
	js := get(e, "/static/app.js").Body.String()
	for _, want := range []string{"dataset.ready = \"1\"", `"/api/v1/fleet"`} {
		if !strings.Contains(js, want) {
			t.Errorf("app.js lacks %s", want)
		}
	}
}

// TestNoExternalResources: the page works offline.
func TestNoExternalResources(t *testing.T) {
	ext := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|@import|url\(`)
	for _, efs := range []fs.FS{staticFS, templateFS} {
		err := fs.WalkDir(efs, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			b, _ := fs.ReadFile(efs, p)
			if m := ext.Find(b); m != nil {
				t.Errorf("%s refers to %q", p, m)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

func TestFormats(t *testing.T) {
	eq := func(got, want string) {
		t.Helper()
		if got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	eq(fmtPower(nil), "—")
	eq(fmtPower(f(850)), "850 W")
	eq(fmtPower(f(731_240)), "731.2 kW")
	eq(fmtPower(f(3_120_000)), "3.12 MW")
	eq(fmtPUE(f(1.2345)), "1.23")
	eq(fmtTemp(f(22.46)), "22.5 °C")
	eq(fmtIntensity(f(358.7)), "359 g/kWh")
	eq(fmtEnergy(f(390)), "390.0 kWh")
	eq(fmtEnergy(f(12_345)), "12.35 MWh")
	eq(fmtCO2e(f(156)), "156.0 kg")
	eq(fmtCO2e(f(2_500)), "2.50 t")
	eq(fmtLoad(f(450_000), 900), "50 % of 900 kW")
	eq(fmtLoad(f(450_000), 0), "")
	eq(providerBadge("electricitymaps-2022-replay"), "2022 replay")
	eq(providerBadge("static"), "static")
	eq(providerBadge("electricitymaps"), "")
}
