package providers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	wtUser = "greenloop"
	wtPass = "pa55-w0rd"
)

// wattTimeServer logs in with basic auth and hands out tok-1, tok-2, ...;
// revoke(tok) makes a token fail with 401 from then on.
type wattTimeServer struct {
	*recorder
	mu      sync.Mutex
	issued  int
	revoked map[string]bool
	logins  int
	data    int
}

func newWattTimeServer(t *testing.T, files map[string][]byte) *wattTimeServer {
	s := &wattTimeServer{revoked: map[string]bool{}}
	s.recorder = newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if r.URL.Path == "/login" {
			s.logins++
			if u, p, ok := r.BasicAuth(); !ok || u != wtUser || p != wtPass {
				w.WriteHeader(http.StatusForbidden)
				return
			}
			s.issued++
			fmt.Fprintf(w, `{"token":"tok-%d"}`, s.issued)
			return
		}
		s.data++
		tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		if tok == "" || s.revoked[tok] || tok > fmt.Sprintf("tok-%d", s.issued) {
			w.WriteHeader(http.StatusUnauthorized)
			w.Write([]byte(`{"error":"invalid token"}`))
			return
		}
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	})
	return s
}

func (s *wattTimeServer) revoke(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revoked[tok] = true
}

func (s *wattTimeServer) counts() (logins, data int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.logins, s.data
}

func wattTimeFiles(t *testing.T) map[string][]byte {
	return map[string][]byte{
		"/v3/historical":      fixture(t, "watttime/historical.json"),
		"/v3/forecast":        fixture(t, "watttime/forecast.json"),
		"/v3/signal-index":    fixture(t, "watttime/signal-index.json"),
		"/v3/region-from-loc": fixture(t, "watttime/region-from-loc.json"),
	}
}

func newWT(t *testing.T, s *wattTimeServer, clk *fakeClock, pass string) *WattTime {
	t.Helper()
	w, err := NewWattTime(WattTimeConfig{Options: Options{BaseURL: s.srv.URL, Clock: clk}, Username: wtUser, Password: pass})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func TestWattTimeUnitConversion(t *testing.T) {
	f := func(lbs, want float64) {
		t.Helper()
		if got := FromLbsPerMWh(lbs).GramsPerKWh(); math.Abs(got-want) > 1e-9*math.Max(1, want) {
			t.Errorf("%v lbs/MWh = %v g/kWh, want %v", lbs, got, want)
		}
	}
	f(1, 0.45359237)
	f(1000, 453.59237)
	f(936, 424.56245832)
	f(2204.62262185, 1000) // 1 t/MWh
	f(0, 0)
}

func TestWattTimeHistoricalAndLogin(t *testing.T) {
	s := newWattTimeServer(t, wattTimeFiles(t))
	clk := newFakeClock(mustTime("2025-03-10T12:07:00Z"))
	w := newWT(t, s, clk, wtPass)
	ctx := context.Background()

	pts, err := w.Intensity(ctx, "CAISO_NORTH", mustTime("2025-03-10T10:00:00Z"), mustTime("2025-03-10T11:00:00Z"), Marginal)
	if err != nil {
		t.Fatal(err)
	}
	want := []float64{453.59237, 424.56245832, 0.45359237}
	if len(pts) != 3 {
		t.Fatalf("got %v", pts)
	}
	for i, p := range pts {
		if math.Abs(p.Intensity.GramsPerKWh()-want[i]) > 1e-9 || p.Duration != 5*time.Minute || p.Kind != Actual ||
			p.Signal != Marginal || p.Zone != "CAISO_NORTH" || !p.Time.Equal(mustTime("2025-03-10T10:00:00Z").Add(time.Duration(i)*5*time.Minute)) {
			t.Errorf("point %d: %+v, want %v g/kWh", i, p, want[i])
		}
	}
	q := s.last().URL.Query()
	if q.Get("signal_type") != "co2_moer" || q.Get("region") != "CAISO_NORTH" || q.Get("start") != "2025-03-10T10:00:00Z" || q.Get("end") != "2025-03-10T11:00:00Z" {
		t.Errorf("query %v", q)
	}
	if l, d := s.counts(); l != 1 || d != 1 {
		t.Errorf("%d logins, %d data requests", l, d)
	}

	// The token is reused for other requests until it expires.
	if _, err := w.SignalIndex(ctx, "CAISO_NORTH"); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.counts(); l != 1 {
		t.Errorf("%d logins, want 1", l)
	}
	clk.Advance(30 * time.Minute)
	if _, err := w.SignalIndex(ctx, "CAISO_NORTH"); err != nil {
		t.Fatal(err)
	}
	if l, _ := s.counts(); l != 2 {
		t.Errorf("after expiry: %d logins, want 2", l)
	}

	// A revoked token: one new login, then the request succeeds.
	s.revoke("tok-2")
	ix, err := w.SignalIndex(ctx, "CAISO_NORTH")
	if err != nil {
		t.Fatal(err)
	}
	if l, _ := s.counts(); l != 3 || ix.Percent != 28 || !ix.Time.Equal(mustTime("2025-03-10T12:05:00Z")) {
		t.Errorf("after 401: %d logins (want 3), index %+v", l, ix)
	}
	if got := s.last().Header.Get("Authorization"); got != "Bearer tok-3" {
		t.Errorf("authorization %q", got)
	}
}

func TestWattTimeAuthFailures(t *testing.T) {
	ctx := context.Background()
	t.Run("every token refused", func(t *testing.T) {
		s := newWattTimeServer(t, wattTimeFiles(t))
		s.revoke("tok-1")
		s.revoke("tok-2")
		w := newWT(t, s, newFakeClock(mustTime("2025-03-10T12:07:00Z")), wtPass)
		_, err := w.SignalIndex(ctx, "CAISO_NORTH")
		var ae *AuthError
		if !errors.As(err, &ae) || ae.Status != 401 || ae.Provider != "watttime" {
			t.Fatalf("got %v", err)
		}
		if l, d := s.counts(); l != 2 || d != 2 {
			t.Errorf("%d logins, %d data requests; want 2 and 2 (one retry)", l, d)
		}
	})
	t.Run("bad password", func(t *testing.T) {
		s := newWattTimeServer(t, wattTimeFiles(t))
		w := newWT(t, s, newFakeClock(mustTime("2025-03-10T12:07:00Z")), "wrong-password")
		_, err := w.Latest(ctx, "CAISO_NORTH", Marginal)
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "watttime") || strings.Contains(err.Error(), "wrong-password") {
			t.Fatalf("got %v", err)
		}
		if l, d := s.counts(); l != 1 || d != 0 {
			t.Errorf("%d logins, %d data requests", l, d)
		}
	})
}

func TestWattTimeForecastLatestRegion(t *testing.T) {
	s := newWattTimeServer(t, wattTimeFiles(t))
	clk := newFakeClock(mustTime("2025-03-10T12:07:00Z"))
	w := newWT(t, s, clk, wtPass)
	ctx := context.Background()

	p, err := w.Latest(ctx, "CAISO_NORTH", Marginal)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(p.Intensity.GramsPerKWh()-870*0.45359237) > 1e-9 || p.Kind != Estimate || !p.Time.Equal(mustTime("2025-03-10T12:05:00Z")) {
		t.Errorf("latest %+v", p)
	}
	if h := s.last().URL.Query().Get("horizon_hours"); h != "0" {
		t.Errorf("horizon_hours %q", h)
	}
	fc, err := w.Forecast(ctx, "CAISO_NORTH", mustTime("2025-03-10T12:10:00Z"), mustTime("2025-03-11T00:00:00Z"), Marginal)
	if err != nil {
		t.Fatal(err)
	}
	if len(fc) != 2 || math.Abs(fc[0].Intensity.GramsPerKWh()-864.5*0.45359237) > 1e-9 || fc[1].Intensity != 0 || fc[0].Kind != Forecast {
		t.Errorf("forecast %v", fc)
	}
	if h := s.last().URL.Query().Get("horizon_hours"); h != "24" {
		t.Errorf("horizon_hours %q", h)
	}
	if _, err := w.Forecast(ctx, "CAISO_NORTH", mustTime("2025-03-10T12:10:00Z"), mustTime("2025-03-11T00:00:00Z"), Average); !errors.Is(err, ErrUnsupported) {
		t.Errorf("average forecast: %v", err)
	}
	reg, err := w.RegionFromLocation(ctx, 37.77, -122.42, Marginal)
	if err != nil || reg.Region != "CAISO_NORTH" || reg.FullName != "California ISO Northern" {
		t.Errorf("region %+v %v", reg, err)
	}
	if q := s.last().URL.Query(); q.Get("latitude") != "37.77" || q.Get("longitude") != "-122.42" {
		t.Errorf("query %v", q)
	}
}

func TestParseWattTimeErrors(t *testing.T) {
	f := func(body, field string) {
		t.Helper()
		_, err := parseWattTime([]byte(body), "R", Marginal, Actual)
		var fe *fieldError
		if !errors.As(err, &fe) || fe.field != field {
			t.Errorf("%s: got %v, want field %q", body, err, field)
		}
	}
	const meta = `"meta":{"units":"lbs_co2_per_mwh","data_point_period_seconds":300}`
	f(`{`+meta+`}`, "data")
	f(`{"data":[]}`, "meta")
	f(`{"data":[],"meta":{"units":"g_co2_per_kwh","data_point_period_seconds":300}}`, "meta.units")
	f(`{"data":[],"meta":{"units":"lbs_co2_per_mwh"}}`, "meta.data_point_period_seconds")
	f(`{"data":[{"point_time":"2025-03-10T12:05:00+00:00"}],`+meta+`}`, "data[0].value")
	f(`{"data":[{"point_time":"noon","value":1}],`+meta+`}`, "data[0].point_time")
	f(`{"data":[{"point_time":"2025-03-10T12:05:00+00:00","value":-5}],`+meta+`}`, "data[0].value")
	f(`{"data":[{"point_time":"2025-03-10T12:05:00+00:00","value":"5"}],`+meta+`}`, "data.value")
}
