package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

const emToken = "s3cret-em-token"

func newEM(t *testing.T, rec *recorder, clk *fakeClock, opt Options) *ElectricityMaps {
	t.Helper()
	opt.BaseURL, opt.Clock = rec.srv.URL, clk
	e, err := NewElectricityMaps(ElectricityMapsConfig{Options: opt, Token: emToken})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestElectricityMapsLatestAndCache(t *testing.T) {
	rec := newRecorder(t, serveFile(t, "electricitymaps/latest.json"))
	clk := newFakeClock(mustTime("2025-03-10T12:45:00Z"))
	e := newEM(t, rec, clk, Options{})
	ctx := context.Background()

	p, err := e.Latest(ctx, "DE", Average)
	if err != nil {
		t.Fatal(err)
	}
	want := Point{Zone: "DE", Time: mustTime("2025-03-10T12:00:00Z"), Duration: time.Hour, Intensity: 358, Kind: Estimate, Signal: Average}
	if p != want {
		t.Errorf("got %+v, want %+v", p, want)
	}
	r := rec.last()
	if r.URL.Path != "/v3/carbon-intensity/latest" || r.Header.Get("auth-token") != emToken ||
		r.URL.Query().Get("zone") != "DE" || r.URL.Query().Get("emissionFactorType") != "lifecycle" {
		t.Errorf("request %s %v", r.URL, r.Header)
	}
	// Cached within the TTL, asked again after it.
	if _, err := e.Latest(ctx, "DE", Average); err != nil || rec.count() != 1 {
		t.Fatalf("second call: %v, %d requests, want 1", err, rec.count())
	}
	clk.Advance(5*time.Minute + time.Second)
	if _, err := e.Latest(ctx, "DE", Average); err != nil || rec.count() != 2 {
		t.Fatalf("after TTL: %v, %d requests, want 2", err, rec.count())
	}
	if _, err := e.Latest(ctx, "DE", Marginal); !errors.Is(err, ErrUnsupported) {
		t.Errorf("marginal: %v, want ErrUnsupported", err)
	}
}

func TestElectricityMapsHistoryAndPastRange(t *testing.T) {
	history := fixture(t, "electricitymaps/history.json")
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v3/carbon-intensity/history":
			w.Write(history)
		case "/v3/carbon-intensity/past-range":
			// One value at the start of each window, so the split is visible.
			fmt.Fprintf(w, `{"zone":"DE","data":[{"zone":"DE","carbonIntensity":500,"datetime":%q,"isEstimated":false}]}`, r.URL.Query().Get("start"))
		default:
			http.NotFound(w, r)
		}
	})
	clk := newFakeClock(mustTime("2025-03-10T12:45:00Z"))
	e := newEM(t, rec, clk, Options{})
	ctx := context.Background()

	pts, err := e.Intensity(ctx, "DE", mustTime("2025-03-10T09:00:00Z"), mustTime("2025-03-10T13:00:00Z"), Average)
	if err != nil {
		t.Fatal(err)
	}
	// 11:00 is null in the answer and left out; 12:00 is estimated.
	got := fmt.Sprint(pts)
	if len(pts) != 3 || pts[0].Intensity != 402 || pts[1].Intensity != 380 || pts[2].Intensity != 358.5 ||
		pts[0].Kind != Actual || pts[2].Kind != Estimate || !pts[2].Time.Equal(mustTime("2025-03-10T12:00:00Z")) {
		t.Errorf("got %s", got)
	}
	if p := rec.paths(); len(p) != 1 || p[0] != "/v3/carbon-intensity/history" {
		t.Errorf("paths %v", p)
	}
	// A sub-range is served from the cache.
	if pts, err := e.Intensity(ctx, "DE", mustTime("2025-03-10T10:00:00Z"), mustTime("2025-03-10T11:00:00Z"), Average); err != nil || len(pts) != 1 || rec.count() != 1 {
		t.Errorf("cached sub-range: %v %v, %d requests", pts, err, rec.count())
	}

	// 25 days in the past: three past-range windows of at most 10 days.
	from := mustTime("2025-01-01T00:00:00Z")
	pts, err = e.Intensity(ctx, "DE", from, from.Add(25*24*time.Hour), Average)
	if err != nil {
		t.Fatal(err)
	}
	if rec.count() != 4 || len(pts) != 3 {
		t.Fatalf("%d requests (want 4), points %v", rec.count(), pts)
	}
	for i, p := range pts {
		if want := from.Add(time.Duration(i) * 10 * 24 * time.Hour); !p.Time.Equal(want) || p.Intensity != 500 {
			t.Errorf("point %d: %+v, want 500 at %v", i, p, want)
		}
	}
	q := rec.last().URL.Query()
	if q.Get("start") != "2025-01-21T00:00:00Z" || q.Get("end") != "2025-01-26T00:00:00Z" {
		t.Errorf("last window %v", q)
	}
	// Again: all from the cache, also the hours that had no value.
	if _, err := e.Intensity(ctx, "DE", from, from.Add(25*24*time.Hour), Average); err != nil || rec.count() != 4 {
		t.Errorf("repeat: %v, %d requests, want 4", err, rec.count())
	}
}

func TestElectricityMapsForecast(t *testing.T) {
	rec := newRecorder(t, serveFile(t, "electricitymaps/forecast.json"))
	clk := newFakeClock(mustTime("2025-03-10T12:45:00Z"))
	e := newEM(t, rec, clk, Options{})
	pts, err := e.Forecast(context.Background(), "DE", mustTime("2025-03-10T14:00:00Z"), mustTime("2025-03-10T16:00:00Z"), Average)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].Intensity != 325 || pts[1].Intensity != 331 || pts[0].Kind != Forecast {
		t.Errorf("got %v", pts)
	}
	if _, err := e.Forecast(context.Background(), "DE", mustTime("2025-03-10T13:00:00Z"), mustTime("2025-03-10T17:00:00Z"), Average); err != nil || rec.count() != 1 {
		t.Errorf("second forecast: %v, %d requests", err, rec.count())
	}
}

func TestElectricityMapsErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("quota", func(t *testing.T) {
		rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "120")
			w.WriteHeader(http.StatusTooManyRequests)
			w.Write([]byte(`{"status":"error","message":"Rate limit exceeded"}`))
		})
		clk := newFakeClock(mustTime("2025-03-10T12:45:00Z"))
		e := newEM(t, rec, clk, Options{})
		_, err := e.Latest(ctx, "DE", Average)
		var qe *QuotaError
		if !errors.Is(err, ErrQuota) || !errors.As(err, &qe) || qe.RetryAfter != 120*time.Second || qe.Provider != "electricitymaps" {
			t.Fatalf("got %v (%+v)", err, qe)
		}
		// Within Retry-After nothing is sent.
		clk.Advance(60 * time.Second)
		_, err = e.Latest(ctx, "DE", Average)
		if !errors.As(err, &qe) || qe.RetryAfter != 60*time.Second || rec.count() != 1 {
			t.Errorf("during cool-down: %v, %d requests", err, rec.count())
		}
		clk.Advance(61 * time.Second)
		if _, err := e.Latest(ctx, "DE", Average); !errors.Is(err, ErrQuota) || rec.count() != 2 {
			t.Errorf("after cool-down: %v, %d requests, want 2", err, rec.count())
		}
	})
	t.Run("auth", func(t *testing.T) {
		rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, `{"status":"error","message":"Invalid auth-token `+r.Header.Get("auth-token")+`"}`, http.StatusUnauthorized)
		})
		e := newEM(t, rec, newFakeClock(mustTime("2025-03-10T12:45:00Z")), Options{})
		_, err := e.Latest(ctx, "DE", Average)
		var ae *AuthError
		if !errors.Is(err, ErrAuth) || !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(err.Error(), "electricitymaps") {
			t.Fatalf("got %v", err)
		}
		if strings.Contains(err.Error(), emToken) {
			t.Errorf("error leaks the token: %v", err)
		}
	})
	t.Run("bad field", func(t *testing.T) {
		f := func(body, field string) {
			t.Helper()
			rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(body)) })
			e := newEM(t, rec, newFakeClock(mustTime("2025-03-10T12:45:00Z")), Options{})
			_, err := e.Intensity(ctx, "DE", mustTime("2025-03-10T09:00:00Z"), mustTime("2025-03-10T10:00:00Z"), Average)
			var re *ResponseError
			if !errors.Is(err, ErrBadResponse) || !errors.As(err, &re) || re.Field != field || re.Endpoint != "/v3/carbon-intensity/history" {
				t.Errorf("body %s: got %v (field %q), want field %q", body, err, re.fieldOrEmpty(), field)
			}
		}
		f(`{"history":[{"carbonIntensity":"high","datetime":"2025-03-10T09:00:00Z"}]}`, "history.carbonIntensity")
		f(`{"history":[{"carbonIntensity":1,"datetime":"2025-03-10T09:00:00Z"},{"carbonIntensity":-3,"datetime":"2025-03-10T10:00:00Z"}]}`, "history[1].carbonIntensity")
		f(`{"history":[{"carbonIntensity":1,"datetime":"yesterday"}]}`, "history[0].datetime")
		f(`{"zone":"DE"}`, "history")
		f(`<html>`, "")
	})
}

func (e *ResponseError) fieldOrEmpty() string {
	if e == nil {
		return "<nil>"
	}
	return e.Field
}

// TestRateLimit: with 2 requests/s and a burst of 3, ten requests take at
// least (10-3)/2 s of the injected clock, and no request is early.
func TestRateLimit(t *testing.T) {
	clk := newFakeClock(mustTime("2025-03-10T12:45:00Z"))
	start := clk.Now()
	var at []time.Duration
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		at = append(at, clk.Now().Sub(start))
		w.Write(fixture(t, "electricitymaps/latest.json"))
	})
	e := newEM(t, rec, clk, Options{RateLimit: 2, Burst: 3})
	for i := range 10 {
		if _, err := e.Latest(context.Background(), fmt.Sprintf("Z%d", i), Average); err != nil {
			t.Fatal(err)
		}
	}
	if len(at) != 10 {
		t.Fatalf("%d requests", len(at))
	}
	for i, d := range at {
		// Request i may go once i+1 tokens were available: burst 3 at once, then one every 500 ms.
		want := time.Duration(max(0, i-2)) * 500 * time.Millisecond
		if d != want {
			t.Errorf("request %d at +%v, want +%v", i, d, want)
		}
	}
	if clk.slept != 3500*time.Millisecond {
		t.Errorf("slept %v, want 3.5s", clk.slept)
	}
}

func TestRetryAfter(t *testing.T) {
	now := mustTime("2025-03-10T12:00:00Z")
	f := func(v string, want time.Duration) {
		t.Helper()
		if got := parseRetryAfter(v, now); got != want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", v, got, want)
		}
	}
	f("", 0)
	f("30", 30*time.Second)
	f("-1", 0)
	f("Mon, 10 Mar 2025 12:02:00 GMT", 2*time.Minute)
	f("Mon, 10 Mar 2025 11:00:00 GMT", 0)
	f("soon", 0)
}

// TestConcurrentMisses: simultaneous requests for the same zone cost one API call.
func TestConcurrentMisses(t *testing.T) {
	body := fixture(t, "electricitymaps/latest.json")
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond) // keep the call in flight while the others arrive
		w.Write(body)
	})
	e := newEM(t, rec, newFakeClock(mustTime("2025-03-10T12:45:00Z")), Options{RateLimit: 100, Burst: 100})
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			p, err := e.Latest(context.Background(), "DE", Average)
			if err == nil && p.Intensity != 358 {
				err = fmt.Errorf("intensity %v", p.Intensity)
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := rec.count(); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}
