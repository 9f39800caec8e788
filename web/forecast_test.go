package web

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/forecast"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/web/fastrate"
)

const (
	tokFcA = "forecast-tenant-a-token"
	tokFcB = "forecast-tenant-b-token"
)

func withOverlay(o storage.Queryable) envOpt {
	return func(c *envConfig) { c.deps.Overlay = o }
}

// forecastEnv is a multi-tenant server with the results cache on and a
// forecast overlay on the test clock; tenant a has actual intensities at
// -120, -60 and 0 minutes.
func forecastEnv(t *testing.T) (*testEnv, *forecast.Overlay) {
	t.Helper()
	ov := forecast.New(forecast.Options{History: time.Hour, Horizon: 24 * time.Hour, Now: func() time.Time { return testNow }})
	e := newEnv(t, withOverlay(ov), withResultsCache(), withTokens(
		tokenLine(tokFcA, "a", "scheduler", "alice"),
		tokenLine(tokFcB, "b", "operator", "bob"),
	))
	var actual []providers.Point
	for _, m := range []int{-120, -60, 0} {
		actual = append(actual, providers.Point{Zone: "DE", Time: testNow.Add(time.Duration(m) * time.Minute),
			Intensity: carbon.Intensity(300 + m), Kind: providers.Actual, Signal: providers.Average})
	}
	res, err := e.writer.WriteSeries(context.Background(), ingest.WriteOptions{Tenant: "a"}, providers.Series("electricitymaps", actual))
	if err != nil || res.RejectedCount > 0 {
		t.Fatalf("%v %+v", err, res)
	}
	return e, ov
}

var fcKey = forecast.Key{Tenant: "a", Zone: "DE", Provider: "electricitymaps", Signal: providers.Average}

// setForecast gives key points at the minutes (from testNow) in mins, valued base+minute.
func setForecast(ov *forecast.Overlay, k forecast.Key, base float64, mins ...int) {
	var pts []providers.Point
	for _, m := range mins {
		pts = append(pts, providers.Point{Time: testNow.Add(time.Duration(m) * time.Minute), Intensity: carbon.Intensity(base + float64(m))})
	}
	ov.Set(k, pts)
}

type matrixData struct {
	ResultType string `json:"resultType"`
	Result     []struct {
		Metric map[string]string `json:"metric"`
		Values [][2]any          `json:"values"`
	} `json:"result"`
}

// rangeByKind runs query_range over [now-2h, now+6h] every minute and
// returns kind → minute → value.
func rangeByKind(t *testing.T, e *testEnv, query, token string) map[string]map[int]float64 {
	t.Helper()
	target := fmt.Sprintf("/api/v1/query_range?query=%s&start=%d&end=%d&step=60", url.QueryEscape(query),
		testNow.Add(-2*time.Hour).Unix(), testNow.Add(6*time.Hour).Unix())
	r := decode[queryResp](t, e.get(target, token, http.StatusOK))
	m := decode[matrixData](t, r.Data)
	out := map[string]map[int]float64{}
	for _, s := range m.Result {
		if _, ok := s.Metric["tenant"]; ok {
			t.Errorf("tenant label visible: %v", s.Metric)
		}
		k := s.Metric["kind"]
		if out[k] != nil {
			t.Fatalf("two series of kind %s: %v", k, m.Result)
		}
		out[k] = map[int]float64{}
		for _, p := range s.Values {
			v, err := strconv.ParseFloat(p[1].(string), 64)
			if err != nil {
				t.Fatal(err)
			}
			out[k][int((int64(p[0].(float64))-testNow.Unix())/60)] = v
		}
	}
	return out
}

// steps is what a range query every minute with a 5-minute lookback shows
// of samples at the given minutes valued base+minute, up to +360.
func steps(base float64, mins ...int) map[int]float64 {
	out := map[int]float64{}
	for _, m := range mins {
		for s := m; s < m+5 && s <= 360; s++ {
			out[s] = base + float64(m)
		}
	}
	return out
}

// A range reaching into the future shows the stored actual values in the
// past and the forecast ahead, with exact values; a revised forecast shows
// at once, including its points in settled time, which the results cache
// would otherwise answer.
func TestForecastQueryRange(t *testing.T) {
	e, ov := forecastEnv(t)
	setForecast(ov, fcKey, 1000, -30, 60, 120, 180, 240, 300, 360)
	setForecast(ov, forecast.Key{Tenant: "b", Zone: "DE", Provider: "electricitymaps", Signal: providers.Average}, 5000, 60)
	const q = `greenloop_grid_carbon_intensity_grams_per_kwh{zone="DE"}`

	got := rangeByKind(t, e, q, tokFcA)
	want := map[string]map[int]float64{
		"actual":   steps(300, -120, -60, 0),
		"forecast": steps(1000, -30, 60, 120, 180, 240, 300, 360),
	}
	if !maps.EqualFunc(got, want, maps.Equal) {
		t.Fatalf("first answer\n got %v\nwant %v", got, want)
	}
	// The revision: new values everywhere, the hour ahead dropped.
	setForecast(ov, fcKey, 2000, -30, 120, 180)
	got = rangeByKind(t, e, q, tokFcA)
	want["forecast"] = steps(2000, -30, 120, 180)
	if !maps.EqualFunc(got, want, maps.Equal) {
		t.Fatalf("after the revision\n got %v\nwant %v", got, want)
	}
	// Tenant b sees its own forecast only, and no actual values.
	got = rangeByKind(t, e, q, tokFcB)
	if want := map[string]map[int]float64{"forecast": steps(5000, 60)}; !maps.EqualFunc(got, want, maps.Equal) {
		t.Errorf("tenant b\n got %v\nwant %v", got, want)
	}
	if got := rangeByKind(t, e, `greenloop_grid_carbon_intensity_grams_per_kwh{tenant="a"}`, tokFcB); len(got) != 0 {
		t.Errorf("tenant b reads a's series: %v", got)
	}
	// The accounting's selection (kind!="forecast") and stored-only queries are unchanged.
	got = rangeByKind(t, e, `greenloop_grid_carbon_intensity_grams_per_kwh{kind!="forecast"}`, tokFcA)
	if want := map[string]map[int]float64{"actual": steps(300, -120, -60, 0)}; !maps.EqualFunc(got, want, maps.Equal) {
		t.Errorf("kind!=forecast\n got %v\nwant %v", got, want)
	}
	// An instant query an hour ahead answers the forecast.
	v := e.instantAt(`greenloop_grid_carbon_intensity_grams_per_kwh{kind="forecast"}`, tokFcA, testNow.Add(2*time.Hour))
	if len(v) != 1 || v[0] != "2120" {
		t.Errorf("instant query at +2h: %v, want [2120]", v)
	}
}

// instantAt runs an instant query at ts and returns the values.
func (e *testEnv) instantAt(query, token string, ts time.Time) []string {
	e.t.Helper()
	b := e.get(fmt.Sprintf("/api/v1/query?query=%s&time=%d", url.QueryEscape(query), ts.Unix()), token, http.StatusOK)
	var out []string
	for _, s := range decode[vectorData](e.t, decode[queryResp](e.t, b).Data).Result {
		out = append(out, s.Value[1].(string))
	}
	return out
}

func TestForecastSeriesAndLabels(t *testing.T) {
	e, ov := forecastEnv(t)
	setForecast(ov, fcKey, 1000, 60, 120)
	setForecast(ov, forecast.Key{Tenant: "a", Zone: "CAISO_NORTH", Provider: "watttime", Signal: providers.Marginal}, 1, 30)
	setForecast(ov, forecast.Key{Tenant: "b", Zone: "PL", Provider: "electricitymaps", Signal: providers.Average}, 1, 30)
	future := fmt.Sprintf("&start=%d&end=%d", testNow.Unix(), testNow.Add(6*time.Hour).Unix())

	type seriesResp struct {
		Status string              `json:"status"`
		Data   []map[string]string `json:"data"`
	}
	for _, tc := range []struct {
		target, token string
		want          []string
	}{
		{"/api/v1/series?match[]=" + url.QueryEscape(`{kind="forecast"}`) + future, tokFcA, []string{
			`map[__name__:greenloop_grid_carbon_intensity_grams_per_kwh kind:forecast provider:electricitymaps signal:average zone:DE]`,
			`map[__name__:greenloop_grid_carbon_intensity_grams_per_kwh kind:forecast provider:watttime signal:marginal zone:CAISO_NORTH]`,
		}},
		{"/api/v1/series?match[]=" + url.QueryEscape(`greenloop_grid_carbon_intensity_grams_per_kwh{zone=~"D.*"}`), tokFcA, []string{
			`map[__name__:greenloop_grid_carbon_intensity_grams_per_kwh kind:actual provider:electricitymaps signal:average zone:DE]`,
			`map[__name__:greenloop_grid_carbon_intensity_grams_per_kwh kind:forecast provider:electricitymaps signal:average zone:DE]`,
		}},
		{"/api/v1/series?match[]=" + url.QueryEscape(`{kind="forecast"}`) + future, tokFcB, []string{
			`map[__name__:greenloop_grid_carbon_intensity_grams_per_kwh kind:forecast provider:electricitymaps signal:average zone:PL]`,
		}},
		// Before the overlay's window: nothing.
		{"/api/v1/series?match[]=" + url.QueryEscape(`{kind="forecast"}`) + fmt.Sprintf("&start=%d&end=%d", testNow.Add(-5*time.Hour).Unix(), testNow.Add(-2*time.Hour).Unix()), tokFcA, nil},
	} {
		r := decode[seriesResp](t, e.get(tc.target, tc.token, http.StatusOK))
		var got []string
		for _, m := range r.Data {
			got = append(got, fmt.Sprint(m))
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s as %s\n got %v\nwant %v", tc.target, tc.token, got, tc.want)
		}
	}
	type stringsResp struct {
		Data []string `json:"data"`
	}
	for _, tc := range []struct {
		target, token string
		want          []string
	}{
		{"/api/v1/label/zone/values?match[]=" + url.QueryEscape(`{kind="forecast"}`) + future, tokFcA, []string{"CAISO_NORTH", "DE"}},
		{"/api/v1/label/zone/values?match[]=" + url.QueryEscape(`{kind="forecast"}`) + future, tokFcB, []string{"PL"}},
		{"/api/v1/label/kind/values", tokFcA, []string{"actual", "forecast"}},
		{"/api/v1/label/kind/values", tokFcB, []string{"forecast"}},
		{"/api/v1/label/tenant/values", tokFcB, nil},
		{"/api/v1/labels?match[]=" + url.QueryEscape(`{kind="forecast"}`) + future, tokFcB, []string{"__name__", "kind", "provider", "signal", "zone"}},
	} {
		r := decode[stringsResp](t, e.get(tc.target, tc.token, http.StatusOK))
		if !slices.Equal(r.Data, tc.want) {
			t.Errorf("%s as %s: %v, want %v", tc.target, tc.token, r.Data, tc.want)
		}
	}
}

// Queries that read no overlay series keep the store alone (its chunks
// for the fast path, and the results cache); the fast path never takes a
// query that selects forecasts.
func TestForecastRangeQueryable(t *testing.T) {
	e, ov := forecastEnv(t)
	setForecast(ov, fcKey, 1000, 60)
	for _, tc := range []struct {
		query, tenant string
		overlay       bool
	}{
		{`sum(rate(greenloop_energy_joules_total[5m]))`, "a", false},
		{`greenloop_grid_carbon_intensity_grams_per_kwh{kind="actual"}`, "a", false},
		{`greenloop_grid_carbon_intensity_grams_per_kwh`, "a", true},
		{`avg_over_time({__name__=~"greenloop_grid_.+"}[1h]) - 1`, "a", true},
		{`greenloop_grid_carbon_intensity_grams_per_kwh`, "b", false}, // b has no forecast
		{`time()`, "a", false},
	} {
		q, cacheable := e.srv.rangeQueryable(context.Background(), Identity{Tenant: tc.tenant}, tc.query)
		_, chunks := q.(storage.ChunkQueryable)
		if cacheable == tc.overlay || chunks == tc.overlay {
			t.Errorf("%s as %s: cacheable %v, chunks %v; want both %v", tc.query, tc.tenant, cacheable, chunks, !tc.overlay)
		}
	}
	for _, qs := range []string{
		`rate(greenloop_grid_carbon_intensity_grams_per_kwh[1h])`,
		`sum(increase(greenloop_grid_carbon_intensity_grams_per_kwh{kind="forecast"}[1h]))`,
		`sum(rate({__name__=~"greenloop_grid_carbon_intensity_grams_per_kwh"}[1h]))`,
	} {
		expr, err := e.srv.parser.ParseExpr(qs)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fastrate.Compile(expr); ok {
			t.Errorf("fastrate takes %s", qs)
		}
	}
	// The check itself: fastrate takes counters, which the overlay does not hold.
	expr, _ := e.srv.parser.ParseExpr(`sum(rate(greenloop_energy_joules_total[5m]))`)
	if _, ok := fastrate.Compile(expr); !ok {
		t.Error("fastrate refuses a counter: the checks above prove nothing")
	}
}
