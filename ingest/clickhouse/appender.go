package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/exemplar"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/metadata"
	"github.com/prometheus/prometheus/storage"
)

// SeriesID is the id of a label set: xxhash64 over its labels sorted by name,
// each written as name 0xff value 0xff. It is stable across processes and
// versions (it is the primary key on disk). Two label sets colliding on 64
// bits would share a series; at a million series the odds are about 1 in 10^7.
func SeriesID(lset labels.Labels) uint64 {
	d := xxhash.New()
	sep := []byte{0xff}
	lset.Range(func(l labels.Label) {
		_, _ = d.WriteString(l.Name)
		_, _ = d.Write(sep)
		_, _ = d.WriteString(l.Value)
		_, _ = d.Write(sep)
	})
	return d.Sum64()
}

type seriesRow struct {
	id     uint64
	metric string
	names  []string
	values []string
}

func newSeriesRow(id uint64, lset labels.Labels) seriesRow {
	r := seriesRow{id: id}
	lset.Range(func(l labels.Label) {
		if l.Name == model.MetricNameLabel {
			r.metric = l.Value
			return
		}
		r.names = append(r.names, l.Name)
		r.values = append(r.values, l.Value)
	})
	return r
}

// appender buffers samples until Commit.
type appender struct {
	s       *Store
	ctx     context.Context
	ids     []uint64
	ts      []int64
	vals    []float64
	series  []seriesRow
	pending map[uint64]struct{} // ids in series (new in this appender)
	done    bool
}

// Appender implements storage.Appendable. Commit returns only after ClickHouse
// accepted every sample of the batch (and its new series); a failure to reach
// it wraps ErrUnavailable. Resending a batch does not double-count it.
func (s *Store) Appender(ctx context.Context) storage.Appender {
	if ctx == nil {
		ctx = context.Background()
	}
	return &appender{s: s, ctx: ctx}
}

func (s *Store) isKnown(id uint64) bool {
	_, ok := s.known.Load(id)
	return ok
}

func (a *appender) Append(ref storage.SeriesRef, lset labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	if a.done {
		return 0, errors.New("clickhouse store: append after commit or rollback")
	}
	id := uint64(ref)
	// A reference is trusted when it names a stored series or one added in this
	// appender; otherwise the label set decides.
	if _, pending := a.pending[id]; id == 0 || !(pending || a.s.isKnown(id)) {
		if lset.IsEmpty() {
			return 0, errors.New("clickhouse store: empty label set")
		}
		id = SeriesID(lset)
		if _, pending := a.pending[id]; !pending && !a.s.isKnown(id) {
			if a.pending == nil {
				a.pending = map[uint64]struct{}{}
			}
			a.pending[id] = struct{}{}
			a.series = append(a.series, newSeriesRow(id, lset))
		}
	}
	a.ids = append(a.ids, id)
	a.ts = append(a.ts, t)
	a.vals = append(a.vals, v)
	return storage.SeriesRef(id), nil
}

func (a *appender) Commit() error {
	if a.done {
		return errors.New("clickhouse store: commit after commit or rollback")
	}
	a.done = true
	if len(a.ids) == 0 {
		return nil
	}
	req := &flushReq{ids: a.ids, ts: a.ts, vals: a.vals, series: a.series, done: make(chan error, 1)}
	select {
	case a.s.reqs <- req:
	case <-a.s.stop:
		return errors.New("clickhouse store: closed")
	case <-a.ctx.Done():
		return fmt.Errorf("clickhouse store: commit: %w", a.ctx.Err())
	}
	select {
	case err := <-req.done:
		return err
	case <-a.ctx.Done():
		// The batch may still land; a resend is idempotent.
		return fmt.Errorf("clickhouse store: commit: %w", a.ctx.Err())
	}
}

func (a *appender) Rollback() error {
	a.done = true
	a.ids, a.ts, a.vals, a.series = nil, nil, nil, nil
	return nil
}

func (*appender) SetOptions(*storage.AppendOptions) {}

// AppendExemplar drops exemplars: the store keeps none.
func (*appender) AppendExemplar(ref storage.SeriesRef, _ labels.Labels, _ exemplar.Exemplar) (storage.SeriesRef, error) {
	return ref, nil
}

func (*appender) AppendHistogram(storage.SeriesRef, labels.Labels, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, ErrHistogramsUnsupported
}

func (*appender) AppendHistogramSTZeroSample(storage.SeriesRef, labels.Labels, int64, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, ErrHistogramsUnsupported
}

// UpdateMetadata ignores metadata: the store keeps none.
func (*appender) UpdateMetadata(ref storage.SeriesRef, _ labels.Labels, _ metadata.Metadata) (storage.SeriesRef, error) {
	return ref, nil
}

// AppendSTZeroSample ignores created-timestamp zero samples (the TSDB's default too).
func (*appender) AppendSTZeroSample(ref storage.SeriesRef, _ labels.Labels, _, _ int64) (storage.SeriesRef, error) {
	return ref, nil
}

// flushReq is one commit waiting for the writer.
type flushReq struct {
	ids    []uint64
	ts     []int64
	vals   []float64
	series []seriesRow
	done   chan error
}

// flusher is the single writer: it gathers the commits that arrive while an
// INSERT is in flight (and up to FlushInterval after the first), sends them as
// one INSERT per table and answers every commit with the outcome.
func (s *Store) flusher() {
	defer s.wg.Done()
	for {
		var first *flushReq
		select {
		case <-s.stop:
			return
		case first = <-s.reqs:
		}
		batch := []*flushReq{first}
		rows := len(first.ids)
		if s.opts.FlushInterval > 0 && rows < s.opts.BatchSize {
			timer := time.NewTimer(s.opts.FlushInterval)
		gather:
			for rows < s.opts.BatchSize {
				select {
				case r := <-s.reqs:
					batch = append(batch, r)
					rows += len(r.ids)
				case <-timer.C:
					break gather
				case <-s.stop:
					break gather
				}
			}
			timer.Stop()
		}
		err := s.write(batch)
		for _, r := range batch {
			r.done <- err
		}
	}
}

// write inserts the batch's new series, then its samples.
func (s *Store) write(batch []*flushReq) error {
	ctx, cancel := context.WithTimeout(context.Background(), s.opts.WriteTimeout)
	// Cancelled a moment after, not at once: clickhouse-go's batch Send
	// watches the context from a goroutine that, when the context ends just
	// as Send returns, may still close the connection after it went back to
	// the pool, failing the next query on it with "use of closed network
	// connection" (clickhouse-go PR #2032). A second later it has long exited.
	defer time.AfterFunc(watchdogGrace, cancel)
	if st := s.insertSettings(); len(st) > 0 {
		ctx = ch.Context(ctx, ch.WithSettings(st))
	}
	var series []seriesRow
	seen := map[uint64]struct{}{}
	for _, r := range batch {
		for _, sr := range r.series {
			if _, dup := seen[sr.id]; !dup && !s.isKnown(sr.id) {
				seen[sr.id] = struct{}{}
				series = append(series, sr)
			}
		}
	}
	start := time.Now()
	if len(series) > 0 {
		if err := s.insertSeries(ctx, series); err != nil {
			return classify(fmt.Errorf("clickhouse store: insert %d series: %w", len(series), err))
		}
		for _, sr := range series {
			s.known.Store(sr.id, struct{}{})
		}
	}
	ids, ts, vals := batch[0].ids, batch[0].ts, batch[0].vals
	if len(batch) > 1 {
		n := 0
		for _, r := range batch {
			n += len(r.ids)
		}
		ids, ts, vals = make([]uint64, 0, n), make([]int64, 0, n), make([]float64, 0, n)
		for _, r := range batch {
			ids, ts, vals = append(ids, r.ids...), append(ts, r.ts...), append(vals, r.vals...)
		}
	}
	for lo := 0; lo < len(ids); lo += s.opts.BatchSize {
		hi := min(lo+s.opts.BatchSize, len(ids))
		if err := s.insertSamples(ctx, ids[lo:hi], ts[lo:hi], vals[lo:hi]); err != nil {
			return classify(fmt.Errorf("clickhouse store: insert %d samples: %w", hi-lo, err))
		}
	}
	s.log.Debug("clickhouse insert", "commits", len(batch), "samples", len(ids), "series", len(series), "took", time.Since(start))
	return nil
}

// watchdogGrace is how long an INSERT's context outlives the INSERT (see write).
const watchdogGrace = time.Second

// insertSettings are the settings of every INSERT.
func (s *Store) insertSettings() ch.Settings {
	st := ch.Settings{}
	if s.opts.Cluster != "" {
		// Return only once every shard has the rows.
		st["insert_distributed_sync"] = 1
	}
	if s.async {
		// The server gathers concurrent INSERTs into one part and answers
		// each once that part is written: acknowledged still means stored.
		st["async_insert"] = 1
		st["wait_for_async_insert"] = 1
	}
	return st
}

func (s *Store) insertSeries(ctx context.Context, rows []seriesRow) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.t.q(tblSeries)+" (series_id, metric, label_names, label_values, created_ms)")
	if err != nil {
		return err
	}
	defer b.Close()
	now := s.now().UnixMilli()
	for _, r := range rows {
		names, values := r.names, r.values
		if names == nil {
			names, values = []string{}, []string{}
		}
		if err := b.Append(r.id, r.metric, names, values, now); err != nil {
			return err
		}
	}
	return b.Send()
}

func (s *Store) insertSamples(ctx context.Context, ids []uint64, ts []int64, vals []float64) error {
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.t.q(s.samples)+" (series_id, ts, value)")
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Column(0).Append(ids); err != nil {
		return err
	}
	if err := b.Column(1).Append(ts); err != nil {
		return err
	}
	if err := b.Column(2).Append(vals); err != nil {
		return err
	}
	return b.Send()
}
