package providers

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
)

// GramsPerKWhPerLbPerMWh converts WattTime's lbs CO2/MWh to gCO2/kWh: one
// avoirdupois pound is exactly 453.59237 g, and 1 MWh is 1000 kWh.
const GramsPerKWhPerLbPerMWh = 0.45359237

// FromLbsPerMWh converts an emission rate in lbs/MWh to an Intensity.
func FromLbsPerMWh(v float64) carbon.Intensity { return carbon.Intensity(v * GramsPerKWhPerLbPerMWh) }

// WattTimeConfig configures the WattTime API v3 provider.
type WattTimeConfig struct {
	Options
	// Username and Password log in (HTTP basic auth on LoginURL) for a bearer
	// token. Never logged.
	Username, Password string
	// LoginURL defaults to https://api.watttime.org/login, or BaseURL+"/login"
	// when BaseURL is set.
	LoginURL string
	// TokenTTL is how long a token is used before logging in again (WattTime
	// documents 30 minutes; default 30 min, renewed a minute early). A 401
	// renews it at once.
	TokenTTL time.Duration
	// MaxRange is the longest window asked of /v3/historical in one request
	// (default 32 days, WattTime's limit).
	MaxRange time.Duration
	// ForecastHorizon is asked of /v3/forecast as horizon_hours (default 24 h, at most 72 h).
	ForecastHorizon time.Duration
	// Locations maps zones that are not WattTime regions (a site's zone
	// such as "US-CAL-CISO") to the site's location. Asked for such a
	// zone, the provider looks the region up once with
	// /v3/region-from-loc (signal co2_moer; cached for the provider's
	// lifetime), asks WattTime for that region and labels the points with
	// the zone. A zone not listed is the WattTime region itself.
	Locations map[string]Location
}

// Location is a point on the map in degrees (WGS 84).
type Location struct {
	Lat, Lon float64
}

func (l Location) String() string {
	return strconv.FormatFloat(l.Lat, 'f', -1, 64) + "," + strconv.FormatFloat(l.Lon, 'f', -1, 64)
}

// WattTime reads the WattTime API v3 (https://api.watttime.org). Zones are
// WattTime regions ("CAISO_NORTH"; see RegionFromLocation). The marginal
// signal is co2_moer; the average signal is co2_aoer, historical only.
// Values come in lbs/MWh and are converted with GramsPerKWhPerLbPerMWh.
type WattTime struct {
	cfg   WattTimeConfig
	c     *client
	cache *cache

	mu      sync.Mutex
	token   string
	expires time.Time
	logins  int

	// regionMu serialises region look-ups, so concurrent calls for one
	// location ask WattTime once; regions caches them by location.
	regionMu sync.Mutex
	regions  map[Location]Region
}

// NewWattTime returns the provider. Default rate: 1 request/s, burst 5
// (WattTime allows 3000 requests per 5 minutes).
func NewWattTime(cfg WattTimeConfig) (*WattTime, error) {
	if cfg.Username == "" || cfg.Password == "" {
		return nil, errors.New("watttime: username and password must be set")
	}
	if cfg.LoginURL == "" {
		cfg.LoginURL = "https://api.watttime.org/login"
		if cfg.BaseURL != "" {
			cfg.LoginURL = cfg.BaseURL + "/login"
		}
	}
	if cfg.TokenTTL <= 0 {
		cfg.TokenTTL = 30 * time.Minute
	}
	if cfg.MaxRange <= 0 {
		cfg.MaxRange = 32 * 24 * time.Hour
	}
	if cfg.ForecastHorizon <= 0 {
		cfg.ForecastHorizon = 24 * time.Hour
	}
	if cfg.ForecastHorizon > 72*time.Hour {
		return nil, fmt.Errorf("watttime: forecast horizon %v longer than 72h", cfg.ForecastHorizon)
	}
	for zone, l := range cfg.Locations {
		if !(l.Lat >= -90 && l.Lat <= 90) || !(l.Lon >= -180 && l.Lon <= 180) {
			return nil, fmt.Errorf("watttime: location of zone %q: latitude %v, longitude %v: want [-90, 90] and [-180, 180]", zone, l.Lat, l.Lon)
		}
	}
	cfg.Options = cfg.Options.withDefaults("https://api.watttime.org", 1, 5)
	return &WattTime{cfg: cfg, c: newClient("watttime", cfg.Options), cache: newCache(cfg.Options), regions: map[Location]Region{}}, nil
}

// Name returns "watttime".
func (w *WattTime) Name() string { return "watttime" }

func wattTimeSignal(s Signal) (string, error) {
	switch s {
	case Marginal:
		return "co2_moer", nil
	case Average:
		return "co2_aoer", nil
	}
	return "", fmt.Errorf("watttime: signal %q: %w", s, ErrUnsupported)
}

// login returns a valid token, logging in when there is none, it expired, or force is set.
func (w *WattTime) login(ctx context.Context, force bool) (string, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := w.cfg.Clock.Now()
	if !force && w.token != "" && now.Before(w.expires) {
		return w.token, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, w.cfg.LoginURL, nil)
	if err != nil {
		return "", fmt.Errorf("watttime: login URL: %w", err)
	}
	req.SetBasicAuth(w.cfg.Username, w.cfg.Password)
	w.logins++
	r, err := w.c.do(ctx, req)
	if err != nil {
		return "", err
	}
	var body struct {
		Token string `json:"token"`
	}
	if err := decodeJSON(r.body, &body); err != nil {
		return "", w.c.bad(r.endpoint, err)
	}
	if body.Token == "" {
		return "", w.c.bad(r.endpoint, fieldErr("token", "missing or empty"))
	}
	w.token, w.expires = body.Token, now.Add(w.cfg.TokenTTL-time.Minute)
	w.cfg.Logger.Debug("watttime login", "valid_until", w.expires)
	return w.token, nil
}

// get sends an authenticated request; on 401 it logs in again and retries once.
func (w *WattTime) get(ctx context.Context, path string, q url.Values) (*response, error) {
	for attempt := 0; ; attempt++ {
		tok, err := w.login(ctx, attempt > 0)
		if err != nil {
			return nil, err
		}
		req, err := w.c.newRequest(ctx, path, q)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		r, err := w.c.do(ctx, req)
		var ae *AuthError
		if attempt == 0 && errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			w.cfg.Logger.Info("watttime token refused, logging in again")
			continue
		}
		return r, err
	}
}

// Intensity returns /v3/historical values (Kind Actual) in windows of MaxRange.
func (w *WattTime) Intensity(ctx context.Context, zone string, from, to time.Time, signal Signal) ([]Point, error) {
	st, err := wattTimeSignal(signal)
	if err != nil {
		return nil, err
	}
	return w.cache.rangeCached(ctx, zone, signal, from, to, func(ctx context.Context, from, to time.Time) ([]Point, error) {
		region, err := w.Region(ctx, zone)
		if err != nil {
			return nil, err
		}
		var out []Point
		for _, win := range windows(from, to, w.cfg.MaxRange) {
			q := url.Values{"region": {region}, "signal_type": {st},
				"start": {win[0].UTC().Format(time.RFC3339)}, "end": {win[1].UTC().Format(time.RFC3339)}}
			r, err := w.get(ctx, "/v3/historical", q)
			if err != nil {
				return nil, err
			}
			pts, err := parseWattTime(r.body, zone, signal, Actual)
			if err != nil {
				return nil, w.c.bad(r.endpoint, err)
			}
			out = append(out, pts...)
		}
		return out, nil
	})
}

// Forecast returns /v3/forecast (marginal only), cached for ForecastTTL.
func (w *WattTime) Forecast(ctx context.Context, zone string, from, to time.Time, signal Signal) ([]Point, error) {
	if signal != Marginal {
		return nil, fmt.Errorf("watttime: forecast of signal %q: %w", signal, ErrUnsupported)
	}
	if err := checkRange(from, to); err != nil {
		return nil, err
	}
	pts, err := w.cache.cached(cacheKey{op: "forecast", zone: zone, signal: signal}, w.cfg.ForecastTTL, func() ([]Point, error) {
		return w.forecast(ctx, zone, w.cfg.ForecastHorizon, Forecast)
	})
	if err != nil {
		return nil, err
	}
	return inRange(pts, from, to), nil
}

func (w *WattTime) forecast(ctx context.Context, zone string, horizon time.Duration, kind Kind) ([]Point, error) {
	region, err := w.Region(ctx, zone)
	if err != nil {
		return nil, err
	}
	q := url.Values{"region": {region}, "signal_type": {"co2_moer"}, "horizon_hours": {strconv.Itoa(int(horizon / time.Hour))}}
	r, err := w.get(ctx, "/v3/forecast", q)
	if err != nil {
		return nil, err
	}
	pts, err := parseWattTime(r.body, zone, Marginal, kind)
	if err != nil {
		return nil, w.c.bad(r.endpoint, err)
	}
	return pts, nil
}

// Latest returns the current marginal value (/v3/forecast with
// horizon_hours=0: WattTime's nowcast, Kind Estimate), or for the average
// signal the newest /v3/historical value of the last two hours.
func (w *WattTime) Latest(ctx context.Context, zone string, signal Signal) (Point, error) {
	if _, err := wattTimeSignal(signal); err != nil {
		return Point{}, err
	}
	pts, err := w.cache.cached(cacheKey{op: "latest", zone: zone, signal: signal}, w.cfg.LatestTTL, func() ([]Point, error) {
		if signal == Marginal {
			return w.forecast(ctx, zone, 0, Estimate)
		}
		now := w.cfg.Clock.Now()
		return w.Intensity(ctx, zone, now.Add(-2*time.Hour), now, signal)
	})
	if err != nil {
		return Point{}, err
	}
	if len(pts) == 0 {
		return Point{}, fmt.Errorf("watttime: latest %s of region %q: %w", signal, zone, ErrNoData)
	}
	if signal == Marginal {
		return pts[0], nil
	}
	return pts[len(pts)-1], nil
}

// Region is the answer of /v3/region-from-loc.
type Region struct {
	Region, FullName, SignalType string
}

// RegionFromLocation returns the WattTime region of a site (latitude and
// longitude in degrees) for the signal.
func (w *WattTime) RegionFromLocation(ctx context.Context, lat, lon float64, signal Signal) (Region, error) {
	st, err := wattTimeSignal(signal)
	if err != nil {
		return Region{}, err
	}
	q := url.Values{"latitude": {strconv.FormatFloat(lat, 'f', -1, 64)}, "longitude": {strconv.FormatFloat(lon, 'f', -1, 64)}, "signal_type": {st}}
	r, err := w.get(ctx, "/v3/region-from-loc", q)
	if err != nil {
		return Region{}, err
	}
	reg, err := parseWattTimeRegion(r.body, st)
	if err != nil {
		return Region{}, w.c.bad(r.endpoint, err)
	}
	return reg, nil
}

// parseWattTimeRegion reads a /v3/region-from-loc answer
// {"region","region_full_name","signal_type"} asked for signal type st.
func parseWattTimeRegion(b []byte, st string) (Region, error) {
	var body struct {
		Region     string `json:"region"`
		FullName   string `json:"region_full_name"`
		SignalType string `json:"signal_type"`
	}
	if err := decodeJSON(b, &body); err != nil {
		return Region{}, err
	}
	if body.Region == "" {
		return Region{}, fieldErr("region", "missing or empty")
	}
	if body.SignalType != "" && body.SignalType != st {
		return Region{}, fieldErr("signal_type", "%q, asked for %q", body.SignalType, st)
	}
	return Region{Region: body.Region, FullName: body.FullName, SignalType: body.SignalType}, nil
}

// RegionError is a failed look-up of the WattTime region of a zone from
// its location (/v3/region-from-loc). It wraps the provider's error
// (*AuthError, *ResponseError, *QuotaError, ...), so errors.Is(err,
// ErrAuth) and the like still hold; a refused location (HTTP 400) is also
// ErrUnknownZone.
type RegionError struct {
	Zone     string
	Location Location
	// Reason says what the status means for this call ("" when the
	// wrapped error says it all).
	Reason string
	Err    error
}

func (e *RegionError) Error() string {
	s := fmt.Sprintf("watttime: WattTime region of zone %q from its location %s (/v3/region-from-loc)", e.Zone, e.Location)
	if e.Reason != "" {
		s += ": " + e.Reason
	}
	return s + ": " + e.Err.Error()
}

func (e *RegionError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnknownZone) true for a location WattTime refused (HTTP 400).
func (e *RegionError) Is(target error) bool {
	var re *ResponseError
	return target == ErrUnknownZone && errors.As(e.Err, &re) && re.Status == http.StatusBadRequest
}

// Region returns the WattTime region the provider asks for zone: the
// region of the zone's configured location (Locations), looked up once,
// else the zone itself.
func (w *WattTime) Region(ctx context.Context, zone string) (string, error) {
	loc, ok := w.cfg.Locations[zone]
	if !ok {
		return zone, nil
	}
	w.regionMu.Lock()
	defer w.regionMu.Unlock()
	if r, ok := w.regions[loc]; ok {
		return r.Region, nil
	}
	r, err := w.RegionFromLocation(ctx, loc.Lat, loc.Lon, Marginal)
	if err != nil {
		e := &RegionError{Zone: zone, Location: loc, Err: err}
		var ae *AuthError
		var re *ResponseError
		switch {
		case errors.As(err, &ae) && ae.Status == http.StatusForbidden:
			e.Reason = "HTTP 403: the WattTime plan does not include region look-ups for this location or signal co2_moer (not in plan)"
		case errors.As(err, &re) && re.Status == http.StatusBadRequest:
			e.Reason = "HTTP 400: WattTime refused the coordinates (outside every WattTime region, or not a valid location): check the site's location"
		}
		return "", e
	}
	w.regions[loc] = r
	w.cfg.Logger.Info("watttime region from location", "zone", zone, "location", loc.String(), "region", r.Region, "region_full_name", r.FullName)
	return r.Region, nil
}

// Index is a WattTime signal index: where the current marginal rate lies
// among the values of the past month, in percent (0 cleanest, 100 dirtiest).
type Index struct {
	Time    time.Time
	Percent float64
}

// SignalIndex returns /v3/signal-index for the marginal signal; it is
// available on WattTime's free plan for every region.
func (w *WattTime) SignalIndex(ctx context.Context, zone string) (Index, error) {
	region, err := w.Region(ctx, zone)
	if err != nil {
		return Index{}, err
	}
	r, err := w.get(ctx, "/v3/signal-index", url.Values{"region": {region}, "signal_type": {"co2_moer"}})
	if err != nil {
		return Index{}, err
	}
	ix, err := parseWattTimeIndex(r.body)
	if err != nil {
		return Index{}, w.c.bad(r.endpoint, err)
	}
	return ix, nil
}

type wattTimeDoc struct {
	Data *[]struct {
		PointTime string   `json:"point_time"`
		Value     *float64 `json:"value"`
	} `json:"data"`
	Meta *struct {
		Units                  string `json:"units"`
		DataPointPeriodSeconds *int64 `json:"data_point_period_seconds"`
	} `json:"meta"`
}

func decodeWattTime(body []byte) (*wattTimeDoc, error) {
	var doc wattTimeDoc
	if err := decodeJSON(body, &doc); err != nil {
		return nil, err
	}
	if doc.Data == nil {
		return nil, fieldErr("data", "missing")
	}
	if doc.Meta == nil {
		return nil, fieldErr("meta", "missing")
	}
	return &doc, nil
}

// parseWattTime reads a /v3/historical or /v3/forecast answer in lbs/MWh.
func parseWattTime(body []byte, zone string, signal Signal, kind Kind) ([]Point, error) {
	doc, err := decodeWattTime(body)
	if err != nil {
		return nil, err
	}
	if doc.Meta.Units != "lbs_co2_per_mwh" {
		return nil, fieldErr("meta.units", "%q, want lbs_co2_per_mwh", doc.Meta.Units)
	}
	p := doc.Meta.DataPointPeriodSeconds
	if p == nil || *p <= 0 || *p > 86400 {
		return nil, fieldErr("meta.data_point_period_seconds", "missing or out of range (0, 86400]")
	}
	period := time.Duration(*p) * time.Second
	out := make([]Point, 0, len(*doc.Data))
	for i, d := range *doc.Data {
		f := fmt.Sprintf("data[%d]", i)
		t, err := parseTime(f+".point_time", d.PointTime)
		if err != nil {
			return nil, err
		}
		if d.Value == nil {
			return nil, fieldErr(f+".value", "missing")
		}
		v, err := intensityValue(f+".value", float64(FromLbsPerMWh(*d.Value)))
		if err != nil {
			return nil, err
		}
		out = append(out, Point{Zone: zone, Time: t, Duration: period, Intensity: v, Kind: kind, Signal: signal})
	}
	sortPoints(out)
	return out, nil
}

// parseWattTimeIndex reads a /v3/signal-index answer (units "percentile").
func parseWattTimeIndex(body []byte) (Index, error) {
	doc, err := decodeWattTime(body)
	if err != nil {
		return Index{}, err
	}
	if doc.Meta.Units != "percentile" {
		return Index{}, fieldErr("meta.units", "%q, want percentile", doc.Meta.Units)
	}
	if len(*doc.Data) == 0 {
		return Index{}, fieldErr("data", "empty")
	}
	d := (*doc.Data)[0]
	t, err := parseTime("data[0].point_time", d.PointTime)
	if err != nil {
		return Index{}, err
	}
	if d.Value == nil || *d.Value < 0 || *d.Value > 100 {
		return Index{}, fieldErr("data[0].value", "missing or out of range [0, 100]")
	}
	return Index{Time: t, Percent: *d.Value}, nil
}
