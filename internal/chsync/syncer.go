// Package chsync holds what greenloop's ClickHouse-backed registries (tokens
// in web/tokenstore, sites in web/sitestore, the report tables of
// accounting/report/chstore) have in common: a Syncer that keeps an
// in-memory set in step with a table, the versions and batched inserts of
// a ReplacingMergeTree keyed table, and the choice of a table's engine
// beside the series store's samples table.
package chsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Options tune a Syncer. Zero values take the defaults.
type Options struct {
	// Interval between refreshes; default 10s.
	Interval time.Duration
	// Timeout bounds one refresh; default 5s, at most Interval.
	Timeout time.Duration
	// Registerer takes the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Logger; nil discards.
	Logger *slog.Logger
	// Clock for the last-success metric and the log throttle; nil is time.Now.
	Clock func() time.Time
}

// Spec says what a Syncer syncs, how, and under which names it logs and
// counts.
type Spec[T any] struct {
	// Noun names the items in logs and errors, plural: "tokens", "sites".
	Noun string
	// Load reads the items; a row that cannot be an item is left out and
	// reported in bad; err is for a failed read only.
	Load func(ctx context.Context) (items []T, bad []error, err error)
	// Apply puts a good read in force and returns how many items are in
	// force from it, and the items it skipped in turn (counted and logged
	// as bad rows).
	Apply func(items []T) (inForce int, skipped []error)
	// BadRowMsg is the log message of a bad row; BadRowLevel its level.
	BadRowMsg   string
	BadRowLevel slog.Level
	// LoadedAttrs are logged with the "loaded" message besides the count.
	LoadedAttrs []any
	// MetricPrefix names the metrics: MetricPrefix_refresh_errors_total,
	// MetricPrefix_bad_rows, MetricPrefix_last_refresh_timestamp_seconds.
	MetricPrefix string
	// BadRowsHelp is the help of MetricPrefix_bad_rows.
	BadRowsHelp string
	// InForce is set to Apply's count after each good read; InForceCollector
	// (InForce itself, or the vector it belongs to) is registered with the
	// others.
	InForce          prometheus.Gauge
	InForceCollector prometheus.Collector
}

// Syncer keeps a set in step with a table: it reads it every Interval and
// applies each good read. A failed read keeps the last good set in force,
// counts in the refresh-errors counter and is logged (at most once a minute
// while it lasts); bad rows are logged once while they stay the same.
type Syncer[T any] struct {
	sp Spec[T]
	o  Options

	errors  prometheus.Counter
	badRows prometheus.Gauge
	lastOK  prometheus.Gauge

	// refreshing serialises Refresh (the ticker's and others'), so that an
	// older read is never applied after a newer one.
	refreshing sync.Mutex
	mu         sync.Mutex
	failing    bool
	lastLog    time.Time
	lastBad    []string // the bad-row messages last logged
	lastCount  int
}

// New returns a Syncer of sp; it reads nothing yet. It registers the
// metrics on o.Registerer, if any, and fails if that does.
func New[T any](sp Spec[T], o Options) (*Syncer[T], error) {
	if sp.Load == nil || sp.Apply == nil || sp.InForce == nil {
		return nil, fmt.Errorf("%s syncer: Load, Apply and InForce are required", sp.Noun)
	}
	if o.Interval <= 0 {
		o.Interval = 10 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	o.Timeout = min(o.Timeout, o.Interval)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if sp.InForceCollector == nil {
		sp.InForceCollector = sp.InForce
	}
	s := &Syncer[T]{sp: sp, o: o, lastCount: -1,
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: sp.MetricPrefix + "_refresh_errors_total",
			Help: "Refreshes of the " + sp.Noun + " from ClickHouse that failed; the last good set stayed in force."}),
		badRows: prometheus.NewGauge(prometheus.GaugeOpts{Name: sp.MetricPrefix + "_bad_rows", Help: sp.BadRowsHelp}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: sp.MetricPrefix + "_last_refresh_timestamp_seconds",
			Help: "When the " + sp.Noun + " were last read from ClickHouse successfully, in Unix seconds."}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{s.errors, sp.InForceCollector, s.badRows, s.lastOK} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("%s syncer metrics: %w", sp.Noun, err)
			}
		}
	}
	return s, nil
}

// Refresh reads the items once and applies them; on error nothing changes.
// Bad rows are skipped, logged once while they stay the same, and do not
// make it fail.
func (s *Syncer[T]) Refresh(ctx context.Context) error {
	s.refreshing.Lock()
	defer s.refreshing.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	items, bad, err := s.sp.Load(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Clock()
	if err != nil {
		s.errors.Inc()
		if !s.failing || now.Sub(s.lastLog) >= time.Minute {
			s.o.Logger.ErrorContext(ctx, "refreshing "+s.sp.Noun+" from ClickHouse failed; the last good set stays in force", "err", err)
			s.lastLog = now
		}
		s.failing = true
		return fmt.Errorf("refresh %s: %w", s.sp.Noun, err)
	}
	n, skipped := s.sp.Apply(items)
	bad = append(bad, skipped...)
	s.sp.InForce.Set(float64(n))
	s.badRows.Set(float64(len(bad)))
	s.lastOK.Set(float64(now.UnixNano()) / 1e9)
	if s.failing {
		s.o.Logger.InfoContext(ctx, s.sp.Noun+" refreshed from ClickHouse again", s.sp.Noun, n)
		s.failing = false
	} else if n != s.lastCount {
		s.o.Logger.InfoContext(ctx, s.sp.Noun+" loaded from ClickHouse", append([]any{s.sp.Noun, n}, s.sp.LoadedAttrs...)...)
	}
	s.lastCount = n
	msgs := make([]string, len(bad))
	for i, e := range bad {
		msgs[i] = e.Error()
	}
	if !slices.Equal(msgs, s.lastBad) {
		for _, m := range msgs {
			s.o.Logger.Log(ctx, s.sp.BadRowLevel, s.sp.BadRowMsg, "err", m)
		}
		s.lastBad = msgs
	}
	return nil
}

// InForce is the count the last good refresh applied (-1 before one).
func (s *Syncer[T]) InForce() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastCount
}

// Run refreshes every Interval until ctx ends. The first refresh is the
// caller's (Refresh at start, which should fail the start).
func (s *Syncer[T]) Run(ctx context.Context) {
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Refresh(ctx); err != nil && errors.Is(err, context.Canceled) {
				return
			}
		}
	}
}
