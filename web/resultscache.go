package web

import (
	"container/list"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/greenloop/greenloop/ingest"
)

// The results cache keeps the answers of range queries over settled time, in
// blocks of consecutive steps aligned on absolute time, so that a dashboard
// refreshing the same query (its window sliding a step at a time) evaluates
// only the blocks it has not seen: in practice the newest one.
//
// A block is cached only when all the data its evaluation reads is older than
// the late-write tracker's settle time. Samples written into that range later
// (an agent delivering its backlog, a backfill) are recorded by the tracker,
// and a cached block whose data range they touch is evaluated again. Queries
// whose answer depends on the query's own bounds (@ start(), @ end()), on a
// fixed time (@ t) or on the future (negative offsets) are never cached.

// blockSpan is the least time a cache block covers; a block holds at least
// minBlockSteps steps. Short blocks keep the part a refresh evaluates (the
// block holding the unsettled last minutes) small; runs of missing blocks are
// still evaluated as one query, so a cold query does not pay for them.
const (
	blockSpan     = 15 * time.Minute
	minBlockSteps = 15
	// entryMaxAge bounds how long a block is kept, so that samples removed by
	// retention do not linger in answers.
	entryMaxAge = 6 * time.Hour
)

// resultsCache is an LRU of evaluated blocks, bounded in bytes.
type resultsCache struct {
	maxBytes int64
	late     *ingest.LateWrites
	now      func() time.Time

	mu    sync.Mutex
	ll    *list.List // of *cacheEntry, most recent first
	items map[cacheKey]*list.Element
	bytes int64

	hits, misses, stale prometheus.Counter
	size                prometheus.GaugeFunc
}

type cacheKey struct {
	tenant   string
	query    string
	step     int64 // ms
	lookback int64 // ms; 0 = the engine's default
	block    int64 // start of the block, ms
}

type cacheEntry struct {
	key        cacheKey
	m          promql.Matrix
	annos      annotations.Annotations
	seq        uint64 // late-write sequence number taken before evaluation
	mint, maxt int64  // data range the evaluation read
	added      time.Time
	size       int64
}

func newResultsCache(maxBytes int64, late *ingest.LateWrites, now func() time.Time, reg prometheus.Registerer) *resultsCache {
	c := &resultsCache{maxBytes: maxBytes, late: late, now: now, ll: list.New(), items: map[cacheKey]*list.Element{}}
	c.hits = prometheus.NewCounter(prometheus.CounterOpts{Name: "greenloop_query_results_cache_hits_total",
		Help: "Range-query blocks answered from the results cache."})
	c.misses = prometheus.NewCounter(prometheus.CounterOpts{Name: "greenloop_query_results_cache_misses_total",
		Help: "Range-query blocks evaluated because the results cache did not have them."})
	c.stale = prometheus.NewCounter(prometheus.CounterOpts{Name: "greenloop_query_results_cache_stale_total",
		Help: "Cached blocks dropped because late samples arrived in the range they read."})
	c.size = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "greenloop_query_results_cache_bytes",
		Help: "Estimated size of the results cache."}, func() float64 {
		c.mu.Lock()
		defer c.mu.Unlock()
		return float64(c.bytes)
	})
	if reg != nil {
		reg.MustRegister(c.hits, c.misses, c.stale, c.size)
	}
	return c
}

func (c *resultsCache) get(k cacheKey) *cacheEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[k]
	if !ok {
		return nil
	}
	e := el.Value.(*cacheEntry)
	if c.now().Sub(e.added) > entryMaxAge {
		c.removeLocked(el)
		return nil
	}
	if c.late.Changed(e.mint, e.maxt, e.seq) {
		c.stale.Inc()
		c.removeLocked(el)
		return nil
	}
	c.ll.MoveToFront(el)
	return e
}

func (c *resultsCache) put(e *cacheEntry) {
	if e.size > c.maxBytes/8 {
		return // one answer may not crowd out the rest
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[e.key]; ok {
		c.removeLocked(el)
	}
	c.items[e.key] = c.ll.PushFront(e)
	c.bytes += e.size
	for c.bytes > c.maxBytes {
		c.removeLocked(c.ll.Back())
	}
}

func (c *resultsCache) removeLocked(el *list.Element) {
	e := c.ll.Remove(el).(*cacheEntry)
	delete(c.items, e.key)
	c.bytes -= e.size
}

// matrixSize estimates the memory a matrix holds.
func matrixSize(m promql.Matrix) int64 {
	var n int64
	for _, s := range m {
		n += 64 + int64(s.Metric.Len())*32 + 16*int64(len(s.Floats)) + 120*int64(len(s.Histograms))
		s.Metric.Range(func(l labels.Label) { n += int64(len(l.Name) + len(l.Value)) })
	}
	return n
}

// cacheableExpr reports whether the answer of expr at a step depends only on
// the data and the step's time: no @ modifier, no negative offset, and no
// smoothed selector reading past the step.
func cacheableExpr(expr parser.Expr) bool {
	ok := true
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		switch n := node.(type) {
		case *parser.VectorSelector:
			if n.Timestamp != nil || n.StartOrEnd != 0 || n.OriginalOffset < 0 || n.Smoothed {
				ok = false
			}
		case *parser.SubqueryExpr:
			if n.Timestamp != nil || n.StartOrEnd != 0 || n.OriginalOffset < 0 {
				ok = false
			}
		}
		return nil
	})
	return ok
}

func floorDivMs(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// cachedRange answers a range query from cached blocks and evaluates the rest.
// ok is false when the query cannot use the cache; the caller then evaluates
// it as usual.
func (s *Server) cachedRange(ctx context.Context, tenant string, q storage.Queryable, opts promql.QueryOpts, qs string,
	start, end time.Time, step time.Duration) (res rangeResult, ok bool, err error) {
	c := s.cache
	stepMs := step.Milliseconds()
	if c == nil || stepMs <= 0 || step%time.Millisecond != 0 {
		return rangeResult{}, false, nil
	}
	expr, perr := s.parser.ParseExpr(qs)
	if perr != nil || !cacheableExpr(expr) {
		return rangeResult{}, false, nil
	}
	lookback := s.opts.Query.LookbackDelta.D()
	var lookbackKey int64
	if opts != nil && opts.LookbackDelta() > 0 {
		lookback = opts.LookbackDelta()
		lookbackKey = lookback.Milliseconds()
	}
	blockSteps := max(int64(minBlockSteps), (blockSpan.Milliseconds()+stepMs-1)/stepMs)
	span := blockSteps * stepMs
	startMs, endMs := start.UnixMilli(), end.UnixMilli()
	phase := startMs - floorDivMs(startMs, stepMs)*stepMs
	first := floorDivMs(startMs-phase, span)
	last := floorDivMs(endMs-phase, span)
	horizon := c.late.Horizon()

	type block struct {
		from, to   int64 // first and last step of the whole block, ms
		mint, maxt int64 // data range read by the whole block
		cacheable  bool
		entry      *cacheEntry
		m          promql.Matrix // evaluated now
		annos      annotations.Annotations
	}
	blocks := make([]block, 0, last-first+1)
	for b := first; b <= last; b++ {
		from := phase + b*span
		to := from + span - stepMs
		mint, maxt := promql.FindMinMaxTime(&parser.EvalStmt{Expr: expr, Start: time.UnixMilli(from), End: time.UnixMilli(to),
			Interval: step, LookbackDelta: lookback})
		bl := block{from: from, to: to, mint: mint, maxt: maxt, cacheable: maxt <= horizon}
		if bl.cacheable {
			bl.entry = c.get(cacheKey{tenant: tenant, query: qs, step: stepMs, lookback: lookbackKey, block: from})
			if bl.entry != nil {
				c.hits.Inc()
			} else {
				c.misses.Inc()
			}
		}
		blocks = append(blocks, bl)
	}

	// Evaluate each run of consecutive blocks the cache did not answer as one
	// (sharded) range query: whole blocks where they can be cached, else only
	// the steps the query asked for.
	for i := 0; i < len(blocks); {
		if blocks[i].entry != nil {
			i++
			continue
		}
		j := i
		for j+1 < len(blocks) && blocks[j+1].entry == nil {
			j++
		}
		from, to := blocks[i].from, blocks[j].to
		if !blocks[i].cacheable {
			from = max(from, startMs)
		}
		if !blocks[j].cacheable {
			to = min(to, endMs)
		}
		seq := c.late.Seq()
		r, err := s.execRange(ctx, q, opts, qs, time.UnixMilli(from), time.UnixMilli(to), step)
		if err != nil || r.err != nil {
			return r, true, err
		}
		// Split the run's answer into its blocks; points are in time order.
		for k := i; k <= j; k++ {
			blocks[k].annos = r.annos
		}
		for _, sr := range r.m {
			k, p := i, 0
			for k <= j {
				// Points of block k are those up to its last step.
				q := p
				for q < len(sr.Floats) && sr.Floats[q].T <= blocks[k].to {
					q++
				}
				h := 0
				for h < len(sr.Histograms) && sr.Histograms[h].T <= blocks[k].to {
					h++
				}
				if q > p || h > 0 {
					blocks[k].m = append(blocks[k].m, promql.Series{Metric: sr.Metric, Floats: sr.Floats[p:q:q], Histograms: sr.Histograms[:h:h]})
				}
				sr.Histograms = sr.Histograms[h:]
				p = q
				k++
			}
		}
		now := c.now()
		for k := i; k <= j; k++ {
			if !blocks[k].cacheable {
				continue
			}
			e := &cacheEntry{key: cacheKey{tenant: tenant, query: qs, step: stepMs, lookback: lookbackKey, block: blocks[k].from},
				m: blocks[k].m, annos: blocks[k].annos, seq: seq, mint: blocks[k].mint, maxt: blocks[k].maxt, added: now}
			e.size = matrixSize(e.m) + int64(len(qs)) + 128
			c.put(e)
		}
		i = j + 1
	}

	// Merge the blocks in time order, keeping the steps within [start, end].
	var out rangeResult
	byLabels := make(map[string]int)
	for _, bl := range blocks {
		m, annos := bl.m, bl.annos
		if bl.entry != nil {
			m, annos = bl.entry.m, bl.entry.annos
		}
		out.annos.Merge(annos)
		for _, sr := range m {
			fl := trimFloats(sr.Floats, startMs, endMs)
			hs := trimHistograms(sr.Histograms, startMs, endMs)
			if len(fl) == 0 && len(hs) == 0 {
				continue
			}
			key := sr.Metric.String()
			if i, ok := byLabels[key]; ok {
				out.m[i].Floats = append(out.m[i].Floats, fl...)
				out.m[i].Histograms = append(out.m[i].Histograms, hs...)
				continue
			}
			byLabels[key] = len(out.m)
			out.m = append(out.m, promql.Series{Metric: sr.Metric, Floats: slices.Clone(fl), Histograms: slices.Clone(hs)})
		}
	}
	slices.SortFunc(out.m, func(a, b promql.Series) int { return labels.Compare(a.Metric, b.Metric) })
	return out, true, nil
}

func trimFloats(ps []promql.FPoint, mint, maxt int64) []promql.FPoint {
	lo, _ := slices.BinarySearchFunc(ps, mint, func(p promql.FPoint, t int64) int { return cmpInt(p.T, t) })
	hi, found := slices.BinarySearchFunc(ps, maxt, func(p promql.FPoint, t int64) int { return cmpInt(p.T, t) })
	if found {
		hi++
	}
	if lo >= hi {
		return nil
	}
	return ps[lo:hi]
}

func trimHistograms(ps []promql.HPoint, mint, maxt int64) []promql.HPoint {
	lo, _ := slices.BinarySearchFunc(ps, mint, func(p promql.HPoint, t int64) int { return cmpInt(p.T, t) })
	hi, found := slices.BinarySearchFunc(ps, maxt, func(p promql.HPoint, t int64) int { return cmpInt(p.T, t) })
	if found {
		hi++
	}
	if lo >= hi {
		return nil
	}
	return ps[lo:hi]
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
