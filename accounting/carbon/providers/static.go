package providers

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
)

// AnnualFactor is one zone's grid-average (location-based) carbon intensity
// over a calendar year.
type AnnualFactor struct {
	Zone      string
	Year      int
	Intensity carbon.Intensity
	// Basis says what the figure covers, e.g. "life-cycle, generation-based".
	Basis string
	// Source names where the figure comes from, precisely enough to check it.
	Source string
}

// builtinSource describes the built-in figures.
const builtinSource = "Electricity Maps Data Portal, 2022 hourly dataset (ODbL 1.0, © Electricity Maps): " +
	"unweighted mean of the 8760 hourly life-cycle intensities, computed from the copy embedded in greenloop"

var (
	builtinOnce    sync.Once
	builtinFactors []AnnualFactor
	builtinErr     error
)

// BuiltinAnnualFactors returns the built-in table: for every zone whose 2022
// hourly data greenloop embeds (carbon.Embedded2022Zones: DE, ES, FR, NL,
// PL), the mean of those 8760 hours, rounded to 0.1 g. The table is short on
// purpose: it holds only figures that can be checked against data shipped
// with greenloop. Add others (your supplier's, the EEA's, Ember's) with
// NewStatic, naming their source.
func BuiltinAnnualFactors() ([]AnnualFactor, error) {
	builtinOnce.Do(func() {
		for _, z := range carbon.Embedded2022Zones() {
			s, err := carbon.Embedded2022(z)
			if err != nil {
				builtinErr = err
				return
			}
			_, lca := s.Mean()
			builtinFactors = append(builtinFactors, AnnualFactor{
				Zone: z, Year: 2022, Intensity: carbon.Intensity(math.Round(float64(lca)*10) / 10),
				Basis: "grid average, life-cycle (location-based)", Source: builtinSource,
			})
		}
	})
	return slices.Clone(builtinFactors), builtinErr
}

// Static is the "static" provider: annual factors spread over the hours of
// their year. For an hour of a year with no factor it uses the latest year
// before it, or else the earliest year there is, and marks every point Kind
// Estimate (an annual mean says nothing about a given hour). It has no
// forecasts and only the average signal.
type Static struct {
	clock   Clock
	factors map[string][]AnnualFactor // by zone, sorted by year
}

// MaxStaticRange bounds one Static.Intensity call (one point per hour).
const MaxStaticRange = 5 * 366 * 24 * time.Hour

// NewStatic returns the provider with the built-in table plus extra; an
// extra factor replaces a built-in one of the same zone and year. A nil
// clock is the system clock.
func NewStatic(clock Clock, extra ...AnnualFactor) (*Static, error) {
	if clock == nil {
		clock = SystemClock{}
	}
	all, err := BuiltinAnnualFactors()
	if err != nil {
		return nil, fmt.Errorf("static: %w", err)
	}
	for i, f := range extra {
		switch {
		case f.Zone == "":
			return nil, fmt.Errorf("static: factor %d: zone must be set", i)
		case f.Year < 1990 || f.Year > 2100:
			return nil, fmt.Errorf("static: factor %d (%s): year %d out of range", i, f.Zone, f.Year)
		case f.Source == "":
			return nil, fmt.Errorf("static: factor %d (%s %d): source must be set", i, f.Zone, f.Year)
		}
		if _, err := intensityValue("", float64(f.Intensity)); err != nil {
			return nil, fmt.Errorf("static: factor %d (%s %d): %w", i, f.Zone, f.Year, err)
		}
		all = slices.DeleteFunc(all, func(b AnnualFactor) bool { return b.Zone == f.Zone && b.Year == f.Year })
		all = append(all, f)
	}
	s := &Static{clock: clock, factors: map[string][]AnnualFactor{}}
	for _, f := range all {
		s.factors[f.Zone] = append(s.factors[f.Zone], f)
	}
	for _, fs := range s.factors {
		slices.SortFunc(fs, func(a, b AnnualFactor) int { return a.Year - b.Year })
	}
	return s, nil
}

// Name returns "static".
func (s *Static) Name() string { return "static" }

// Factors returns the table in use, sorted by zone and year.
func (s *Static) Factors() []AnnualFactor {
	var out []AnnualFactor
	for _, fs := range s.factors {
		out = append(out, fs...)
	}
	slices.SortFunc(out, func(a, b AnnualFactor) int {
		if a.Zone != b.Zone {
			if a.Zone < b.Zone {
				return -1
			}
			return 1
		}
		return a.Year - b.Year
	})
	return out
}

// Factor returns the factor used for a time in zone.
func (s *Static) Factor(zone string, t time.Time) (AnnualFactor, error) {
	fs := s.factors[zone]
	if len(fs) == 0 {
		return AnnualFactor{}, fmt.Errorf("static: zone %q: %w", zone, ErrUnknownZone)
	}
	y := t.UTC().Year()
	best := fs[0]
	for _, f := range fs {
		if f.Year <= y {
			best = f
		}
	}
	return best, nil
}

// Intensity returns one point per whole hour in [from, to).
func (s *Static) Intensity(_ context.Context, zone string, from, to time.Time, signal Signal) ([]Point, error) {
	if err := average(s.Name(), signal); err != nil {
		return nil, err
	}
	if err := checkRange(from, to); err != nil {
		return nil, err
	}
	if to.Sub(from) > MaxStaticRange {
		return nil, fmt.Errorf("static: range %v longer than %v", to.Sub(from), MaxStaticRange)
	}
	if _, err := s.Factor(zone, from); err != nil {
		return nil, err
	}
	var out []Point
	for h := from.UTC().Truncate(time.Hour); h.Before(to); h = h.Add(time.Hour) {
		if h.Before(from) {
			continue
		}
		f, _ := s.Factor(zone, h)
		out = append(out, Point{Zone: zone, Time: h, Duration: time.Hour, Intensity: f.Intensity, Kind: Estimate, Signal: Average})
	}
	return out, nil
}

// Forecast is not offered: annual factors are not forecasts.
func (s *Static) Forecast(context.Context, string, time.Time, time.Time, Signal) ([]Point, error) {
	return nil, fmt.Errorf("static: forecast: %w", ErrUnsupported)
}

// Latest returns the point of the current hour.
func (s *Static) Latest(_ context.Context, zone string, signal Signal) (Point, error) {
	if err := average(s.Name(), signal); err != nil {
		return Point{}, err
	}
	h := s.clock.Now().UTC().Truncate(time.Hour)
	f, err := s.Factor(zone, h)
	if err != nil {
		return Point{}, err
	}
	return Point{Zone: zone, Time: h, Duration: time.Hour, Intensity: f.Intensity, Kind: Estimate, Signal: Average}, nil
}
