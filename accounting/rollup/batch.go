package rollup

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/energy/promsource"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/sample"
)

// oneSeries is an energy.Source holding one series already being read, so
// that energy.Compute gives the figures of each series of a scan apart.
type oneSeries struct {
	ls map[string]string
	it energy.SampleIterator
}

func (s oneSeries) Scan(_ context.Context, _ string, _, _ time.Time, visit func(map[string]string, energy.SampleIterator) error) error {
	return visit(s.ls, s.it)
}

// samples holds one series' samples of a batch; it is the SampleIterator
// energy.Compute reads them through.
type samples struct {
	t    []int64
	v    []float64
	done bool
	i    int
}

func (s *samples) reset() { s.t, s.v, s.done, s.i = s.t[:0], s.v[:0], false, -1 }

func (s *samples) fill(it energy.SampleIterator) error {
	if bi, ok := it.(energy.BatchIterator); ok {
		for {
			ts, vs := bi.NextBatch()
			if len(ts) == 0 {
				break
			}
			s.t = append(s.t, ts...)
			s.v = append(s.v, vs...)
		}
	} else {
		for it.Next() {
			t, v := it.At()
			s.t = append(s.t, t)
			s.v = append(s.v, v)
		}
	}
	return it.Err()
}

func (s *samples) Next() bool           { s.i++; return s.i < len(s.t) }
func (s *samples) At() (int64, float64) { return s.t[s.i], s.v[s.i] }
func (s *samples) Err() error           { return nil }
func (s *samples) NextBatch() ([]int64, []float64) {
	if s.done {
		return nil, nil
	}
	s.done = true
	return s.t, s.v
}

// bridge adds to buf the samples just outside the batch's read that a
// counter gap across the batch's start or end needs: the last one before
// [a − Bridge, a − Lookback) when the first sample read is after a, the first
// one in (b + Lookback, b + Bridge] when the last is before b. A gap still
// open at b marks the hours from the last sample on in open.
func (j *Job) bridge(ctx context.Context, ls map[string]string, a, b int64, buf *samples, open map[int64]bool) error {
	return j.bridgeWith(ls, a, b, buf, open, func(mint, maxt int64, last bool) (int64, float64, bool, error) {
		return j.sampleNear(ctx, ls, mint, maxt, last)
	})
}

// needsBridge says whether bridge would look a sample of buf's series up.
func (j *Job) needsBridge(a, b int64, buf *samples) bool {
	return j.o.Bridge > j.o.Lookback && (len(buf.t) == 0 || buf.t[0] > a || buf.t[len(buf.t)-1] < b)
}

// bridgeWith is bridge with the samples looked up by near (sampleNear's contract).
func (j *Job) bridgeWith(ls map[string]string, a, b int64, buf *samples, open map[int64]bool, near func(mint, maxt int64, last bool) (int64, float64, bool, error)) error {
	l, br := j.o.Lookback.Milliseconds(), j.o.Bridge.Milliseconds()
	if br <= l {
		return nil
	}
	if len(buf.t) == 0 || buf.t[0] > a {
		t, v, ok, err := near(a-br, a-l-1, true)
		if err != nil {
			return err
		}
		if ok {
			buf.t = append([]int64{t}, buf.t...)
			buf.v = append([]float64{v}, buf.v...)
		}
	}
	if len(buf.t) == 0 || buf.t[len(buf.t)-1] < b {
		t, v, ok, err := near(b+l+1, b+br, false)
		if err != nil {
			return err
		}
		if ok {
			buf.t = append(buf.t, t)
			buf.v = append(buf.v, v)
		} else {
			from := a
			if len(buf.t) > 0 {
				from = max(a, floorHour(buf.t[len(buf.t)-1]))
			}
			for h := from; h < b; h += hourMs {
				open[h] = true
			}
		}
	}
	return nil
}

// sampleNear returns the last (or first) sample of series ls in [mint, maxt].
func (j *Job) sampleNear(ctx context.Context, ls map[string]string, mint, maxt int64, last bool) (int64, float64, bool, error) {
	if mint > maxt {
		return 0, 0, false, nil
	}
	want := labels.FromMap(ls)
	ms := make([]*labels.Matcher, 0, len(ls))
	want.Range(func(l labels.Label) { ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, l.Name, l.Value)) })
	q, err := j.o.Source.Querier(mint, maxt)
	if err != nil {
		return 0, 0, false, fmt.Errorf("open querier: %w", err)
	}
	defer q.Close()
	set := q.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt}, ms...)
	var t int64
	var v float64
	found := false
	for set.Next() {
		s := set.At()
		if !labels.Equal(s.Labels(), want) {
			continue
		}
		it := s.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			st, sv := it.At()
			if st < mint || st > maxt || sv-sv != 0 {
				continue
			}
			t, v, found = st, sv, true
			if !last {
				break
			}
		}
		if err := it.Err(); err != nil {
			return 0, 0, false, fmt.Errorf("read %s: %w", want, err)
		}
	}
	if err := set.Err(); err != nil {
		return 0, 0, false, fmt.Errorf("select %s: %w", want, err)
	}
	return t, v, found, nil
}

// stored is what is stored of one roll-up series in a batch: per hour, the
// timestamp and value of the current version (ts 0: none), and the sparse
// completeness and estimated points by timestamp.
type stored struct {
	ts       []int64
	e        []float64
	complete map[int64]float64
	estim    map[int64]float64
}

// version returns the current stored figures of hour i.
func (s *stored) version(i int) (ts int64, e, c, est float64, ok bool) {
	if s == nil || s.ts[i] == 0 {
		return 0, 0, 0, 0, false
	}
	ts = s.ts[i]
	c, est = 1, 0
	if v, found := s.complete[ts]; found {
		c = v
	}
	if v, found := s.estim[ts]; found {
		est = v
	}
	return ts, s.e[i], c, est, true
}

// readStored reads the roll-ups and group sums of metric m stored for the
// hours [a, b), by series key (labels without the name; a group's carry
// rollup="group").
func (j *Job) readStored(ctx context.Context, a, b int64, m string) (map[string]*stored, error) {
	n := int((b - a) / hourMs)
	q, err := j.o.Source.Querier(a, b-1)
	if err != nil {
		return nil, fmt.Errorf("open querier: %w", err)
	}
	defer q.Close()
	set := q.Select(ctx, false, &storage.SelectHints{Start: a, End: b - 1},
		labels.MustNewMatcher(labels.MatchRegexp, model.MetricNameLabel, EnergyMetric+"|"+CompletenessMetric+"|"+EstimatedMetric+"|"+
			GroupEnergyMetric+"|"+GroupCoveredMetric+"|"+GroupEstimatedMetric),
		labels.MustNewMatcher(labels.MatchEqual, SourceMetricLabel, m))
	out := map[string]*stored{}
	var it chunkenc.Iterator
	for set.Next() {
		s := set.At()
		ls := s.Labels()
		name := ls.Get(model.MetricNameLabel)
		key := labels.NewBuilder(ls).Del(model.MetricNameLabel).Labels().String()
		st := out[key]
		if st == nil {
			st = &stored{ts: make([]int64, n), e: make([]float64, n), complete: map[int64]float64{}, estim: map[int64]float64{}}
			out[key] = st
		}
		it = s.Iterator(it)
		for it.Next() == chunkenc.ValFloat {
			t, v := it.At()
			if t < a || t >= b {
				continue
			}
			switch name {
			case EnergyMetric, GroupEnergyMetric:
				i := (t - a) / hourMs
				if t >= st.ts[i] {
					st.ts[i], st.e[i] = t, v
				}
			case CompletenessMetric, GroupCoveredMetric:
				st.complete[t] = v
			case EstimatedMetric, GroupEstimatedMetric:
				st.estim[t] = v
			}
		}
		if err := it.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", ls, err)
		}
	}
	if err := set.Err(); err != nil {
		return nil, fmt.Errorf("select roll-ups of %s: %w", m, err)
	}
	return out, nil
}

// rollupLabels returns the labels of the roll-up series of raw series ls of
// metric m, without the metric name and the tenant, and the tenant.
func rollupLabels(ls map[string]string, m string) (base []sample.Label, key, tenant string) {
	b := labels.NewScratchBuilder(len(ls) + 1)
	for k, v := range ls {
		if k != model.MetricNameLabel {
			b.Add(k, v)
		}
	}
	b.Add(SourceMetricLabel, m)
	b.Sort()
	full := b.Labels()
	key = full.String()
	full.Range(func(l labels.Label) {
		if l.Name == ingest.TenantLabel {
			tenant = l.Value
			return
		}
		base = append(base, sample.Label{Name: l.Name, Value: l.Value})
	})
	return base, key, tenant
}

func withName(base []sample.Label, name string) []sample.Label {
	out := make([]sample.Label, 0, len(base)+1)
	out = append(out, sample.Label{Name: model.MetricNameLabel, Value: name})
	return append(out, base...)
}

// scanHours computes the hours [a, b) of every raw series of metric m
// (the counter gaps across the batch's ends bridged, see bridge; hours left
// with a gap open at b are marked in open) and calls visit with each
// series' labels and hourly result (b−a hours, oldest first). buf is reused
// between series. Both the series' roll-ups and the group sums, in the
// store or elsewhere (GroupJob), come from here.
func (j *Job) scanHours(ctx context.Context, a, b int64, m string, buf *samples, open map[int64]bool, visit func(ls map[string]string, r *energy.Result) error) error {
	from, to := time.UnixMilli(a).UTC(), time.UnixMilli(b).UTC()
	n := int((b - a) / hourMs)
	sel := j.selectors[m]
	compute := func(ls map[string]string, buf *samples) error {
		r, err := energy.Compute(ctx, oneSeries{ls, buf}, energy.Query{
			Selectors: []string{sel}, From: from, To: to, Buckets: energy.Bucketing{Calendar: energy.Hour},
			Interval: j.o.Interval, GapFactor: j.o.GapFactor, WrapAt: j.o.WrapAt, Lookback: j.o.Lookback, MaxGaps: 1,
		})
		if err != nil {
			return err
		}
		if len(r.Buckets) != n {
			return fmt.Errorf("energy of %v: %d hourly buckets, want %d", ls, len(r.Buckets), n)
		}
		return visit(ls, r)
	}
	var deferred []deferredSeries
	err := promsource.New(j.o.Source).Scan(ctx, sel, from.Add(-j.o.Lookback), to.Add(j.o.Lookback), func(ls map[string]string, it energy.SampleIterator) error {
		buf.reset()
		if err := buf.fill(it); err != nil {
			return fmt.Errorf("series %v: %w", ls, err)
		}
		if j.bulkBridge && j.needsBridge(a, b, buf) {
			deferred = append(deferred, deferredSeries{ls: ls, s: samples{t: slices.Clone(buf.t), v: slices.Clone(buf.v)}})
			return nil
		}
		if err := j.bridge(ctx, ls, a, b, buf, open); err != nil {
			return err
		}
		return compute(ls, buf)
	})
	if err != nil || len(deferred) == 0 {
		return err
	}
	return j.bridgeDeferred(ctx, sel, a, b, deferred, open, compute)
}

// deferredSeries is a series whose bridge samples are looked up in bulk.
type deferredSeries struct {
	ls map[string]string
	s  samples
}

// bridgeDeferred bridges the deferred series of one scan with two reads of
// all the series of sel (before a, after b) instead of two reads per
// series (a store where one read costs a round trip: ClickHouse), then
// computes them.
func (j *Job) bridgeDeferred(ctx context.Context, sel string, a, b int64, ds []deferredSeries, open map[int64]bool, compute func(map[string]string, *samples) error) error {
	l, br := j.o.Lookback.Milliseconds(), j.o.Bridge.Milliseconds()
	type near struct {
		t  int64
		v  float64
		ok bool
	}
	var wantBefore, wantAfter bool
	for _, d := range ds {
		wantBefore = wantBefore || len(d.s.t) == 0 || d.s.t[0] > a
		wantAfter = wantAfter || len(d.s.t) == 0 || d.s.t[len(d.s.t)-1] < b
	}
	read := func(mint, maxt int64, last bool) (map[string]near, error) {
		out := map[string]near{}
		err := promsource.New(j.o.Source).Scan(ctx, sel, time.UnixMilli(mint), time.UnixMilli(maxt), func(ls map[string]string, it energy.SampleIterator) error {
			var x near
			for it.Next() {
				t, v := it.At()
				if t < mint || t > maxt || v-v != 0 {
					continue
				}
				x = near{t, v, true}
				if !last {
					break
				}
			}
			if err := it.Err(); err != nil {
				return fmt.Errorf("series %v: %w", ls, err)
			}
			if x.ok {
				out[labels.FromMap(ls).String()] = x
			}
			return nil
		})
		return out, err
	}
	var before, after map[string]near
	var err error
	if wantBefore && a-br <= a-l-1 {
		if before, err = read(a-br, a-l-1, true); err != nil {
			return err
		}
	}
	if wantAfter && b+l+1 <= b+br {
		if after, err = read(b+l+1, b+br, false); err != nil {
			return err
		}
	}
	for i := range ds {
		d := &ds[i]
		key := labels.FromMap(d.ls).String()
		err := j.bridgeWith(d.ls, a, b, &d.s, open, func(mint, maxt int64, last bool) (int64, float64, bool, error) {
			x := after[key]
			if last {
				x = before[key]
			}
			return x.t, x.v, x.ok, nil
		})
		if err != nil {
			return err
		}
		d.s.done, d.s.i = false, -1
		if err := compute(d.ls, &d.s); err != nil {
			return err
		}
	}
	return nil
}

// computeBatch computes the hours [a, b) of every series of every metric and
// writes the figures that differ from the stored ones through w.
func (j *Job) computeBatch(ctx context.Context, a, b int64, w Writer) error {
	n := int((b - a) / hourMs)
	byTenant := map[string][]sample.Series{}
	var written, groupWritten, unchanged, seriesHours int64
	var buf samples
	open := map[int64]bool{}
	for _, m := range j.o.Metrics {
		old, err := j.readStored(ctx, a, b, m)
		if err != nil {
			return err
		}
		grp := groups{}
		err = j.scanHours(ctx, a, b, m, &buf, open, func(ls map[string]string, r *energy.Result) error {
			seriesHours += int64(n)
			base, key, tenant := rollupLabels(ls, m)
			e := func(i int) float64 { return float64(r.Buckets[i].Energy) }
			c := func(i int) float64 { return r.Buckets[i].Completeness }
			est := func(i int) float64 { return float64(r.Buckets[i].Estimated) }
			grp.add(ls, m, n, e, c, est)
			pe, pc, pest, same, err := newVersions(old[key], a, n, key, e, c, est, false)
			if err != nil {
				return err
			}
			unchanged += same
			byTenant[tenant] = appendVersions(byTenant[tenant], base, pe, pc, pest)
			written += int64(len(pe) + len(pc) + len(pest))
			return nil
		})
		if err != nil {
			return fmt.Errorf("metric %s: %w", m, err)
		}
		for _, g := range grp.sorted() {
			e := func(i int) float64 { return g.e[i] }
			c := func(i int) float64 { return g.c[i] }
			est := func(i int) float64 { return g.est[i] }
			pe, pc, pest, same, err := newVersions(old[g.key], a, n, g.key, e, c, est, true)
			if err != nil {
				return fmt.Errorf("metric %s: %w", m, err)
			}
			_ = same // Unchanged counts series-hours
			byTenant[g.tenant] = appendGroupVersions(byTenant[g.tenant], g.base, pe, pc, pest)
			groupWritten += int64(len(pe) + len(pc) + len(pest))
		}
	}
	if len(byTenant) > 0 && w == nil {
		return fmt.Errorf("no writer for hours before the out-of-order window")
	}
	for tenant, series := range byTenant {
		res, err := w.WriteSeries(ctx, ingest.WriteOptions{Tenant: tenant}, series)
		if err != nil {
			return fmt.Errorf("write roll-ups of tenant %q: %w", tenant, err)
		}
		if res.RejectedCount > 0 {
			r := res.Rejected[0]
			return fmt.Errorf("write roll-ups of tenant %q: %d point(s) refused, first %s at %d: %s (%s)", tenant, res.RejectedCount, r.Series, r.TimestampMs, r.Reason, r.Detail)
		}
	}
	// Hours left with a gap open at the batch's end are computed again
	// while the gap may still close within Bridge.
	deadline := b + j.o.Bridge.Milliseconds()
	for h := range open {
		j.open[h] = deadline
	}
	j.stats.PointsWritten += written
	j.stats.GroupPointsWritten += groupWritten
	j.stats.Unchanged += unchanged
	j.stats.SeriesHours += seriesHours
	return nil
}

// appendVersions appends to out the roll-up series of one raw series (base:
// its labels without name and tenant, as rollupLabels gives them) holding
// the energy, completeness and estimated points of the versions written.
func appendVersions(out []sample.Series, base []sample.Label, pe, pc, pest []sample.Point) []sample.Series {
	for _, x := range []struct {
		name string
		p    []sample.Point
	}{{EnergyMetric, pe}, {CompletenessMetric, pc}, {EstimatedMetric, pest}} {
		if len(x.p) > 0 {
			out = append(out, sample.Series{Labels: withName(base, x.name), Points: x.p})
		}
	}
	return out
}

// HourFigures are one raw series' figures of one UTC hour, as the job computes them.
type HourFigures struct {
	Energy, Completeness, Estimated float64
}

// FirstWrite gives what the job writes for the first computation of a run
// of hours: each series' roll-ups and the group sums. Tools that hold a
// history elsewhere (an import, the report benchmark) write it instead of
// the raw samples.
type FirstWrite struct {
	from     int64
	n        int
	byTenant map[string][]sample.Series
	groups   map[string]groups // by raw metric
	metrics  []string
}

// NewFirstWrite starts the write of the hours [from, from + hours h); from
// is truncated to the hour.
func NewFirstWrite(from time.Time, hours int) *FirstWrite {
	return &FirstWrite{from: floorHour(from.UnixMilli()), n: hours, byTenant: map[string][]sample.Series{}, groups: map[string]groups{}}
}

// Add adds raw series ls (its labels, the metric name under "__name__") with
// the figures of each hour, in order.
func (f *FirstWrite) Add(ls map[string]string, hours []HourFigures) error {
	if len(hours) != f.n {
		return fmt.Errorf("rollup: %d hours of %v, want %d", len(hours), ls, f.n)
	}
	m := ls[model.MetricNameLabel]
	base, key, tenant := rollupLabels(ls, m)
	e := func(i int) float64 { return hours[i].Energy }
	c := func(i int) float64 { return hours[i].Completeness }
	est := func(i int) float64 { return hours[i].Estimated }
	pe, pc, pest, _, err := newVersions(nil, f.from, f.n, key, e, c, est, false)
	if err != nil {
		return err
	}
	f.byTenant[tenant] = appendVersions(f.byTenant[tenant], base, pe, pc, pest)
	g := f.groups[m]
	if g == nil {
		g = groups{}
		f.groups[m] = g
		f.metrics = append(f.metrics, m)
	}
	acc := g.add(ls, m, f.n, e, c, est)
	acc.members = append(acc.members, seriesKey(ls))
	return nil
}

// GroupRows returns the group sums of the write as a GroupJob writes a
// computation of its hours with version (markers not included, Inputs 0),
// and the groups' members over the write's hours.
func (f *FirstWrite) GroupRows(version uint64) ([]GroupRow, []GroupMember) {
	var rows []GroupRow
	var members []GroupMember
	for _, m := range f.metrics {
		for _, g := range f.groups[m].sorted() {
			for i := range f.n {
				rows = append(rows, GroupRow{Tenant: g.tenant, SourceMetric: g.metric, Site: g.site, Component: g.component,
					Hour: f.from + int64(i)*hourMs, Energy: g.e[i], Covered: g.c[i], Estimated: g.est[i], Version: version})
			}
			ks := slices.Clone(g.members)
			slices.Sort(ks)
			for _, k := range slices.Compact(ks) {
				members = append(members, GroupMember{Tenant: g.tenant, SourceMetric: g.metric, Site: g.site, Component: g.component,
					From: f.from, To: f.from + int64(f.n)*hourMs, Series: k})
			}
		}
	}
	return rows, members
}

// Series returns the series to write, by tenant (WriteOptions.Tenant), the
// group sums last.
func (f *FirstWrite) Series() (map[string][]sample.Series, error) {
	out := make(map[string][]sample.Series, len(f.byTenant))
	for t, ss := range f.byTenant {
		out[t] = slices.Clone(ss)
	}
	for _, m := range f.metrics {
		for _, g := range f.groups[m].sorted() {
			pe, pc, pest, _, err := newVersions(nil, f.from, f.n, g.key, func(i int) float64 { return g.e[i] },
				func(i int) float64 { return g.c[i] }, func(i int) float64 { return g.est[i] }, true)
			if err != nil {
				return nil, err
			}
			out[g.tenant] = appendGroupVersions(out[g.tenant], g.base, pe, pc, pest)
		}
	}
	return out, nil
}

// newVersions returns the points to write for n hours from a (figures e,
// completeness or covered c, estimated est) where they differ from the
// stored version st (nil: none stored), and how many hours were unchanged.
// Completeness points are written when not 1, unless always (group sums).
func newVersions(st *stored, a int64, n int, key string, e, c, est func(i int) float64, always bool) (pe, pc, pest []sample.Point, unchanged int64, err error) {
	for i := range n {
		h := a + int64(i)*hourMs
		ev, cv, ov := e(i), c(i), est(i)
		ts := h
		if ots, oe, oc, oest, ok := st.version(i); ok {
			if oe == ev && oc == cv && oest == ov {
				unchanged++
				continue
			}
			ts = ots + 1
			if ts >= h+hourMs {
				return nil, nil, nil, 0, fmt.Errorf("hour %s of %s: no version left in the hour", time.UnixMilli(h).UTC().Format(time.RFC3339), key)
			}
		}
		pe = append(pe, sample.Point{T: ts, V: ev})
		if always || cv != 1 {
			pc = append(pc, sample.Point{T: ts, V: cv})
		}
		if ov != 0 {
			pest = append(pest, sample.Point{T: ts, V: ov})
		}
	}
	return pe, pc, pest, unchanged, nil
}
