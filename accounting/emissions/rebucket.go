package emissions

import (
	"fmt"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/quantity"
)

// Rebucket returns a copy of r with its series summed into coarser buckets
// (days in the site's time zone, months, ...), e.g. for a daily chart of an
// hourly computation. Each new point's intensity is its emissions over its
// energy (an energy-weighted mean); it is unknown only when no hour in it
// had one. Completeness is time-weighted. Totals are unchanged.
func Rebucket(r *Result, b energy.Bucketing) (*Result, error) {
	edges, err := b.Edges(r.From, r.To)
	if err != nil {
		return nil, fmt.Errorf("rebucket %s emissions of site %q: %w", r.Method, r.Site, err)
	}
	out := *r
	out.Series = make([]Point, len(edges)-1)
	weight := make([]float64, len(out.Series))
	span := make([]float64, len(out.Series))
	known := make([]quantity.Energy, len(out.Series))
	for i := range out.Series {
		out.Series[i].T = edges[i]
		span[i] = edges[i+1].Sub(edges[i]).Seconds()
	}
	k := 0
	for i, p := range r.Series {
		for k+1 < len(edges)-1 && !p.T.Before(edges[k+1]) {
			k++
		}
		// A point's length: up to the next point, or the end of the result.
		end := r.To
		if i+1 < len(r.Series) {
			end = r.Series[i+1].T
		}
		q := &out.Series[k]
		q.Energy += p.Energy
		q.Emissions += p.Emissions
		q.Fallback = q.Fallback || p.Fallback
		if p.IntensityKnown {
			q.IntensityKnown = true
			known[k] += p.Energy
		}
		weight[k] += p.Completeness * end.Sub(p.T).Seconds()
	}
	for i := range out.Series {
		q := &out.Series[i]
		if span[i] > 0 {
			q.Completeness = weight[i] / span[i]
		}
		if q.IntensityKnown {
			q.Intensity = q.Emissions.Per(known[i])
		}
	}
	return &out, nil
}
