package tokenstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenloop/greenloop/web"
)

// Source is where a Syncer reads the tokens: a *Store.
type Source interface {
	Load(ctx context.Context) (toks []web.Token, bad []error, err error)
}

// SyncOptions tune a Syncer. Zero values take the defaults.
type SyncOptions struct {
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

// Syncer keeps a web.Server's tokens in step with a Source: it reads them
// every Interval and hands each good read to apply (web.Server.SetTokens).
// A failed read keeps the last good set in force, counts in
// greenloop_auth_tokens_refresh_errors_total and is logged (at most once a
// minute while it lasts).
type Syncer struct {
	src   Source
	apply func([]web.Token)
	o     SyncOptions

	errors  prometheus.Counter
	tokens  prometheus.Gauge
	badRows prometheus.Gauge
	lastOK  prometheus.Gauge

	// refreshing serialises Refresh (the ticker's and SIGHUP's), so that an
	// older read is never applied after a newer one.
	refreshing sync.Mutex
	mu         sync.Mutex
	failing    bool
	lastLog    time.Time
	lastBad    []string // the bad-row messages last logged
	lastCount  int
}

// NewSyncer returns a Syncer from src to apply; it reads nothing yet.
func NewSyncer(src Source, apply func([]web.Token), o SyncOptions) (*Syncer, error) {
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
	s := &Syncer{src: src, apply: apply, o: o, lastCount: -1,
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "greenloop_auth_tokens_refresh_errors_total",
			Help: "Refreshes of the tokens from ClickHouse that failed; the last good set stayed in force."}),
		tokens: prometheus.NewGauge(prometheus.GaugeOpts{Name: "greenloop_auth_tokens",
			Help: "Live tokens in force, from the last good refresh from ClickHouse."}),
		badRows: prometheus.NewGauge(prometheus.GaugeOpts{Name: "greenloop_auth_tokens_bad_rows",
			Help: "Live rows of the ClickHouse token table skipped at the last good refresh (unknown role, bad hash, ...)."}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "greenloop_auth_tokens_last_refresh_timestamp_seconds",
			Help: "When the tokens were last read from ClickHouse successfully, in Unix seconds."}),
	}
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{s.errors, s.tokens, s.badRows, s.lastOK} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("token syncer metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Refresh reads the tokens once and applies them; on error nothing changes.
// Bad rows are skipped, logged once while they stay the same, and do not
// make it fail.
func (s *Syncer) Refresh(ctx context.Context) error {
	s.refreshing.Lock()
	defer s.refreshing.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	toks, bad, err := s.src.Load(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Clock()
	if err != nil {
		s.errors.Inc()
		if !s.failing || now.Sub(s.lastLog) >= time.Minute {
			s.o.Logger.ErrorContext(ctx, "refreshing tokens from ClickHouse failed; the last good set stays in force", "err", err)
			s.lastLog = now
		}
		s.failing = true
		return fmt.Errorf("refresh tokens: %w", err)
	}
	s.apply(toks)
	s.tokens.Set(float64(len(toks)))
	s.badRows.Set(float64(len(bad)))
	s.lastOK.Set(float64(now.UnixNano()) / 1e9)
	if s.failing {
		s.o.Logger.InfoContext(ctx, "tokens refreshed from ClickHouse again", "tokens", len(toks))
		s.failing = false
	} else if len(toks) != s.lastCount {
		s.o.Logger.InfoContext(ctx, "tokens loaded from ClickHouse", "tokens", len(toks))
	}
	s.lastCount = len(toks)
	msgs := make([]string, len(bad))
	for i, e := range bad {
		msgs[i] = e.Error()
	}
	if !slices.Equal(msgs, s.lastBad) {
		for _, m := range msgs {
			s.o.Logger.WarnContext(ctx, "bad token row skipped", "err", m)
		}
		s.lastBad = msgs
	}
	return nil
}

// InForce is the number of tokens the last good refresh applied (-1 before one).
func (s *Syncer) InForce() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastCount
}

// Run refreshes every Interval until ctx ends. The first refresh is the
// caller's (Refresh at start, which should fail the start).
func (s *Syncer) Run(ctx context.Context) {
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
