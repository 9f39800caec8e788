package sitestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenloop/greenloop/internal/config"
)

// The sources of a site in force.
const (
	SourceFile       = "file"
	SourceClickHouse = "clickhouse"
)

// Registry holds the sites in force: the configuration file's, then those
// of ClickHouse last applied (Set), as one immutable snapshot that readers
// take without locking at every request. The zero Registry is not usable;
// NewRegistry makes one.
type Registry struct {
	file []config.Site
	cur  atomic.Pointer[snapshot]
}

type snapshot struct {
	all []config.Site
	// fromCH are the (tenant, id) of all that came from ClickHouse.
	fromCH map[[2]string]bool
}

// NewRegistry returns a registry of the file's sites alone.
func NewRegistry(file []config.Site) *Registry {
	r := &Registry{file: slices.Clip(file)}
	r.cur.Store(&snapshot{all: r.file})
	return r
}

// Sites returns the sites in force, the file's first. The slice is shared:
// callers must not modify it.
func (r *Registry) Sites() []config.Site { return r.cur.Load().all }

// Source says where tenant's site id in force comes from: SourceFile,
// SourceClickHouse, or "" when none is in force.
func (r *Registry) Source(tenant, id string) string {
	snap := r.cur.Load()
	if snap.fromCH[[2]string{tenant, id}] {
		return SourceClickHouse
	}
	for _, s := range r.file {
		if s.ID == id && s.SiteTenant() == tenant {
			return SourceFile
		}
	}
	return ""
}

// Set puts the file's sites and ch (the ClickHouse sites, as Store.Load
// reads them) in force. A site of ch whose tenant and id are a file site's,
// or another of ch's, is left out and reported in skipped.
func (r *Registry) Set(ch []config.Site) (skipped []error) {
	all := slices.Clone(r.file)
	from := make(map[[2]string]bool, len(ch))
	taken := make(map[[2]string]bool, len(all)+len(ch))
	for _, s := range r.file {
		taken[[2]string{s.SiteTenant(), s.ID}] = true
	}
	for _, s := range ch {
		k := [2]string{s.SiteTenant(), s.ID}
		if taken[k] {
			skipped = append(skipped, fmt.Errorf("ClickHouse site %q of tenant %q skipped: the tenant has a site of that id already", s.ID, k[0]))
			continue
		}
		taken[k], from[k] = true, true
		all = append(all, s)
	}
	r.cur.Store(&snapshot{all: slices.Clip(all), fromCH: from})
	return skipped
}

// Source is where a Syncer reads the sites of ClickHouse: a *Store.
type Source interface {
	Load(ctx context.Context) (sites []config.Site, bad []error, err error)
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

// Syncer keeps a Registry in step with a Source: it reads the sites every
// Interval and applies each good read. A failed read keeps the last good
// set in force, counts in greenloop_sites_refresh_errors_total and is
// logged (at most once a minute while it lasts).
type Syncer struct {
	src Source
	reg *Registry
	o   SyncOptions

	errors  prometheus.Counter
	sites   *prometheus.GaugeVec
	badRows prometheus.Gauge
	lastOK  prometheus.Gauge

	// refreshing serialises Refresh (the ticker's and the API's), so that
	// an older read is never applied after a newer one.
	refreshing sync.Mutex
	mu         sync.Mutex
	failing    bool
	lastLog    time.Time
	lastBad    []string // the skipped-row messages last logged
	lastCount  int
}

// NewSyncer returns a Syncer from src to reg; it reads nothing yet.
func NewSyncer(src Source, reg *Registry, o SyncOptions) (*Syncer, error) {
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
	s := &Syncer{src: src, reg: reg, o: o, lastCount: -1,
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "greenloop_sites_refresh_errors_total",
			Help: "Refreshes of the sites from ClickHouse that failed; the last good set stayed in force."}),
		sites: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "greenloop_sites",
			Help: "Sites in force, by source: the configuration file, or ClickHouse at the last good refresh."}, []string{"source"}),
		badRows: prometheus.NewGauge(prometheus.GaugeOpts{Name: "greenloop_sites_bad_rows",
			Help: "Live rows of the ClickHouse site table skipped at the last good refresh (invalid, or a file site's id)."}),
		lastOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "greenloop_sites_last_refresh_timestamp_seconds",
			Help: "When the sites were last read from ClickHouse successfully, in Unix seconds."}),
	}
	s.sites.WithLabelValues(SourceFile).Set(float64(len(reg.file)))
	s.sites.WithLabelValues(SourceClickHouse).Set(0)
	if o.Registerer != nil {
		for _, c := range []prometheus.Collector{s.errors, s.sites, s.badRows, s.lastOK} {
			if err := o.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("site syncer metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Refresh reads the sites once and applies them; on error nothing changes.
// Skipped rows are logged once while they stay the same, and do not make
// it fail.
func (s *Syncer) Refresh(ctx context.Context) error {
	s.refreshing.Lock()
	defer s.refreshing.Unlock()
	ctx, cancel := context.WithTimeout(ctx, s.o.Timeout)
	defer cancel()
	sites, bad, err := s.src.Load(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.o.Clock()
	if err != nil {
		s.errors.Inc()
		if !s.failing || now.Sub(s.lastLog) >= time.Minute {
			s.o.Logger.ErrorContext(ctx, "refreshing sites from ClickHouse failed; the last good set stays in force", "err", err)
			s.lastLog = now
		}
		s.failing = true
		return fmt.Errorf("refresh sites: %w", err)
	}
	bad = append(bad, s.reg.Set(sites)...)
	n := len(s.reg.Sites()) - len(s.reg.file)
	s.sites.WithLabelValues(SourceClickHouse).Set(float64(n))
	s.badRows.Set(float64(len(bad)))
	s.lastOK.Set(float64(now.UnixNano()) / 1e9)
	if s.failing {
		s.o.Logger.InfoContext(ctx, "sites refreshed from ClickHouse again", "sites", n)
		s.failing = false
	} else if n != s.lastCount {
		s.o.Logger.InfoContext(ctx, "sites loaded from ClickHouse", "sites", n, "file_sites", len(s.reg.file))
	}
	s.lastCount = n
	msgs := make([]string, len(bad))
	for i, e := range bad {
		msgs[i] = e.Error()
	}
	if !slices.Equal(msgs, s.lastBad) {
		for _, m := range msgs {
			s.o.Logger.ErrorContext(ctx, "site row skipped", "err", m)
		}
		s.lastBad = msgs
	}
	return nil
}

// InForce is the number of ClickHouse sites the last good refresh applied
// (-1 before one).
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
