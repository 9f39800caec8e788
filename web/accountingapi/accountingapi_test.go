package accountingapi

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/accounting/service"
	"github.com/greenloop/greenloop/accounting/service/servicetest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/web"
)

// Tokens of the test server: tenant acme (admin, officer, scheduler) and tenant other (admin).
const (
	tokAdmin     = "acme-admin-token"
	tokOfficer   = "acme-officer-token"
	tokScheduler = "acme-scheduler-token"
	tokOther     = "other-admin-token"
)

type env struct {
	t     *testing.T
	h     http.Handler
	store *servicetest.Store
}

func sites() []config.Site {
	return []config.Site{
		// The PV meter has series only where a test writes them (pvCounter).
		{ID: "fra1", Name: "Frankfurt 1", Zone: "DE", Tenant: "acme", ITCapacityKW: 800, Meters: map[string]string{"renewable_onsite": pvSelector},
			ResidualMix: []config.EmissionFactor{{GPerKWh: 700, Source: "AIB 2025", Year: 2025}},
			Instruments: []config.Instrument{{ID: "go1", Type: "GO", CertIDs: []string{"GO-1"}, From: servicetest.From, To: servicetest.To, EnergyMWh: 1}}},
		{ID: "par1", Zone: "FR", Tenant: "other"},
	}
}

func newEnv(t *testing.T) *env {
	t.Helper()
	st := servicetest.New(t)
	st.Write(t, "acme", servicetest.Counter("fra1", "facility", 1), servicetest.Counter("fra1", "it", 0.8))
	st.WriteIntensity(t, "acme", "electricitymaps", servicetest.Intensity("DE"))
	dir := t.TempDir()
	var lines []string
	for _, tk := range []struct{ tok, tenant, role string }{
		{tokAdmin, "acme", "admin"}, {tokOfficer, "acme", "officer"}, {tokScheduler, "acme", "scheduler"}, {tokOther, "other", "admin"},
	} {
		sum := sha256.Sum256([]byte(tk.tok))
		lines = append(lines, fmt.Sprintf("%s %s %s %s-%s", hex.EncodeToString(sum[:]), tk.tenant, tk.role, tk.tenant, tk.role))
	}
	tokens := filepath.Join(dir, "tokens")
	if err := os.WriteFile(tokens, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	clock := func() time.Time { return servicetest.Now }
	srv, err := web.New(web.Deps{Store: st.DB, Writer: st.Writer, Engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute}),
		Sites: sites(), Clock: clock}, web.Options{Auth: config.Auth{TokensFile: tokens}})
	if err != nil {
		t.Fatal(err)
	}
	acct := service.New(service.Options{Store: st.DB, Sites: sites(), MultiTenant: true, Providers: []string{"electricitymaps"}})
	inputs, err := report.NewFileInputStore(filepath.Join(dir, "inputs"), nil, clock, nil)
	if err != nil {
		t.Fatal(err)
	}
	snaps, err := report.NewFileSnapshotStore(filepath.Join(dir, "snapshots"), nil)
	if err != nil {
		t.Fatal(err)
	}
	Register(srv.Echo(), Deps{Accountant: acct, Writer: st.Writer, Backfill: st.Backfill, Window: 72 * time.Hour, Clock: clock,
		Reports: &Reports{Service: &report.Service{Inputs: inputs, Snapshots: snaps, Now: clock}}})
	return &env{t: t, h: srv.Handler(), store: st}
}

// do sends a request and checks the status; it returns the body.
func (e *env) do(method, path, token, body string, want int) []byte {
	e.t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", method, path, rec.Code, want, rec.Body.String())
	}
	return rec.Body.Bytes()
}

func (e *env) getJSON(path, token string, want int, v any) {
	e.t.Helper()
	if p, ok := v.(*emissionsJSON); ok {
		*p = emissionsJSON{}
	}
	if err := json.Unmarshal(e.do("GET", path, token, "", want), v); err != nil {
		e.t.Fatal(err)
	}
}

func q(kv ...string) string {
	v := url.Values{}
	for i := 0; i < len(kv); i += 2 {
		v.Set(kv[i], kv[i+1])
	}
	return v.Encode()
}

var (
	from = servicetest.From.Format(time.RFC3339)
	to   = servicetest.To.Format(time.RFC3339)
)

type emissionsJSON struct {
	Site             string      `json:"site"`
	Method           string      `json:"method"`
	EnergyKWh        float64     `json:"energy_kwh"`
	EmissionsKg      float64     `json:"emissions_kg"`
	Completeness     float64     `json:"completeness"`
	MissingIntensity []time.Time `json:"missing_intensity"`
	Series           []struct {
		T           time.Time `json:"t"`
		EnergyKWh   float64   `json:"energy_kwh"`
		Intensity   *float64  `json:"intensity_g_per_kwh"`
		EmissionsKg float64   `json:"emissions_kg"`
	} `json:"series"`
}

func near(a, b float64) bool { return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b)) }

// hand is Σ hourly energy × intensity, with the missing hour priced at missing (or left out when NaN).
func hand(missing float64) (kg, kwh float64) {
	for h := range 6 {
		e := servicetest.HourPowerKW(h)
		kwh += e
		switch {
		case h != servicetest.MissingHour:
			kg += e * servicetest.HourIntensity(h) / 1000
		case !math.IsNaN(missing):
			kg += e * missing / 1000
		}
	}
	return kg, kwh
}

func TestEmissionsLocation(t *testing.T) {
	e := newEnv(t)
	var got emissionsJSON
	e.getJSON("/api/v1/emissions?"+q("site", "fra1", "from", from, "to", to, "method", "location", "step", "1h"), tokScheduler, 200, &got)
	kg, kwh := hand(math.NaN())
	if !near(got.EmissionsKg, kg) || !near(got.EnergyKWh, kwh) || got.Site != "fra1" || got.Method != "location" {
		t.Errorf("got %+v, want %v kg %v kWh", got, kg, kwh)
	}
	if len(got.Series) != 6 {
		t.Fatalf("series %+v", got.Series)
	}
	for h, p := range got.Series {
		if h == servicetest.MissingHour {
			if p.Intensity != nil || p.EmissionsKg != 0 {
				t.Errorf("missing hour reported as %v", *p.Intensity)
			}
			continue
		}
		if p.Intensity == nil || *p.Intensity != servicetest.HourIntensity(h) || !near(p.EmissionsKg, servicetest.HourPowerKW(h)*servicetest.HourIntensity(h)/1000) {
			t.Errorf("hour %d: %+v", h, p)
		}
	}
	if len(got.MissingIntensity) != 1 || !got.MissingIntensity[0].Equal(servicetest.From.Add(servicetest.MissingHour*time.Hour)) || !near(got.Completeness, 5.0/6) {
		t.Errorf("missing %v completeness %v", got.MissingIntensity, got.Completeness)
	}
	// Without step: no series; step 3h sums hours.
	body := e.do("GET", "/api/v1/emissions?"+q("site", "fra1", "from", from, "to", to, "method", "location"), tokAdmin, "", 200)
	if strings.Contains(string(body), `"series"`) {
		t.Errorf("series without step: %s", body)
	}
	e.getJSON("/api/v1/emissions?"+q("site", "fra1", "from", from, "to", to, "step", "3h"), tokAdmin, 200, &got)
	if len(got.Series) != 2 || !near(got.Series[0].EnergyKWh, 400+450+500) || !near(got.EmissionsKg, kg) {
		t.Errorf("3h series %+v", got.Series)
	}
}

func TestEmissionsMarket(t *testing.T) {
	e := newEnv(t)
	var got emissionsJSON
	e.getJSON("/api/v1/emissions?"+q("site", "fra1", "from", from, "to", to, "method", "market"), tokOfficer, 200, &got)
	_, kwh := hand(math.NaN())
	if want := (kwh - 1000) * 0.7; !near(got.EmissionsKg, want) {
		t.Errorf("market %v kg, want %v", got.EmissionsKg, want)
	}
}

func TestErrorsAndTenancy(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		name, path, token string
		code              int
		want              string
	}{
		{"other tenant", "/api/v1/emissions?" + q("site", "fra1", "from", from, "to", to), tokOther, 404, `unknown site \"fra1\"`},
		{"other tenant kpis", "/api/v1/kpis?" + q("site", "fra1", "from", from, "to", to), tokOther, 404, "unknown site"},
		{"unknown site", "/api/v1/emissions?" + q("site", "nope", "from", from, "to", to), tokAdmin, 404, "unknown site"},
		{"no token", "/api/v1/emissions?" + q("site", "fra1", "from", from, "to", to), "", 401, "bearer"},
		{"no site", "/api/v1/emissions?" + q("from", from, "to", to), tokAdmin, 400, `"parameter":"site"`},
		{"bad from", "/api/v1/emissions?" + q("site", "fra1", "from", "yesterday", "to", to), tokAdmin, 400, `"parameter":"from"`},
		{"no to", "/api/v1/emissions?" + q("site", "fra1", "from", from), tokAdmin, 400, `"parameter":"to"`},
		{"to before from", "/api/v1/emissions?" + q("site", "fra1", "from", to, "to", from), tokAdmin, 400, `"parameter":"to"`},
		{"bad method", "/api/v1/emissions?" + q("site", "fra1", "from", from, "to", to, "method", "both"), tokAdmin, 400, `"parameter":"method"`},
		{"bad step", "/api/v1/emissions?" + q("site", "fra1", "from", from, "to", to, "step", "90m"), tokAdmin, 400, `"parameter":"step"`},
		{"no data", "/api/v1/emissions?" + q("site", "fra1", "from", "2025-01-01T00:00:00Z", "to", "2025-01-02T00:00:00Z"), tokAdmin, 422, `"reason":"no_data"`},
		{"no meters", "/api/v1/kpis?" + q("site", "par1", "from", from, "to", to), tokOther, 422, `"reason":"no_data"`},
		{"no intensity", "/api/v1/emissions?" + q("site", "fra1", "from", servicetest.To.Add(-time.Hour).Format(time.RFC3339), "to", to), tokAdmin, 200, `"emissions_kg"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := e.do("GET", tc.path, tc.token, "", tc.code)
			if !strings.Contains(string(body), tc.want) {
				t.Errorf("body %s, want %q", body, tc.want)
			}
			if tc.code >= 400 && !strings.Contains(string(body), `"error":`) {
				t.Errorf("not the error shape: %s", body)
			}
		})
	}
}

func TestKPIs(t *testing.T) {
	e := newEnv(t)
	var got map[string]any
	e.getJSON("/api/v1/kpis?"+q("site", "fra1", "from", from, "to", to), tokScheduler, 200, &got)
	kg, kwh := hand(math.NaN())
	if !near(got["pue"].(float64), 1/0.8) || !near(got["cue_location"].(float64), kg/(kwh*0.8)) || !near(got["ref"].(float64), 1000/kwh) {
		t.Errorf("kpis %v", got)
	}
	if got["wue"] != nil || got["erf"] != nil {
		t.Errorf("wue/erf without meters: %v %v", got["wue"], got["erf"])
	}
	if got["categories"].(map[string]any)["pue"] != "PUE1" || !near(got["completeness"].(float64), 1) {
		t.Errorf("categories %v completeness %v", got["categories"], got["completeness"])
	}
}

func TestPutCarbonIntensity(t *testing.T) {
	e := newEnv(t)
	h3 := servicetest.From.Add(servicetest.MissingHour * time.Hour).Format(time.RFC3339)
	good := "zone,timestamp,g_per_kwh\nDE," + h3 + ",330\n\nDE,2025-06-02T00:00:00Z,250\n"
	// A scheduler may read but not import.
	e.do("PUT", "/api/v1/carbon-intensity", tokScheduler, good, 403)
	// Bad lines: each listed with its line and column, nothing stored.
	bad := "zone,timestamp,g_per_kwh\nDE," + h3 + ",330\nDE,yesterday,1\n,2025-06-10T01:00:00Z,5\nDE,2025-06-10T02:00:00Z,-4\n"
	var errBody struct {
		Error  string `json:"error"`
		Detail struct {
			Rejections []struct {
				Line   int    `json:"line"`
				Field  string `json:"field"`
				Reason string `json:"reason"`
			} `json:"rejections"`
		} `json:"detail"`
	}
	if err := json.Unmarshal(e.do("PUT", "/api/v1/carbon-intensity", tokOfficer, bad, 400), &errBody); err != nil {
		t.Fatal(err)
	}
	r := errBody.Detail.Rejections
	if len(r) != 3 || r[0].Line != 3 || r[0].Field != "timestamp" || r[1].Line != 4 || r[1].Field != "zone" || r[2].Line != 5 || r[2].Field != "g_per_kwh" {
		t.Errorf("rejections %+v (%s)", r, errBody.Error)
	}
	var got emissionsJSON
	e.getJSON("/api/v1/emissions?"+q("site", "fra1", "from", from, "to", to), tokAdmin, 200, &got)
	if len(got.MissingIntensity) != 1 {
		t.Fatalf("a bad import changed the data: %+v", got)
	}
	// Future and too old points are refused by line, too.
	e.do("PUT", "/api/v1/carbon-intensity", tokOfficer, "zone,timestamp,g_per_kwh\nDE,2025-06-11T01:00:00Z,1\nDE,2025-01-01T00:00:00Z,1\n", 400)
	// A good import (one point in the head, one older than the window → backfill).
	var res struct {
		Stored int      `json:"stored"`
		Zones  []string `json:"zones"`
	}
	if err := json.Unmarshal(e.do("PUT", "/api/v1/carbon-intensity", tokOfficer, good, 200), &res); err != nil {
		t.Fatal(err)
	}
	if res.Stored != 2 || len(res.Zones) != 1 {
		t.Errorf("result %+v", res)
	}
	e.getJSON("/api/v1/emissions?"+q("site", "fra1", "from", from, "to", to), tokAdmin, 200, &got)
	kg, _ := hand(330)
	if len(got.MissingIntensity) != 0 || !near(got.EmissionsKg, kg) || !near(got.Completeness, 1) {
		t.Errorf("after import: %+v, want %v kg", got, kg)
	}
	// The point older than the out-of-order window went in as a block.
	acct := service.New(service.Options{Store: e.store.DB, MultiTenant: true})
	old, provs, err := acct.Intensity(context.Background(), acct.QueryableFor("acme"), "DE", time.Date(2025, 6, 2, 0, 0, 0, 0, time.UTC), time.Date(2025, 6, 2, 1, 0, 0, 0, time.UTC))
	if err != nil || len(old.Points) != 1 || old.Points[0].LCA != 250 || len(provs) != 1 || provs[0] != "manual" {
		t.Errorf("backfilled point: %+v %v %v", old, provs, err)
	}
	// The same import again is idempotent; a changed value is a conflict.
	e.do("PUT", "/api/v1/carbon-intensity", tokAdmin, good, 200)
	body := e.do("PUT", "/api/v1/carbon-intensity", tokAdmin, "zone,timestamp,g_per_kwh\nDE,"+h3+",331\n", 409)
	if !strings.Contains(string(body), `"line":2`) || !strings.Contains(string(body), "already has the value 330") {
		t.Errorf("conflict body %s", body)
	}
	// Another tenant's import stays in its own view.
	e.do("PUT", "/api/v1/carbon-intensity", tokOther, "zone,timestamp,g_per_kwh\nDE,"+h3+",999\n", 200)
	e.getJSON("/api/v1/emissions?"+q("site", "fra1", "from", from, "to", to), tokAdmin, 200, &got)
	if !near(got.EmissionsKg, kg) {
		t.Errorf("other tenant's import leaked: %v", got.EmissionsKg)
	}
}

func TestReportEndpoints(t *testing.T) {
	e := newEnv(t)
	path := "/api/v1/sites/fra1/report-inputs/2025"
	e.do("PUT", path, tokScheduler, `{"dc_name": "x"}`, 403)
	e.do("PUT", "/api/v1/sites/fra1/report-inputs/2025", tokOther, `{"floor_area_total_m2": 1200}`, 404)
	e.do("PUT", "/api/v1/sites/fra1/report-inputs/20x5", tokOfficer, `{"floor_area_total_m2": 1200}`, 400)
	body := e.do("PUT", path, tokOfficer, `{"floor_area_total_m2": "big", "no_such_field": 1}`, 400)
	if !strings.Contains(string(body), "floor_area_total_m2") || !strings.Contains(string(body), "no_such_field") {
		t.Errorf("field errors %s", body)
	}
	body = e.do("PUT", path, tokOfficer, `{"floor_area_total_m2": 1200, "floor_area_computer_room_m2": 800}`, 200)
	if !strings.Contains(string(body), `"floor_area_total_m2"`) {
		t.Errorf("inputs %s", body)
	}
	// The audit trail names the token that entered the value.
	if !strings.Contains(string(body), `"by":"acme-officer (role officer) of tenant acme"`) {
		t.Errorf("who entered the inputs: %s", body)
	}
	var rep struct {
		DataCentreID string `json:"data_centre_id"`
		Fields       map[string]struct {
			Value   any    `json:"value"`
			Quality string `json:"quality"`
		} `json:"fields"`
	}
	e.getJSON("/api/v1/reports/eu?"+q("site", "fra1", "year", "2025", "format", "json"), tokOfficer, 200, &rep)
	// The year holds the six hours plus the counter's 10 minutes before (400 kW) and after (650 kW).
	_, kwh := hand(math.NaN())
	kwh += (400 + 650) / 6.0
	if rep.DataCentreID != "fra1" || !near(rep.Fields["energy_total_kwh"].Value.(float64), kwh) || rep.Fields["floor_area_total_m2"].Value.(float64) != 1200 {
		t.Errorf("report %+v", rep)
	}
	req := httptest.NewRequest("GET", "/api/v1/reports/eu?"+q("site", "fra1", "year", "2025", "format", "csv"), nil)
	req.Header.Set("Authorization", "Bearer "+tokAdmin)
	rec := httptest.NewRecorder()
	e.h.ServeHTTP(rec, req)
	if rec.Code != 200 || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/csv") || !strings.Contains(rec.Body.String(), "energy_total_kwh") {
		t.Errorf("csv: %d %s %.200s", rec.Code, rec.Header().Get("Content-Type"), rec.Body.String())
	}
	e.do("GET", "/api/v1/reports/eu?"+q("site", "fra1", "year", "2025", "format", "doc"), tokAdmin, "", 400)
	e.do("GET", "/api/v1/reports/eu?"+q("site", "fra1", "year", "2025"), tokOther, "", 404)
}

// A report frozen as a snapshot is served byte for byte with its hash; a
// final freeze with blocking errors is refused and stores nothing.
func TestReportSnapshots(t *testing.T) {
	e := newEnv(t)
	e.do("PUT", "/api/v1/sites/fra1/report-inputs/2025", tokOfficer, `{"floor_area_total_m2": 1200}`, 200)
	freeze := "/api/v1/reports/eu/snapshots?" + q("site", "fra1", "year", "2025")
	e.do("POST", freeze, tokScheduler, "", 403)
	e.do("POST", freeze+"&draft=maybe", tokOfficer, "", 400)
	e.do("POST", "/api/v1/reports/eu/snapshots?"+q("site", "fra1", "year", "2025"), tokOther, "", 404)
	// Most required Annex fields are not entered: a final snapshot is refused.
	body := e.do("POST", freeze, tokOfficer, "", 422)
	if !strings.Contains(string(body), "blocking_errors") {
		t.Errorf("final freeze refusal: %s", body)
	}
	var list struct{ Snapshots []snapshotJSON }
	e.getJSON("/api/v1/reports/eu/snapshots?"+q("site", "fra1"), tokOfficer, 200, &list)
	if len(list.Snapshots) != 0 {
		t.Fatalf("a refused freeze stored %d snapshot(s)", len(list.Snapshots))
	}
	var snap snapshotJSON
	if err := json.Unmarshal(e.do("POST", freeze+"&draft=true", tokOfficer, "", 201), &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Status != "draft" || snap.Site != "fra1" || snap.Year != 2025 || len(snap.SHA256) != 64 || !strings.Contains(snap.By, "acme-officer") {
		t.Errorf("snapshot %+v", snap)
	}
	e.getJSON("/api/v1/reports/eu/snapshots?"+q("site", "fra1", "year", "2025"), tokScheduler, 200, &list)
	if len(list.Snapshots) != 1 || list.Snapshots[0].ID != snap.ID {
		t.Errorf("list %+v", list)
	}
	// Later entries do not change the frozen report.
	e.do("PUT", "/api/v1/sites/fra1/report-inputs/2025", tokOfficer, `{"floor_area_total_m2": 1500}`, 200)
	for range 2 {
		got := e.do("GET", "/api/v1/reports/eu/snapshots/"+snap.ID, tokScheduler, "", 200)
		sum := sha256.Sum256(got)
		if hex.EncodeToString(sum[:]) != snap.SHA256 {
			t.Fatalf("the served JSON does not hash to the snapshot's sha256")
		}
		if !strings.Contains(string(got), "1200") || strings.Contains(string(got), `"value":1500`) {
			t.Errorf("the frozen report changed: %.300s", got)
		}
	}
	pdf := e.do("GET", "/api/v1/reports/eu/snapshots/"+snap.ID+"?format=pdf", tokOfficer, "", 200)
	if !bytes.HasPrefix(pdf, []byte("%PDF")) {
		t.Errorf("pdf export of the snapshot: %.20q", pdf)
	}
	e.do("GET", "/api/v1/reports/eu/snapshots/"+snap.ID, tokOther, "", 404)
	e.do("GET", "/api/v1/reports/eu/snapshots/nope", tokOfficer, "", 404)
}

func TestStoreUnavailableIs503(t *testing.T) {
	err := toHTTP(fmt.Errorf("report inputs: %w", fmt.Errorf("%w: dial tcp: connection refused", clickhouse.ErrUnavailable)))
	var we *web.Error
	if !errors.As(err, &we) || we.Code != http.StatusServiceUnavailable || we.RetryAfter <= 0 {
		t.Fatalf("got %#v", err)
	}
}
