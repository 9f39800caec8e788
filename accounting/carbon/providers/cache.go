package providers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// settleTime is how far back providers still revise values: hours older than
// this are cached for HistoryTTL, newer ones for RecentTTL.
const settleTime = 48 * time.Hour

// MaxRangeHours bounds one Intensity call of an HTTP provider (two years).
const MaxRangeHours = 2 * 366 * 24

type cacheKey struct {
	op     string // "range", "latest", "forecast"
	zone   string
	signal Signal
	hour   int64 // Unix hour for "range", 0 otherwise
}

type cacheEntry struct {
	points  []Point
	expires time.Time
}

// cache keeps answers in memory by zone and hour; entries expire after their
// TTL. It is bounded: past Options.CacheEntries, expired entries go first,
// then arbitrary ones. Concurrent misses for the same request share one
// fetch (singleflight), so a burst of dashboard requests costs one API call;
// they then share its outcome, a cancelled context included.
type cache struct {
	opt    Options
	mu     sync.Mutex
	m      map[cacheKey]cacheEntry
	flight singleflight.Group
}

func newCache(opt Options) *cache { return &cache{opt: opt, m: map[cacheKey]cacheEntry{}} }

func (c *cache) get(k cacheKey) ([]Point, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[k]
	if !ok || !c.opt.Clock.Now().Before(e.expires) {
		return nil, false
	}
	return e.points, true
}

func (c *cache) put(k cacheKey, pts []Point, ttl time.Duration) {
	now := c.opt.Clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[k] = cacheEntry{points: pts, expires: now.Add(ttl)}
	if len(c.m) <= c.opt.CacheEntries {
		return
	}
	for k, e := range c.m {
		if !now.Before(e.expires) {
			delete(c.m, k)
		}
	}
	// Down to 90 % at once, so the scan above runs once per many puts.
	for k := range c.m {
		if len(c.m) <= c.opt.CacheEntries*9/10 {
			break
		}
		delete(c.m, k)
	}
}

func unixHour(t time.Time) int64 {
	s := t.Unix()
	h := s / 3600
	if s%3600 < 0 {
		h--
	}
	return h
}

// fetchFunc asks the provider for the points in [from, to); from and to are
// whole hours.
type fetchFunc func(ctx context.Context, from, to time.Time) ([]Point, error)

// rangeCached answers [from, to) from the cache where every hour is present,
// and otherwise fetches the span from the first to the last missing hour in
// one go and caches each of its hours (empty ones too, so a gap in the data
// is not asked for again before its TTL ends).
func (c *cache) rangeCached(ctx context.Context, zone string, signal Signal, from, to time.Time, fetch fetchFunc) ([]Point, error) {
	if err := checkRange(from, to); err != nil {
		return nil, err
	}
	h0, h1 := unixHour(from), unixHour(to.Add(-time.Nanosecond))
	if h1-h0 >= MaxRangeHours {
		return nil, fmt.Errorf("time range of %d hours, more than %d: ask in parts", h1-h0+1, MaxRangeHours)
	}
	hits := map[int64][]Point{}
	miss0, miss1 := int64(-1)<<62, int64(-1)<<62
	for h := h0; h <= h1; h++ {
		if pts, ok := c.get(cacheKey{op: "range", zone: zone, signal: signal, hour: h}); ok {
			hits[h] = pts
			continue
		}
		if miss0 == -1<<62 {
			miss0 = h
		}
		miss1 = h
	}
	var out []Point
	if miss0 != -1<<62 {
		fFrom, fTo := time.Unix(miss0*3600, 0).UTC(), time.Unix((miss1+1)*3600, 0).UTC()
		v, err, _ := c.flight.Do(fmt.Sprintf("range|%s|%s|%d|%d", zone, signal, miss0, miss1), func() (any, error) {
			return fetch(ctx, fFrom, fTo)
		})
		if err != nil {
			return nil, err
		}
		pts := v.([]Point)
		byHour := map[int64][]Point{}
		for _, p := range pts {
			if h := unixHour(p.Time); h >= miss0 && h <= miss1 {
				byHour[h] = append(byHour[h], p)
			}
		}
		now := c.opt.Clock.Now()
		for h := miss0; h <= miss1; h++ {
			ttl := c.opt.RecentTTL
			if time.Unix((h+1)*3600, 0).Before(now.Add(-settleTime)) {
				ttl = c.opt.HistoryTTL
			}
			c.put(cacheKey{op: "range", zone: zone, signal: signal, hour: h}, byHour[h], ttl)
			out = append(out, byHour[h]...)
			delete(hits, h)
		}
	}
	for _, pts := range hits {
		out = append(out, pts...)
	}
	out = inRange(out, from, to)
	sortPoints(out)
	return out, nil
}

// cached answers from the cache under k, or calls fetch and keeps its answer for ttl.
func (c *cache) cached(k cacheKey, ttl time.Duration, fetch func() ([]Point, error)) ([]Point, error) {
	if pts, ok := c.get(k); ok {
		return pts, nil
	}
	v, err, _ := c.flight.Do(fmt.Sprintf("%s|%s|%s", k.op, k.zone, k.signal), func() (any, error) {
		if pts, ok := c.get(k); ok {
			return pts, nil
		}
		pts, err := fetch()
		if err != nil {
			return nil, err
		}
		c.put(k, pts, ttl)
		return pts, nil
	})
	if err != nil {
		return nil, err
	}
	return v.([]Point), nil
}

func sortPoints(pts []Point) {
	slices.SortStableFunc(pts, func(a, b Point) int { return a.Time.Compare(b.Time) })
}
