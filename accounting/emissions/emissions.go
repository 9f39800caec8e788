// Package emissions computes Scope 2 emissions of a site from its hourly
// energy: location-based (each hour's energy times that hour's grid
// intensity) and market-based (contractual instruments first, the residual
// mix for the rest), the 24/7 carbon-free hourly matching score, and Scope 1
// from fuel and refrigerant records. It is pure: energy comes from package
// energy, intensity from package carbon.
package emissions

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/quantity"
)

// Method is the Scope 2 accounting method.
type Method string

// Scope 2 methods (GHG Protocol Scope 2 Guidance).
const (
	LocationBased Method = "location"
	MarketBased   Method = "market"
)

// Signal picks which intensity of a carbon.Point location-based accounting uses.
type Signal uint8

// Signals.
const (
	// LifeCycle uses carbon.Point.LCA (construction, fuel supply and
	// combustion), the default.
	LifeCycle Signal = iota
	// Direct uses carbon.Point.Direct (combustion only).
	Direct
)

func (s Signal) String() string {
	if s == Direct {
		return "direct"
	}
	return "lifecycle"
}

// Factor is an emission factor with where it comes from, e.g. an annual
// national grid average (EEA) or a residual mix (AIB). Which factor to use is
// the operator's choice, so it is configuration, never a built-in default.
type Factor struct {
	Zone      string             `json:"zone,omitempty"`
	Intensity quantity.Intensity `json:"-"`
	Source    string             `json:"source"`
	Year      int                `json:"year,omitempty"`
}

// Overhead scales IT energy to facility energy with a measured PUE, for a
// site whose selection only meters IT.
type Overhead struct {
	PUE float64 `json:"pue"`
	// Basis says which PUE it is, e.g. "measured annual PUE 2025 (category 1)".
	Basis string `json:"basis"`
}

// Point is one bucket (an hour, or less) of a result.
type Point struct {
	T      time.Time
	Energy quantity.Energy
	// Intensity is the factor applied; meaningless when IntensityKnown is false.
	Intensity      quantity.Intensity
	IntensityKnown bool
	Emissions      quantity.CO2e
	// Fallback is true when Intensity is the configured annual fallback factor.
	Fallback bool
	// Completeness is the bucket's energy completeness, zero where its intensity is missing.
	Completeness float64
}

// Result is a Scope 2 figure of one site over [From, To), with its hourly series.
type Result struct {
	Site      string
	From, To  time.Time
	Method    Method
	Energy    quantity.Energy
	Emissions quantity.CO2e
	// Completeness is the time-weighted share of the period with both energy
	// data and (location-based) an hourly intensity, 0 to 1.
	Completeness float64
	Series       []Point
	// MissingIntensity lists the start of every bucket that had no hourly
	// intensity (location-based). Without a fallback their emissions are
	// not counted, and Completeness says so.
	MissingIntensity []time.Time
	// Fallback is the annual factor used for those buckets, if configured.
	Fallback *Factor
	// Overhead is the PUE applied to IT-only energy, if any.
	Overhead *Overhead
	// Signal is the intensity used, location-based.
	Signal string
	// Market-based details.
	Allocations []Allocation
	Residual    *Factor
	// ResidualEnergy is the consumption no instrument covered (market-based).
	ResidualEnergy quantity.Energy
	Warnings       []string
}

type jsonPoint struct {
	T         time.Time `json:"t"`
	EnergyKWh float64   `json:"energy_kwh"`
	Intensity *float64  `json:"intensity_g_per_kwh"`
	Emissions float64   `json:"emissions_kg"`
	Fallback  bool      `json:"fallback,omitempty"`
}

type jsonFactor struct {
	Zone      string  `json:"zone,omitempty"`
	Intensity float64 `json:"intensity_g_per_kwh"`
	Source    string  `json:"source"`
	Year      int     `json:"year,omitempty"`
}

type jsonAllocation struct {
	ID           string   `json:"id"`
	Type         string   `json:"type"`
	CertIDs      []string `json:"cert_ids,omitempty"`
	AvailableKWh float64  `json:"available_kwh"`
	AppliedKWh   float64  `json:"applied_kwh"`
	Intensity    float64  `json:"intensity_g_per_kwh"`
	EmissionsKg  float64  `json:"emissions_kg"`
}

type jsonResult struct {
	Site             string           `json:"site"`
	From             time.Time        `json:"from"`
	To               time.Time        `json:"to"`
	Method           Method           `json:"method"`
	EnergyKWh        float64          `json:"energy_kwh"`
	EmissionsKg      float64          `json:"emissions_kg"`
	Completeness     float64          `json:"completeness"`
	Series           []jsonPoint      `json:"series"`
	MissingIntensity []time.Time      `json:"missing_intensity,omitempty"`
	Fallback         *jsonFactor      `json:"fallback,omitempty"`
	Overhead         *Overhead        `json:"overhead,omitempty"`
	Allocations      []jsonAllocation `json:"allocations,omitempty"`
	Residual         *jsonFactor      `json:"residual_mix,omitempty"`
	ResidualKWh      *float64         `json:"residual_kwh,omitempty"`
	Warnings         []string         `json:"warnings,omitempty"`
}

func factorJSON(f *Factor) *jsonFactor {
	if f == nil {
		return nil
	}
	return &jsonFactor{Zone: f.Zone, Intensity: f.Intensity.GramsPerKWh(), Source: f.Source, Year: f.Year}
}

// MarshalJSON writes the API shape {"site","from","to","method",
// "energy_kwh","emissions_kg","completeness","series":[{"t","energy_kwh",
// "intensity_g_per_kwh","emissions_kg"}]}, plus missing_intensity,
// fallback, overhead, allocations, residual_mix, residual_kwh and warnings
// when they apply. A missing intensity is null.
func (r *Result) MarshalJSON() ([]byte, error) {
	j := jsonResult{Site: r.Site, From: r.From, To: r.To, Method: r.Method, EnergyKWh: r.Energy.KWh(),
		EmissionsKg: r.Emissions.Kg(), Completeness: r.Completeness, Series: make([]jsonPoint, len(r.Series)),
		MissingIntensity: r.MissingIntensity, Fallback: factorJSON(r.Fallback), Overhead: r.Overhead,
		Residual: factorJSON(r.Residual), Warnings: r.Warnings}
	for i, p := range r.Series {
		jp := jsonPoint{T: p.T, EnergyKWh: p.Energy.KWh(), Emissions: p.Emissions.Kg(), Fallback: p.Fallback}
		if p.IntensityKnown {
			v := p.Intensity.GramsPerKWh()
			jp.Intensity = &v
		}
		j.Series[i] = jp
	}
	for _, a := range r.Allocations {
		j.Allocations = append(j.Allocations, jsonAllocation{ID: a.Instrument.ID, Type: string(a.Instrument.Type), CertIDs: a.Instrument.CertIDs,
			AvailableKWh: a.Available.KWh(), AppliedKWh: a.Applied.KWh(), Intensity: a.Instrument.Factor.GramsPerKWh(), EmissionsKg: a.Emissions.Kg()})
	}
	if r.Method == MarketBased {
		v := r.ResidualEnergy.KWh()
		j.ResidualKWh = &v
	}
	return json.Marshal(j)
}

// LocationInput is what LocationBased needs.
type LocationInput struct {
	Site string
	// Zone is the site's grid zone; when set, it must match Intensity.Zone (if that is set).
	Zone string
	// Energy is the site's energy in buckets of one hour or less, each inside one UTC hour.
	Energy *energy.Result
	// Intensity is the hourly carbon intensity of the site's grid zone.
	Intensity *carbon.Series
	Signal    Signal
	// Fallback, when set, is used for hours without an hourly intensity; such
	// hours are listed and flagged, and still lower Completeness.
	Fallback *Factor
	// Overhead, when set, scales the energy (IT-only) by a PUE.
	Overhead *Overhead
}

// ErrNotHourly is returned for energy buckets longer than an hour or across an hour boundary.
var ErrNotHourly = errors.New("energy buckets must lie within single hours")

// Location computes location-based Scope 2 emissions: the sum over the
// buckets of their energy times the grid intensity of their hour.
func Location(in LocationInput) (*Result, error) {
	if in.Energy == nil {
		return nil, errors.New("location-based emissions: no energy")
	}
	if in.Intensity == nil {
		return nil, fmt.Errorf("location-based emissions of site %q: no intensity series", in.Site)
	}
	if in.Zone != "" && in.Intensity.Zone != "" && !strings.EqualFold(in.Zone, in.Intensity.Zone) {
		return nil, fmt.Errorf("location-based emissions of site %q in zone %q: intensity series is for zone %q", in.Site, in.Zone, in.Intensity.Zone)
	}
	scale, err := overheadScale(in.Overhead)
	if err != nil {
		return nil, err
	}
	if f := in.Fallback; f != nil && (f.Intensity < 0 || math.IsNaN(float64(f.Intensity))) {
		return nil, fmt.Errorf("fallback factor %v from %q: must not be negative", f.Intensity, f.Source)
	}
	r := &Result{Site: in.Site, From: in.Energy.From, To: in.Energy.To, Method: LocationBased, Overhead: in.Overhead,
		Signal: in.Signal.String(), Series: make([]Point, len(in.Energy.Buckets))}
	var weighted, span float64
	for i, b := range in.Energy.Buckets {
		if err := checkHourly(b); err != nil {
			return nil, err
		}
		p := Point{T: b.Start, Energy: b.Energy * quantity.Energy(scale), Completeness: b.Completeness}
		if cp, ok := in.Intensity.At(b.Start); ok {
			p.Intensity, p.IntensityKnown = quantity.Intensity(cp.LCA), true
			if in.Signal == Direct {
				p.Intensity = quantity.Intensity(cp.Direct)
			}
		} else {
			r.MissingIntensity = append(r.MissingIntensity, b.Start)
			p.Completeness = 0
			if in.Fallback != nil {
				p.Intensity, p.IntensityKnown, p.Fallback = in.Fallback.Intensity, true, true
				r.Fallback = in.Fallback
			}
		}
		if p.IntensityKnown {
			p.Emissions = p.Energy.Emissions(p.Intensity)
		}
		r.Energy += p.Energy
		r.Emissions += p.Emissions
		d := b.End.Sub(b.Start).Seconds()
		weighted += p.Completeness * d
		span += d
		r.Series[i] = p
	}
	if span > 0 {
		r.Completeness = weighted / span
	}
	if n := len(r.MissingIntensity); n > 0 {
		msg := fmt.Sprintf("%d buckets without hourly intensity for zone %q; their emissions are not counted", n, in.Intensity.Zone)
		if in.Fallback != nil {
			msg = fmt.Sprintf("%d buckets without hourly intensity for zone %q use the fallback factor %s (%s)", n, in.Intensity.Zone, in.Fallback.Intensity, in.Fallback.Source)
		}
		r.Warnings = append(r.Warnings, msg)
	}
	return r, nil
}

func overheadScale(o *Overhead) (float64, error) {
	if o == nil {
		return 1, nil
	}
	if !(o.PUE >= 1) || math.IsInf(o.PUE, 0) {
		return 0, fmt.Errorf("overhead PUE %v (%s): want a finite value of at least 1", o.PUE, o.Basis)
	}
	return o.PUE, nil
}

func checkHourly(b energy.Bucket) error {
	h := b.Start.UTC().Truncate(time.Hour)
	if b.End.After(h.Add(time.Hour)) {
		return fmt.Errorf("%w: bucket [%s, %s)", ErrNotHourly, b.Start.Format(time.RFC3339), b.End.Format(time.RFC3339))
	}
	return nil
}
