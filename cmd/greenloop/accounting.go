package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/labstack/echo/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/accounting/carbon/forecast"
	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/accounting/report/chstore"
	"github.com/greenloop/greenloop/accounting/service"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/web"
	"github.com/greenloop/greenloop/web/accountingapi"
)

// reportDirs are where the EU report's operator entries and frozen
// snapshots live, under the data directory (the TSDB ignores them).
func reportDirs(cfg config.Server) (inputs, snapshots string) {
	return filepath.Join(cfg.DataDir, "reports", "inputs"), filepath.Join(cfg.DataDir, "reports", "snapshots")
}

// newAccountant builds the accounting over store for the sites; where
// several providers have an hour's intensity, the configuration's order wins
// (after imports through the API).
func newAccountant(cfg config.Server, store storage.Queryable, sites []config.Site, log *slog.Logger) *service.Accountant {
	return accountantFrom(cfg, store, staticSites(sites), log)
}

// staticSites is a site source that always answers sites.
func staticSites(sites []config.Site) func() []config.Site {
	return func() []config.Site { return sites }
}

// accountantFrom is newAccountant over the sites in force, read from sites
// at each request.
func accountantFrom(cfg config.Server, store storage.Queryable, sites func() []config.Site, log *slog.Logger) *service.Accountant {
	var names []string
	for _, p := range cfg.Carbon.Providers {
		if !slices.Contains(names, p.Type) {
			names = append(names, p.Type)
		}
	}
	o := service.Options{Store: store, SiteSource: sites, MultiTenant: cfg.Auth.Enabled(), Providers: names, Logger: log}
	// The embedded store keeps hourly rollups (startRollups); ClickHouse
	// keeps hourly group sums (startRollups, on any server sharing the
	// database) and its own hourly rollup table, read in SQL.
	if chs, ok := store.(*clickhouse.Store); ok && cfg.Storage.Backend == "clickhouse" {
		e := service.ClickHouseEnergy{Store: chs}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if eg, err := chs.EnergyGroups(ctx); err != nil {
			log.Warn("energy group sums unavailable; long reports read the hourly rollup table", "err", err)
		} else {
			e.Groups = eg
		}
		cancel()
		o.Energy = e
	} else {
		o.Rollups = cfg.Storage.Backend != "clickhouse"
	}
	return service.New(o)
}

// newReportService opens the EU report's stores: with the ClickHouse
// backend, tables in its database (st is the opened *clickhouse.Store), so
// that every server sharing it answers alike; otherwise files under the data
// directory. The returned function releases what it opened.
func newReportService(ctx context.Context, cfg config.Server, st ingest.Store, log *slog.Logger) (*report.Service, func() error, error) {
	if cfg.Storage.Backend == "clickhouse" {
		chs, ok := st.(*clickhouse.Store)
		if !ok {
			return nil, nil, fmt.Errorf("report stores: storage.backend clickhouse but the store is %T", st)
		}
		conn, closeConn, err := reportConn(ctx, cfg, chs, log)
		if err != nil {
			return nil, nil, err
		}
		inputs, err := chstore.NewInputStore(ctx, conn, chs.Database(), nil, nil, log)
		if err != nil {
			closeConn()
			return nil, nil, err
		}
		snaps, err := chstore.NewSnapshotStore(ctx, conn, chs.Database(), log)
		if err != nil {
			closeConn()
			return nil, nil, err
		}
		return &report.Service{Inputs: inputs, Snapshots: snaps, Log: log}, closeConn, nil
	}
	in, snap := reportDirs(cfg)
	inputs, err := report.NewFileInputStore(in, nil, nil, log)
	if err != nil {
		return nil, nil, fmt.Errorf("report inputs store: %w", err)
	}
	snaps, err := report.NewFileSnapshotStore(snap, log)
	if err != nil {
		return nil, nil, fmt.Errorf("report snapshot store: %w", err)
	}
	return &report.Service{Inputs: inputs, Snapshots: snaps, Log: log}, func() error { return nil }, nil
}

// reportConn is the connection of the report tables: the store's own on one
// server; on a cluster, one to the first shard only, where those small
// tables live, so that a read sees every write that returned (the store's
// connection fails over between shards, which hold different data). Where
// the first shard has replicas, the tables are created on each (chstore
// makes them ReplicatedMergeTree beside the replicated samples) and the
// connection fails over between them in the cluster's order, so that every
// greenloop server reads and writes the same replica while it is up.
func reportConn(ctx context.Context, cfg config.Server, st *clickhouse.Store, log *slog.Logger) (driver.Conn, func() error, error) {
	c := cfg.Storage.ClickHouse
	if c.Cluster == "" {
		return st.Conn(), func() error { return nil }, nil
	}
	shards, err := st.ShardReplicas(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("report stores: %w", err)
	}
	first := shards[0]
	open := func(addrs []string) (driver.Conn, error) { return openSideConn(cfg, addrs, "report stores") }
	if len(first) > 1 {
		for _, a := range first {
			one, err := open([]string{a})
			if err != nil {
				return nil, nil, err
			}
			_, errIn := chstore.NewInputStore(ctx, one, st.Database(), nil, nil, log)
			_, errSnap := chstore.NewSnapshotStore(ctx, one, st.Database(), log)
			one.Close()
			if err := errors.Join(errIn, errSnap); err != nil {
				return nil, nil, fmt.Errorf("report stores on replica %s: %w", a, err)
			}
		}
	}
	conn, err := open(first)
	if err != nil {
		return nil, nil, err
	}
	return conn, conn.Close, nil
}

// reportEnergyMemo gives each EU report request (GET and POST under
// /api/v1/reports/eu, not the snapshot reads) a service.EnergyMemo of its own.
func reportEnergyMemo(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if p := c.Path(); p == accountingapi.PathReportEU || (p == accountingapi.PathReportSnapshots && c.Request().Method == http.MethodPost) {
			ctx, _ := service.WithEnergyMemo(c.Request().Context())
			c.SetRequest(c.Request().WithContext(ctx))
		}
		return next(c)
	}
}

// storeAges are the sample ages the configured store takes, as openStore
// sets its writers: newer than window through the live writer, older ones
// up to retention through the backfill.
func storeAges(cfg config.Server) (window, retention time.Duration) {
	if cfg.Storage.Backend == "clickhouse" {
		retention = cfg.Storage.ClickHouse.Retention.D()
		if retention <= 0 {
			retention = 15 * 24 * time.Hour // the backend's default
		}
		return max(retention-time.Hour, time.Hour), retention
	}
	return cfg.Storage.TSDB.OutOfOrderWindow.D(), cfg.Storage.TSDB.Retention.D()
}

// newForecastOverlay holds the latest carbon-intensity forecasts for the
// query API (web.Deps.Overlay): up to carbon.forecast_horizon ahead, and
// for two carbon.interval behind, until the intensity service has stored
// each point that became due. Its gauges go to reg.
func newForecastOverlay(cfg config.Server, reg prometheus.Registerer, log *slog.Logger) *forecast.Overlay {
	interval, horizon := cfg.Carbon.Interval.D(), cfg.Carbon.ForecastHorizon.D()
	if interval <= 0 {
		interval = 15 * time.Minute // service.NewIntensityService's defaults
	}
	if horizon <= 0 {
		horizon = 24 * time.Hour
	}
	o := forecast.New(forecast.Options{History: 2 * interval, Horizon: horizon})
	if err := reg.Register(o); err != nil {
		log.Warn("carbon forecast gauges not registered", "err", err)
	}
	return o
}

// startAccounting mounts the accounting API (emissions, KPIs,
// carbon-intensity import, EU report) on srv and starts the carbon-intensity
// service, which runs the configured providers until stop is called and
// hands their forecasts to forecasts (the overlay srv serves; nil: none). A
// provider that cannot be built (missing secret file, bad CSV) fails the start.
func startAccounting(ctx context.Context, srv *web.Server, log *slog.Logger, cfg config.Server, store ingest.Store,
	writer, backfill *ingest.Writer, siteSource func() []config.Site, forecasts *forecast.Overlay) (stop func(), err error) {
	start := time.Now()
	// The providers are built for the zones of the sites in force now; the
	// intensity service then makes them follow the sites (IntensityOptions.Sites).
	sources, err := service.BuildSources(cfg.Carbon, siteSource(), providers.SystemClock{}, log.With("component", "carbon"))
	if err != nil {
		return nil, fmt.Errorf("carbon-intensity providers:\n%w", err)
	}
	acct := accountantFrom(cfg, store, siteSource, log.With("component", "accounting"))
	reports, closeReports, err := newReportService(ctx, cfg, store, log.With("component", "report"))
	if err != nil {
		return nil, err
	}
	acct.UseReports(reports) // the CUE of /api/v1/kpis adds the Scope 1 entered for the report
	defer func() {
		if err != nil {
			closeReports()
		}
	}()
	window, retention := storeAges(cfg)
	var bf service.SeriesWriter // a nil *ingest.Writer must stay a nil interface
	if backfill != nil {
		bf = backfill
	}
	// An EU report (preview or freeze) reads the site's meters for several
	// figures: each request reads each meter once (service.EnergyMemo).
	srv.Echo().Use(reportEnergyMemo)
	accountingapi.Register(srv.Echo(), accountingapi.Deps{
		Accountant:    acct,
		Writer:        writer,
		Backfill:      bf,
		Window:        window,
		Retention:     retention,
		MaxFutureSkew: cfg.Ingest.MaxFutureSkew.D(),
		MaxBodyBytes:  int64(cfg.Ingest.MaxBodyBytes),
		Reports:       &accountingapi.Reports{Service: reports},
		Logger:        log.With("component", "accounting-api"),
	})
	if err := srv.AddOpenAPI(accountingapi.OpenAPI); err != nil {
		return nil, err
	}
	if len(sources) == 0 {
		log.Info("accounting ready; no carbon-intensity providers configured", "took", time.Since(start).Round(time.Millisecond))
		return func() { closeReports() }, nil
	}
	// The tenants are those of the sites in force at each fetch, so that a
	// tenant's first site added later gets its copy of the grid data.
	tenants := func(string) []string { return []string{""} }
	if cfg.Auth.Enabled() {
		tenants = func(string) []string {
			var ts []string
			for _, s := range siteSource() {
				if t := s.SiteTenant(); !slices.Contains(ts, t) {
					ts = append(ts, t)
				}
			}
			return ts
		}
	}
	// The zones follow the sites in force, checked every carbon.interval: a
	// site added later in a new zone gets that zone's intensity without a
	// restart.
	svc, err := service.NewIntensityService(service.IntensityOptions{
		Sources: sources, Sites: siteSource, Carbon: cfg.Carbon, Writer: writer, Backfill: bf, Window: window,
		Tenants: tenants,
		History: min(cfg.Carbon.History.D(), retention-time.Hour), Interval: cfg.Carbon.Interval.D(),
		ForecastHorizon: cfg.Carbon.ForecastHorizon.D(), Forecasts: forecasts, Logger: log.With("component", "carbon"),
	})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := svc.Run(rctx); err != nil && !errors.Is(err, context.Canceled) {
			log.Error("carbon-intensity service stopped", "err", err)
		}
	})
	log.Info("accounting ready", "carbon_providers", len(sources), "took", time.Since(start).Round(time.Millisecond))
	return func() {
		t := time.Now()
		cancel()
		wg.Wait()
		log.Info("carbon-intensity service stopped", "took", time.Since(t).Round(time.Millisecond))
		closeReports()
	}, nil
}
