package providers

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// ElectricityMapsConfig configures the Electricity Maps API v3 provider.
type ElectricityMapsConfig struct {
	Options
	// Token is the API key, sent in the "auth-token" header. Read it from a
	// file or the environment; it is never logged.
	Token string
	// EmissionFactorType is "lifecycle" (default) or "direct".
	EmissionFactorType string
	// MaxRange is the longest window asked of /past-range in one request
	// (default 10 days); longer ranges are split.
	MaxRange time.Duration
}

// ElectricityMaps reads the Electricity Maps API v3
// (https://api.electricitymaps.com/v3/carbon-intensity/{latest,history,forecast,past-range}).
// Zones are Electricity Maps zone keys ("DE", "SE-SE3", "US-CAL-CISO"). It
// offers the average signal only. Data from it is © Electricity Maps and
// subject to its terms of use.
type ElectricityMaps struct {
	cfg   ElectricityMapsConfig
	c     *client
	cache *cache
}

// NewElectricityMaps returns the provider. Default rate: 1 request/s, burst 5.
func NewElectricityMaps(cfg ElectricityMapsConfig) (*ElectricityMaps, error) {
	if cfg.Token == "" {
		return nil, errors.New("electricitymaps: the API token must be set")
	}
	switch cfg.EmissionFactorType {
	case "":
		cfg.EmissionFactorType = "lifecycle"
	case "lifecycle", "direct":
	default:
		return nil, fmt.Errorf("electricitymaps: emission factor type %q, want lifecycle or direct", cfg.EmissionFactorType)
	}
	if cfg.MaxRange <= 0 {
		cfg.MaxRange = 10 * 24 * time.Hour
	}
	cfg.Options = cfg.Options.withDefaults("https://api.electricitymaps.com", 1, 5)
	return &ElectricityMaps{cfg: cfg, c: newClient("electricitymaps", cfg.Options), cache: newCache(cfg.Options)}, nil
}

// Name returns "electricitymaps".
func (e *ElectricityMaps) Name() string { return "electricitymaps" }

func (e *ElectricityMaps) get(ctx context.Context, path string, q url.Values) (*response, error) {
	q.Set("emissionFactorType", e.cfg.EmissionFactorType)
	req, err := e.c.newRequest(ctx, path, q)
	if err != nil {
		return nil, err
	}
	req.Header.Set("auth-token", e.cfg.Token)
	return e.c.do(ctx, req)
}

func average(name string, s Signal) error {
	if s != Average {
		return fmt.Errorf("%s: signal %q: %w", name, s, ErrUnsupported)
	}
	return nil
}

// Latest returns /v3/carbon-intensity/latest, cached for LatestTTL.
func (e *ElectricityMaps) Latest(ctx context.Context, zone string, signal Signal) (Point, error) {
	if err := average(e.Name(), signal); err != nil {
		return Point{}, err
	}
	pts, err := e.cache.cached(cacheKey{op: "latest", zone: zone, signal: signal}, e.cfg.LatestTTL, func() ([]Point, error) {
		r, err := e.get(ctx, "/v3/carbon-intensity/latest", url.Values{"zone": {zone}})
		if err != nil {
			return nil, err
		}
		p, err := parseEMLatest(r.body, zone)
		if err != nil {
			return nil, e.c.bad(r.endpoint, err)
		}
		if p == nil {
			return nil, nil
		}
		return []Point{*p}, nil
	})
	if err != nil {
		return Point{}, err
	}
	if len(pts) == 0 {
		return Point{}, fmt.Errorf("electricitymaps: latest of zone %q: %w", zone, ErrNoData)
	}
	return pts[0], nil
}

// Intensity returns hourly values: from /history when the range lies within
// its last 24 hours, otherwise from /past-range in windows of MaxRange.
func (e *ElectricityMaps) Intensity(ctx context.Context, zone string, from, to time.Time, signal Signal) ([]Point, error) {
	if err := average(e.Name(), signal); err != nil {
		return nil, err
	}
	return e.cache.rangeCached(ctx, zone, signal, from, to, func(ctx context.Context, from, to time.Time) ([]Point, error) {
		if !from.Before(e.cfg.Clock.Now().Add(-23 * time.Hour)) {
			r, err := e.get(ctx, "/v3/carbon-intensity/history", url.Values{"zone": {zone}})
			if err != nil {
				return nil, err
			}
			pts, err := parseEMList(r.body, "history", zone, false)
			if err != nil {
				return nil, e.c.bad(r.endpoint, err)
			}
			return pts, nil
		}
		var all []Point
		for _, w := range windows(from, to, e.cfg.MaxRange) {
			q := url.Values{"zone": {zone}, "start": {w[0].UTC().Format(time.RFC3339)}, "end": {w[1].UTC().Format(time.RFC3339)}}
			r, err := e.get(ctx, "/v3/carbon-intensity/past-range", q)
			if err != nil {
				return nil, err
			}
			pts, err := parseEMList(r.body, "data", zone, false)
			if err != nil {
				return nil, e.c.bad(r.endpoint, err)
			}
			all = append(all, pts...)
		}
		return all, nil
	})
}

// Forecast returns /v3/carbon-intensity/forecast in [from, to), the whole
// forecast cached for ForecastTTL.
func (e *ElectricityMaps) Forecast(ctx context.Context, zone string, from, to time.Time, signal Signal) ([]Point, error) {
	if err := average(e.Name(), signal); err != nil {
		return nil, err
	}
	if err := checkRange(from, to); err != nil {
		return nil, err
	}
	pts, err := e.cache.cached(cacheKey{op: "forecast", zone: zone, signal: signal}, e.cfg.ForecastTTL, func() ([]Point, error) {
		r, err := e.get(ctx, "/v3/carbon-intensity/forecast", url.Values{"zone": {zone}})
		if err != nil {
			return nil, err
		}
		pts, err := parseEMList(r.body, "forecast", zone, true)
		if err != nil {
			return nil, e.c.bad(r.endpoint, err)
		}
		return pts, nil
	})
	if err != nil {
		return nil, err
	}
	return inRange(pts, from, to), nil
}

// emPoint is one entry of an Electricity Maps answer.
type emPoint struct {
	Zone            string   `json:"zone"`
	CarbonIntensity *float64 `json:"carbonIntensity"`
	Datetime        string   `json:"datetime"`
	IsEstimated     *bool    `json:"isEstimated"`
}

// point converts e; nil (and no error) when the provider has no value (null).
func (p *emPoint) point(field, zone string, forecast bool) (*Point, error) {
	t, err := parseTime(field+".datetime", p.Datetime)
	if err != nil {
		return nil, err
	}
	if p.CarbonIntensity == nil {
		return nil, nil
	}
	v, err := intensityValue(field+".carbonIntensity", *p.CarbonIntensity)
	if err != nil {
		return nil, err
	}
	k := Actual
	switch {
	case forecast:
		k = Forecast
	case p.IsEstimated != nil && *p.IsEstimated:
		k = Estimate
	}
	return &Point{Zone: zone, Time: t, Duration: time.Hour, Intensity: v, Kind: k, Signal: Average}, nil
}

// parseEMLatest reads a /latest answer; nil when its carbonIntensity is null.
func parseEMLatest(body []byte, zone string) (*Point, error) {
	var p emPoint
	if err := decodeJSON(body, &p); err != nil {
		return nil, err
	}
	return p.point("", zone, false)
}

// parseEMList reads the array under key ("history", "data" or "forecast"),
// skipping null values.
func parseEMList(body []byte, key, zone string, forecast bool) ([]Point, error) {
	var m map[string]jsonRaw
	if err := decodeJSON(body, &m); err != nil {
		return nil, err
	}
	raw, ok := m[key]
	if !ok {
		return nil, fieldErr(key, "missing")
	}
	var list []emPoint
	if err := decodeJSON(raw, &list); err != nil {
		var fe *fieldError
		if errors.As(err, &fe) {
			fe.field = joinField(key, fe.field)
		}
		return nil, err
	}
	out := make([]Point, 0, len(list))
	for i := range list {
		p, err := list[i].point(fmt.Sprintf("%s[%d]", key, i), zone, forecast)
		if err != nil {
			return nil, err
		}
		if p != nil {
			out = append(out, *p)
		}
	}
	sortPoints(out)
	return out, nil
}

func joinField(a, b string) string {
	if b == "" {
		return a
	}
	return a + "." + b
}
