package tsdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	ptsdb "github.com/prometheus/prometheus/tsdb"

	"github.com/greenloop/greenloop/ingest"
)

// ErrBackfillHistogram is returned for native histograms, which a backfill does not take.
var ErrBackfillHistogram = errors.New("backfill takes float samples only")

// Backfill returns a store whose appenders write whole blocks into the
// store's directory, as Prometheus' own backfill (promtool tsdb
// create-blocks-from) does, instead of appending to the head: it takes
// samples of any age within the retention, far behind the out-of-order
// window. Each Commit writes one block per BackfillWindow that received
// samples and returns once the TSDB has loaded them, so they are queryable.
// Blocks span the longest block the TSDB compacts to (a tenth of the
// retention, at most 31 days), aligned on multiples of it since the epoch.
// Reads go to the store itself.
//
// Blocks may overlap data the store already has; the TSDB merges them at
// query time and compacts them together later, and a sample given twice (same
// series and timestamp) is read once.
//
// Samples at or after the start of the head (the live, not yet persisted
// data) are appended to the head instead, as any write: a block reaching into
// the head's range would make the TSDB drop the head's older samples when it
// replays its write-ahead log after a restart (it ignores samples older than
// the newest block's end).
func (s *Store) Backfill() ingest.Store { return &backfillStore{Store: s} }

type backfillStore struct {
	*Store
	mu sync.Mutex // one commit at a time: block loads are waited for in turn
}

func (b *backfillStore) Appender(ctx context.Context) storage.Appender {
	return &backfillAppender{s: b, ctx: ctx, windows: map[int64]*windowWriter{}, headStart: b.db.Head().MinTime()}
}

type windowWriter struct {
	w   *ptsdb.BlockWriter
	app storage.Appender
}

// backfillAppender buffers a request's samples in one in-memory head per
// window. Methods it does not override belong to the nil embedded Appender
// and are not used by greenloop's Writer.
type backfillAppender struct {
	storage.Appender
	s       *backfillStore
	ctx     context.Context
	windows map[int64]*windowWriter
	err     error
	// head takes the samples within the head's range; created on first use.
	head      storage.Appender
	headStart int64
}

func (a *backfillAppender) Append(_ storage.SeriesRef, l labels.Labels, t int64, v float64) (storage.SeriesRef, error) {
	if a.err != nil {
		return 0, a.err
	}
	if t >= a.headStart {
		if a.head == nil {
			a.head = a.s.db.Appender(a.ctx)
		}
		return a.head.Append(0, l, t, v)
	}
	win := a.s.maxBlock
	k := t / win
	if t < 0 && t%win != 0 {
		k--
	}
	ww, ok := a.windows[k]
	if !ok {
		w, err := ptsdb.NewBlockWriter(slog.New(slog.DiscardHandler), a.s.dir, win)
		if err != nil {
			a.err = fmt.Errorf("backfill: %w", err)
			return 0, a.err
		}
		ww = &windowWriter{w: w, app: w.Appender(a.ctx)}
		a.windows[k] = ww
	}
	// References are per window's head, so none is handed back.
	if _, err := ww.app.Append(0, l, t, v); err != nil {
		return 0, err
	}
	return 0, nil
}

func (a *backfillAppender) AppendHistogram(storage.SeriesRef, labels.Labels, int64, *histogram.Histogram, *histogram.FloatHistogram) (storage.SeriesRef, error) {
	return 0, ErrBackfillHistogram
}

func (a *backfillAppender) SetOptions(*storage.AppendOptions) {}

func (a *backfillAppender) Commit() error {
	defer a.close()
	if a.err != nil {
		if a.head != nil {
			_ = a.head.Rollback()
		}
		return a.err
	}
	if a.head != nil {
		if err := a.head.Commit(); err != nil {
			return fmt.Errorf("backfill: samples within the head's range: %w", err)
		}
	}
	a.s.mu.Lock()
	defer a.s.mu.Unlock()
	keys := make([]int64, 0, len(a.windows))
	for k := range a.windows {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var ids []ulid.ULID
	for _, k := range keys {
		ww := a.windows[k]
		if err := ww.app.Commit(); err != nil {
			return fmt.Errorf("backfill: %w", err)
		}
		id, err := ww.w.Flush(a.ctx)
		if err != nil {
			if errors.Is(err, ptsdb.ErrNoSeriesAppended) {
				continue
			}
			return fmt.Errorf("backfill: write block for %s: %w", time.UnixMilli(k*a.s.maxBlock).UTC().Format(time.DateOnly), err)
		}
		if id != (ulid.ULID{}) {
			ids = append(ids, id)
		}
	}
	return a.s.waitLoaded(a.ctx, ids)
}

func (a *backfillAppender) Rollback() error {
	a.close()
	if a.head != nil {
		return a.head.Rollback()
	}
	return nil
}

func (a *backfillAppender) close() {
	for _, ww := range a.windows {
		_ = ww.w.Close()
	}
	a.windows = nil
}

// waitLoaded returns once the TSDB serves every block in ids (it reloads its
// directory every BlockReloadInterval, or at the next compaction).
func (s *Store) waitLoaded(ctx context.Context, ids []ulid.ULID) error {
	if len(ids) == 0 {
		return nil
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		loaded := map[ulid.ULID]bool{}
		for _, b := range s.db.Blocks() {
			loaded[b.Meta().ULID] = true
		}
		missing := 0
		for _, id := range ids {
			if !loaded[id] {
				// A block may already have been compacted into another.
				if _, err := os.Stat(filepath.Join(s.dir, id.String())); err == nil {
					missing++
				}
			}
		}
		if missing == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("backfill: %d written block(s) not loaded by the TSDB after 2m", missing)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
