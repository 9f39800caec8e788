package clickhouse

import (
	"context"
	"fmt"
	"math"
	"regexp/syntax"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ClickHouse/ch-go/proto"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"

	"github.com/greenloop/greenloop/ingest/clickhouse/chnative"
)

// Querier implements storage.Queryable over [mint, maxt] (ms, inclusive).
func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) {
	return &querier{s: s, mint: mint, maxt: maxt}, nil
}

type querier struct {
	s          *Store
	mint, maxt int64

	mu   sync.Mutex
	bufs []*blockBuf // the raw reads' column buffers, recycled by Close
}

// Close hands the buffers of the series read back for reuse: as with every
// storage.Querier, its series must not be used after it.
func (q *querier) Close() error {
	q.mu.Lock()
	bufs := q.bufs
	q.bufs = nil
	q.mu.Unlock()
	for _, b := range bufs {
		putBlockBuf(b)
	}
	return nil
}

// labelExpr is the SQL expression of a label's value in the series table
// (the empty string for a series without the label, as in Prometheus).
func labelExpr(name string, args *[]any) string {
	if name == model.MetricNameLabel {
		return "metric"
	}
	*args = append(*args, name)
	return "label_values[indexOf(label_names, ?)]"
}

// anchoredRegexp turns a Prometheus matcher regexp (RE2, fully anchored, dot
// matching newlines) into the pattern ClickHouse's match() needs.
func anchoredRegexp(re string) string {
	// \Q quotes the rest of the pattern when no \E ends it: it would swallow
	// the anchoring's ")$". Such a pattern is written out again in plain
	// RE2 first (the literal escaped), as Prometheus parses it.
	if strings.Contains(re, `\Q`) {
		if p, err := syntax.Parse(re, syntax.Perl|syntax.DotNL); err == nil {
			re = p.String()
		}
	}
	return "(?s)^(?:" + re + ")$"
}

// matchersSQL translates matchers into a condition on the series table and its bind arguments.
func matchersSQL(ms []*labels.Matcher) (string, []any) {
	if len(ms) == 0 {
		return "1", nil
	}
	var args []any
	conds := make([]string, 0, len(ms))
	for _, m := range ms {
		conds = append(conds, matcherCond(labelExpr(m.Name, &args), m, &args))
	}
	return strings.Join(conds, " AND "), args
}

// matcherCond is m's condition on the SQL expression e (the label's value),
// its argument appended to args.
func matcherCond(e string, m *labels.Matcher, args *[]any) string {
	switch m.Type {
	case labels.MatchNotEqual:
		*args = append(*args, m.Value)
		return e + " != ?"
	case labels.MatchRegexp:
		*args = append(*args, anchoredRegexp(m.Value))
		return "match(" + e + ", ?)"
	case labels.MatchNotRegexp:
		*args = append(*args, anchoredRegexp(m.Value))
		return "NOT match(" + e + ", ?)"
	default: // labels.MatchEqual
		*args = append(*args, m.Value)
		return e + " = ?"
	}
}

// bounded reports whether [mint, maxt] is a real time range rather than "everything".
func bounded(mint, maxt int64) bool { return mint > math.MinInt64/2 || maxt < math.MaxInt64/2 }

// presenceSQL restricts series to those with samples in [mint, maxt], to the
// hour (from the hourly rollup, far smaller than the raw samples).
func (s *Store) presenceSQL(mint, maxt int64, args *[]any) string {
	if !bounded(mint, maxt) {
		return ""
	}
	hi := maxt
	if hi < math.MaxInt64-time.Hour.Milliseconds() {
		hi += time.Hour.Milliseconds() - 1
	}
	*args = append(*args, mint, hi)
	cond := "series_id IN (SELECT series_id FROM " + s.t.local(tbl1h) + " WHERE bucket >= ? AND bucket <= ?)"
	if since, ok := s.bufferedSince(); ok {
		// Samples may still be in the buffer's memory, not yet in the rollup:
		// look for them in the raw samples through the Buffer table (memory
		// and disk) where that stays cheap. Recent timestamps: parts older
		// than since are skipped by their ts range.
		if maxt >= since {
			*args = append(*args, max(mint, since), maxt)
			cond += " OR series_id IN (SELECT series_id FROM " + s.t.local(tblBuffer) + " WHERE ts >= ? AND ts <= ?)"
		}
		// Series greenloop stored recently, whatever their timestamps (a new
		// series' backlog): the primary key narrows the read to them.
		*args = append(*args, mint, maxt, s.now().Add(-2*s.opts.Buffer.MaxTime-bufferSlack).UnixMilli())
		cond += " OR series_id IN (SELECT series_id FROM " + s.t.local(tblBuffer) + " WHERE ts >= ? AND ts <= ? AND series_id IN (SELECT series_id FROM " +
			s.t.local(tblSeries) + " WHERE created_ms >= ?))"
		cond = "(" + cond + ")"
	}
	return " AND " + cond
}

// bufferSlack covers a Buffer table's flush itself and clock skew between
// greenloop and the agents that timestamp the samples.
const bufferSlack = 10 * time.Second

// bufferedSince is the time from which samples may still sit in the Buffer
// table's memory, absent from the rollups (ok is false without a buffer).
// Samples written with older timestamps (backfills, an agent's backlog) can
// sit there too: rollup reads miss those for up to the buffer's max_time.
func (s *Store) bufferedSince() (int64, bool) {
	if !s.opts.Buffer.Enabled {
		return 0, false
	}
	return s.now().Add(-2*s.opts.Buffer.MaxTime - bufferSlack).UnixMilli(), true
}

// seriesLabels returns the label sets of the series matching ms (and present in the range when bounded).
// The ids come from the server every time; their label sets from the
// store's cache where it has them all (a series id is the hash of its label
// set, so an entry never changes).
func (s *Store) seriesLabels(ctx context.Context, ms []*labels.Matcher, mint, maxt int64, presence bool) (map[uint64]labels.Labels, error) {
	cond, args := matchersSQL(ms)
	if presence {
		cond += s.presenceSQL(mint, maxt, &args)
	}
	ids, err := s.seriesIDs(ctx, cond, args)
	if err != nil {
		return nil, err
	}
	if out, ok := s.labels.lookup(ids); ok {
		return out, nil
	}
	rows, err := s.conn.Query(ctx, "SELECT series_id, any(metric), any(label_names), any(label_values) FROM "+
		s.t.q(tblSeries)+" WHERE "+cond+" GROUP BY series_id", args...)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: select series: %w", err))
	}
	defer rows.Close()
	out := make(map[uint64]labels.Labels, len(ids))
	b := labels.NewScratchBuilder(8)
	for rows.Next() {
		var (
			id            uint64
			metric        string
			names, values []string
		)
		if err := rows.Scan(&id, &metric, &names, &values); err != nil {
			return nil, fmt.Errorf("clickhouse store: scan series: %w", err)
		}
		b.Reset()
		if metric != "" {
			b.Add(model.MetricNameLabel, metric)
		}
		for i := range names {
			b.Add(names[i], values[i])
		}
		b.Sort()
		out[id] = b.Labels()
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: select series: %w", err))
	}
	s.labels.add(out)
	return out, nil
}

// seriesIDs returns the ids of the series rows matching cond.
func (s *Store) seriesIDs(ctx context.Context, cond string, args []any) ([]uint64, error) {
	rows, err := s.conn.Query(ctx, "SELECT DISTINCT series_id FROM "+s.t.q(tblSeries)+" WHERE "+cond, args...)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: select series ids: %w", err))
	}
	defer rows.Close()
	var ids []uint64
	var id uint64
	for rows.Next() {
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("clickhouse store: scan series ids: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: select series ids: %w", err))
	}
	return ids, nil
}

// labelCache keeps the label sets of series read, by id, up to max of
// them; when full it starts again empty.
type labelCache struct {
	mu  sync.RWMutex
	m   map[uint64]labels.Labels
	max int
}

// lookup returns the label sets of ids if it has every one.
func (c *labelCache) lookup(ids []uint64) (map[uint64]labels.Labels, bool) {
	out := make(map[uint64]labels.Labels, len(ids))
	c.mu.RLock()
	defer c.mu.RUnlock()
	for _, id := range ids {
		l, ok := c.m[id]
		if !ok {
			return nil, false
		}
		out[id] = l
	}
	return out, true
}

func (c *labelCache) add(m map[uint64]labels.Labels) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m)+len(m) > c.max {
		c.m = make(map[uint64]labels.Labels, len(m))
	}
	for id, l := range m {
		c.m[id] = l
	}
}

// rollupRead is a Select answered from a rollup table.
type rollupRead struct {
	table  string
	index  int // in rollupBuckets
	bucket int64
	col    string                     // the aggregate column read
	keep   func(a, b float64) float64 // combines two rows of one bucket (parts not merged yet)
}

// planRollup decides whether a Select can read a rollup instead of raw
// samples and still give PromQL the same answer. Buckets are left-open
// (end-B, end], like PromQL's windows, so when every evaluation time is a
// multiple of B:
//   - an instant selection (no range) only ever uses the latest sample at or
//     before each evaluation time, which is the last sample of a bucket: the
//     bucket's last sample with its own timestamp gives the same answer,
//     lookback included;
//   - max_over_time, min_over_time and last_over_time over a range that is a
//     multiple of B see whole buckets, so the bucket's max, min or last (placed
//     at its last sample's time) gives the same answer.
//
// Evaluation times are multiples of B when the step is and the first one is
// (Start + lookback - 1 for an instant selection, Start + range - 1 for a range).
// rate, increase, avg_over_time, count_over_time and every other function read
// raw samples. Rollups leave NaN out (staleness markers included), so a series
// ending in a staleness marker stays visible up to the lookback delta.
func (s *Store) planRollup(h *storage.SelectHints) (rollupRead, bool) {
	if s.opts.DisableRollupReads || h == nil || h.Step <= 0 {
		return rollupRead{}, false
	}
	if since, ok := s.bufferedSince(); ok && h.End >= since {
		// The newest samples may be in the buffer, not yet in the rollups.
		return rollupRead{}, false
	}
	r := rollupRead{col: "last"}
	first := h.Start + h.Range - 1
	switch {
	case h.Range == 0:
		first = h.Start + s.opts.LookbackDelta.Milliseconds() - 1
	case h.Func == "max_over_time":
		r = rollupRead{col: "max", keep: math.Max}
	case h.Func == "min_over_time":
		r = rollupRead{col: "min", keep: math.Min}
	case h.Func == "last_over_time":
	default:
		return rollupRead{}, false
	}
	for i := len(rollupBuckets) - 1; i >= 0; i-- {
		b := rollupBuckets[i].bucket.Milliseconds()
		if h.Step%b == 0 && first%b == 0 && h.Range%b == 0 {
			r.table, r.index, r.bucket = rollupBuckets[i].table, i, b
			return r, true
		}
	}
	return rollupRead{}, false
}

func (q *querier) Select(ctx context.Context, _ bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	mint, maxt := q.mint, q.maxt
	if hints != nil && !hints.DisableTrimming && (hints.Start != 0 || hints.End != 0) {
		mint, maxt = max(mint, hints.Start), min(maxt, hints.End)
	}
	if mint > maxt {
		return storage.EmptySeriesSet()
	}
	if hints != nil && hints.Func == "series" {
		// Only the label sets are wanted (the series API).
		lsets, err := q.s.seriesLabels(ctx, ms, mint, maxt, true)
		if err != nil {
			return storage.ErrSeriesSet(err)
		}
		set := make([]*series, 0, len(lsets))
		for _, l := range lsets {
			set = append(set, &series{lset: l})
		}
		return newSeriesSet(set, hints.Limit)
	}
	lsets, err := q.s.seriesLabels(ctx, ms, mint, maxt, false)
	if err != nil {
		return storage.ErrSeriesSet(err)
	}
	if len(lsets) == 0 {
		return storage.EmptySeriesSet()
	}
	cond, args := matchersSQL(ms)
	inSeries := " WHERE series_id IN (SELECT series_id FROM " + q.s.t.local(tblSeries) + " WHERE " + cond + ")"
	r, rollup := q.s.planRollup(hints)
	if rollup && r.bucket == time.Minute.Milliseconds() {
		// The minute rollup only pays when it holds fewer rows than raw.
		dense, err := q.s.denseEnough(ctx, inSeries, args, mint, maxt)
		if err != nil {
			return storage.ErrSeriesSet(err)
		}
		rollup = dense
	}
	if !rollup {
		return q.selectRaw(ctx, lsets, mint, maxt, hints)
	}
	q.s.rollupReads[r.index].Add(1)
	hi := maxt
	if hi < math.MaxInt64-r.bucket {
		hi += r.bucket - 1
	}
	// Each row's own state, without GROUP BY (4 times cheaper on 18.16):
	// rows of one bucket still in separate parts are combined below. The
	// ids go as an external table and the columns come back whole, as in
	// selectRaw.
	query := "SELECT series_id, bucket, finalizeAggregation(last_ts) AS last_t, finalizeAggregation(" + r.col + ") AS val FROM " +
		q.s.t.q(r.table) + " WHERE series_id IN " + idsTable + " AND bucket >= " + strconv.FormatInt(max(mint, -readBound), 10) +
		" AND bucket <= " + strconv.FormatInt(min(hi, readBound), 10) + " ORDER BY series_id, bucket"
	var (
		set          []*series
		cur          *series
		last         uint64
		lastKey      int64
		colID        chnative.Fixed[uint64]
		colKey, colT chnative.Fixed[int64]
		colV         chnative.Fixed[float64]
	)
	result := proto.Results{{Name: "series_id", Data: &colID}, {Name: "bucket", Data: &colKey}, {Name: "last_t", Data: &colT}, {Name: "val", Data: &colV}}
	err = q.s.reader.Select(ctx, query, idsTables(lsets), result, func(n int) error {
		for i, id := range colID.V[:n] {
			key, t, v := colKey.V[i], colT.V[i], colV.V[i]
			if cur == nil || id != last {
				cur = &series{lset: lsets[id], ts: [][]int64{nil}, vs: [][]float64{nil}}
				set = append(set, cur)
				last = id
			} else if n := len(cur.ts[0]); n > 0 && key == lastKey {
				// The same bucket in two parts.
				pt, pv := &cur.ts[0][n-1], &cur.vs[0][n-1]
				switch {
				case r.keep != nil:
					*pv, *pt = r.keep(*pv, v), max(*pt, t)
				case t >= *pt:
					*pv, *pt = v, t
				}
				continue
			}
			lastKey = key
			cur.ts[0], cur.vs[0] = append(cur.ts[0], t), append(cur.vs[0], v)
		}
		return nil
	})
	if err != nil {
		return storage.ErrSeriesSet(classify(fmt.Errorf("clickhouse store: select samples: %w", err)))
	}
	limit := 0
	if hints != nil {
		limit = hints.Limit
	}
	return newSeriesSet(set, limit)
}

// minSamplesPerMinute is the sample density from which the minute rollup is
// read instead of raw samples. Reading a rollup row costs about what two raw
// rows cost on 18.16. Since both are read column by column, at four samples a
// minute the rollup and raw reads take about as long through the engine
// (BenchmarkQueryRange24hScrape15s: sum 1.5 s against 1.2 s, max_over_time
// 2.1 s against 2.3 s); the rollup still reads a quarter of the rows.
const minSamplesPerMinute = 2

// denseEnough tells, from the hourly rollup (cheap: one row per series-hour),
// whether the selected series average minSamplesPerMinute in [mint, maxt].
func (s *Store) denseEnough(ctx context.Context, inSeries string, args []any, mint, maxt int64) (bool, error) {
	hi := maxt
	if hi < math.MaxInt64-time.Hour.Milliseconds() {
		hi += time.Hour.Milliseconds() - 1
	}
	var samples, hours uint64
	err := s.conn.QueryRow(ctx, "SELECT toUInt64(sum(finalizeAggregation(cnt))), count() FROM "+s.t.q(tbl1h)+inSeries+
		" AND bucket >= ? AND bucket <= ?", append(slices.Clone(args), mint, hi)...).Scan(&samples, &hours)
	if err != nil {
		return false, classify(fmt.Errorf("clickhouse store: sample density: %w", err))
	}
	return samples >= hours*60*minSamplesPerMinute, nil
}

func (q *querier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	cond, args := matchersSQL(ms)
	var expr string
	if name == model.MetricNameLabel {
		expr = "metric"
		cond += " AND metric != ''"
	} else {
		expr = "label_values[indexOf(label_names, ?)]"
		args = append([]any{name}, args...)
		cond += " AND has(label_names, ?)"
		args = append(args, name)
	}
	cond += q.s.presenceSQL(q.mint, q.maxt, &args)
	query := "SELECT DISTINCT " + expr + " AS v FROM " + q.s.t.q(tblSeries) + " WHERE " + cond + " ORDER BY v"
	if hints != nil && hints.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", hints.Limit)
	}
	out, err := q.s.strings(ctx, query, args)
	return out, nil, err
}

func (q *querier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	cond, args := matchersSQL(ms)
	cond += q.s.presenceSQL(q.mint, q.maxt, &args)
	query := "SELECT DISTINCT n FROM " + q.s.t.q(tblSeries) + " ARRAY JOIN arrayConcat(if(metric = '', emptyArrayString(), ['__name__']), label_names) AS n WHERE " + cond + " ORDER BY n"
	if hints != nil && hints.Limit > 0 {
		query += fmt.Sprintf(" LIMIT %d", hints.Limit)
	}
	out, err := q.s.strings(ctx, query, args)
	return out, nil, err
}

func (s *Store) strings(ctx context.Context, query string, args []any) ([]string, error) {
	rows, err := s.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: %w", err))
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("clickhouse store: scan: %w", err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: %w", err))
	}
	return out, nil
}

type seriesSet struct {
	set []*series
	i   int
}

// newSeriesSet sorts the series by labels and keeps at most limit (0: all).
func newSeriesSet(set []*series, limit int) storage.SeriesSet {
	slices.SortFunc(set, func(a, b *series) int { return labels.Compare(a.lset, b.lset) })
	if limit > 0 && len(set) > limit {
		set = set[:limit]
	}
	return &seriesSet{set: set, i: -1}
}

func (s *seriesSet) Next() bool {
	s.i++
	return s.i < len(s.set)
}
func (s *seriesSet) At() storage.Series              { return s.set[s.i] }
func (*seriesSet) Err() error                        { return nil }
func (*seriesSet) Warnings() annotations.Annotations { return nil }

// selectRaw reads the raw samples of the series in lsets. ClickHouse 18.16
// cannot read a table in its primary-key order, so "ORDER BY series_id, ts"
// over a day of 10,000 series costs it a full sort (3.2 s against 0.8 s
// without, on the 2-core VM): the rows come unsorted, part by part (each
// part in order), and are grouped and sorted per series here. A resent
// sample that no merge has collapsed yet is kept once: as exact as FINAL.
//
// The series ids go to the server as an external table, and the rows come
// back column by column (chnative): clickhouse-go's row-by-row Scan cost a
// second of client CPU for 14 M rows, four times the server's time. Each
// block's time and value columns are kept as they are decoded; a series'
// runs in them are used in place where they are in time order and apart
// (as rows straight from merged parts are), else copied and sorted. (Arrays
// per series, groupArray, cost 18.16 ten times more to build.)
func (q *querier) selectRaw(ctx context.Context, lsets map[uint64]labels.Labels, mint, maxt int64, hints *storage.SelectHints) storage.SeriesSet {
	// Literals, not arguments: the bounds are integers.
	mint, maxt = max(mint, -readBound), min(maxt, readBound)
	query := "SELECT series_id, ts, value FROM " + q.s.t.q(q.s.samples) + " WHERE series_id IN " + idsTable +
		" AND ts >= " + strconv.FormatInt(mint, 10) + " AND ts <= " + strconv.FormatInt(maxt, 10)
	var (
		colID  chnative.Fixed[uint64]
		colT   chnative.Fixed[int64]
		colV   chnative.Fixed[float64]
		blocks runBlocks
		byID   = make(map[uint64]*runs, len(lsets))
		bufs   []*blockBuf
	)
	next := func() {
		b := getBlockBuf()
		bufs = append(bufs, b)
		colT.V, colV.V = b.ts[:0], b.vs[:0]
	}
	next()
	result := proto.Results{{Name: "series_id", Data: &colID}, {Name: "ts", Data: &colT}, {Name: "value", Data: &colV}}
	err := q.s.reader.Select(ctx, query, idsTables(lsets), result, func(n int) error {
		b := bufs[len(bufs)-1]
		b.ts, b.vs = colT.V, colV.V // grown, if the block was larger
		blocks.add(byID, colID.V[:n], colT.V[:n], colV.V[:n])
		next() // kept: the next block is decoded into another buffer
		return nil
	})
	q.mu.Lock()
	q.bufs = append(q.bufs, bufs...)
	q.mu.Unlock()
	if err != nil {
		return storage.ErrSeriesSet(classify(fmt.Errorf("clickhouse store: select samples: %w", err)))
	}
	set := make([]*series, 0, len(byID))
	for id, rs := range byID {
		ts, vs := blocks.collect(rs)
		set = append(set, &series{lset: lsets[id], ts: ts, vs: vs})
	}
	limit := 0
	if hints != nil {
		limit = hints.Limit
	}
	return newSeriesSet(set, limit)
}

// idsTable names the external table of series ids a read sends.
const idsTable = "greenloop_series_ids"

// idsTables is the external table of the ids of lsets.
func idsTables(lsets map[uint64]labels.Labels) []chnative.Table {
	ids := make(proto.ColUInt64, 0, len(lsets))
	for id := range lsets {
		ids = append(ids, id)
	}
	return []chnative.Table{{Name: idsTable, Columns: []proto.InputColumn{{Name: "series_id", Data: &ids}}}}
}

// readBound clamps the time bounds written into a read's SQL, so that the
// server parses each as an Int64.
const readBound = int64(1) << 62
