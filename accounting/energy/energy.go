// Package energy turns stored meter series into energy (or water volume) per
// time bucket: the increase of counters, with resets and wraps handled, or
// the trapezoidal integral of power gauges, each with the share of the period
// the data covers and the gaps it leaves. It reads samples through the narrow
// Source interface and does no other I/O.
package energy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"time"

	"github.com/greenloop/greenloop/accounting/quantity"
)

// Kind says how a series' samples become an amount.
type Kind uint8

// Series kinds.
const (
	// Counter is a monotonic total; the amount of an interval is its increase.
	Counter Kind = iota + 1
	// Gauge is a rate (power, flow); the amount of an interval is its integral over time.
	Gauge
)

// Dimension is what a series measures.
type Dimension uint8

// Dimensions.
const (
	DimEnergy Dimension = iota + 1 // joules
	DimVolume                      // litres
)

func (d Dimension) String() string {
	switch d {
	case DimEnergy:
		return "energy"
	case DimVolume:
		return "volume"
	}
	return fmt.Sprintf("Dimension(%d)", d)
}

// Metric says how to read one series.
type Metric struct {
	Kind      Kind
	Dimension Dimension
	// Scale converts a stored value to the base unit (J or L) for counters,
	// or to base unit per second (W or L/s) for gauges.
	Scale float64
}

// ErrUnknownMetric is wrapped by ClassifyMetric's error for a metric name whose unit it cannot tell.
var ErrUnknownMetric = errors.New("unknown metric unit")

// metricSuffixes maps metric-name suffixes (Prometheus naming conventions) to how to read them.
var metricSuffixes = []struct {
	suffix string
	m      Metric
}{
	{"_joules_total", Metric{Counter, DimEnergy, 1}},
	{"_kilowatt_hours_total", Metric{Counter, DimEnergy, float64(quantity.KilowattHour)}},
	{"_watt_hours_total", Metric{Counter, DimEnergy, float64(quantity.WattHour)}},
	{"_kilowatts", Metric{Gauge, DimEnergy, 1000}},
	{"_watts", Metric{Gauge, DimEnergy, 1}},
	{"_cubic_meters_total", Metric{Counter, DimVolume, float64(quantity.CubicMetre)}},
	{"_liters_total", Metric{Counter, DimVolume, 1}},
	{"_litres_total", Metric{Counter, DimVolume, 1}},
}

// ClassifyMetric tells from a metric name (greenloop_energy_joules_total,
// greenloop_power_watts, greenloop_water_cubic_meters_total, ...) whether it
// is a counter or a gauge, what it measures and its scale.
func ClassifyMetric(name string) (Metric, error) {
	for _, s := range metricSuffixes {
		if strings.HasSuffix(name, s.suffix) {
			return s.m, nil
		}
	}
	return Metric{}, fmt.Errorf("%w: %q (want a name ending in _joules_total, _watt_hours_total, _kilowatt_hours_total, _watts, _kilowatts, _cubic_meters_total or _liters_total)", ErrUnknownMetric, name)
}

// SampleIterator walks the raw samples of one series in time order.
type SampleIterator interface {
	Next() bool
	// At returns the current sample: Unix milliseconds and value.
	At() (tMillis int64, v float64)
	Err() error
}

// BatchIterator is an optional extension of SampleIterator that hands out
// samples in batches, saving two calls per sample. A SampleIterator that
// implements it is read through NextBatch only.
type BatchIterator interface {
	// NextBatch returns the next samples (parallel slices, valid until the
	// next call), or empty slices at the end.
	NextBatch() (tMillis []int64, v []float64)
}

// Source gives access to stored series. Scan calls visit once per series the
// PromQL series selector matches, with the series' labels (the metric name
// under "__name__") and an iterator over its raw float samples in [from, to].
// An error from visit stops the scan and is returned.
type Source interface {
	Scan(ctx context.Context, selector string, from, to time.Time, visit func(labels map[string]string, it SampleIterator) error) error
}

// Query asks for the energy (or volume) of the series of the first selector
// that has samples in the range, in buckets over [From, To).
type Query struct {
	// Selectors are PromQL series selectors in order of preference: list the
	// counters first (greenloop_energy_joules_total{...}) and the power
	// gauges after them; the first whose series have samples in the range is
	// used, alone (the last one that matches any series when none has).
	Selectors []string
	From, To  time.Time
	Buckets   Bucketing
	// Interval is the nominal sample interval. Zero estimates it per series
	// as the median of its first 16 intervals.
	Interval time.Duration
	// GapFactor: an interval longer than GapFactor × Interval is a gap. Zero means 3.
	GapFactor float64
	// WrapAt is the counters' range in their stored unit, when known (a
	// device register's maximum): a drop then means a wrap, and the increase
	// is WrapAt − before + after. Zero: a drop is a reset, and the counter
	// counts again from zero.
	WrapAt float64
	// Lookback is how far before From and after To samples are read, so that
	// the interval across each end is split, not lost. Zero means
	// GapFactor × Interval, or 10 minutes when Interval is zero.
	Lookback time.Duration
	// MaxGaps bounds the gaps listed (the rest are counted); zero means 1000.
	MaxGaps int
	// Logger receives debug notes; nil discards them.
	Logger *slog.Logger
}

// Gap is a stretch of time a series has no usable data for.
type Gap struct {
	// Series is the series' labels, e.g. {__name__="greenloop_power_watts", site="fra1"}.
	Series string    `json:"series"`
	Start  time.Time `json:"start"`
	End    time.Time `json:"end"`
	// Estimated is true for a counter gap: the counter's increase across it
	// was measured and is spread linearly over it, as an estimate. A power
	// gauge's gap adds no energy.
	Estimated bool `json:"estimated"`
}

// Bucket is the energy of one time bucket, summed over the series.
type Bucket struct {
	Start, End time.Time
	Energy     quantity.Energy
	// Estimated is the part of Energy spread over counter gaps.
	Estimated quantity.Energy
	// Completeness is the share of the bucket (time × series) covered by data, 0 to 1.
	Completeness float64
}

// Result is the answer to a Query of energy.
type Result struct {
	From, To time.Time
	// Selector is the selector the figures come from.
	Selector string
	// Series is how many series it matched.
	Series  int
	Buckets []Bucket
	// Total is the energy of [From, To); Estimated the part of it spread over counter gaps.
	Total, Estimated quantity.Energy
	// Completeness is the share of [From, To) × series covered by data.
	Completeness float64
	Gaps         []Gap
	// GapsOmitted counts gaps left out of Gaps beyond Query.MaxGaps.
	GapsOmitted int
	// Resets and Wraps count the counter drops read as resets and as wraps.
	Resets, Wraps int
}

// VolumeBucket is the volume of one time bucket.
type VolumeBucket struct {
	Start, End   time.Time
	Volume       quantity.Volume
	Estimated    quantity.Volume
	Completeness float64
}

// VolumeResult is the answer to a Query of water (or fuel) volume.
type VolumeResult struct {
	From, To      time.Time
	Selector      string
	Series        int
	Buckets       []VolumeBucket
	Total         quantity.Volume
	Estimated     quantity.Volume
	Completeness  float64
	Gaps          []Gap
	GapsOmitted   int
	Resets, Wraps int
}

// ErrNoSeries is returned when no selector of a query matches any series.
var ErrNoSeries = errors.New("no series matched")

// Compute returns the energy of q's series per bucket. It fails with
// ErrNoSeries when no selector matches, and when a series is not an energy
// or power series.
func Compute(ctx context.Context, src Source, q Query) (*Result, error) {
	raw, err := compute(ctx, src, q, DimEnergy)
	if err != nil {
		return nil, err
	}
	r := &Result{From: q.From, To: q.To, Selector: raw.selector, Series: raw.series,
		Total: quantity.Energy(raw.total), Estimated: quantity.Energy(raw.estTotal), Completeness: raw.completeness,
		Gaps: raw.gaps, GapsOmitted: raw.gapsOmitted, Resets: raw.resets, Wraps: raw.wraps,
		Buckets: make([]Bucket, len(raw.amount))}
	for i := range r.Buckets {
		r.Buckets[i] = Bucket{Start: raw.edges[i], End: raw.edges[i+1], Energy: quantity.Energy(raw.amount[i]),
			Estimated: quantity.Energy(raw.estimated[i]), Completeness: raw.bucketCompleteness(i)}
	}
	return r, nil
}

// ComputeVolume is Compute for water (or fuel) volume counters.
func ComputeVolume(ctx context.Context, src Source, q Query) (*VolumeResult, error) {
	raw, err := compute(ctx, src, q, DimVolume)
	if err != nil {
		return nil, err
	}
	r := &VolumeResult{From: q.From, To: q.To, Selector: raw.selector, Series: raw.series,
		Total: quantity.Volume(raw.total), Estimated: quantity.Volume(raw.estTotal), Completeness: raw.completeness,
		Gaps: raw.gaps, GapsOmitted: raw.gapsOmitted, Resets: raw.resets, Wraps: raw.wraps,
		Buckets: make([]VolumeBucket, len(raw.amount))}
	for i := range r.Buckets {
		r.Buckets[i] = VolumeBucket{Start: raw.edges[i], End: raw.edges[i+1], Volume: quantity.Volume(raw.amount[i]),
			Estimated: quantity.Volume(raw.estimated[i]), Completeness: raw.bucketCompleteness(i)}
	}
	return r, nil
}

type rawResult struct {
	selector        string
	series          int
	edges           []time.Time
	amount          []float64
	estimated       []float64
	covered         []int64
	edgeMs          []int64
	total, estTotal float64
	completeness    float64
	gaps            []Gap
	gapsOmitted     int
	resets, wraps   int
}

func (r *rawResult) bucketCompleteness(i int) float64 {
	span := r.edgeMs[i+1] - r.edgeMs[i]
	if r.series == 0 || span <= 0 {
		return 0
	}
	return float64(r.covered[i]) / (float64(span) * float64(r.series))
}

func compute(ctx context.Context, src Source, q Query, dim Dimension) (*rawResult, error) {
	if len(q.Selectors) == 0 {
		return nil, errors.New("energy query: no selector")
	}
	edges, err := q.Buckets.Edges(q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("energy query buckets: %w", err)
	}
	gapFactor, lookback, maxGaps, err := q.Limits()
	if err != nil {
		return nil, fmt.Errorf("energy query: %w", err)
	}
	log := q.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var a *accumulator
	for i, sel := range q.Selectors {
		if a == nil || a.series > 0 {
			a = newAccumulator(edges, gapFactor, q.Interval, q.WrapAt, maxGaps)
		}
		err := src.Scan(ctx, sel, q.From.Add(-lookback), q.To.Add(lookback), func(ls map[string]string, it SampleIterator) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			name := ls["__name__"]
			m, err := ClassifyMetric(name)
			if err != nil {
				return fmt.Errorf("series %s: %w", LabelString(ls), err)
			}
			if m.Dimension != dim {
				return fmt.Errorf("series %s measures %s, want %s", LabelString(ls), m.Dimension, dim)
			}
			a.begin(m, ls)
			if bi, ok := it.(BatchIterator); ok {
				for {
					ts, vs := bi.NextBatch()
					if len(ts) == 0 {
						break
					}
					a.samples += len(ts)
					a.addBatch(ts, vs)
				}
			} else {
				for it.Next() {
					a.samples++
					a.add(it.At())
				}
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("series %s: read samples: %w", LabelString(ls), err)
			}
			a.end()
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("selector %s: %w", sel, err)
		}
		if a.series > 0 && (a.samples > 0 || i == len(q.Selectors)-1) {
			a.res.selector = sel
			break
		}
		log.Debug("energy selector has no samples in the range, trying the next", "selector", sel, "series", a.series, "from", q.From, "to", q.To)
	}
	if a.series == 0 {
		return nil, fmt.Errorf("%w: %s", ErrNoSeries, strings.Join(q.Selectors, ", "))
	}
	return a.finish(), nil
}

// LabelString formats labels the Prometheus way, name first, the rest
// sorted: how gaps and errors name a series.
func LabelString(ls map[string]string) string {
	keys := make([]string, 0, len(ls))
	for k := range ls {
		if k != "__name__" {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(ls["__name__"])
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s=%q", k, ls[k])
	}
	b.WriteByte('}')
	return b.String()
}

// Limits returns the query's gap factor, lookback and gap-list bound with
// their defaults filled in (3 intervals; the gap factor times the interval,
// or 10 minutes; 1,000), or an error naming the value out of range.
func (q Query) Limits() (gapFactor float64, lookback time.Duration, maxGaps int, err error) {
	gapFactor = q.GapFactor
	if gapFactor == 0 {
		gapFactor = 3
	}
	if !(gapFactor >= 1 && gapFactor <= 1e6) {
		return 0, 0, 0, fmt.Errorf("gap factor %v, want 1 to 1e6", q.GapFactor)
	}
	if q.Interval < 0 || q.WrapAt < 0 || q.Lookback < 0 {
		return 0, 0, 0, errors.New("negative interval, wrap range or lookback")
	}
	lookback = q.Lookback
	if lookback == 0 {
		lookback = 10 * time.Minute
		if q.Interval > 0 {
			lookback = time.Duration(gapFactor * float64(q.Interval))
		}
	}
	maxGaps = q.MaxGaps
	if maxGaps == 0 {
		maxGaps = 1000
	}
	return gapFactor, lookback, maxGaps, nil
}
