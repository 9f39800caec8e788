package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/accounting/service/servicetest"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/web"
)

// The report command reads the store of a running server (read-only) and
// answers what the server's API answers.
func TestReportCommandMatchesAPI(t *testing.T) {
	st := servicetest.New(t)
	// The meters and intensity come as history (blocks, as an import of a
	// meter export would), so that the CSV hour the server backfills below
	// does not end after samples of the write-ahead log: Prometheus replays
	// the log (at a restart, and in read-only mode) only after the newest
	// block's end.
	st.WriteBackfill(t, "", servicetest.Counter("fra1", "facility", 1), servicetest.Counter("fra1", "it", 0.8))
	st.WriteBackfill(t, "", providers.Series("electricitymaps", servicetest.Intensity("DE"))...)
	dir := t.TempDir()
	// The CSV fills the hour electricitymaps lacks; the server loads it at start.
	h3 := servicetest.From.Add(servicetest.MissingHour * time.Hour).Format(time.RFC3339)
	csv := filepath.Join(dir, "de.csv")
	if err := os.WriteFile(csv, []byte("zone,timestamp,g_per_kwh\nDE,"+h3+",330\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "server.yaml")
	yaml := fmt.Sprintf(`data_dir: %s
sites:
  - id: fra1
    name: Frankfurt 1
    zone: DE
    it_capacity_kw: 800
    residual_mix: [{g_per_kwh: 700, source: AIB 2025, year: 2025}]
    instruments:
      - {id: go1, type: GO, cert_ids: [GO-1], from: %s, to: %s, energy_mwh: 1}
carbon:
  providers: [{type: electricitymaps, token_env: GL_TEST_NO_SUCH_TOKEN}, {type: csv, path: %s}]
`, st.Dir, servicetest.From.Format(time.RFC3339), servicetest.To.Format(time.RFC3339), csv)
	if err := os.WriteFile(cfgFile, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.LoadFile(cfgFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := slog.New(slog.DiscardHandler)

	// A provider whose secret is missing fails the start, naming it.
	srv, err := web.New(web.Deps{Store: st.DB, Writer: st.Writer, Engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute}),
		Sites: cfg.Sites}, web.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := startAccounting(ctx, srv, log, cfg, st.DB, st.Writer, st.Backfill, staticSites(cfg.Sites), nil); err == nil || !strings.Contains(err.Error(), "GL_TEST_NO_SUCH_TOKEN") {
		t.Fatalf("start with a missing token: %v", err)
	}
	cfg.Carbon.Providers = cfg.Carbon.Providers[1:]
	// The command reads the same configuration (provider order included).
	if err := os.WriteFile(cfgFile, []byte(strings.Replace(yaml, "{type: electricitymaps, token_env: GL_TEST_NO_SUCH_TOKEN}, ", "", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	srv, err = web.New(web.Deps{Store: st.DB, Writer: st.Writer, Engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute}),
		Sites: cfg.Sites}, web.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stop, err := startAccounting(ctx, srv, log, cfg, st.DB, st.Writer, st.Backfill, staticSites(cfg.Sites), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	api := func(path string, want int) []byte {
		t.Helper()
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != want {
			t.Fatalf("GET %s: %d %s", path, rec.Code, rec.Body.String())
		}
		return rec.Body.Bytes()
	}
	from, to := servicetest.From.Format(time.RFC3339), servicetest.To.Format(time.RFC3339)
	emissionsPath := "/api/v1/emissions?" + url.Values{"site": {"fra1"}, "from": {from}, "to": {to}, "method": {"location"}, "step": {"1h"}}.Encode()
	// Wait for the CSV to be stored (the service writes it at start, in the background).
	var apiAnswer map[string]any
	for deadline := time.Now().Add(20 * time.Second); ; {
		apiAnswer = map[string]any{}
		if err := json.Unmarshal(api(emissionsPath, 200), &apiAnswer); err != nil {
			t.Fatal(err)
		}
		if apiAnswer["completeness"] == 1.0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the CSV hour never arrived: %v", apiAnswer)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var wantKg float64
	for h := range 6 {
		v := servicetest.HourIntensity(h)
		if h == servicetest.MissingHour {
			v = 330
		}
		wantKg += servicetest.HourPowerKW(h) * v / 1000
	}
	if got := apiAnswer["emissions_kg"].(float64); got < wantKg-1e-9 || got > wantKg+1e-9 {
		t.Errorf("API emissions %v kg, want %v", got, wantKg)
	}

	cli := func(args ...string) []byte {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(ctx, append([]string{"report"}, args...), &stdout, &stderr); code != 0 {
			t.Fatalf("greenloop report %v: exit %d: %s", args, code, stderr.String())
		}
		return stdout.Bytes()
	}
	// Scope 1 entered for the report reaches the CUE of both the API and the CLI.
	var before map[string]any
	kpisPath := "/api/v1/kpis?" + url.Values{"site": {"fra1"}, "from": {from}, "to": {to}}.Encode()
	if err := json.Unmarshal(api(kpisPath, 200), &before); err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	srv.Handler().ServeHTTP(rec, httptest.NewRequest("PUT", "/api/v1/sites/fra1/report-inputs/2025",
		strings.NewReader(`{"scope1_sources":[{"kind":"fuel","name":"diesel","quantity":5500,"unit":"L","factor_kg_per_unit":2.66}]}`)))
	if rec.Code/100 != 2 {
		t.Fatalf("PUT report inputs: %d %s", rec.Code, rec.Body.String())
	}
	var after map[string]any
	if err := json.Unmarshal(api(kpisPath, 200), &after); err != nil {
		t.Fatal(err)
	}
	s1Kg := 5500 * 2.66 * float64(servicetest.To.Sub(servicetest.From)) / float64(365*24*time.Hour)
	if d, want := after["cue_location"].(float64)-before["cue_location"].(float64), s1Kg/after["it_energy_kwh"].(float64); d < want*(1-1e-9) || d > want*(1+1e-9) {
		t.Errorf("CUE grew by %v with Scope 1, want %v", d, want)
	}
	// While the "server" holds the store open.
	for _, tc := range []struct {
		path string
		args []string
	}{
		{emissionsPath, []string{"emissions", "--config", cfgFile, "--site", "fra1", "--from", from, "--to", to, "--step", "1h"}},
		{"/api/v1/emissions?" + url.Values{"site": {"fra1"}, "from": {from}, "to": {to}, "method": {"market"}}.Encode(),
			[]string{"emissions", "--config", cfgFile, "--site", "fra1", "--from", from, "--to", to, "--method", "market"}},
		{"/api/v1/kpis?" + url.Values{"site": {"fra1"}, "from": {from}, "to": {to}}.Encode(),
			[]string{"kpis", "--config", cfgFile, "--site", "fra1", "--from", from, "--to", to}},
	} {
		var a, c map[string]any
		if err := json.Unmarshal(api(tc.path, 200), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(cli(tc.args...), &c); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, c) {
			t.Errorf("%s:\nAPI %v\nCLI %v", tc.path, a, c)
		}
	}
	// The EU report, in JSON (compared with the API's) and XLSX to a file.
	var a, c map[string]any
	if err := json.Unmarshal(api("/api/v1/reports/eu?site=fra1&year=2025&format=json", 200), &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(cli("eu", "--config", cfgFile, "--site", "fra1", "--year", "2025", "--format", "json"), &c); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"fields", "kpis", "esrs_e1_6", "monthly"} {
		if !reflect.DeepEqual(a[k], c[k]) {
			t.Errorf("eu report %s: API %v, CLI %v", k, a[k], c[k])
		}
	}
	xlsx := filepath.Join(dir, "eu.xlsx")
	cli("eu", "--config", cfgFile, "--site", "fra1", "--year", "2025", "--format", "xlsx", "-o", xlsx)
	if b, err := os.ReadFile(xlsx); err != nil || !bytes.HasPrefix(b, []byte("PK")) {
		t.Errorf("xlsx: %v %.4q", err, b)
	}
	// Errors name what is wrong.
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"emissions", "--config", cfgFile, "--site", "nope", "--from", from, "--to", to}, `site "nope" is not in`},
		{[]string{"emissions", "--config", cfgFile, "--site", "fra1", "--from", "yesterday", "--to", to}, "--from: want RFC 3339"},
		{[]string{"emissions", "--config", cfgFile, "--site", "fra1", "--from", from, "--to", to, "--method", "both"}, `parameter "method"`},
		{[]string{"emissions", "--config", cfgFile, "--site", "fra1", "--from", "2025-01-01T00:00:00Z", "--to", "2025-01-02T00:00:00Z"}, "no meter data"},
		{[]string{"eu", "--config", cfgFile, "--site", "fra1", "--year", "2025", "--format", "doc"}, "--format"},
		{[]string{"bogus"}, `unknown report "bogus"`},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(ctx, append([]string{"report"}, tc.args...), &stdout, &stderr); code == 0 || !strings.Contains(stderr.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %s; want %q", tc.args, code, stderr.String(), tc.want)
		}
	}
}

// The command reads what a running server has only in its write-ahead log.
func TestReportCommandReadsTheLog(t *testing.T) {
	st := servicetest.New(t)
	st.Write(t, "", servicetest.Counter("fra1", "facility", 1))
	st.WriteIntensity(t, "", "electricitymaps", servicetest.Intensity("DE"))
	cfgFile := filepath.Join(t.TempDir(), "server.yaml")
	if err := os.WriteFile(cfgFile, []byte("data_dir: "+st.Dir+"\nsites: [{id: fra1, zone: DE}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	args := []string{"report", "emissions", "--config", cfgFile, "--site", "fra1",
		"--from", servicetest.From.Format(time.RFC3339), "--to", servicetest.To.Format(time.RFC3339)}
	if code := run(context.Background(), args, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	var got struct {
		EmissionsKg  float64 `json:"emissions_kg"`
		EnergyKWh    float64 `json:"energy_kwh"`
		Completeness float64 `json:"completeness"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	var kg, kwh float64
	for h := range 6 {
		kwh += servicetest.HourPowerKW(h)
		if h != servicetest.MissingHour {
			kg += servicetest.HourPowerKW(h) * servicetest.HourIntensity(h) / 1000
		}
	}
	if math.Abs(got.EmissionsKg-kg) > 1e-9*kg || math.Abs(got.EnergyKWh-kwh) > 1e-9*kwh || math.Abs(got.Completeness-5.0/6) > 1e-12 {
		t.Errorf("got %+v, want %v kg %v kWh", got, kg, kwh)
	}
}
