package rollup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/quantity"
)

// Reading is what a store that aggregates samples per hour itself (the
// ClickHouse backend's hourly rollup table) keeps of one raw series in one
// UTC hour: the samples with Start < t ≤ Start+1h, NaN left out.
type Reading struct {
	// Start is the hour's start in Unix ms.
	Start int64
	// LastT is the time of the hour's last sample in Unix ms.
	LastT int64
	// First and Last are the values of the hour's first and last samples,
	// Max the greatest, Sum the sum of all of them.
	First, Last, Max, Sum float64
	// Count is the number of samples (distinct timestamps).
	Count int
}

// ReadingSeries is the readings of one raw series, oldest hour first.
type ReadingSeries struct {
	// Labels are the raw series' labels, the metric name under "__name__".
	Labels map[string]string
	Hours  []Reading
}

// ReadingSource reads hourly readings. HourlyReadings returns the readings
// of the hours starting in [from, to) of the series selector (a PromQL
// series selector) matches; confining them to a tenant is the source's.
type ReadingSource interface {
	HourlyReadings(ctx context.Context, selector string, from, to time.Time) ([]ReadingSeries, error)
}

// ErrNotHourly is returned by ComputeReadings for a query whose range or
// buckets do not fall on whole UTC hours: read those from raw samples.
var ErrNotHourly = errors.New("query not on whole UTC hours")

// ComputeReadings answers q like energy.Compute, from hourly readings
// instead of raw samples. From, To and every bucket edge must be whole UTC
// hours (else ErrNotHourly).
//
// Hourly readings keep no time of an hour's first sample: it is placed
// (Count−1) nominal intervals before the last one, the nominal interval being
// q.Interval or, when zero, the median over the series' consecutive hours of
// (last sample − previous hour's last sample) / Count. The result then
// equals energy.Compute's, to rounding, for series sampled at a regular
// interval; where sampling is irregular, it differs as follows:
//   - the interval across an hour's start is split between the two hours as
//     if the first sample were where it is placed (totals over the range do
//     not change);
//   - a gap inside an hour is not seen: the hour counts as covered from its
//     first to its last sample, and a power gauge's energy over it is the
//     samples' mean times that span;
//   - a counter that drops more than once inside an hour counts its increase
//     as (Max − First) + Last, one reset.
//
// Gaps between hours (an interval longer than GapFactor nominal intervals),
// resets and wraps between readings, the range's ends and the lookback are
// treated as energy.Compute treats them.
func ComputeReadings(ctx context.Context, src ReadingSource, q energy.Query) (*energy.Result, error) {
	if len(q.Selectors) == 0 {
		return nil, errors.New("readings query: no selector")
	}
	edges, err := q.Buckets.Edges(q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("readings query buckets: %w", err)
	}
	for _, e := range edges {
		if e.UnixMilli()%hourMs != 0 {
			return nil, fmt.Errorf("%w: edge %s", ErrNotHourly, e.UTC().Format(time.RFC3339))
		}
	}
	gapFactor, lookback, maxGaps, err := q.Limits()
	if err != nil {
		return nil, fmt.Errorf("readings query: %w", err)
	}
	from, to := q.From.UnixMilli(), q.To.UnixMilli()
	lo, hi := from-lookback.Milliseconds(), to+lookback.Milliseconds()
	// Hours whose samples can lie in [lo, hi].
	hFrom, hTo := time.UnixMilli(floorHour(lo-1)), time.UnixMilli(floorHour(hi-1)+hourMs)
	for i, sel := range q.Selectors {
		ss, err := src.HourlyReadings(ctx, sel, hFrom, hTo)
		if err != nil {
			return nil, fmt.Errorf("selector %s: %w", sel, err)
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		a := &readAcc{edges: make([]int64, len(edges)), lo: lo, hi: hi, gapFactor: gapFactor, interval: q.Interval.Milliseconds(),
			wrapAt: q.WrapAt, maxGaps: maxGaps}
		for i, e := range edges {
			a.edges[i] = e.UnixMilli()
		}
		nb := len(edges) - 1
		a.amount, a.estimated, a.covered = make([]float64, nb), make([]float64, nb), make([]int64, nb)
		sortSeries(ss)
		for _, s := range ss {
			if err := a.series(s); err != nil {
				return nil, fmt.Errorf("selector %s: %w", sel, err)
			}
		}
		if a.nseries > 0 && (a.points > 0 || i == len(q.Selectors)-1) {
			return a.result(q, sel, edges), nil
		}
	}
	return nil, fmt.Errorf("%w: %s", energy.ErrNoSeries, strings.Join(q.Selectors, ", "))
}

// readAcc spreads the amounts of a selector's readings over the buckets.
type readAcc struct {
	edges              []int64
	lo, hi             int64 // samples outside are not read (the lookback's reach)
	gapFactor          float64
	interval           int64
	wrapAt             float64
	maxGaps            int
	amount, estimated  []float64
	covered            []int64
	nseries, points    int
	gaps               []energy.Gap
	gapsOmitted        int
	resets, wraps      int
	m                  energy.Metric
	name               string
	maxGap             int64
	have               bool
	t0, first          int64
	v0                 float64
	intervalsScratched []float64
}

// sortSeries orders series by their labels, as a raw read visits them.
func sortSeries(ss []ReadingSeries) {
	keys := make(map[*ReadingSeries]string, len(ss))
	for i := range ss {
		keys[&ss[i]] = energy.LabelString(ss[i].Labels)
	}
	ptrs := make([]*ReadingSeries, len(ss))
	for i := range ss {
		ptrs[i] = &ss[i]
	}
	sort.Slice(ptrs, func(i, j int) bool { return keys[ptrs[i]] < keys[ptrs[j]] })
	out := make([]ReadingSeries, len(ss))
	for i, p := range ptrs {
		out[i] = *p
	}
	copy(ss, out)
}

// nominal returns the series' nominal sample interval in ms.
func (a *readAcc) nominal(hs []Reading) int64 {
	if a.interval > 0 {
		return a.interval
	}
	d := a.intervalsScratched[:0]
	for i := 1; i < len(hs); i++ {
		if hs[i].Start-hs[i-1].Start == hourMs && hs[i].Count > 0 {
			d = append(d, float64(hs[i].LastT-hs[i-1].LastT)/float64(hs[i].Count))
		}
	}
	a.intervalsScratched = d
	if len(d) == 0 {
		for _, h := range hs {
			if h.Count > 1 {
				d = append(d, float64(h.LastT-h.Start)/float64(h.Count))
			}
		}
	}
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	med := d[len(d)/2]
	if len(d)%2 == 0 {
		med = (d[len(d)/2-1] + d[len(d)/2]) / 2
	}
	return max(int64(med+0.5), 1)
}

func (a *readAcc) series(s ReadingSeries) error {
	name := s.Labels["__name__"]
	m, err := energy.ClassifyMetric(name)
	if err != nil {
		return fmt.Errorf("series %s: %w", energy.LabelString(s.Labels), err)
	}
	if m.Dimension != energy.DimEnergy {
		return fmt.Errorf("series %s measures %s, want %s", energy.LabelString(s.Labels), m.Dimension, energy.DimEnergy)
	}
	a.m, a.name, a.have = m, energy.LabelString(s.Labels), false
	points := a.points
	nom := a.nominal(s.Hours)
	a.maxGap = int64(1<<62 - 1)
	if nom > 0 {
		a.maxGap = max(int64(a.gapFactor*float64(nom)), 1)
	}
	for _, h := range s.Hours {
		if h.Count <= 0 {
			continue
		}
		ft := h.LastT - int64(h.Count-1)*nom
		if h.Count == 1 || ft <= h.Start {
			ft = min(h.Start+1, h.LastT)
			if h.Count == 1 {
				ft = h.LastT
			}
		}
		// The first sample, then the rest of the hour as one stretch.
		if ft >= a.lo && ft <= a.hi {
			a.points++
			a.step(ft, h.First)
		}
		if h.Count == 1 || h.LastT < a.lo || h.LastT > a.hi {
			continue
		}
		if !a.have { // the first sample lies before the lookback's reach
			a.have, a.t0, a.v0, a.first = true, h.LastT, h.Last, h.LastT
			a.points++
			continue
		}
		a.points++
		t0 := a.t0
		var amount float64
		switch a.m.Kind {
		case energy.Counter:
			// A counter that ends below its maximum dropped inside the hour
			// (once, as far as the reading tells): from its maximum.
			switch {
			case h.Last >= h.Max:
				amount = h.Last - h.First
			case a.wrapAt > 0:
				amount = h.Max - h.First + a.wrapAt - h.Max + h.Last
				a.wraps++
			default:
				amount = h.Max - h.First + h.Last
				a.resets++
			}
		case energy.Gauge:
			// Trapezoids over samples regularly spaced from t0 to LastT.
			step := float64(h.LastT-t0) / float64(h.Count-1)
			amount = step * (h.Sum - (h.First+h.Last)/2) / 1000 // per ms
		}
		a.spread(t0, h.LastT, amount*a.m.Scale, false)
		a.t0, a.v0 = h.LastT, h.Last
	}
	if a.points == points {
		return nil // no sample within the lookback's reach: a raw read would not see the series
	}
	a.nseries++
	a.end()
	return nil
}

// step takes the next sample, as energy's accumulator does.
func (a *readAcc) step(t int64, v float64) {
	if !a.have {
		a.have, a.t0, a.v0, a.first = true, t, v, t
		return
	}
	t0, v0 := a.t0, a.v0
	if t <= t0 {
		return
	}
	a.t0, a.v0 = t, v
	gap := t-t0 > a.maxGap
	switch a.m.Kind {
	case energy.Counter:
		d := v - v0
		if d < 0 {
			if a.wrapAt > 0 {
				d = a.wrapAt - v0 + v
				a.wraps++
			} else {
				d = v
				a.resets++
			}
		}
		a.spread(t0, t, d*a.m.Scale, gap)
		if gap {
			a.addGap(t0, t, true)
		}
	case energy.Gauge:
		if gap {
			a.addGap(t0, t, false)
			return
		}
		a.trapezoid(t0, v0, t, v)
	}
}

// spread adds amount, spent evenly over [t0, t1], to the buckets it overlaps.
func (a *readAcc) spread(t0, t1 int64, amount float64, estimated bool) {
	e := a.edges
	lo, hi := max(t0, e[0]), min(t1, e[len(e)-1])
	if lo >= hi {
		return
	}
	span := float64(t1 - t0)
	for b := a.bucketOf(lo); b < len(e)-1 && e[b] < hi; b++ {
		sl, sh := max(lo, e[b]), min(hi, e[b+1])
		part := amount
		if sl != t0 || sh != t1 {
			part = amount * float64(sh-sl) / span
		}
		a.amount[b] += part
		if estimated {
			a.estimated[b] += part
		} else {
			a.covered[b] += sh - sl
		}
	}
}

// trapezoid adds the integral of the rate, linear from v0 at t0 to v1 at t1.
func (a *readAcc) trapezoid(t0 int64, v0 float64, t1 int64, v1 float64) {
	e := a.edges
	lo, hi := max(t0, e[0]), min(t1, e[len(e)-1])
	if lo >= hi {
		return
	}
	scale := a.m.Scale / 1000
	slope := (v1 - v0) / float64(t1-t0)
	for b := a.bucketOf(lo); b < len(e)-1 && e[b] < hi; b++ {
		sl, sh := max(lo, e[b]), min(hi, e[b+1])
		pl, ph := v0+slope*float64(sl-t0), v0+slope*float64(sh-t0)
		a.amount[b] += (pl + ph) / 2 * float64(sh-sl) * scale
		a.covered[b] += sh - sl
	}
}

func (a *readAcc) bucketOf(t int64) int {
	return sort.Search(len(a.edges)-1, func(i int) bool { return a.edges[i+1] > t })
}

func (a *readAcc) addGap(t0, t1 int64, estimated bool) {
	e := a.edges
	lo, hi := max(t0, e[0]), min(t1, e[len(e)-1])
	if lo >= hi {
		return
	}
	if len(a.gaps) >= a.maxGaps {
		a.gapsOmitted++
		return
	}
	a.gaps = append(a.gaps, energy.Gap{Series: a.name, Start: time.UnixMilli(lo).UTC(), End: time.UnixMilli(hi).UTC(), Estimated: estimated})
}

// end closes the series: gaps before its first and after its last sample.
func (a *readAcc) end() {
	e := a.edges
	from, to := e[0], e[len(e)-1]
	if !a.have || a.t0 == a.first {
		a.addGap(from, to, false)
		return
	}
	if a.first-from > a.maxGap {
		a.addGap(from, a.first, false)
	}
	if to-a.t0 > a.maxGap {
		a.addGap(a.t0, to, false)
	}
}

func (a *readAcc) result(q energy.Query, sel string, edges []time.Time) *energy.Result {
	r := &energy.Result{From: q.From, To: q.To, Selector: sel, Series: a.nseries, Gaps: a.gaps, GapsOmitted: a.gapsOmitted,
		Resets: a.resets, Wraps: a.wraps, Buckets: make([]energy.Bucket, len(a.amount))}
	var covered int64
	for i := range r.Buckets {
		b := &r.Buckets[i]
		b.Start, b.End = edges[i], edges[i+1]
		b.Energy, b.Estimated = quantity.Energy(a.amount[i]), quantity.Energy(a.estimated[i])
		if span := a.edges[i+1] - a.edges[i]; span > 0 {
			b.Completeness = float64(a.covered[i]) / (float64(span) * float64(a.nseries))
		}
		r.Total += b.Energy
		r.Estimated += b.Estimated
		covered += a.covered[i]
	}
	if span := a.edges[len(a.edges)-1] - a.edges[0]; span > 0 {
		r.Completeness = float64(covered) / (float64(span) * float64(a.nseries))
	}
	return r
}
