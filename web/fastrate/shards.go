package fastrate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// shardBatch is how many series the reading goroutine hands the other
// shards at a time.
const shardBatch = 64

// shardItem is one series as the reading goroutine passes it on: its labels,
// its group and its populated chunks.
type shardItem struct {
	lset  labels.Labels
	gk    groupKey
	metas []chunks.Meta
}

// chunkMetas is a chunk series that hands out its populated chunks as a
// slice (the embedded store's direct block read), saving a copy.
type chunkMetas interface {
	ChunkMetas() []chunks.Meta
}

// EvalShards evaluates the plan as Eval does, split into consecutive time
// shards evaluated in parallel: shards[i] = [from, to) are step indices from
// start, covering 0..n-1 for the query's n steps in order. It returns one
// matrix per shard, each what Eval gives over that shard's steps.
//
// Where the store hands out whole chunks, the series are read once: the
// calling goroutine walks the series, evaluates the last shard and passes
// each series' chunks on to one goroutine per other shard, which decodes
// the chunks it needs. Otherwise each shard runs Eval on its own.
func (p *Plan) EvalShards(ctx context.Context, q storage.Queryable, start time.Time, step time.Duration, shards [][2]int64) ([]promql.Matrix, error) {
	return p.EvalShardsTimed(ctx, q, start, step, shards, nil)
}

// ShardTimes is how long the goroutines of EvalShardsTimed worked (time
// spent waiting on each other left out): Reader is the goroutine that reads
// the series and evaluates the last shard, Workers the slowest of the
// others. Both are zero when the shards were not read once (no chunks).
type ShardTimes struct {
	Reader, Workers time.Duration
}

// EvalShardsTimed is EvalShards, also reporting into st (when not nil) how
// the work was shared, so that the caller can size the last shard: the
// reading goroutine's share should end when the others' do.
func (p *Plan) EvalShardsTimed(ctx context.Context, q storage.Queryable, start time.Time, step time.Duration, shards [][2]int64, st *ShardTimes) ([]promql.Matrix, error) {
	stepMs := step.Milliseconds()
	if stepMs <= 0 || len(shards) == 0 {
		return nil, fmt.Errorf("fastrate: bad shards %v step %d", shards, stepMs)
	}
	for i, r := range shards {
		if r[0] >= r[1] || (i > 0 && r[0] != shards[i-1][1]) || (i == 0 && r[0] != 0) {
			return nil, fmt.Errorf("fastrate: bad shards %v", shards)
		}
	}
	startMs := start.UnixMilli()
	evs := make([]*evaluator, len(shards))
	for i, r := range shards {
		from := startMs + r[0]*stepMs
		evs[i] = &evaluator{plan: p, startMs: from, stepMs: stepMs, steps: int(r[1] - r[0]),
			mint: from - p.rng + 1, maxt: startMs + (r[1]-1)*stepMs}
	}
	if cq, ok := q.(storage.ChunkQueryable); ok && len(shards) > 1 {
		ms, err := p.evalShardedChunks(ctx, cq, evs, st)
		if !errors.Is(err, errOverlap) {
			return ms, err
		}
	}
	if _, ok := q.(storage.ChunkQueryable); !ok && len(shards) > 1 {
		ms, err := p.evalShardedFloats(ctx, q, evs)
		if !errors.Is(err, errNotInMemory) {
			return ms, err
		}
	}
	// Each shard on its own (through the samples when chunks overlap).
	ms := make([]promql.Matrix, len(shards))
	errs := make([]error, len(shards))
	var wg sync.WaitGroup
	for i, ev := range evs {
		wg.Go(func() {
			end := time.UnixMilli(ev.startMs + int64(ev.steps-1)*stepMs)
			ms[i], errs[i] = p.Eval(ctx, q, time.UnixMilli(ev.startMs), end, step)
		})
	}
	wg.Wait()
	return ms, firstError(errs)
}

// firstError is the error to report of several shards': ErrUnsupported
// before anything else, a real error before the cancellation it caused.
func firstError(errs []error) error {
	var first error
	for _, err := range errs {
		switch {
		case err == nil:
		case errors.Is(err, ErrUnsupported):
			return err
		case first == nil, errors.Is(first, context.Canceled) && !errors.Is(err, context.Canceled):
			first = err
		}
	}
	return first
}

// evalShardedChunks reads the series once through cq's chunks and
// evaluates the shards of evs in parallel; errOverlap when some series'
// chunks overlap.
func (p *Plan) evalShardedChunks(ctx context.Context, cq storage.ChunkQueryable, evs []*evaluator, st *ShardTimes) ([]promql.Matrix, error) {
	began := time.Now()
	last := evs[len(evs)-1]
	mint, maxt := evs[0].mint, last.maxt
	qr, err := cq.ChunkQuerier(mint, maxt)
	if err != nil {
		return nil, err
	}
	defer qr.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Whole chunks, not trimmed (re-encoded) to the range: each shard skips
	// the samples outside its own.
	hints := &storage.SelectHints{Start: mint, End: maxt, Step: evs[0].stepMs, Range: p.rng, Func: p.funcName(), DisableTrimming: true}
	set := qr.Select(ctx, false, hints, p.sel.LabelMatchers...)

	// One goroutine per shard but the last, fed batches of series in order,
	// so that every shard sums the series in the store's order.
	sts := make([]*shard, len(evs))
	for i, ev := range evs {
		sts[i] = p.newShard(ev)
	}
	errs := make([]error, len(evs))
	feeds := make([]chan []shardItem, len(evs)-1)
	busy := make([]time.Duration, len(feeds)) // each worker's time on batches
	var wg sync.WaitGroup
	for i := range feeds {
		feeds[i] = make(chan []shardItem, 4)
		wg.Go(func() {
			var cit chunkenc.Iterator
			for batch := range feeds[i] {
				if errs[i] != nil {
					continue // drain
				}
				t0 := time.Now()
				for k := range batch {
					it := &batch[k]
					var gk *groupKey
					if p.aggregate {
						gk = &it.gk
					}
					if err := p.addSeries(ctx, sts[i], it.lset, gk, func(e *evaluator) error { return e.loadMetas(it.metas, &cit) }); err != nil {
						errs[i] = err
						cancel()
						break
					}
				}
				busy[i] += time.Since(t0)
			}
		})
	}
	var blocked time.Duration // the reader's wait for a full feed
	own := len(evs) - 1
	err = func() error {
		defer func() {
			for _, f := range feeds {
				close(f)
			}
		}()
		var (
			cit   chunkenc.Iterator
			it    chunks.Iterator
			batch = make([]shardItem, 0, shardBatch)
			b     = labels.NewBuilder(labels.EmptyLabels())
		)
		send := func() {
			for _, f := range feeds {
				select {
				case f <- batch:
				default:
					t0 := time.Now()
					f <- batch
					blocked += time.Since(t0)
				}
			}
			batch = make([]shardItem, 0, shardBatch)
		}
		for set.Next() {
			s := set.At()
			item := shardItem{lset: s.Labels()}
			if cm, ok := s.(chunkMetas); ok {
				item.metas = cm.ChunkMetas()
			} else {
				it = s.Iterator(it)
				for it.Next() {
					item.metas = append(item.metas, it.At())
				}
				if err := it.Err(); err != nil {
					return err
				}
			}
			var gk *groupKey
			if p.aggregate {
				key, metric := p.groupLabels(item.lset, nil, b)
				item.gk = groupKey{key: key, metric: metric}
				gk = &item.gk
			}
			if err := p.addSeries(ctx, sts[own], item.lset, gk, func(e *evaluator) error { return e.loadMetas(item.metas, &cit) }); err != nil {
				return err
			}
			if batch = append(batch, item); len(batch) == shardBatch {
				send()
			}
		}
		if err := set.Err(); err != nil {
			return err
		}
		if len(batch) > 0 {
			send()
		}
		return nil
	}()
	if err != nil {
		cancel()
	}
	read := time.Since(began) - blocked
	wg.Wait()
	if st != nil {
		st.Reader, st.Workers = read, slices.Max(busy)
	}
	errs[own] = err
	return p.finishShards(sts, errs)
}

// errNotInMemory: the store's series are not float samples held in memory.
var errNotInMemory = errors.New("fastrate: series not in memory")

// floatItem is one series read for evalShardedFloats.
type floatItem struct {
	s  storage.Series
	gk groupKey
}

// evalShardedFloats reads the series once, where the store holds them in
// memory as slices of float samples (the ClickHouse store: its Select has
// read them all), and evaluates the shards of evs in parallel, each over
// every series in the store's order. errNotInMemory, having read only the
// first series, when the store's series are of another kind.
func (p *Plan) evalShardedFloats(ctx context.Context, q storage.Queryable, evs []*evaluator) ([]promql.Matrix, error) {
	mint, maxt := evs[0].mint, evs[len(evs)-1].maxt
	qr, err := q.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	defer qr.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	hints := &storage.SelectHints{Start: mint, End: maxt, Step: evs[0].stepMs, Range: p.rng, Func: p.funcName()}
	set := qr.Select(ctx, false, hints, p.sel.LabelMatchers...)
	var items []floatItem
	b := labels.NewBuilder(labels.EmptyLabels())
	for set.Next() {
		s := set.At()
		if len(items) == 0 {
			if _, ok := s.Iterator(nil).(floatAppender); !ok {
				return nil, errNotInMemory
			}
		}
		item := floatItem{s: s}
		if p.aggregate {
			key, metric := p.groupLabels(s.Labels(), nil, b)
			item.gk = groupKey{key: key, metric: metric}
		}
		items = append(items, item)
	}
	if err := set.Err(); err != nil {
		return nil, err
	}
	sts := make([]*shard, len(evs))
	errs := make([]error, len(evs))
	var wg sync.WaitGroup
	for i, ev := range evs {
		sts[i] = p.newShard(ev)
		wg.Go(func() {
			var it chunkenc.Iterator
			for k := range items {
				item := &items[k]
				var gk *groupKey
				if p.aggregate {
					gk = &item.gk
				}
				if err := p.addSeries(ctx, sts[i], item.s.Labels(), gk, func(e *evaluator) error {
					it = item.s.Iterator(it)
					return e.load(it)
				}); err != nil {
					errs[i] = err
					cancel()
					return
				}
			}
		})
	}
	wg.Wait()
	return p.finishShards(sts, errs)
}

// finishShards returns the shards' matrices, or the first of their errors
// (firstError's order).
func (p *Plan) finishShards(sts []*shard, errs []error) ([]promql.Matrix, error) {
	if err := firstError(errs); err != nil {
		return nil, err
	}
	out := make([]promql.Matrix, len(sts))
	for i, st := range sts {
		out[i] = p.finish(st)
	}
	return out, nil
}
