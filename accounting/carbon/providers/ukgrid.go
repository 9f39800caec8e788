package providers

import (
	"context"
	"fmt"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
)

// UKGridZone is the one zone the GB Carbon Intensity API covers (national, Great Britain).
const UKGridZone = "GB"

// UKGrid reads the GB Carbon Intensity API of the National Energy System
// Operator (https://api.carbonintensity.org.uk, no key needed; content under
// CC BY 4.0): half-hourly national average intensity, with an "actual"
// (estimated from metered generation) and a "forecast" figure per half hour.
type UKGrid struct {
	opt   Options
	c     *client
	cache *cache
}

// NewUKGrid returns the provider. Default rate: 1 request/s, burst 5.
func NewUKGrid(opt Options) *UKGrid {
	opt = opt.withDefaults("https://api.carbonintensity.org.uk", 1, 5)
	return &UKGrid{opt: opt, c: newClient("ukgrid", opt), cache: newCache(opt)}
}

// Name returns "ukgrid".
func (u *UKGrid) Name() string { return "ukgrid" }

// ukMaxRange is the longest range /intensity/{from}/{to} accepts.
const ukMaxRange = 14 * 24 * time.Hour

const ukTimeLayout = "2006-01-02T15:04Z"

func (u *UKGrid) check(zone string, signal Signal) error {
	if zone != UKGridZone {
		return fmt.Errorf("ukgrid: zone %q (want %s): %w", zone, UKGridZone, ErrUnknownZone)
	}
	return average(u.Name(), signal)
}

func (u *UKGrid) fetch(ctx context.Context, path string) ([]ukPeriod, string, error) {
	req, err := u.c.newRequest(ctx, path, nil)
	if err != nil {
		return nil, "", err
	}
	req.Header.Set("Accept", "application/json")
	r, err := u.c.do(ctx, req)
	if err != nil {
		return nil, "", err
	}
	ps, err := parseUKGrid(r.body)
	if err != nil {
		return nil, "", u.c.bad(r.endpoint, err)
	}
	return ps, r.endpoint, nil
}

// Latest returns the current half hour from /intensity: its actual value
// when published, else its forecast.
func (u *UKGrid) Latest(ctx context.Context, zone string, signal Signal) (Point, error) {
	if err := u.check(zone, signal); err != nil {
		return Point{}, err
	}
	pts, err := u.cache.cached(cacheKey{op: "latest", zone: zone, signal: signal}, u.opt.LatestTTL, func() ([]Point, error) {
		ps, _, err := u.fetch(ctx, "/intensity")
		if err != nil {
			return nil, err
		}
		var out []Point
		for _, p := range ps {
			if pt, ok := p.best(zone); ok {
				out = append(out, pt)
			}
		}
		return out, nil
	})
	if err != nil {
		return Point{}, err
	}
	if len(pts) == 0 {
		return Point{}, fmt.Errorf("ukgrid: latest: %w", ErrNoData)
	}
	return pts[len(pts)-1], nil
}

// Intensity returns the half hours in [from, to): actual values where
// published, forecasts (Kind Forecast) where not yet.
func (u *UKGrid) Intensity(ctx context.Context, zone string, from, to time.Time, signal Signal) ([]Point, error) {
	if err := u.check(zone, signal); err != nil {
		return nil, err
	}
	return u.cache.rangeCached(ctx, zone, signal, from, to, func(ctx context.Context, from, to time.Time) ([]Point, error) {
		var out []Point
		for _, w := range windows(from, to, ukMaxRange) {
			ps, _, err := u.fetch(ctx, "/intensity/"+w[0].UTC().Format(ukTimeLayout)+"/"+w[1].UTC().Format(ukTimeLayout))
			if err != nil {
				return nil, err
			}
			for _, p := range ps {
				if pt, ok := p.best(zone); ok {
					out = append(out, pt)
				}
			}
		}
		return out, nil
	})
}

// Forecast returns the forecasts in [from, to) from /intensity/{now}/fw48h
// (the next 48 hours), cached for ForecastTTL.
func (u *UKGrid) Forecast(ctx context.Context, zone string, from, to time.Time, signal Signal) ([]Point, error) {
	if err := u.check(zone, signal); err != nil {
		return nil, err
	}
	if err := checkRange(from, to); err != nil {
		return nil, err
	}
	pts, err := u.cache.cached(cacheKey{op: "forecast", zone: zone, signal: signal}, u.opt.ForecastTTL, func() ([]Point, error) {
		now := u.opt.Clock.Now().UTC().Truncate(30 * time.Minute)
		ps, _, err := u.fetch(ctx, "/intensity/"+now.Format(ukTimeLayout)+"/fw48h")
		if err != nil {
			return nil, err
		}
		var out []Point
		for _, p := range ps {
			if p.forecast != nil {
				out = append(out, Point{Zone: zone, Time: p.from, Duration: p.to.Sub(p.from), Intensity: *p.forecast, Kind: Forecast, Signal: Average})
			}
		}
		return out, nil
	})
	if err != nil {
		return nil, err
	}
	return inRange(pts, from, to), nil
}

// ukPeriod is one half hour of a GB Carbon Intensity answer.
type ukPeriod struct {
	from, to         time.Time
	actual, forecast *carbon.Intensity
}

// best is the actual value when there is one, else the forecast.
func (p ukPeriod) best(zone string) (Point, bool) {
	pt := Point{Zone: zone, Time: p.from, Duration: p.to.Sub(p.from), Signal: Average}
	switch {
	case p.actual != nil:
		pt.Intensity, pt.Kind = *p.actual, Actual
	case p.forecast != nil:
		pt.Intensity, pt.Kind = *p.forecast, Forecast
	default:
		return Point{}, false
	}
	return pt, true
}

// parseUKTime reads "2018-01-20T12:00Z" (the API's form) or RFC 3339.
func parseUKTime(field, v string) (time.Time, error) {
	if t, err := time.Parse(ukTimeLayout, v); err == nil {
		return t.UTC(), nil
	}
	return parseTime(field, v)
}

// parseUKGrid reads {"data":[{"from","to","intensity":{"forecast","actual","index"}}]}.
func parseUKGrid(body []byte) ([]ukPeriod, error) {
	var doc struct {
		Data *[]struct {
			From      string `json:"from"`
			To        string `json:"to"`
			Intensity *struct {
				Forecast *float64 `json:"forecast"`
				Actual   *float64 `json:"actual"`
			} `json:"intensity"`
		} `json:"data"`
	}
	if err := decodeJSON(body, &doc); err != nil {
		return nil, err
	}
	if doc.Data == nil {
		return nil, fieldErr("data", "missing")
	}
	out := make([]ukPeriod, 0, len(*doc.Data))
	for i, d := range *doc.Data {
		f := fmt.Sprintf("data[%d]", i)
		from, err := parseUKTime(f+".from", d.From)
		if err != nil {
			return nil, err
		}
		to, err := parseUKTime(f+".to", d.To)
		if err != nil {
			return nil, err
		}
		if !to.After(from) || to.Sub(from) > 24*time.Hour {
			return nil, fieldErr(f+".to", "%s is not after from %s (or more than a day later)", d.To, d.From)
		}
		if d.Intensity == nil {
			return nil, fieldErr(f+".intensity", "missing")
		}
		p := ukPeriod{from: from, to: to}
		if v := d.Intensity.Actual; v != nil {
			x, err := intensityValue(f+".intensity.actual", *v)
			if err != nil {
				return nil, err
			}
			p.actual = &x
		}
		if v := d.Intensity.Forecast; v != nil {
			x, err := intensityValue(f+".intensity.forecast", *v)
			if err != nil {
				return nil, err
			}
			p.forecast = &x
		}
		out = append(out, p)
	}
	return out, nil
}
