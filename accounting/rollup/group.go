package rollup

import (
	"context"
	"fmt"
	"sort"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/sample"
)

// Group sums. Besides each series' roll-ups, the job stores per hour the sum
// over the series of one tenant, raw metric, site and component (the
// labels of a site's canonical meter selectors), so that a site's energy
// for a year reads 8,760 points per meter instead of 8,760 per series:
//
//	greenloop_energy_hourly_group_joules{site="fra1",component="it",source_metric="greenloop_energy_joules_total",rollup="group"}
//	greenloop_energy_hourly_group_covered_ratio{...}   the sum of the series' completeness (covered series-hours), always written
//	greenloop_energy_hourly_group_estimated_joules{...} only when not 0
//
// Versions work as for the series' roll-ups (one timestamp per
// computation, the greatest in the hour current). Every series of an hour
// is computed in one batch, so a group's sum is complete whenever it is
// written. A selector whose matchers name no label but the metric, site,
// component and tenant is answered from the group sums (Compute).
const (
	GroupEnergyMetric    = "greenloop_energy_hourly_group_joules"
	GroupCoveredMetric   = "greenloop_energy_hourly_group_covered_ratio"
	GroupEstimatedMetric = "greenloop_energy_hourly_group_estimated_joules"
	// GroupLabel marks the group sums (rollup="group"), so that they never
	// share labels with a series' roll-ups.
	GroupLabel = "rollup"
	groupValue = "group"
)

// groupBy are the labels a group keeps, with the tenant and source_metric.
var groupBy = []string{"site", "component"}

// groupAcc sums the figures of one group's series over a batch's hours.
type groupAcc struct {
	tenant string
	// metric, site and component name the group with tenant (GroupRow).
	metric, site, component string
	// members are the seriesKey of the series summed (GroupJob only).
	members []uint64
	base    []sample.Label // sorted, without name and tenant
	key     string         // as readStored keys stored series
	e, c    []float64      // energy, covered (sum of completeness) per hour
	est     []float64
}

// groups collects group sums by key.
type groups map[string]*groupAcc

// add adds one series' hourly figures (n hours) to its group, and returns the group.
func (g groups) add(ls map[string]string, m string, n int, e, c, est func(i int) float64) *groupAcc {
	b := labels.NewScratchBuilder(len(groupBy) + 3)
	tenant := ls[ingest.TenantLabel]
	for _, k := range groupBy {
		if v := ls[k]; v != "" {
			b.Add(k, v)
		}
	}
	b.Add(SourceMetricLabel, m)
	b.Add(GroupLabel, groupValue)
	if tenant != "" {
		b.Add(ingest.TenantLabel, tenant)
	}
	b.Sort()
	full := b.Labels()
	key := full.String()
	acc := g[key]
	if acc == nil {
		acc = &groupAcc{tenant: tenant, metric: m, site: ls["site"], component: ls["component"], key: key,
			e: make([]float64, n), c: make([]float64, n), est: make([]float64, n)}
		full.Range(func(l labels.Label) {
			if l.Name != ingest.TenantLabel {
				acc.base = append(acc.base, sample.Label{Name: l.Name, Value: l.Value})
			}
		})
		g[key] = acc
	}
	for i := range n {
		acc.e[i] += e(i)
		acc.c[i] += c(i)
		acc.est[i] += est(i)
	}
	return acc
}

// sorted returns the groups in key order (writes are then deterministic).
func (g groups) sorted() []*groupAcc {
	out := make([]*groupAcc, 0, len(g))
	for _, a := range g {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// appendGroupVersions appends the group series holding the given points.
func appendGroupVersions(out []sample.Series, base []sample.Label, pe, pc, pest []sample.Point) []sample.Series {
	for _, x := range []struct {
		name string
		p    []sample.Point
	}{{GroupEnergyMetric, pe}, {GroupCoveredMetric, pc}, {GroupEstimatedMetric, pest}} {
		if len(x.p) > 0 {
			out = append(out, sample.Series{Labels: withName(base, x.name), Points: x.p})
		}
	}
	return out
}

// groupMatchers returns the matchers of the group sums answering a
// selector's roll-up matchers (ms, source_metric in place of the name), or
// false when the selector names another label.
func groupMatchers(ms []*labels.Matcher) ([]*labels.Matcher, bool) {
	out := make([]*labels.Matcher, 0, len(ms)+1)
	for _, m := range ms {
		switch m.Name {
		case SourceMetricLabel, ingest.TenantLabel, "site", "component":
		default:
			return nil, false
		}
		out = append(out, m)
	}
	return append(out, labels.MustNewMatcher(labels.MatchEqual, GroupLabel, groupValue)), true
}

// readGroups adds the current group sums of the hours [h0, h1) that lie
// within one bucket and marks them done; it says whether any group had a
// point. Hours without a group sum are left to the series' roll-ups.
func (a *acc) readGroups(ctx context.Context, src storage.Queryable, gms []*labels.Matcher, h0, h1 int64, bucketOf []int32, done []bool) (bool, error) {
	qr, err := src.Querier(h0, h1-1)
	if err != nil {
		return false, fmt.Errorf("open querier: %w", err)
	}
	defer qr.Close()
	hints := &storage.SelectHints{Start: h0, End: h1 - 1}
	type point struct {
		t int64
		v float64
	}
	// Per group: the current version of each hour, and its covered and estimated points by timestamp.
	type grp struct {
		e        []point // by hour; t 0: none
		cov, est map[int64]float64
	}
	nh := len(bucketOf)
	gs := map[uint64]*grp{}
	var hb []byte
	var it chunkenc.Iterator
	set := qr.Select(ctx, false, hints, append(gms[:len(gms):len(gms)],
		labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, GroupEnergyMetric+"|"+GroupCoveredMetric+"|"+GroupEstimatedMetric))...)
	for set.Next() {
		s := set.At()
		ls := s.Labels()
		var key uint64
		key, hb = ls.HashWithoutLabels(hb, model.MetricNameLabel)
		g := gs[key]
		if g == nil {
			g = &grp{e: make([]point, nh), cov: map[int64]float64{}, est: map[int64]float64{}}
			gs[key] = g
		}
		name := ls.Get(model.MetricNameLabel)
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			t, v := it.At()
			if t < h0 || t >= h1 {
				continue
			}
			switch name {
			case GroupEnergyMetric:
				if i := (t - h0) / hourMs; t >= g.e[i].t {
					g.e[i] = point{t, v}
				}
			case GroupCoveredMetric:
				g.cov[t] = v
			default:
				g.est[t] = v
			}
		}
		if err := it.Err(); err != nil {
			return false, fmt.Errorf("read %s: %w", ls, err)
		}
	}
	if err := set.Err(); err != nil {
		return false, fmt.Errorf("select group sums: %w", err)
	}
	// An hour is done when every group that has the hour... any group with a
	// point in an hour had all its series computed in that hour's batch;
	// groups without one had no series then.
	has := false
	for _, g := range gs {
		for i, p := range g.e {
			b := bucketOf[i]
			if p.t == 0 || b < 0 {
				continue
			}
			has = true
			done[i] = true
			a.energy[b] += p.v
			a.estimated[b] += g.est[p.t]
			a.covered[b] += g.cov[p.t] * float64(hourMs)
		}
	}
	return has, nil
}

// countSeries notes the series with roll-ups in [lo, hi) that ms match,
// reading the index only (no samples).
func (a *acc) countSeries(ctx context.Context, src storage.Queryable, ms []*labels.Matcher, lo, hi int64) error {
	qr, err := src.Querier(lo, hi-1)
	if err != nil {
		return fmt.Errorf("open querier: %w", err)
	}
	defer qr.Close()
	set := qr.Select(ctx, false, &storage.SelectHints{Start: lo, End: hi - 1, Func: "series"},
		append(ms[:len(ms):len(ms)], labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, EnergyMetric))...)
	var hb []byte
	for set.Next() {
		var key uint64
		key, hb = set.At().Labels().HashWithoutLabels(hb, model.MetricNameLabel)
		a.seen[key] = struct{}{}
	}
	if err := set.Err(); err != nil {
		return fmt.Errorf("select roll-up series: %w", err)
	}
	return nil
}
