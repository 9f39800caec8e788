package emissions

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/quantity"
)

// Supply is the contracted carbon-free energy delivered in one hour (PPA
// meter data, EnergyTag granular certificates).
type Supply struct {
	// T is any instant in the hour (UTC); supplies of the same hour add up.
	T      time.Time
	Energy quantity.Energy
}

// MatchInput is what Match needs.
type MatchInput struct {
	// Load is the site's consumption in buckets of one hour or less.
	Load *energy.Result
	// Supply is the hourly carbon-free supply contracted for the site.
	Supply []Supply
	// GridCFE, when set, is the carbon-free share (0 to 1) of the grid mix
	// of an hour, for the grid-inclusive score; ok false where unknown.
	GridCFE func(hour time.Time) (share float64, ok bool)
	// Intensity, when set, prices the unmatched load of each hour
	// (hourly residual or grid factor) for hourly market-based emissions.
	Intensity *carbon.Series
	Signal    Signal
}

// MatchResult is the 24/7 carbon-free energy score of a period.
type MatchResult struct {
	Load, Supply, Matched quantity.Energy
	// Hourly is Σ_h min(L_h, G_h) / Σ_h L_h: surplus in one hour never carries to another.
	Hourly float64
	// Annual is min(ΣG, ΣL) / ΣL, the annual-volume matching score, for comparison.
	Annual float64
	// GridInclusive adds each hour's unmatched load times the grid's
	// carbon-free share (only when GridCFE is set; hours it does not know add nothing).
	GridInclusive *float64
	// Emissions is Σ_h max(0, L_h − G_h) × EF_h, when Intensity is set.
	Emissions *quantity.CO2e
	// MissingIntensity lists hours with unmatched load and no intensity;
	// MissingGridCFE hours with unmatched load and no grid CFE share.
	MissingIntensity, MissingGridCFE []time.Time
}

// Match computes hourly matching of load with carbon-free supply (24/7 CFE).
func Match(in MatchInput) (*MatchResult, error) {
	if in.Load == nil {
		return nil, errors.New("hourly matching: no load")
	}
	type hour struct {
		t    time.Time
		load quantity.Energy
	}
	var hours []hour
	for _, b := range in.Load.Buckets {
		if err := checkHourly(b); err != nil {
			return nil, err
		}
		h := b.Start.UTC().Truncate(time.Hour)
		if n := len(hours); n > 0 && hours[n-1].t.Equal(h) {
			hours[n-1].load += b.Energy
		} else {
			hours = append(hours, hour{t: h, load: b.Energy})
		}
	}
	supply := make(map[int64]quantity.Energy, len(in.Supply))
	for i, s := range in.Supply {
		if s.Energy < 0 {
			return nil, fmt.Errorf("supply[%d] at %s: negative energy", i, s.T.Format(time.RFC3339))
		}
		supply[s.T.UTC().Truncate(time.Hour).Unix()] += s.Energy
	}
	r := &MatchResult{}
	var gridCFE quantity.Energy
	var em quantity.CO2e
	for _, h := range hours {
		g := supply[h.t.Unix()]
		m := min(h.load, g)
		r.Load += h.load
		r.Matched += m
		unmatched := h.load - m
		if unmatched <= 0 {
			continue
		}
		if in.GridCFE != nil {
			if share, ok := in.GridCFE(h.t); ok {
				gridCFE += unmatched * quantity.Energy(share)
			} else {
				r.MissingGridCFE = append(r.MissingGridCFE, h.t)
			}
		}
		if in.Intensity != nil {
			if p, ok := in.Intensity.At(h.t); ok {
				f := p.LCA
				if in.Signal == Direct {
					f = p.Direct
				}
				em += unmatched.Emissions(quantity.Intensity(f))
			} else {
				r.MissingIntensity = append(r.MissingIntensity, h.t)
			}
		}
	}
	// Supply outside the load's period does not count.
	if len(hours) > 0 {
		lo, hi := hours[0].t.Unix(), hours[len(hours)-1].t.Unix()
		for k, e := range supply {
			if k >= lo && k <= hi {
				r.Supply += e
			}
		}
	}
	if r.Load > 0 {
		r.Hourly = float64(r.Matched / r.Load)
		r.Annual = float64(min(r.Supply, r.Load) / r.Load)
		if in.GridCFE != nil {
			v := float64((r.Matched + gridCFE) / r.Load)
			r.GridInclusive = &v
		}
	}
	if in.Intensity != nil {
		r.Emissions = &em
	}
	return r, nil
}

// MarshalJSON writes {"load_kwh","supply_kwh","matched_kwh","hourly_cfe",
// "annual_cfe"} plus "grid_inclusive_cfe", "emissions_kg",
// "missing_intensity" and "missing_grid_cfe" when they apply.
func (r *MatchResult) MarshalJSON() ([]byte, error) {
	var kg *float64
	if r.Emissions != nil {
		v := r.Emissions.Kg()
		kg = &v
	}
	return json.Marshal(struct {
		LoadKWh          float64     `json:"load_kwh"`
		SupplyKWh        float64     `json:"supply_kwh"`
		MatchedKWh       float64     `json:"matched_kwh"`
		Hourly           float64     `json:"hourly_cfe"`
		Annual           float64     `json:"annual_cfe"`
		GridInclusive    *float64    `json:"grid_inclusive_cfe,omitempty"`
		EmissionsKg      *float64    `json:"emissions_kg,omitempty"`
		MissingIntensity []time.Time `json:"missing_intensity,omitempty"`
		MissingGridCFE   []time.Time `json:"missing_grid_cfe,omitempty"`
	}{r.Load.KWh(), r.Supply.KWh(), r.Matched.KWh(), r.Hourly, r.Annual, r.GridInclusive, kg, r.MissingIntensity, r.MissingGridCFE})
}
