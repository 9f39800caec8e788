package providers

import (
	"cmp"
	"slices"

	"github.com/greenloop/greenloop/internal/sample"
)

// MetricName is the canonical series grid carbon intensity is stored under.
const MetricName = "greenloop_grid_carbon_intensity_grams_per_kwh"

// Series groups points into the canonical series, one per (zone, signal,
// kind), labelled __name__, zone, provider, signal, kind plus extra (e.g.
// tenant). Series come sorted by zone, signal and kind; samples by time, one
// per timestamp (the last point given wins).
func Series(provider string, pts []Point, extra ...sample.Label) []sample.Series {
	type key struct {
		zone   string
		signal Signal
		kind   Kind
	}
	groups := map[key][]Point{}
	for _, p := range pts {
		k := key{p.Zone, p.Signal, p.Kind}
		groups[k] = append(groups[k], p)
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(cmp.Compare(a.zone, b.zone), cmp.Compare(a.signal, b.signal), cmp.Compare(a.kind, b.kind))
	})
	out := make([]sample.Series, 0, len(keys))
	for _, k := range keys {
		g := groups[k]
		sortPoints(g)
		labels := append([]sample.Label{
			{Name: "__name__", Value: MetricName},
			{Name: "zone", Value: k.zone},
			{Name: "provider", Value: provider},
			{Name: "signal", Value: string(k.signal)},
			{Name: "kind", Value: string(k.kind)},
		}, extra...)
		s := sample.Series{Labels: labels, Points: make([]sample.Point, 0, len(g))}
		for _, p := range g {
			sp := sample.Point{T: p.Time.UnixMilli(), V: p.Intensity.GramsPerKWh()}
			if n := len(s.Points); n > 0 && s.Points[n-1].T == sp.T {
				s.Points[n-1] = sp
				continue
			}
			s.Points = append(s.Points, sp)
		}
		out = append(out, s)
	}
	return out
}
