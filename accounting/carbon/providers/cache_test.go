package providers

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"
)

func TestCacheBoundAndTTL(t *testing.T) {
	clk := newFakeClock(mustTime("2025-03-10T12:00:00Z"))
	c := newCache(Options{CacheEntries: 5}.withDefaults("", 1, 1))
	c.opt.Clock = clk
	for i := range 10 {
		c.put(cacheKey{op: "latest", zone: string(rune('A' + i))}, nil, time.Duration(i+1)*time.Minute)
	}
	if n := len(c.m); n > 5 {
		t.Errorf("%d entries, want at most 5", n)
	}
	c.put(cacheKey{op: "latest", zone: "Z"}, []Point{{Intensity: 1}}, time.Minute)
	if _, ok := c.get(cacheKey{op: "latest", zone: "Z"}); !ok {
		t.Error("fresh entry missing")
	}
	clk.Advance(time.Minute)
	if _, ok := c.get(cacheKey{op: "latest", zone: "Z"}); ok {
		t.Error("entry alive at its expiry")
	}
}

// TestRangeCacheTTL: hours older than two days are kept for HistoryTTL,
// recent ones only for RecentTTL.
func TestRangeCacheTTL(t *testing.T) {
	clk := newFakeClock(mustTime("2025-03-10T12:00:00Z"))
	c := newCache(Options{Clock: clk}.withDefaults("", 1, 1))
	fetches := 0
	fetch := func(_ context.Context, from, to time.Time) ([]Point, error) {
		fetches++
		return []Point{{Time: from, Intensity: 1}}, nil
	}
	old, recent := mustTime("2025-03-01T00:00:00Z"), mustTime("2025-03-10T10:00:00Z")
	for _, from := range []time.Time{old, recent} {
		if _, err := c.rangeCached(context.Background(), "DE", Average, from, from.Add(time.Hour), fetch); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(16 * time.Minute)
	c.rangeCached(context.Background(), "DE", Average, old, old.Add(time.Hour), fetch)
	c.rangeCached(context.Background(), "DE", Average, recent, recent.Add(time.Hour), fetch)
	if fetches != 3 {
		t.Errorf("%d fetches, want 3 (the recent hour again after 15 min, the old one cached)", fetches)
	}
	if _, err := c.rangeCached(context.Background(), "DE", Average, recent, recent, fetch); err == nil {
		t.Error("empty range accepted")
	}
	if _, err := c.rangeCached(context.Background(), "DE", Average, recent, recent.AddDate(100, 0, 0), fetch); err == nil || fetches != 3 {
		t.Errorf("a century: %v, %d fetches", err, fetches)
	}
}

func TestResponseTooLarge(t *testing.T) {
	rec := newRecorder(t, serveFile(t, "electricitymaps/latest.json"))
	e := newEM(t, rec, newFakeClock(mustTime("2025-03-10T12:45:00Z")), Options{MaxResponseBytes: 64})
	_, err := e.Latest(context.Background(), "DE", Average)
	if !errors.Is(err, ErrBadResponse) {
		t.Errorf("got %v", err)
	}
}

func TestENTSOEWindows(t *testing.T) {
	rec := newRecorder(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write(fixture(t, "entsoe/acknowledgement_no_data.xml"))
	})
	e := newENTSOE(t, rec.srv.URL, newFakeClock(mustTime("2025-03-20T00:00:00Z")), nil, nil)
	from := mustTime("2025-03-01T00:00:00Z")
	if _, err := e.Intensity(context.Background(), "FR", from, from.Add(8*24*time.Hour), Average); err != nil {
		t.Fatal(err)
	}
	if rec.count() != 2 || rec.last().URL.Query().Get("periodStart") != "202503080000" || rec.last().URL.Query().Get("periodEnd") != "202503090000" {
		t.Errorf("%d requests, last %v", rec.count(), rec.last().URL.Query())
	}
}
