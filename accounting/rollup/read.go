package rollup

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/energy/promsource"
	"github.com/greenloop/greenloop/accounting/quantity"
)

// HourlyEnergy returns the energy of the series selector matches (a raw
// series selector, e.g. greenloop_energy_joules_total{site="fra1"}) per UTC
// hour over [from, to): Compute with hourly buckets.
func HourlyEnergy(ctx context.Context, q storage.Queryable, selector string, from, to time.Time) (*energy.Result, error) {
	return Compute(ctx, q, energy.Query{Selectors: []string{selector}, From: from, To: to, Buckets: energy.Bucketing{Calendar: energy.Hour}})
}

// Compute answers q like energy.Compute over the raw series of src, but
// reads every whole UTC hour that lies within one of q's buckets and has been
// rolled up from the roll-ups, and only the rest from raw samples: hours not
// rolled up yet (the current one, those of a metric the job does not roll up),
// and hours cut by the range's ends or by a bucket edge (days in a time zone
// with a half-hour offset). Pass the same Queryable as to promsource (a
// tenant's ingest.TenantQueryable).
//
// An hour counts as rolled up when any series of the selector has a roll-up
// point in it: the job writes every series of an hour in one write per tenant.
// The figures equal energy.Compute's up to rounding, with three differences:
// the result lists the gaps, resets and wraps of the raw parts only (a
// rolled-up hour carries its gaps in its completeness); a series counts in
// Series when it has a roll-up or raw samples in the range; and an hour is as
// fresh as its roll-up — late samples show once the job has re-computed it.
// A selector has data (for q.Selectors' order of preference) when it has
// roll-up points, or raw parts with energy or coverage.
func Compute(ctx context.Context, src storage.Queryable, q energy.Query) (*energy.Result, error) {
	if len(q.Selectors) == 0 {
		return nil, errors.New("rollup query: no selector")
	}
	edges, err := q.Buckets.Edges(q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("rollup query buckets: %w", err)
	}
	p := parser.NewParser(parser.Options{})
	for i, sel := range q.Selectors {
		r, matched, has, err := computeSelector(ctx, src, nil, p, q, edges, sel)
		if err != nil {
			return nil, fmt.Errorf("selector %s: %w", sel, err)
		}
		if matched && (has || i == len(q.Selectors)-1) {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", energy.ErrNoSeries, strings.Join(q.Selectors, ", "))
}

// rollupMatchers turns a raw series selector into the matchers of its
// roll-ups: each matcher on the metric name becomes one on source_metric.
func rollupMatchers(p parser.Parser, sel string) ([]*labels.Matcher, error) {
	ms, err := p.ParseMetricSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("parse selector %q: %w", sel, err)
	}
	out := make([]*labels.Matcher, 0, len(ms)+1)
	for _, m := range ms {
		if m.Name == model.MetricNameLabel {
			sm, err := labels.NewMatcher(m.Type, SourceMetricLabel, m.Value)
			if err != nil {
				return nil, fmt.Errorf("selector %q: %w", sel, err)
			}
			m = sm
		}
		out = append(out, m)
	}
	return out, nil
}

// acc sums the figures of a query's buckets.
type acc struct {
	edges     []int64
	energy    []float64
	estimated []float64
	covered   []float64 // series × ms
	seen      map[uint64]struct{}
	has       bool
	res       energy.Result
}

func (a *acc) bucketOf(t int64) int {
	return sort.Search(len(a.edges)-1, func(i int) bool { return a.edges[i+1] > t })
}

func computeSelector(ctx context.Context, src storage.Queryable, gq *GroupQuery, p parser.Parser, q energy.Query, edgeTimes []time.Time, sel string) (*energy.Result, bool, bool, error) {
	ms, err := rollupMatchers(p, sel)
	if err != nil {
		return nil, false, false, err
	}
	a := &acc{edges: make([]int64, len(edgeTimes)), seen: map[uint64]struct{}{}}
	for i, e := range edgeTimes {
		a.edges[i] = e.UnixMilli()
	}
	nb := len(edgeTimes) - 1
	a.energy, a.estimated, a.covered = make([]float64, nb), make([]float64, nb), make([]float64, nb)
	from, to := a.edges[0], a.edges[nb]

	// Whole hours within one bucket can come from roll-ups.
	h0 := floorHour(from)
	if h0 < from {
		h0 += hourMs
	}
	h1 := floorHour(to)
	nh := 0
	if h1 > h0 {
		nh = int((h1 - h0) / hourMs)
	}
	bucketOf := make([]int32, nh) // -1: cut by a bucket edge
	for i, b := 0, 0; i < nh; i++ {
		h := h0 + int64(i)*hourMs
		for a.edges[b+1] <= h {
			b++
		}
		bucketOf[i] = int32(b)
		if a.edges[b+1] < h+hourMs {
			bucketOf[i] = -1
		}
	}
	rolled := make([]bool, nh)
	if nh > 0 {
		// The group sums first, where the selector allows; then the series'
		// roll-ups of the hours they leave, in maximal runs.
		if gq != nil {
			gms, ok := groupMatchers(ms)
			if !ok {
				return nil, false, false, fmt.Errorf("%w: it names labels other than the group's", ErrNoGroupSums)
			}
			if err := a.readGroupSource(ctx, gq.Source, gms[:len(gms)-1], h0, h1, bucketOf, rolled); err != nil {
				return nil, false, false, err
			}
			for i := range nh {
				if h := h0 + int64(i)*hourMs; !rolled[i] && h < gq.RawSince.UnixMilli() {
					return nil, false, false, fmt.Errorf("%w: hour %s has none and its raw samples are gone", ErrNoGroupSums, time.UnixMilli(h).UTC().Format(time.RFC3339))
				}
			}
		} else if gms, ok := groupMatchers(ms); ok {
			has, err := a.readGroups(ctx, src, gms, h0, h1, bucketOf, rolled)
			if err != nil {
				return nil, false, false, err
			}
			if has {
				a.has = true
				if err := a.countSeries(ctx, src, ms, h0, h1); err != nil {
					return nil, false, false, err
				}
			}
		}
		for i := 0; i < nh && gq == nil; {
			if rolled[i] || bucketOf[i] < 0 {
				i++
				continue
			}
			k := i + 1
			for k < nh && !rolled[k] && bucketOf[k] >= 0 {
				k++
			}
			if err := a.readRollups(ctx, src, ms, h0, h0+int64(i)*hourMs, h0+int64(k)*hourMs, bucketOf, rolled); err != nil {
				return nil, false, false, err
			}
			i = k
		}
	}

	if gq != nil && (nh == 0 || from < h0) && from < gq.RawSince.UnixMilli() {
		return nil, false, false, fmt.Errorf("%w: the range's start is older than the raw samples", ErrNoGroupSums)
	}
	// The rest from raw samples, in maximal runs.
	raw := keySource{src: promsource.New(src), seen: a.seen}
	var runs [][2]int64
	add := func(lo, hi int64) {
		if lo >= hi {
			return
		}
		if n := len(runs); n > 0 && runs[n-1][1] == lo {
			runs[n-1][1] = hi
			return
		}
		runs = append(runs, [2]int64{lo, hi})
	}
	if nh == 0 {
		add(from, to)
	} else {
		add(from, h0)
		for i := range nh {
			if !rolled[i] {
				h := h0 + int64(i)*hourMs
				add(h, h+hourMs)
			}
		}
		add(h1, to)
	}
	for _, r := range runs {
		if err := a.addRaw(ctx, raw, q, sel, r[0], r[1]); err != nil {
			return nil, false, false, err
		}
	}

	res := &a.res
	res.From, res.To, res.Selector, res.Series = q.From, q.To, sel, len(a.seen)
	res.Buckets = make([]energy.Bucket, nb)
	var covered float64
	for i := range nb {
		b := &res.Buckets[i]
		b.Start, b.End = edgeTimes[i], edgeTimes[i+1]
		b.Energy, b.Estimated = quantity.Energy(a.energy[i]), quantity.Energy(a.estimated[i])
		if span := float64(a.edges[i+1] - a.edges[i]); res.Series > 0 && span > 0 {
			b.Completeness = min(a.covered[i]/(span*float64(res.Series)), 1)
		}
		res.Total += b.Energy
		res.Estimated += b.Estimated
		covered += a.covered[i]
	}
	if res.Series > 0 && to > from {
		res.Completeness = min(covered/(float64(to-from)*float64(res.Series)), 1)
	}
	return res, res.Series > 0, a.has, nil
}

// sparse are the completeness or estimated points of one roll-up series, in time order.
type sparse struct {
	t []int64
	v []float64
}

// at returns the value at exactly t, moving the cursor *i forward (t ascends between calls).
func (s *sparse) at(i *int, t int64, def float64) float64 {
	if s == nil {
		return def
	}
	for *i < len(s.t) && s.t[*i] < t {
		*i++
	}
	if *i < len(s.t) && s.t[*i] == t {
		return s.v[*i]
	}
	return def
}

// readWindow is the share of one window of a roll-up read, summed apart.
type readWindow struct {
	lo, hi    int64
	energy    []float64
	estimated []float64
	covered   []float64
	seen      map[uint64]struct{}
	err       error
}

// Windows read by one querier each, in parallel, end at multiples (since
// the epoch) of the spans of the store's blocks, so that a series comes from
// one block and is not merged across blocks sample by sample (a merge costs
// about as much as decoding). Greenloop's store, with a retention of 310 days
// or more, compacts live data into blocks of up to 486 h (2 h × 3⁵, smaller
// ones nest in them) and writes backfills into blocks of 31 days.
var windowSpans = []int64{486 * hourMs, 31 * 24 * hourMs}

// nextCut returns the first window end after t.
func nextCut(t int64) int64 {
	c := int64(math.MaxInt64)
	for _, s := range windowSpans {
		c = min(c, (t/s+1)*s)
	}
	return c
}

// readRollups adds the current versions of the roll-ups of the hours
// [from, to) that lie within one bucket (bucketOf ≥ 0, indexed from h0) and
// marks them rolled.
func (a *acc) readRollups(ctx context.Context, src storage.Queryable, ms []*labels.Matcher, h0, from, to int64, bucketOf []int32, rolled []bool) error {
	var wins []*readWindow
	for lo := from; lo < to; {
		hi := min(nextCut(lo), to)
		wins = append(wins, &readWindow{lo: lo, hi: hi})
		lo = hi
	}
	workers := min(runtime.GOMAXPROCS(0), len(wins))
	next := make(chan *readWindow)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for w := range next {
				nb := len(a.energy)
				w.energy, w.estimated, w.covered = make([]float64, nb), make([]float64, nb), make([]float64, nb)
				w.seen = map[uint64]struct{}{}
				w.err = readRollupWindow(ctx, src, ms, w, h0, bucketOf, rolled)
			}
		}()
	}
	for _, w := range wins {
		next <- w
	}
	close(next)
	wg.Wait()
	for _, w := range wins {
		if w.err != nil {
			return w.err
		}
		for i := range a.energy {
			a.energy[i] += w.energy[i]
			a.estimated[i] += w.estimated[i]
			a.covered[i] += w.covered[i]
		}
		for k := range w.seen {
			a.seen[k] = struct{}{}
		}
		if len(w.seen) > 0 {
			a.has = true
		}
	}
	return nil
}

// readRollupWindow reads the roll-ups of the hours [w.lo, w.hi); hours are
// indexed from h0. Each window writes only its own hours of rolled.
func readRollupWindow(ctx context.Context, src storage.Queryable, ms []*labels.Matcher, w *readWindow, h0 int64, bucketOf []int32, rolled []bool) error {
	qr, err := src.Querier(w.lo, w.hi-1)
	if err != nil {
		return fmt.Errorf("open querier: %w", err)
	}
	defer qr.Close()
	hints := &storage.SelectHints{Start: w.lo, End: w.hi - 1}
	var it chunkenc.Iterator
	// Sparse series first, so that each energy point finds its own.
	type extra struct{ complete, estim *sparse }
	extras := map[uint64]*extra{}
	var hb []byte
	set := qr.Select(ctx, false, hints, append(ms[:len(ms):len(ms)], labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, CompletenessMetric+"|"+EstimatedMetric))...)
	for set.Next() {
		s := set.At()
		ls := s.Labels()
		var key uint64
		key, hb = ls.HashWithoutLabels(hb, model.MetricNameLabel)
		x := extras[key]
		if x == nil {
			x = &extra{}
			extras[key] = x
		}
		sp := &sparse{}
		if ls.Get(model.MetricNameLabel) == EstimatedMetric {
			x.estim = sp
		} else {
			x.complete = sp
		}
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			t, v := it.At()
			sp.t = append(sp.t, t)
			sp.v = append(sp.v, v)
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("read %s: %w", ls, err)
		}
	}
	if err := set.Err(); err != nil {
		return fmt.Errorf("select roll-ups: %w", err)
	}

	set = qr.Select(ctx, false, hints, append(ms[:len(ms):len(ms)], labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, EnergyMetric))...)
	lo, hi := (w.lo-h0)/hourMs, (w.hi-h0)/hourMs
	for set.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		s := set.At()
		ls := s.Labels()
		var key uint64
		key, hb = ls.HashWithoutLabels(hb, model.MetricNameLabel)
		var comp, estim *sparse
		if x := extras[key]; x != nil {
			comp, estim = x.complete, x.estim
		}
		ci, ei := 0, 0
		got := false
		cur, curT, curV := int64(-1), int64(0), 0.0
		flush := func() {
			b := bucketOf[cur]
			if b < 0 {
				return
			}
			rolled[cur] = true
			w.energy[b] += curV
			w.estimated[b] += estim.at(&ei, curT, 0)
			w.covered[b] += comp.at(&ci, curT, 1) * float64(hourMs)
		}
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			t, v := it.At()
			i := (t - h0) / hourMs
			if t < w.lo || i >= hi || i < lo {
				continue
			}
			if i != cur {
				if cur >= 0 {
					flush()
				}
				cur = i
			}
			curT, curV = t, v // points come in time order: the last of an hour is its current version
			got = true
		}
		if err := it.Err(); err != nil {
			return fmt.Errorf("read %s: %w", ls, err)
		}
		if cur >= 0 {
			flush()
		}
		if got {
			w.seen[key] = struct{}{}
		}
	}
	if err := set.Err(); err != nil {
		return fmt.Errorf("select roll-ups: %w", err)
	}
	return nil
}

// addRaw computes [lo, hi) from raw samples and adds it to the buckets.
func (a *acc) addRaw(ctx context.Context, src energy.Source, q energy.Query, sel string, lo, hi int64) error {
	// Calendar buckets and a single bucket have absolute edges, so a run
	// computed with q's bucketing splits where the query does. Fixed steps
	// count from the range's start: compute each bucket's part alone.
	var parts [][2]int64
	if q.Buckets.Calendar == energy.CalendarNone && q.Buckets.Step > 0 {
		for b := a.bucketOf(lo); b < len(a.edges)-1 && a.edges[b] < hi; b++ {
			parts = append(parts, [2]int64{max(lo, a.edges[b]), min(hi, a.edges[b+1])})
		}
	} else {
		parts = [][2]int64{{lo, hi}}
	}
	for _, p := range parts {
		rq := q
		rq.Selectors = []string{sel}
		rq.From, rq.To = time.UnixMilli(p[0]).In(q.From.Location()), time.UnixMilli(p[1]).In(q.From.Location())
		if q.Buckets.Calendar == energy.CalendarNone {
			rq.Buckets.Step = 0
		}
		r, err := energy.Compute(ctx, src, rq)
		if errors.Is(err, energy.ErrNoSeries) {
			continue
		}
		if err != nil {
			return err
		}
		for _, bk := range r.Buckets {
			b := a.bucketOf(bk.Start.UnixMilli())
			a.energy[b] += float64(bk.Energy)
			a.estimated[b] += float64(bk.Estimated)
			a.covered[b] += bk.Completeness * float64(bk.End.Sub(bk.Start).Milliseconds()) * float64(r.Series)
		}
		if r.Completeness > 0 || r.Total != 0 {
			a.has = true
		}
		a.res.Gaps = append(a.res.Gaps, r.Gaps...)
		a.res.GapsOmitted += r.GapsOmitted
		a.res.Resets += r.Resets
		a.res.Wraps += r.Wraps
	}
	return nil
}

// seriesKey identifies the roll-up series of raw series ls: the hash of
// its labels with source_metric, without the metric name, as the roll-ups'
// HashWithoutLabels(MetricName) gives it.
func seriesKey(ls map[string]string) uint64 {
	b := labels.NewBuilder(labels.FromMap(ls)).Set(SourceMetricLabel, ls[model.MetricNameLabel])
	h, _ := b.Labels().HashWithoutLabels(nil, model.MetricNameLabel)
	return h
}

// keySource passes a Source's series through, noting their roll-up keys.
type keySource struct {
	src  energy.Source
	seen map[uint64]struct{}
}

func (k keySource) Scan(ctx context.Context, sel string, from, to time.Time, visit func(map[string]string, energy.SampleIterator) error) error {
	return k.src.Scan(ctx, sel, from, to, func(ls map[string]string, it energy.SampleIterator) error {
		k.seen[seriesKey(ls)] = struct{}{}
		return visit(ls, it)
	})
}
