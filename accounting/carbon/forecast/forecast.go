// Package forecast serves the latest grid carbon-intensity forecasts, held in
// memory, as the series greenloop_grid_carbon_intensity_grams_per_kwh{zone,
// provider,signal,kind="forecast"} through storage.Queryable, so that the
// query API can merge them with the store. Forecast points lie ahead of the
// server's clock, which the store refuses (they would move its head into the
// future): this overlay is how a client, such as a Grafana panel whose range
// reaches into the future, sees them.
package forecast

import (
	"cmp"
	"context"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
)

// TenantLabel is the label naming a series' tenant, as the store's writer
// stamps it (ingest.TenantLabel; not imported, to keep this package below ingest).
const TenantLabel = "tenant"

// Key names one forecast series.
type Key struct {
	// Tenant is the tenant whose view holds the series; empty in
	// single-tenant mode (no tenant label).
	Tenant   string
	Zone     string
	Provider string
	Signal   providers.Signal
}

// Options configure an Overlay.
type Options struct {
	// History is how long a point stays served after its time (until the
	// carbon-intensity service has archived it in the store); Horizon how far
	// ahead of now points are served. Points outside [now-History,
	// now+Horizon] are dropped by Set and skipped by reads. Zero: 1 hour and
	// 72 hours.
	History, Horizon time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Overlay holds the latest forecast of each Key. It is safe for concurrent
// use; it implements storage.Queryable and prometheus.Collector
// (greenloop_carbon_forecast_points, greenloop_carbon_forecast_updated_timestamp_seconds).
type Overlay struct {
	o Options

	mu     sync.RWMutex
	series map[Key]*series
}

var (
	_ storage.Queryable    = (*Overlay)(nil)
	_ prometheus.Collector = (*Overlay)(nil)
)

// series is one key's forecast. It is never changed once built: Set
// replaces it, so readers share it without copying.
type series struct {
	key     Key
	lset    labels.Labels
	pts     []point // sorted by time, one per timestamp
	updated time.Time
}

type point struct {
	t int64 // ms
	v float64
}

// New returns an empty overlay.
func New(o Options) *Overlay {
	if o.History <= 0 {
		o.History = time.Hour
	}
	if o.Horizon <= 0 {
		o.Horizon = 72 * time.Hour
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Overlay{o: o, series: map[Key]*series{}}
}

// Labels are the labels of k's series, sorted: exactly those the store holds
// for the same forecast archived through the tenant's writer.
func Labels(k Key) labels.Labels {
	b := labels.NewScratchBuilder(6)
	b.Add(model.MetricNameLabel, providers.MetricName)
	b.Add("zone", k.Zone)
	b.Add("provider", k.Provider)
	b.Add("signal", string(k.Signal))
	b.Add("kind", string(providers.Forecast))
	if k.Tenant != "" {
		b.Add(TenantLabel, k.Tenant)
	}
	b.Sort()
	return b.Labels()
}

// window is the range of timestamps (ms) served at now.
func (o *Overlay) window(now time.Time) (mint, maxt int64) {
	return now.Add(-o.o.History).UnixMilli(), now.Add(o.o.Horizon).UnixMilli()
}

// Set replaces k's forecast with pts (their Zone, Signal and Kind are
// ignored: k names the series). Points outside the served window are
// dropped; of several points at one timestamp the last wins. No point left
// removes k.
func (o *Overlay) Set(k Key, pts []providers.Point) {
	now := o.o.Now()
	mint, maxt := o.window(now)
	ps := make([]point, 0, len(pts))
	for _, p := range pts {
		t := p.Time.UnixMilli()
		if t < mint || t > maxt {
			continue
		}
		ps = append(ps, point{t: t, v: p.Intensity.GramsPerKWh()})
	}
	// Stable, so that the last of equal timestamps stays last.
	slices.SortStableFunc(ps, func(a, b point) int { return cmp.Compare(a.t, b.t) })
	out := ps[:0]
	for _, p := range ps {
		if n := len(out); n > 0 && out[n-1].t == p.t {
			out[n-1] = p
			continue
		}
		out = append(out, p)
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(out) == 0 {
		delete(o.series, k)
		return
	}
	o.series[k] = &series{key: k, lset: Labels(k), pts: slices.Clip(out), updated: now}
}

// Points returns k's forecast points within the served window, in time order.
func (o *Overlay) Points(k Key) []providers.Point {
	o.mu.RLock()
	s := o.series[k]
	o.mu.RUnlock()
	if s == nil {
		return nil
	}
	mint, maxt := o.window(o.o.Now())
	var out []providers.Point
	for _, p := range s.pts {
		if p.t >= mint && p.t <= maxt {
			out = append(out, providers.Point{Zone: k.Zone, Time: time.UnixMilli(p.t).UTC(), Intensity: carbon.Intensity(p.v),
				Kind: providers.Forecast, Signal: k.Signal})
		}
	}
	return out
}

// Querier returns a reader of the forecasts as they are now, over [mint,
// maxt] ms, further bounded by the served window.
func (o *Overlay) Querier(mint, maxt int64) (storage.Querier, error) {
	wmin, wmax := o.window(o.o.Now())
	q := &querier{mint: max(mint, wmin), maxt: min(maxt, wmax)}
	o.mu.RLock()
	q.series = make([]*series, 0, len(o.series))
	for _, s := range o.series {
		q.series = append(q.series, s)
	}
	o.mu.RUnlock()
	slices.SortFunc(q.series, func(a, b *series) int { return labels.Compare(a.lset, b.lset) })
	return q, nil
}

var (
	pointsDesc = prometheus.NewDesc("greenloop_carbon_forecast_points",
		"Points of the latest carbon-intensity forecast served for reads (ahead of now, and up to the overlay's history behind), by provider, zone and signal.",
		[]string{"provider", "zone", "signal"}, nil)
	updatedDesc = prometheus.NewDesc("greenloop_carbon_forecast_updated_timestamp_seconds",
		"When the carbon-intensity forecast served for reads was last replaced, by provider, zone and signal.",
		[]string{"provider", "zone", "signal"}, nil)
)

// Describe implements prometheus.Collector.
func (o *Overlay) Describe(ch chan<- *prometheus.Desc) {
	ch <- pointsDesc
	ch <- updatedDesc
}

// Collect implements prometheus.Collector. Every tenant holds its own copy
// of a zone's forecast: the copies are counted once.
func (o *Overlay) Collect(ch chan<- prometheus.Metric) {
	type key struct {
		provider, zone string
		signal         providers.Signal
	}
	type agg struct {
		points  int
		updated time.Time
	}
	mint, maxt := o.window(o.o.Now())
	byKey := map[key]agg{}
	o.mu.RLock()
	for k, s := range o.series {
		n := 0
		for _, p := range s.pts {
			if p.t >= mint && p.t <= maxt {
				n++
			}
		}
		kk := key{k.Provider, k.Zone, k.Signal}
		a := byKey[kk]
		a.points = max(a.points, n)
		if s.updated.After(a.updated) {
			a.updated = s.updated
		}
		byKey[kk] = a
	}
	o.mu.RUnlock()
	for k, a := range byKey {
		ch <- prometheus.MustNewConstMetric(pointsDesc, prometheus.GaugeValue, float64(a.points), k.provider, k.zone, string(k.signal))
		ch <- prometheus.MustNewConstMetric(updatedDesc, prometheus.GaugeValue, float64(a.updated.UnixMilli())/1e3, k.provider, k.zone, string(k.signal))
	}
}

// querier reads a snapshot of the overlay's series.
type querier struct {
	mint, maxt int64
	series     []*series // sorted by labels
}

// matching returns the series matching ms with at least one point in
// [mint, maxt], in label order, with those points.
func (q *querier) matching(mint, maxt int64, ms []*labels.Matcher) []storage.Series {
	var out []storage.Series
	for _, s := range q.series {
		if !matches(s.lset, ms) {
			continue
		}
		lo := sort.Search(len(s.pts), func(i int) bool { return s.pts[i].t >= mint })
		hi := sort.Search(len(s.pts), func(i int) bool { return s.pts[i].t > maxt })
		if lo >= hi {
			continue
		}
		out = append(out, &listSeries{lset: s.lset, pts: s.pts[lo:hi:hi]})
	}
	return out
}

func matches(lset labels.Labels, ms []*labels.Matcher) bool {
	for _, m := range ms {
		if !m.Matches(lset.Get(m.Name)) {
			return false
		}
	}
	return true
}

// Select returns the matching series, always sorted by labels, with their
// points within the querier's range and the hints' [Start, End].
func (q *querier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	if err := ctx.Err(); err != nil {
		return storage.ErrSeriesSet(err)
	}
	mint, maxt := q.mint, q.maxt
	limit := 0
	if hints != nil {
		mint, maxt, limit = max(mint, hints.Start), min(maxt, hints.End), hints.Limit
	}
	if mint > maxt {
		return storage.EmptySeriesSet()
	}
	out := q.matching(mint, maxt, ms)
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return &seriesSet{series: out, i: -1}
}

// LabelValues returns the sorted values of name among the matching series
// with points in the querier's range.
func (q *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var out []string
	for _, s := range q.matching(q.mint, q.maxt, ms) {
		if v := s.Labels().Get(name); v != "" {
			out = append(out, v)
		}
	}
	return limited(out, hints), nil, nil
}

// LabelNames returns the sorted label names of the matching series with
// points in the querier's range.
func (q *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	var out []string
	for _, s := range q.matching(q.mint, q.maxt, ms) {
		s.Labels().Range(func(l labels.Label) { out = append(out, l.Name) })
	}
	return limited(out, hints), nil, nil
}

func limited(ss []string, hints *storage.LabelHints) []string {
	slices.Sort(ss)
	ss = slices.Compact(ss)
	if hints != nil && hints.Limit > 0 && len(ss) > hints.Limit {
		ss = ss[:hints.Limit]
	}
	return ss
}

func (q *querier) Close() error { return nil }

type seriesSet struct {
	series []storage.Series
	i      int
}

func (s *seriesSet) Next() bool {
	s.i++
	return s.i < len(s.series)
}

func (s *seriesSet) At() storage.Series                { return s.series[s.i] }
func (s *seriesSet) Err() error                        { return nil }
func (s *seriesSet) Warnings() annotations.Annotations { return nil }

type listSeries struct {
	lset labels.Labels
	pts  []point
}

func (s *listSeries) Labels() labels.Labels { return s.lset }

func (s *listSeries) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	if r, ok := it.(interface{ Reset(storage.Samples) }); ok {
		r.Reset(samples(s.pts))
		return it
	}
	return storage.NewListSeriesIterator(samples(s.pts))
}

// samples are points as storage.NewListSeriesIterator reads them.
type samples []point

func (s samples) Get(i int) chunks.Sample { return s[i] }
func (s samples) Len() int                { return len(s) }

func (p point) T() int64                      { return p.t }
func (p point) ST() int64                     { return 0 }
func (p point) F() float64                    { return p.v }
func (p point) H() *histogram.Histogram       { return nil }
func (p point) FH() *histogram.FloatHistogram { return nil }
func (p point) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (p point) Copy() chunks.Sample           { return p }
