package ingest

import (
	"context"
	"math"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

// LateWrites records which past time ranges received samples after they had
// settled, so that a cache of query results over those ranges can tell when
// it has gone stale. A sample is late when its timestamp is older than the
// wall clock minus the settle time; the time axis is divided into buckets, and
// every commit of late samples stamps the buckets it touched with a new
// sequence number.
//
// A cache takes Seq() before it evaluates a query, and its result stays valid
// for as long as Changed(mint, maxt, seq) is false for the data range the
// query read. Writes newer than the settle time are not recorded: callers only
// cache results over ranges that have settled.
type LateWrites struct {
	settle time.Duration
	bucket int64 // ms
	now    func() time.Time

	mu      sync.Mutex
	seq     uint64
	buckets map[int64]uint64 // bucket index → seq of its last late commit
	// oldest is the seq below which the map was pruned: a cache entry taken
	// before it is treated as changed.
	oldest uint64
}

// maxLateBuckets bounds the tracker's memory; when exceeded, the map is
// cleared and every earlier result counts as stale.
const maxLateBuckets = 1 << 16

// NewLateWrites returns a tracker for samples older than now−settle, in
// buckets of the given width (a zero width means one hour). now nil means time.Now.
func NewLateWrites(settle, bucket time.Duration, now func() time.Time) *LateWrites {
	if bucket <= 0 {
		bucket = time.Hour
	}
	if now == nil {
		now = time.Now
	}
	return &LateWrites{settle: settle, bucket: bucket.Milliseconds(), now: now, buckets: map[int64]uint64{}, seq: 1}
}

// Settle is the age after which a sample counts as late.
func (l *LateWrites) Settle() time.Duration { return l.settle }

// Horizon is the timestamp (ms) before which a sample written now is late.
func (l *LateWrites) Horizon() int64 { return l.now().Add(-l.settle).UnixMilli() }

// Seq returns the current sequence number: every later Record has a greater one.
func (l *LateWrites) Seq() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.seq
}

// Record notes a commit of late samples with timestamps within [mint, maxt] ms.
func (l *LateWrites) Record(mint, maxt int64) {
	if mint > maxt {
		return
	}
	lo, hi := floorDiv(mint, l.bucket), floorDiv(maxt, l.bucket)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	if hi-lo+1+int64(len(l.buckets)) > maxLateBuckets {
		clear(l.buckets)
		l.oldest = l.seq
		return
	}
	for b := lo; b <= hi; b++ {
		l.buckets[b] = l.seq
	}
}

// Changed reports whether a late commit touched [mint, maxt] ms after seq was taken.
func (l *LateWrites) Changed(mint, maxt int64, seq uint64) bool {
	if mint > maxt {
		return false
	}
	lo, hi := floorDiv(mint, l.bucket), floorDiv(maxt, l.bucket)
	l.mu.Lock()
	defer l.mu.Unlock()
	if seq < l.oldest {
		return true
	}
	if hi-lo > int64(len(l.buckets)) {
		for b, s := range l.buckets {
			if b >= lo && b <= hi && s > seq {
				return true
			}
		}
		return false
	}
	for b := lo; b <= hi; b++ {
		if l.buckets[b] > seq {
			return true
		}
	}
	return false
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

// TrackLate wraps s so that every committed late sample is recorded in l.
func TrackLate(s Store, l *LateWrites) Store {
	ls := &lateStore{Store: s, late: l}
	if cq, ok := s.(storage.ChunkQueryable); ok {
		return &lateChunkStore{lateStore: ls, cq: cq}
	}
	return ls
}

// lateChunkStore keeps the wrapped store's ChunkQuerier visible.
type lateChunkStore struct {
	*lateStore
	cq storage.ChunkQueryable
}

func (s *lateChunkStore) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	return s.cq.ChunkQuerier(mint, maxt)
}

type lateStore struct {
	Store
	late *LateWrites
}

func (s *lateStore) Appender(ctx context.Context) storage.Appender {
	return &lateAppender{Appender: s.Store.Appender(ctx), late: s.late, horizon: s.late.Horizon(), mint: math.MaxInt64, maxt: math.MinInt64}
}

type lateAppender struct {
	storage.Appender
	late       *LateWrites
	horizon    int64
	mint, maxt int64
}

func (a *lateAppender) note(t int64) {
	if t < a.horizon {
		a.mint = min(a.mint, t)
		a.maxt = max(a.maxt, t)
	}
}

func (a *lateAppender) Append(ref storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	ref, err := a.Appender.Append(ref, l, t, v)
	if err == nil {
		a.note(t)
	}
	return ref, err
}

func (a *lateAppender) AppendHistogram(ref storage.SeriesRef, l labels.Labels, t int64, h *histogram.Histogram, fh *histogram.FloatHistogram) (storage.SeriesRef, error) {
	ref, err := a.Appender.AppendHistogram(ref, l, t, h, fh)
	if err == nil {
		a.note(t)
	}
	return ref, err
}

func (a *lateAppender) Commit() error {
	// Record before and after: a reader that evaluated between the samples
	// becoming visible and the record would otherwise keep a stale result.
	late := a.mint <= a.maxt
	if late {
		a.late.Record(a.mint, a.maxt)
	}
	err := a.Appender.Commit()
	if late {
		a.late.Record(a.mint, a.maxt)
	}
	return err
}
