package service

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/accounting/emissions"
	"github.com/greenloop/greenloop/accounting/service/servicetest"
	"github.com/greenloop/greenloop/internal/config"
)

const eps = 1e-9

func near(a, b float64) bool { return math.Abs(a-b) <= eps*math.Max(1, math.Abs(b)) }

// handLocation is Σ hourly energy × intensity over the hours with an intensity, in kg.
func handLocation(scale float64) (kg, kwh float64) {
	for h := range 6 {
		e := servicetest.HourPowerKW(h) * scale
		kwh += e
		if h != servicetest.MissingHour {
			kg += e * servicetest.HourIntensity(h) / 1000
		}
	}
	return kg, kwh
}

func fixture(t *testing.T, multi bool) (*Accountant, *servicetest.Store) {
	t.Helper()
	st := servicetest.New(t)
	tenant := ""
	if multi {
		tenant = "acme"
	}
	st.Write(t, tenant, servicetest.Counter("fra1", "facility", 1), servicetest.Counter("fra1", "it", 0.8),
		servicetest.Counter("edge1", "it", 0.1))
	st.WriteIntensity(t, tenant, "electricitymaps", servicetest.Intensity("DE"))
	sites := []config.Site{
		{ID: "fra1", Zone: "DE", Tenant: "acme", ITCapacityKW: 800,
			ResidualMix: []config.EmissionFactor{{Zone: "DE", GPerKWh: 650, Source: "AIB 2024", Year: 2024}, {GPerKWh: 700, Source: "AIB 2025", Year: 2025}},
			Instruments: []config.Instrument{{ID: "go1", Type: "GO", CertIDs: []string{"GO-1"}, From: servicetest.From, To: servicetest.To, EnergyMWh: 1}}},
		{ID: "edge1", Zone: "DE", Tenant: "acme", PUE: &config.SitePUE{Value: 1.5, Basis: "design PUE"}},
		{ID: "par1", Zone: "FR", Tenant: "other"},
	}
	return New(Options{Store: st.DB, Sites: sites, MultiTenant: multi, Providers: []string{"electricitymaps"}}), st
}

func TestEmissionsLocationEqualsHandComputation(t *testing.T) {
	for _, multi := range []bool{false, true} {
		a, _ := fixture(t, multi)
		res, err := a.Emissions(context.Background(), "acme", Request{Site: "fra1", From: servicetest.From, To: servicetest.To,
			Method: emissions.LocationBased, Step: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		wantKg, wantKWh := handLocation(1)
		if !near(res.Emissions.Kg(), wantKg) || !near(res.Energy.KWh(), wantKWh) {
			t.Errorf("multi=%v: %v kg %v kWh, want %v kg %v kWh", multi, res.Emissions.Kg(), res.Energy.KWh(), wantKg, wantKWh)
		}
		if res.Source != SourceFacility || len(res.Series) != 6 {
			t.Errorf("source %q, %d points", res.Source, len(res.Series))
		}
		for h, p := range res.Series {
			e := servicetest.HourPowerKW(h)
			if !near(p.Energy.KWh(), e) {
				t.Errorf("hour %d: %v kWh, want %v", h, p.Energy.KWh(), e)
			}
			if h == servicetest.MissingHour {
				if p.IntensityKnown || p.Emissions != 0 {
					t.Errorf("missing hour has intensity %v", p.Intensity)
				}
				continue
			}
			if !near(p.Emissions.Kg(), e*servicetest.HourIntensity(h)/1000) {
				t.Errorf("hour %d: %v kg", h, p.Emissions.Kg())
			}
		}
		if len(res.MissingIntensity) != 1 || !res.MissingIntensity[0].Equal(servicetest.From.Add(servicetest.MissingHour*time.Hour)) {
			t.Errorf("missing %v", res.MissingIntensity)
		}
		if !near(res.Completeness, 5.0/6) {
			t.Errorf("completeness %v, want 5/6", res.Completeness)
		}
		if got := strings.Join(res.IntensityProviders, ","); got != "electricitymaps" {
			t.Errorf("providers %q", got)
		}
	}
}

func TestEmissionsMarketWithCertificate(t *testing.T) {
	a, _ := fixture(t, false)
	res, err := a.Emissions(context.Background(), "", Request{Site: "fra1", From: servicetest.From, To: servicetest.To, Method: emissions.MarketBased})
	if err != nil {
		t.Fatal(err)
	}
	_, total := handLocation(1)
	// 1 MWh of guarantees of origin at 0 g/kWh; the rest at the 2025 residual mix (700 g/kWh).
	want := (total - 1000) * 700 / 1000
	if !near(res.Emissions.Kg(), want) {
		t.Errorf("market %v kg, want %v", res.Emissions.Kg(), want)
	}
	if len(res.Allocations) != 1 || !near(res.Allocations[0].Applied.KWh(), 1000) || res.Residual.Year != 2025 {
		t.Errorf("allocations %+v residual %+v", res.Allocations, res.Residual)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if _, ok := m["series"]; ok {
		t.Errorf("series without step: %s", b)
	}
	if m["method"] != "market" || m["energy_source"] != SourceFacility {
		t.Errorf("json %s", b)
	}
}

func TestEmissionsITTimesPUEAndErrors(t *testing.T) {
	a, _ := fixture(t, true)
	ctx := context.Background()
	res, err := a.Emissions(ctx, "acme", Request{Site: "edge1", From: servicetest.From, To: servicetest.To, Method: emissions.LocationBased})
	if err != nil {
		t.Fatal(err)
	}
	kg, kwh := handLocation(0.1)
	if res.Source != SourceITxPUE || !near(res.Emissions.Kg(), kg*1.5) || !near(res.Energy.KWh(), kwh*1.5) {
		t.Errorf("edge1: %s %v kg %v kWh, want %v kg", res.Source, res.Emissions.Kg(), res.Energy.KWh(), kg*1.5)
	}
	for _, tc := range []struct {
		name   string
		tenant string
		req    Request
		want   error
		param  string
	}{
		{"other tenant", "other", Request{Site: "fra1", From: servicetest.From, To: servicetest.To, Method: "location"}, ErrUnknownSite, ""},
		{"unknown", "acme", Request{Site: "nope", From: servicetest.From, To: servicetest.To, Method: "location"}, ErrUnknownSite, ""},
		{"no meters", "other", Request{Site: "par1", From: servicetest.From, To: servicetest.To, Method: "location"}, ErrNoData, ""},
		{"no data in period", "acme", Request{Site: "fra1", From: servicetest.From.Add(-72 * time.Hour), To: servicetest.From.Add(-48 * time.Hour), Method: "location"}, ErrNoData, ""},
		{"no residual", "acme", Request{Site: "edge1", From: servicetest.From, To: servicetest.To, Method: "market"}, ErrNotConfigured, ""},
		{"bad method", "acme", Request{Site: "fra1", From: servicetest.From, To: servicetest.To, Method: "both"}, nil, "method"},
		{"to before from", "acme", Request{Site: "fra1", From: servicetest.To, To: servicetest.From, Method: "location"}, nil, "to"},
		{"bad step", "acme", Request{Site: "fra1", From: servicetest.From, To: servicetest.To, Method: "location", Step: 90 * time.Minute}, nil, "step"},
	} {
		_, err := a.Emissions(ctx, tc.tenant, tc.req)
		var pe *ParamError
		switch {
		case tc.param != "":
			if !errors.As(err, &pe) || pe.Param != tc.param {
				t.Errorf("%s: err %v, want a ParamError on %q", tc.name, err, tc.param)
			}
		case !errors.Is(err, tc.want):
			t.Errorf("%s: err %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestEmissionsNoIntensity(t *testing.T) {
	st := servicetest.New(t)
	st.Write(t, "", servicetest.Counter("fra1", "facility", 1))
	site := config.Site{ID: "fra1", Zone: "DE"}
	a := New(Options{Store: st.DB, Sites: []config.Site{site}})
	req := Request{Site: "fra1", From: servicetest.From, To: servicetest.To, Method: emissions.LocationBased}
	if _, err := a.Emissions(context.Background(), "", req); !errors.Is(err, ErrNoIntensity) {
		t.Fatalf("err %v, want ErrNoIntensity", err)
	}
	// With a fallback factor every hour is priced with it, and flagged.
	site.FallbackFactor = &config.EmissionFactor{GPerKWh: 400, Source: "EEA 2024", Year: 2024}
	a = New(Options{Store: st.DB, Sites: []config.Site{site}})
	res, err := a.Emissions(context.Background(), "", req)
	if err != nil {
		t.Fatal(err)
	}
	_, kwh := handLocation(1)
	if !near(res.Emissions.Kg(), kwh*0.4) || len(res.MissingIntensity) != 6 || res.Fallback == nil {
		t.Errorf("%v kg, missing %d, fallback %v", res.Emissions.Kg(), len(res.MissingIntensity), res.Fallback)
	}
}

func TestIntensityPrefersProvidersAndAveragesWithinHour(t *testing.T) {
	st := servicetest.New(t)
	h0 := servicetest.From
	pt := func(t time.Time, v float64, kind providers.Kind) providers.Point {
		return providers.Point{Zone: "DE", Time: t, Intensity: carbonI(v), Kind: kind, Signal: providers.Average}
	}
	st.WriteIntensity(t, "", "static", []providers.Point{pt(h0, 500, providers.Estimate), pt(h0.Add(time.Hour), 500, providers.Estimate), pt(h0.Add(2*time.Hour), 500, providers.Estimate)})
	st.WriteIntensity(t, "", "ukgrid", []providers.Point{pt(h0, 100, providers.Actual), pt(h0.Add(30*time.Minute), 200, providers.Actual)})
	st.WriteIntensity(t, "", ManualProvider, []providers.Point{pt(h0.Add(time.Hour), 42, providers.Actual)})
	st.WriteIntensity(t, "", "ukgrid", []providers.Point{pt(h0.Add(2*time.Hour), 999, providers.Forecast)})
	a := New(Options{Store: st.DB, Providers: []string{"ukgrid", "static"}})
	s, provs, err := a.Intensity(context.Background(), st.DB, "DE", h0, h0.Add(3*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{150, 42, 500}
	if len(s.Points) != 3 {
		t.Fatalf("points %+v", s.Points)
	}
	for i, w := range want {
		if float64(s.Points[i].LCA) != w || !s.Points[i].Time.Equal(h0.Add(time.Duration(i)*time.Hour)) {
			t.Errorf("hour %d: %+v, want %v", i, s.Points[i], w)
		}
	}
	if !s.Points[2].Estimated || s.Points[0].Estimated {
		t.Errorf("estimated flags %+v", s.Points)
	}
	if strings.Join(provs, ",") != "manual,ukgrid,static" {
		t.Errorf("providers %v", provs)
	}
}

func TestKPIs(t *testing.T) {
	a, _ := fixture(t, false)
	k, err := a.KPIs(context.Background(), "", "fra1", servicetest.From, servicetest.To)
	if err != nil {
		t.Fatal(err)
	}
	pue, ok := k.Result.Get("pue")
	if !ok || !near(pue.Value, 1/0.8) || pue.Category != "PUE1" {
		t.Errorf("pue %+v", pue)
	}
	_, facility := handLocation(1)
	locKg, _ := handLocation(1)
	cue, ok := k.Result.Get("cue_location")
	if !ok || !near(cue.Value, locKg/(facility*0.8)) {
		t.Errorf("cue_location %+v, want %v", cue, locKg/(facility*0.8))
	}
	ref, ok := k.Result.Get("ref")
	if !ok || !near(ref.Value, 1000/facility) {
		t.Errorf("ref %+v, want %v", ref, 1000/facility)
	}
	b, err := json.Marshal(k)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"pue", "wue", "erf", "ref", "cue_location", "cue_market", "completeness", "categories", "kpis"} {
		if _, ok := m[key]; !ok {
			t.Errorf("no %q in %s", key, b)
		}
	}
	if m["wue"] != nil || m["pue"].(float64) != pue.Value {
		t.Errorf("wue %v pue %v", m["wue"], m["pue"])
	}
	if _, err := a.KPIs(context.Background(), "", "edge1", servicetest.From, servicetest.To); !errors.Is(err, ErrNoData) {
		t.Errorf("edge1 without facility meter: %v", err)
	}
}

func TestResidualMixChoice(t *testing.T) {
	s := config.Site{Zone: "DE", ResidualMix: []config.EmissionFactor{
		{Year: 2022, GPerKWh: 1, Source: "a"}, {Year: 2024, GPerKWh: 2, Source: "b"}, {Zone: "FR", Year: 2025, GPerKWh: 9, Source: "fr"}, {Year: 2027, GPerKWh: 3, Source: "c"}}}
	for year, want := range map[int]float64{2021: 1, 2022: 1, 2023: 1, 2024: 2, 2025: 2, 2026: 2, 2027: 3, 2030: 3} {
		f := ResidualMix(s, time.Date(year, 3, 1, 0, 0, 0, 0, time.UTC))
		if f == nil || f.Intensity.GramsPerKWh() != want {
			t.Errorf("%d: %+v, want %v", year, f, want)
		}
	}
	if ResidualMix(config.Site{Zone: "DE"}, time.Now()) != nil {
		t.Error("residual without any")
	}
}

func carbonI(v float64) carbon.Intensity { return carbon.Intensity(v) }
