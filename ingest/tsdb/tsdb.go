// Package tsdb is greenloop's embedded series store: the Prometheus TSDB in a
// directory of the server's, behind the ingest.Store interface.
package tsdb

import (
	"context"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"
	ptsdb "github.com/prometheus/prometheus/tsdb"

	"github.com/greenloop/greenloop/ingest"
)

// Options tune the store. Zero fields take the defaults documented on each.
type Options struct {
	// Retention is how long samples are kept; zero means 15 days.
	Retention time.Duration
	// OutOfOrderWindow is how far behind a series' newest sample a late sample is
	// still accepted; zero means 72 hours (an agent's backlog after a long outage).
	// A negative value disables out-of-order ingestion.
	OutOfOrderWindow time.Duration
	// WALCompression compresses the write-ahead log with snappy.
	WALCompression bool
	// Registerer receives the TSDB's own metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger receives the TSDB's logs; nil discards them.
	Logger *slog.Logger
}

// DefaultOutOfOrderWindow is the default late-data window.
const DefaultOutOfOrderWindow = 72 * time.Hour

// Store is an open embedded TSDB.
type Store struct {
	db  *ptsdb.DB
	dir string
	// maxBlock is the longest block the TSDB compacts to (ms); backfills
	// write blocks of that span.
	maxBlock int64
	// symbols keeps the symbol offsets of blocks read (symbols.go).
	symbols *symbolCache
}

var _ ingest.Store = (*Store)(nil)

// Open opens (creating if needed) the store in dir, replaying its write-ahead log.
func Open(dir string, o Options) (*Store, error) {
	opts := ptsdb.DefaultOptions()
	if o.Retention > 0 {
		opts.RetentionDuration = o.Retention.Milliseconds()
	}
	// The library's default keeps every block at 2 h, so a day's query reads a
	// dozen blocks and merges each series across them. Like Prometheus' own
	// server, compact up to a tenth of the retention (at most 31 days).
	opts.MaxBlockDuration = min(opts.RetentionDuration/10, (31 * 24 * time.Hour).Milliseconds())
	if opts.MaxBlockDuration < opts.MinBlockDuration {
		opts.MaxBlockDuration = opts.MinBlockDuration
	}
	switch {
	case o.OutOfOrderWindow == 0:
		opts.OutOfOrderTimeWindow = DefaultOutOfOrderWindow.Milliseconds()
	case o.OutOfOrderWindow > 0:
		opts.OutOfOrderTimeWindow = o.OutOfOrderWindow.Milliseconds()
	default:
		opts.OutOfOrderTimeWindow = 0
	}
	if o.WALCompression {
		opts.WALCompression = "snappy"
	}
	// Blocks written by a backfill are served once the TSDB reloads its
	// directory; the library's minute is long for an officer waiting on an import.
	opts.BlockReloadInterval = 2 * time.Second
	// Series of blocks on disk are read with a faster symbol lookup (symbols.go).
	symbols := newSymbolCache()
	opts.BlockChunkQuerierFunc = symbols.blockChunkQuerier
	opts.BlockQuerierFunc = symbols.blockQuerier
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	db, err := ptsdb.Open(dir, logger, o.Registerer, opts, nil)
	if err != nil {
		return nil, fmt.Errorf("open tsdb in %s: %w", dir, err)
	}
	return &Store{db: db, dir: dir, maxBlock: opts.MaxBlockDuration, symbols: symbols}, nil
}

// Appender implements storage.Appendable. Commit writes the batch to the WAL
// before returning, so a committed batch survives a crash of the process.
func (s *Store) Appender(ctx context.Context) storage.Appender { return s.db.Appender(ctx) }

// Querier implements storage.Queryable.
func (s *Store) Querier(mint, maxt int64) (storage.Querier, error) { return s.db.Querier(mint, maxt) }

// DB exposes the underlying TSDB for benchmarks and maintenance tools.
func (s *Store) DB() *ptsdb.DB { return s.db }

// Stats implements ingest.Store.
func (s *Store) Stats(ctx context.Context) (ingest.Stats, error) {
	h := s.db.Head()
	st := ingest.Stats{Series: h.NumSeries()}
	if h.NumSeries() > 0 {
		st.MinTime, st.MaxTime = h.MinTime(), h.MaxTime()
	}
	for _, b := range s.db.Blocks() {
		m := b.Meta()
		if st.MinTime == 0 || m.MinTime < st.MinTime {
			st.MinTime = m.MinTime
		}
		if m.MaxTime > st.MaxTime {
			st.MaxTime = m.MaxTime
		}
	}
	err := filepath.WalkDir(s.dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // files come and go during compaction
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !d.IsDir() {
			if info, err := d.Info(); err == nil {
				st.DiskBytes += info.Size()
			}
		}
		return nil
	})
	return st, err
}

// Compact compacts the head into blocks where it can (used by benchmarks to measure bytes on disk).
func (s *Store) Compact(ctx context.Context) error { return s.db.Compact(ctx) }

// Close flushes and closes the store.
func (s *Store) Close() error { return s.db.Close() }
