// Package fastrate evaluates the commonest dashboard range query, a sum of
// rate() or increase() over counters, in one pass over each series' samples:
//
//	sum [by|without (labels)] (rate|increase(metric{matchers}[range]))
//	rate|increase(metric{matchers}[range])
//
// The PromQL engine evaluates such a query step by step, building a window
// of samples per series and step, then a vector per step for the sum. Here
// every series is read once into a flat buffer and its windows slide over it
// with two cursors, and the per-step sums are kept in one array per group.
// The arithmetic is the engine's own (the extrapolation of extrapolatedRate,
// counter resets added in sample order, Kahan summation over the series in
// the order the store returns them), so the answers are the engine's bit for
// bit; the tests compare them point for point.
//
// Anything else is left to the engine: Compile refuses other shapes (offset,
// @, anchored or smoothed selectors, metric names that the engine would
// annotate as possibly not counters), and Eval returns ErrUnsupported when
// the data holds native histograms.
package fastrate

import (
	"context"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/value"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// xorIteratorType is the type of chunkenc's iterator over an XOR chunk.
var xorIteratorType = reflect.TypeOf(chunkenc.NewXORChunk().Iterator(nil))

// ErrUnsupported says the data holds what this package does not evaluate
// (native histograms); the caller evaluates the query with the engine.
var ErrUnsupported = errors.New("fastrate: data not supported")

// Plan is a compiled query of a supported shape.
type Plan struct {
	isRate    bool
	sel       *parser.VectorSelector
	rng       int64 // ms
	rngDur    time.Duration
	aggregate bool
	by        bool // with aggregate: by (grouping); else without (grouping)
	grouping  []string
}

// Compile returns the plan of expr, or false when expr is not of a supported
// shape.
func Compile(expr parser.Expr) (*Plan, bool) {
	p := &Plan{}
	expr = unparen(expr)
	if agg, ok := expr.(*parser.AggregateExpr); ok {
		if agg.Op != parser.SUM || agg.Param != nil {
			return nil, false
		}
		for _, g := range agg.Grouping {
			if g == model.MetricNameLabel {
				return nil, false
			}
		}
		p.aggregate, p.by, p.grouping = true, !agg.Without, agg.Grouping
		expr = unparen(agg.Expr)
	}
	call, ok := expr.(*parser.Call)
	if !ok || len(call.Args) != 1 {
		return nil, false
	}
	switch call.Func.Name {
	case "rate":
		p.isRate = true
	case "increase":
	default:
		return nil, false
	}
	ms, ok := unparen(call.Args[0]).(*parser.MatrixSelector)
	if !ok || ms.Range <= 0 {
		return nil, false
	}
	vs, ok := ms.VectorSelector.(*parser.VectorSelector)
	if !ok || vs.OriginalOffset != 0 || vs.Offset != 0 || vs.Timestamp != nil || vs.StartOrEnd != 0 || vs.Anchored || vs.Smoothed {
		return nil, false
	}
	// The engine notes "possibly not a counter" for other names; this
	// package does not reproduce annotations, so it takes only names that
	// get none.
	name := ""
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			name = m.Value
		}
	}
	if !isCounterName(name) {
		return nil, false
	}
	p.sel, p.rng, p.rngDur = vs, ms.Range.Milliseconds(), ms.Range
	return p, true
}

func isCounterName(n string) bool {
	for _, s := range []string{"_total", "_sum", "_count", "_bucket"} {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

func unparen(e parser.Expr) parser.Expr {
	for {
		p, ok := e.(*parser.ParenExpr)
		if !ok {
			return e
		}
		e = p.Expr
	}
}

// funcName is the plan's function, as the engine names it in SelectHints.
func (p *Plan) funcName() string {
	if p.isRate {
		return "rate"
	}
	return "increase"
}

// Eval evaluates the plan from start to end (inclusive) every step, as the
// engine's range query would, reading q. The matrix is sorted by labels.
func (p *Plan) Eval(ctx context.Context, q storage.Queryable, start, end time.Time, step time.Duration) (promql.Matrix, error) {
	startMs, endMs, stepMs := start.UnixMilli(), end.UnixMilli(), step.Milliseconds()
	if stepMs <= 0 || endMs < startMs {
		return nil, fmt.Errorf("fastrate: bad range %d..%d step %d", startMs, endMs, stepMs)
	}
	steps := int((endMs-startMs)/stepMs) + 1
	// The engine's selection: samples after the first window's start, up to the last step.
	mint, maxt := startMs-p.rng+1, endMs
	hints := &storage.SelectHints{Start: mint, End: maxt, Step: stepMs, Range: p.rng, Func: p.funcName()}
	ev := evaluator{plan: p, startMs: startMs, stepMs: stepMs, steps: steps, mint: mint, maxt: maxt}
	// Whole chunks, where the store hands them out, are decoded here
	// directly; otherwise (or when a series' chunks overlap) the samples
	// come through the store's iterators.
	if cq, ok := q.(storage.ChunkQueryable); ok {
		m, err := p.eval(ctx, &ev, chunkSource(cq), hints)
		if !errors.Is(err, errOverlap) {
			return m, err
		}
	}
	return p.eval(ctx, &ev, sampleSource(q), hints)
}

// errOverlap: a series' chunks overlap; its samples must be merged by the
// store's iterators.
var errOverlap = errors.New("fastrate: overlapping chunks")

// seriesFunc calls f with each selected series' labels and a function that
// loads its samples into an evaluator.
type seriesFunc func(ctx context.Context, hints *storage.SelectHints, ms []*labels.Matcher,
	f func(lset labels.Labels, load func(*evaluator) error) error) error

func sampleSource(q storage.Queryable) seriesFunc {
	return func(ctx context.Context, hints *storage.SelectHints, ms []*labels.Matcher, f func(labels.Labels, func(*evaluator) error) error) error {
		qr, err := q.Querier(hints.Start, hints.End)
		if err != nil {
			return err
		}
		defer qr.Close()
		set := qr.Select(ctx, false, hints, ms...)
		var it chunkenc.Iterator
		for set.Next() {
			s := set.At()
			if err := f(s.Labels(), func(e *evaluator) error {
				it = s.Iterator(it)
				return e.load(it)
			}); err != nil {
				return err
			}
		}
		return set.Err()
	}
}

func chunkSource(q storage.ChunkQueryable) seriesFunc {
	return func(ctx context.Context, hints *storage.SelectHints, ms []*labels.Matcher, f func(labels.Labels, func(*evaluator) error) error) error {
		qr, err := q.ChunkQuerier(hints.Start, hints.End)
		if err != nil {
			return err
		}
		defer qr.Close()
		// Whole chunks, not trimmed (re-encoded) to the range: loadChunks
		// skips the samples outside it.
		h := *hints
		h.DisableTrimming = true
		set := qr.Select(ctx, false, &h, ms...)
		var (
			it    chunks.Iterator
			cit   chunkenc.Iterator
			metas []chunks.Meta
		)
		for set.Next() {
			s := set.At()
			if err := f(s.Labels(), func(e *evaluator) error {
				it = s.Iterator(it)
				return e.loadChunks(it, &cit, &metas)
			}); err != nil {
				return err
			}
		}
		return set.Err()
	}
}

// eval evaluates the plan over the series src selects.
func (p *Plan) eval(ctx context.Context, ev *evaluator, src seriesFunc, hints *storage.SelectHints) (promql.Matrix, error) {
	st := p.newShard(ev)
	err := src(ctx, hints, p.sel.LabelMatchers, func(lset labels.Labels, load func(*evaluator) error) error {
		return p.addSeries(ctx, st, lset, nil, load)
	})
	if err != nil {
		return nil, err
	}
	return p.finish(st), nil
}

// shard is the evaluation state of one time range: its evaluator and the
// sums (or, without a sum, the series) it has so far.
type shard struct {
	ev     *evaluator
	out    promql.Matrix
	groups map[string]*group
	order  []*group
	b      *labels.Builder
	buf    []byte
	n      int
}

func (p *Plan) newShard(ev *evaluator) *shard {
	st := &shard{ev: ev, b: labels.NewBuilder(labels.EmptyLabels())}
	if p.aggregate {
		st.groups = map[string]*group{}
	}
	return st
}

// addSeries loads one series with load and adds its values to st: to its
// group's sums (gk, when not nil, is the series' group, found by the caller),
// or as an output series.
func (p *Plan) addSeries(ctx context.Context, st *shard, lset labels.Labels, gk *groupKey, load func(*evaluator) error) error {
	if st.n++; st.n%256 == 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	ev := st.ev
	if err := load(ev); err != nil {
		return err
	}
	if len(ev.ts) < 2 {
		return nil
	}
	if !p.aggregate {
		pts := ev.rates()
		if len(pts) > 0 {
			st.b.Reset(lset)
			st.b.Del(model.MetricNameLabel)
			st.out = append(st.out, promql.Series{Metric: st.b.Labels(), Floats: pts})
		}
		return nil
	}
	if gk == nil {
		var k groupKey
		st.buf, k.metric = p.groupLabels(lset, st.buf[:0], st.b)
		k.key = st.buf
		gk = &k
	}
	g := st.groups[string(gk.key)]
	if g == nil {
		steps := ev.steps
		g = &group{metric: gk.metric, sum: make([]float64, steps), c: make([]float64, steps), seen: make([]bool, steps)}
		st.groups[string(gk.key)] = g
		st.order = append(st.order, g)
	}
	ev.eval(g)
	return nil
}

// groupKey is a series' group: the key its labels give and the group's labels.
type groupKey struct {
	key    []byte
	metric labels.Labels
}

// finish returns st's output series, sorted by labels.
func (p *Plan) finish(st *shard) promql.Matrix {
	out := st.out
	if !p.aggregate {
		slices.SortFunc(out, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
		return out
	}
	ev := st.ev
	for _, g := range st.order {
		var pts []promql.FPoint
		for i := range ev.steps {
			if g.seen[i] {
				if pts == nil {
					pts = make([]promql.FPoint, 0, ev.steps-i)
				}
				pts = append(pts, promql.FPoint{T: ev.startMs + int64(i)*ev.stepMs, F: g.sum[i] + g.c[i]})
			}
		}
		if len(pts) > 0 {
			out = append(out, promql.Series{Metric: g.metric, Floats: pts})
		}
	}
	slices.SortFunc(out, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	return out
}

// groupLabels returns the key and labels of the group series lset belongs to.
func (p *Plan) groupLabels(lset labels.Labels, buf []byte, b *labels.Builder) ([]byte, labels.Labels) {
	b.Reset(lset)
	if p.by {
		b.Keep(p.grouping...)
	} else {
		b.Del(model.MetricNameLabel, "__type__", "__unit__")
		b.Del(p.grouping...)
	}
	out := b.Labels()
	return out.Bytes(buf), out
}

// group is one output series of a sum: per step, the Kahan sum and its
// compensation, and whether any series contributed.
type group struct {
	metric labels.Labels
	sum, c []float64
	seen   []bool
}

// evaluator holds one series' samples and evaluates its windows.
type evaluator struct {
	plan            *Plan
	startMs, stepMs int64
	steps           int
	mint, maxt      int64
	ts              []int64
	vs              []float64
	resets          []int     // indices i with vs[i] < vs[i-1]
	scratch         []byte    // appendDecoded's padded copy of a chunk
	val             []float64 // per step, the series' value (eval)
	has             []bool    // per step, whether it has one
}

// load reads the series' float samples in [mint, maxt], stale markers left
// out, as the engine's windows leave them out.
func (e *evaluator) load(it chunkenc.Iterator) error {
	if fa, ok := it.(floatAppender); ok {
		e.loadFloats(fa)
		return nil
	}
	e.ts, e.vs, e.resets = e.ts[:0], e.vs[:0], e.resets[:0]
	vt := it.Seek(e.mint)
	for ; vt != chunkenc.ValNone; vt = it.Next() {
		if vt != chunkenc.ValFloat {
			return ErrUnsupported
		}
		t, v := it.At()
		if t > e.maxt {
			break
		}
		if value.IsStaleNaN(v) {
			continue
		}
		if n := len(e.vs); n > 0 && v < e.vs[n-1] {
			e.resets = append(e.resets, n)
		}
		e.ts, e.vs = append(e.ts, t), append(e.vs, v)
	}
	return it.Err()
}

// floatAppender is an iterator over float samples held in slices (the
// ClickHouse store's): AppendFloats appends those from the current one on
// with mint <= t <= maxt, in time order.
type floatAppender interface {
	AppendFloats(ts []int64, vs []float64, mint, maxt int64) ([]int64, []float64)
}

// loadFloats is load over samples held in slices: no call per sample.
func (e *evaluator) loadFloats(fa floatAppender) {
	e.ts, e.vs = fa.AppendFloats(e.ts[:0], e.vs[:0], e.mint, e.maxt)
	e.resets = e.resets[:0]
	k := 0
	for i, v := range e.vs {
		if value.IsStaleNaN(v) {
			continue // left out, as the engine's windows leave them out
		}
		if k > 0 && v < e.vs[k-1] {
			e.resets = append(e.resets, k)
		}
		e.ts[k], e.vs[k] = e.ts[i], v
		k++
	}
	e.ts, e.vs = e.ts[:k], e.vs[:k]
}

// loadChunks reads the series' float samples in [mint, maxt] from its
// chunks, as load does from its sample iterator; metas is scratch space.
func (e *evaluator) loadChunks(it chunks.Iterator, cit *chunkenc.Iterator, metas *[]chunks.Meta) error {
	ms := (*metas)[:0]
	for it.Next() {
		ms = append(ms, it.At())
	}
	*metas = ms
	if err := it.Err(); err != nil {
		return err
	}
	return e.loadMetas(ms, cit)
}

// loadMetas reads the series' float samples in [mint, maxt] from its chunks
// (populated metas, oldest first). Chunks that overlap send the caller to the
// sample path (errOverlap); chunks of native histograms to the engine
// (ErrUnsupported).
func (e *evaluator) loadMetas(metas []chunks.Meta, cit *chunkenc.Iterator) error {
	e.ts, e.vs, e.resets = e.ts[:0], e.vs[:0], e.resets[:0]
	for _, m := range metas {
		if m.MaxTime < e.mint || m.MinTime > e.maxt {
			continue
		}
		if m.Chunk == nil {
			return errOverlap // not populated: let the store's iterators read it
		}
		if m.Chunk.Encoding() != chunkenc.EncXOR {
			return ErrUnsupported
		}
		if n := len(e.ts); n > 0 && m.MinTime <= e.ts[n-1] {
			return errOverlap
		}
		// Chunks of blocks are decoded here.
		if xc, ok := m.Chunk.(*chunkenc.XORChunk); ok {
			if err := e.appendDecoded(xc.Bytes()); err != nil {
				return err
			}
			continue
		}
		// So are the head's, whose bytes do not change under the query (full
		// chunks; the open one the querier hands out as a copy), when the
		// head's iterator would show all their samples: it returns chunkenc's
		// own XOR iterator then, and cuts a chunk short only to hide samples
		// of appends not yet committed (isolation). Those are read through it.
		*cit = m.Chunk.Iterator(*cit)
		if reflect.TypeOf(*cit) == xorIteratorType {
			if err := e.appendDecoded(m.Chunk.Bytes()); err != nil {
				return err
			}
			continue
		}
		vt := (*cit).Seek(e.mint)
		for ; vt == chunkenc.ValFloat; vt = (*cit).Next() {
			t, v := (*cit).At()
			if t > e.maxt {
				break
			}
			if value.IsStaleNaN(v) {
				continue
			}
			if n := len(e.ts); n > 0 {
				if t <= e.ts[n-1] {
					return errOverlap
				}
				if v < e.vs[n-1] {
					e.resets = append(e.resets, n)
				}
			}
			e.ts, e.vs = append(e.ts, t), append(e.vs, v)
		}
		if vt != chunkenc.ValNone && vt != chunkenc.ValFloat {
			return ErrUnsupported
		}
		if err := (*cit).Err(); err != nil {
			return err
		}
	}
	return nil
}

// eval computes the value rate() or increase() gives at every step whose
// window holds at least two samples (windows), and with g not nil adds them
// into g's sums as the engine's sum does: the first value of a step starts
// its sum, later ones are added with Kahan compensation.
func (e *evaluator) eval(g *group) {
	e.windows()
	if g == nil {
		return
	}
	// Into g's sums, in a loop of its own: the window loop keeps fewer
	// values live, and this one is a plain pass over arrays.
	steps := e.steps
	sum, comp, seen := g.sum[:steps], g.c[:steps], g.seen[:steps]
	val, has := e.val[:steps], e.has[:steps]
	for i, ok := range has {
		switch {
		case !ok:
		case !seen[i]:
			seen[i], sum[i], comp[i] = true, val[i], 0
		default:
			sum[i], comp[i] = kahanInc(val[i], sum[i], comp[i])
		}
	}
}

// windows computes the value rate() or increase() gives at every step whose
// window holds at least two samples into e.val, marking the steps in e.has.
func (e *evaluator) windows() {
	steps, stepMs := e.steps, e.stepMs
	if cap(e.val) < steps {
		e.val, e.has = make([]float64, steps), make([]bool, steps)
	}
	e.val, e.has = e.val[:steps], e.has[:steps]
	val, has := e.val, e.has
	clear(has)
	var (
		lo, hi, r int
		n         = len(e.ts)
		ts, vs    = e.ts[:n], e.vs[:n]
		resets    = e.resets
		rng       = e.plan.rng
		m         extrapolation
	)
	m.key.count = -1
	// A series sampled at a regular interval that divides the step moves
	// its window by the same number of samples at every step, and its
	// windows have one shape: the run of steps whose windows lie inside the
	// samples goes through regularRun, without the searches.
	runFrom, runTo := steps, steps
	var runK int
	if d := e.regularInterval(); d > 0 && len(resets) == 0 && stepMs%d == 0 {
		runK = int(stepMs / d)
		// At step i, the window holds the samples with index in
		// (l0 + i·k − 1, h0 + i·k − 1]: l0 (h0) counts the samples at or
		// before the range's start (its end) at step 0.
		l0 := floorDiv(e.startMs-rng-ts[0], d) + 1
		h0 := floorDiv(e.startMs-ts[0], d) + 1
		k := int64(runK)
		if h0-l0 >= 2 {
			// lo ≥ 0 and hi ≤ n: i ≥ ceil(−l0/k), i ≤ floor((n − h0)/k).
			from := max(0, -floorDiv(l0, k))
			to := min(int64(steps), floorDiv(int64(n)-h0, k)+1)
			if from < to {
				runFrom, runTo = int(from), int(to)
			}
		}
	}
	at := e.startMs
	for i := 0; i < steps; i, at = i+1, at+stepMs {
		if i == runFrom {
			lo, hi = e.regularRun(i, runTo, runK, &m)
			i, at = runTo-1, e.startMs+int64(runTo-1)*stepMs
			continue
		}
		for hi < n && ts[hi] <= at {
			hi++
		}
		rangeStart := at - rng
		for lo < hi && ts[lo] <= rangeStart {
			lo++
		}
		if hi-lo < 2 {
			continue
		}
		first, last := lo, hi-1
		result := vs[last] - vs[first]
		if len(resets) > 0 {
			// Counter resets inside the window, added in sample order as the engine does.
			for r < len(resets) && resets[r] <= first {
				r++
			}
			for k := r; k < len(resets) && resets[k] <= last; k++ {
				result += vs[resets[k]-1]
			}
		}
		firstT, lastT := ts[first], ts[last]
		if k := (windowShape{firstT - rangeStart, at - lastT, lastT - firstT, last - first}); k != m.key {
			m.set(k, e.plan)
		}
		factor := m.factor
		// The engine's zero point of the counter: when the counter,
		// extrapolated backwards, reaches zero sooner than the start of the
		// range, it starts there. Most windows are far from it, which one
		// multiplication tells without the division (values in the normal
		// range only, so that the bound is safe).
		if v0 := vs[first]; result > 0 && v0 >= 0 && !(result >= 0x1p-1000 && v0 > result*m.zeroBound) {
			if durationToZero := m.sampledInterval * (v0 / result); durationToZero < m.durationToStart {
				factor = m.factorFrom(durationToZero, e.plan)
			}
		}
		// The conversion rounds the product, so that no architecture
		// fuses it into the sum below (the engine sums stored values).
		v := float64(result * factor)
		val[i], has[i] = v, true
	}
}

// regularInterval returns the interval between every two consecutive
// samples when it is one and the same (and there are at least three), else 0.
func (e *evaluator) regularInterval() int64 {
	ts := e.ts
	if len(ts) < 3 {
		return 0
	}
	d := ts[1] - ts[0]
	prev := ts[1]
	for _, t := range ts[2:] {
		if t-prev != d {
			return 0
		}
		prev = t
	}
	return d
}

// regularRun evaluates the steps [from, to) of a regular series without
// resets (see windows): the window of step i holds the samples first+i·k to
// last+i·k, and every window has the shape of the first. It returns the
// cursors lo and hi the general loop keeps, as they are after step to−1.
func (e *evaluator) regularRun(from, to, k int, m *extrapolation) (lo, hi int) {
	ts, vs, rng := e.ts, e.vs, e.plan.rng
	at := e.startMs + int64(from)*e.stepMs
	rangeStart := at - rng
	for hi < len(ts) && ts[hi] <= at {
		hi++
	}
	for lo < hi && ts[lo] <= rangeStart {
		lo++
	}
	first, last := lo, hi-1
	if key := (windowShape{ts[first] - rangeStart, at - ts[last], ts[last] - ts[first], last - first}); key != m.key {
		m.set(key, e.plan)
	}
	factor, zeroBound := m.factor, m.zeroBound
	sampledInterval, durationToStart := m.sampledInterval, m.durationToStart
	span := last - first
	val, has := e.val[from:to], e.has[from:to]
	// The window's first samples, k apart; the last ones are span further.
	firsts := vs[first : first+(len(val)-1)*k+1]
	lasts := vs[first+span : first+span+(len(val)-1)*k+1]
	for j := range val {
		v0 := firsts[j*k]
		result := lasts[j*k] - v0
		f := factor
		// The zero point, as in windows.
		if result > 0 && v0 >= 0 && !(result >= 0x1p-1000 && v0 > result*zeroBound) {
			if durationToZero := sampledInterval * (v0 / result); durationToZero < durationToStart {
				f = m.factorFrom(durationToZero, e.plan)
			}
		}
		val[j], has[j] = float64(result*f), true
	}
	regularSteps.Add(int64(len(val)))
	n := to - from - 1
	return lo + n*k, hi + n*k
}

// regularSteps counts the steps regularRun evaluated, for the tests.
var regularSteps atomic.Int64

// floorDiv is a / b rounded towards minus infinity (b > 0).
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// windowShape is what extrapolatedRate's arithmetic depends on besides the
// values: the durations from the range's start to the first sample, from
// the last sample to the range's end and between them (ms), and the number
// of intervals. Regular series have one shape at almost every step.
type windowShape struct {
	toStart, toEnd, span int64
	count                int
}

// extrapolation is the engine's extrapolation for one window shape,
// computed in the engine's order of operations so that the results are the
// same to the bit.
type extrapolation struct {
	key                                             windowShape
	sampledInterval, durationToStart, durationToEnd float64
	// factor applies when the counter's zero point is not nearer than
	// durationToStart; zeroBound is a safe bound on v0/result below which
	// it may be (twice durationToStart / sampledInterval).
	factor, zeroBound float64
}

func (m *extrapolation) set(k windowShape, p *Plan) {
	m.key = k
	durationToStart := float64(k.toStart) / 1000
	durationToEnd := float64(k.toEnd) / 1000
	m.sampledInterval = float64(k.span) / 1000
	averageDurationBetweenSamples := m.sampledInterval / float64(k.count)
	extrapolationThreshold := averageDurationBetweenSamples * 1.1
	if durationToStart >= extrapolationThreshold {
		durationToStart = averageDurationBetweenSamples / 2
	}
	if durationToEnd >= extrapolationThreshold {
		durationToEnd = averageDurationBetweenSamples / 2
	}
	m.durationToStart, m.durationToEnd = durationToStart, durationToEnd
	m.factor = m.factorFrom(durationToStart, p)
	m.zeroBound = 2 * durationToStart / m.sampledInterval
	if m.sampledInterval == 0 || math.IsNaN(m.zeroBound) {
		m.zeroBound = math.Inf(1)
	}
}

func (m *extrapolation) factorFrom(durationToStart float64, p *Plan) float64 {
	factor := 1.0
	if m.sampledInterval != 0 {
		factor = (m.sampledInterval + durationToStart + m.durationToEnd) / m.sampledInterval
	}
	if p.isRate {
		factor /= p.rngDur.Seconds()
	}
	return factor
}

// rates returns the series' points.
func (e *evaluator) rates() []promql.FPoint {
	e.eval(nil)
	var pts []promql.FPoint
	for i, ok := range e.has {
		if ok {
			if pts == nil {
				pts = make([]promql.FPoint, 0, e.steps-i)
			}
			pts = append(pts, promql.FPoint{T: e.startMs + int64(i)*e.stepMs, F: e.val[i]})
		}
	}
	return pts
}

// kahanInc is Prometheus' kahansum.Inc (Neumaier's variant), small enough
// for the compiler to inline: the call cost a tenth of the whole pass.
func kahanInc(inc, sum, c float64) (float64, float64) {
	t := float64(sum + inc)
	switch {
	case t > math.MaxFloat64 || t < -math.MaxFloat64:
		c = 0
	case math.Abs(sum) >= math.Abs(inc):
		c += (sum - t) + inc
	default:
		c += (inc - t) + sum
	}
	return t, float64(c)
}
