package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/accounting/carbon/providers"
	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/accounting/service"
	"github.com/greenloop/greenloop/ingest"
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
	var names []string
	for _, p := range cfg.Carbon.Providers {
		if !slices.Contains(names, p.Type) {
			names = append(names, p.Type)
		}
	}
	return service.New(service.Options{Store: store, Sites: sites, MultiTenant: cfg.Auth.TokensFile != "", Providers: names, Logger: log})
}

// newReportService opens the EU report's file stores under the data directory.
func newReportService(cfg config.Server, log *slog.Logger) (*report.Service, error) {
	in, snap := reportDirs(cfg)
	inputs, err := report.NewFileInputStore(in, nil, nil, log)
	if err != nil {
		return nil, fmt.Errorf("report inputs store: %w", err)
	}
	snaps, err := report.NewFileSnapshotStore(snap, log)
	if err != nil {
		return nil, fmt.Errorf("report snapshot store: %w", err)
	}
	return &report.Service{Inputs: inputs, Snapshots: snaps, Log: log}, nil
}

// startAccounting mounts the accounting API (emissions, KPIs, carbon-intensity
// import, EU report) on srv and starts the carbon-intensity service, which
// runs the configured providers until stop is called. A provider that cannot
// be built (missing secret file, bad CSV) fails the start.
func startAccounting(ctx context.Context, srv *web.Server, log *slog.Logger, cfg config.Server, store ingest.Store,
	writer, backfill *ingest.Writer, sites []config.Site) (stop func(), err error) {
	start := time.Now()
	sources, err := service.BuildSources(cfg.Carbon, sites, providers.SystemClock{}, log.With("component", "carbon"))
	if err != nil {
		return nil, fmt.Errorf("carbon-intensity providers:\n%w", err)
	}
	acct := newAccountant(cfg, store, sites, log.With("component", "accounting"))
	reports, err := newReportService(cfg, log.With("component", "report"))
	if err != nil {
		return nil, err
	}
	var bf service.SeriesWriter // a nil *ingest.Writer must stay a nil interface
	if backfill != nil {
		bf = backfill
	}
	accountingapi.Register(srv.Echo(), accountingapi.Deps{
		Accountant:    acct,
		Writer:        writer,
		Backfill:      bf,
		Window:        cfg.Storage.TSDB.OutOfOrderWindow.D(),
		Retention:     cfg.Storage.TSDB.Retention.D(),
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
		return func() {}, nil
	}
	tenants := []string{""}
	if cfg.Auth.TokensFile != "" {
		tenants = nil
		for _, s := range sites {
			if t := s.SiteTenant(); !slices.Contains(tenants, t) {
				tenants = append(tenants, t)
			}
		}
	}
	svc, err := service.NewIntensityService(service.IntensityOptions{
		Sources: sources, Writer: writer, Backfill: bf, Window: cfg.Storage.TSDB.OutOfOrderWindow.D(),
		Tenants: func(string) []string { return tenants },
		History: min(cfg.Carbon.History.D(), cfg.Storage.TSDB.Retention.D()-time.Hour), Interval: cfg.Carbon.Interval.D(),
		ForecastHorizon: cfg.Carbon.ForecastHorizon.D(), Logger: log.With("component", "carbon"),
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
	}, nil
}
