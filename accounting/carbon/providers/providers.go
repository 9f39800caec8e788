// Package providers fetches grid carbon intensity from outside sources behind
// one interface, Provider: the Electricity Maps API, WattTime, the ENTSO-E
// Transparency Platform, the GB Carbon Intensity API, CSV imports and a
// built-in table of annual factors. Every HTTP provider caches by zone and
// hour, limits its own request rate, and reports quota, authentication and
// malformed responses as typed errors (ErrQuota, ErrAuth, ErrBadResponse).
package providers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
)

// Signal says which carbon intensity a value is.
type Signal string

const (
	// Average is the average intensity of the electricity consumed or generated
	// in a zone (location-based accounting).
	Average Signal = "average"
	// Marginal is the intensity of the generators that respond to a change of
	// load (WattTime's MOER).
	Marginal Signal = "marginal"
)

// ParseSignal reads "average" or "marginal".
func ParseSignal(s string) (Signal, error) {
	switch Signal(s) {
	case Average, Marginal:
		return Signal(s), nil
	}
	return "", fmt.Errorf("unknown signal %q, want average or marginal", s)
}

// Kind says how a value came about.
type Kind string

const (
	// Actual is a value computed from measured generation.
	Actual Kind = "actual"
	// Forecast is a prediction made before the interval.
	Forecast Kind = "forecast"
	// Estimate is a value the provider estimated (data missing, a nowcast, or
	// an hour only partly covered by measurements).
	Estimate Kind = "estimate"
)

// ParseKind reads "actual", "forecast" or "estimate".
func ParseKind(s string) (Kind, error) {
	switch Kind(s) {
	case Actual, Forecast, Estimate:
		return Kind(s), nil
	}
	return "", fmt.Errorf("unknown kind %q, want actual, forecast or estimate", s)
}

// Point is the carbon intensity of one zone over one interval.
type Point struct {
	// Zone is the grid zone as the caller named it ("DE", "GB", "CAISO_NORTH").
	Zone string
	// Time is the start of the interval, in UTC.
	Time time.Time
	// Duration is the length of the interval the value holds for; zero when
	// the source does not say (CSV imports).
	Duration time.Duration
	// Intensity in gCO2e/kWh.
	Intensity carbon.Intensity
	Kind      Kind
	Signal    Signal
}

// Provider is one source of grid carbon intensity. Implementations are safe
// for concurrent use.
type Provider interface {
	// Name is the provider's label value: "electricitymaps", "watttime",
	// "entsoe", "ukgrid", "csv", "static".
	Name() string
	// Intensity returns the points of zone in [from, to), sorted by time.
	// Past intervals come as Actual or Estimate; intervals the provider only
	// has forecasts for may come as Forecast.
	Intensity(ctx context.Context, zone string, from, to time.Time, signal Signal) ([]Point, error)
	// Forecast returns forecast points of zone in [from, to), sorted by time.
	Forecast(ctx context.Context, zone string, from, to time.Time, signal Signal) ([]Point, error)
	// Latest returns the most recent point the provider has for zone.
	Latest(ctx context.Context, zone string, signal Signal) (Point, error)
}

// Sentinel errors, checked with errors.Is.
var (
	// ErrQuota: the provider refused the request for its rate limit or quota
	// (HTTP 429). The error is a *QuotaError that says when to retry.
	ErrQuota = errors.New("quota exceeded")
	// ErrAuth: the provider refused the credentials (HTTP 401 or 403). The
	// error is an *AuthError naming the provider, never the secret.
	ErrAuth = errors.New("authentication failed")
	// ErrBadResponse: the provider answered something this package cannot read.
	// The error is a *ResponseError naming the field.
	ErrBadResponse = errors.New("bad response")
	// ErrUnsupported: the provider does not offer this signal or operation.
	ErrUnsupported = errors.New("not supported by provider")
	// ErrUnknownZone: the provider does not know the zone.
	ErrUnknownZone = errors.New("unknown zone")
	// ErrNoData: the provider has no value for the request.
	ErrNoData = errors.New("no data")
)

// QuotaError is returned for HTTP 429. Until RetryAfter has passed the
// provider answers further calls with the same error without asking again.
type QuotaError struct {
	Provider string
	// RetryAfter is how long the provider asked to wait (Retry-After header);
	// zero when it did not say.
	RetryAfter time.Duration
	// Until is the time before which no request is sent.
	Until time.Time
}

func (e *QuotaError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%s: %v, retry after %v", e.Provider, ErrQuota, e.RetryAfter)
	}
	return fmt.Sprintf("%s: %v", e.Provider, ErrQuota)
}

// Is makes errors.Is(err, ErrQuota) true.
func (e *QuotaError) Is(target error) bool { return target == ErrQuota }

// AuthError is returned for HTTP 401 and 403 (and a failed WattTime login).
type AuthError struct {
	Provider string
	// Endpoint is the path that refused, without the query (which may hold a token).
	Endpoint string
	Status   int
}

func (e *AuthError) Error() string {
	return fmt.Sprintf("%s: %v (HTTP %d from %s): check the configured credentials", e.Provider, ErrAuth, e.Status, e.Endpoint)
}

// Is makes errors.Is(err, ErrAuth) true.
func (e *AuthError) Is(target error) bool { return target == ErrAuth }

// ResponseError is a response this package could not use: a wrong status,
// malformed JSON or XML, or a field that is missing or out of range.
type ResponseError struct {
	Provider string
	Endpoint string
	// Status is the HTTP status, 0 when the status was fine but the body was not.
	Status int
	// Field names the offending field ("data[3].value", "meta.units"), empty when the whole body is at fault.
	Field string
	Err   error
}

func (e *ResponseError) Error() string {
	s := e.Provider + ": " + ErrBadResponse.Error() + " from " + e.Endpoint
	if e.Status != 0 {
		s += " (HTTP " + strconv.Itoa(e.Status) + ")"
	}
	if e.Field != "" {
		s += ": field " + e.Field
	}
	if e.Err != nil {
		s += ": " + e.Err.Error()
	}
	return s
}

// Is makes errors.Is(err, ErrBadResponse) true.
func (e *ResponseError) Is(target error) bool { return target == ErrBadResponse }

func (e *ResponseError) Unwrap() error { return e.Err }

// Clock is the time source; tests inject a fake one.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done, whichever comes first.
	Sleep(ctx context.Context, d time.Duration) error
}

// SystemClock is the real clock.
type SystemClock struct{}

// Now returns time.Now().
func (SystemClock) Now() time.Time { return time.Now() }

// Sleep waits for d, or returns ctx.Err() when ctx ends first.
func (SystemClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Options are the settings every HTTP provider shares. Zero values get the
// provider's defaults.
type Options struct {
	// BaseURL overrides the API's address (tests, proxies, mirrors).
	BaseURL string
	// HTTPClient is the client to use; nil: a client with a 30 s timeout.
	HTTPClient *http.Client
	Logger     *slog.Logger
	Clock      Clock
	// RateLimit is the most requests per second sent to the provider (token
	// bucket), Burst the bucket's size. Zero: the provider's default.
	RateLimit float64
	Burst     int
	// LatestTTL is how long a Latest answer is reused (default 5 min).
	LatestTTL time.Duration
	// ForecastTTL is how long a forecast is reused (default 30 min).
	ForecastTTL time.Duration
	// RecentTTL is how long the hours of the last two days are reused, which
	// providers still revise (default 15 min); HistoryTTL is for older hours
	// (default 24 h).
	RecentTTL  time.Duration
	HistoryTTL time.Duration
	// CacheEntries bounds the cache (zone-hours plus latest and forecast
	// entries; default 50000).
	CacheEntries int
	// MaxResponseBytes bounds a response body (default 32 MiB).
	MaxResponseBytes int64
}

func (o Options) withDefaults(baseURL string, rate float64, burst int) Options {
	if o.BaseURL == "" {
		o.BaseURL = baseURL
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = SystemClock{}
	}
	if o.RateLimit <= 0 {
		o.RateLimit = rate
	}
	if o.Burst <= 0 {
		o.Burst = burst
	}
	if o.LatestTTL <= 0 {
		o.LatestTTL = 5 * time.Minute
	}
	if o.ForecastTTL <= 0 {
		o.ForecastTTL = 30 * time.Minute
	}
	if o.RecentTTL <= 0 {
		o.RecentTTL = 15 * time.Minute
	}
	if o.HistoryTTL <= 0 {
		o.HistoryTTL = 24 * time.Hour
	}
	if o.CacheEntries <= 0 {
		o.CacheEntries = 50000
	}
	if o.MaxResponseBytes <= 0 {
		o.MaxResponseBytes = 32 << 20
	}
	return o
}

// inRange keeps the points whose time is in [from, to).
func inRange(pts []Point, from, to time.Time) []Point {
	out := pts[:0:0]
	for _, p := range pts {
		if !p.Time.Before(from) && p.Time.Before(to) {
			out = append(out, p)
		}
	}
	return out
}

func checkRange(from, to time.Time) error {
	if !from.Before(to) {
		return fmt.Errorf("empty time range [%s, %s)", from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	return nil
}

// Every provider implements Provider.
var (
	_ Provider = (*ElectricityMaps)(nil)
	_ Provider = (*WattTime)(nil)
	_ Provider = (*ENTSOE)(nil)
	_ Provider = (*UKGrid)(nil)
	_ Provider = (*Memory)(nil)
	_ Provider = (*Static)(nil)
)
