package sitestore

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenloop/greenloop/internal/chsync"
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

// SyncOptions tune a Syncer (interval, timeout, metrics registerer, logger,
// clock). Zero values take the defaults.
type SyncOptions = chsync.Options

// Syncer keeps a Registry in step with a Source: it reads the sites every
// Interval and applies each good read. A failed read keeps the last good
// set in force, counts in greenloop_sites_refresh_errors_total and is
// logged (at most once a minute while it lasts). Skipped rows (invalid, or
// a file site's tenant and id) are logged once while they stay the same,
// and do not make Refresh fail. InForce is the number of ClickHouse sites
// the last good refresh applied (-1 before one).
type Syncer = chsync.Syncer[config.Site]

// NewSyncer returns a Syncer from src to reg; it reads nothing yet.
func NewSyncer(src Source, reg *Registry, o SyncOptions) (*Syncer, error) {
	sites := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "greenloop_sites",
		Help: "Sites in force, by source: the configuration file, or ClickHouse at the last good refresh."}, []string{"source"})
	sites.WithLabelValues(SourceFile).Set(float64(len(reg.file)))
	sites.WithLabelValues(SourceClickHouse).Set(0)
	return chsync.New(chsync.Spec[config.Site]{
		Noun: "sites",
		Load: src.Load,
		Apply: func(ch []config.Site) (int, []error) {
			skipped := reg.Set(ch)
			return len(reg.Sites()) - len(reg.file), skipped
		},
		BadRowMsg:        "site row skipped",
		BadRowLevel:      slog.LevelError,
		LoadedAttrs:      []any{"file_sites", len(reg.file)},
		MetricPrefix:     "greenloop_sites",
		BadRowsHelp:      "Live rows of the ClickHouse site table skipped at the last good refresh (invalid, or a file site's id).",
		InForce:          sites.WithLabelValues(SourceClickHouse),
		InForceCollector: sites,
	}, o)
}
