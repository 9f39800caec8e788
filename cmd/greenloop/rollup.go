package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/greenloop/greenloop/accounting/rollup"
	"github.com/greenloop/greenloop/accounting/service"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/internal/config"
)

// rollupHorizon is how far back the hourly rollups reach: a reporting year
// and its margins.
const rollupHorizon = 400 * 24 * time.Hour

// startRollups keeps hourly energy rollups of every energy and power series,
// so that a year's report reads 8,760 points per series (or per site meter)
// instead of every raw sample. With the embedded store: the series' roll-ups
// and group sums as series, written through the tracked store (a new rollup
// version invalidates cached query answers over its hour), old hours as
// blocks. With ClickHouse: the group sums in the energy_group_1h table
// (startGroupRollups), unless accounting.rollup.enabled is false. stop ends
// the job and waits for it.
func startRollups(ctx context.Context, log *slog.Logger, cfg config.Server, opened *openedStore, store, backfillStore ingest.Store, late *ingest.LateWrites) (stop func(), err error) {
	if opened.db == nil {
		chs, ok := opened.Store.(*clickhouse.Store)
		if !ok || !cfg.Accounting.Rollup.Enabled {
			log.Info("hourly energy group sums not computed on this server", "accounting.rollup.enabled", cfg.Accounting.Rollup.Enabled)
			return func() {}, nil
		}
		return startGroupRollups(ctx, log, chs)
	}
	rw, err := ingest.NewWriter(store, ingest.WriterOptions{MaxAge: opened.maxAge, Logger: log})
	if err != nil {
		return nil, err
	}
	bw, err := ingest.NewWriter(backfillStore, ingest.WriterOptions{MaxAge: rollupHorizon + 24*time.Hour, Logger: log})
	if err != nil {
		return nil, err
	}
	job, err := rollup.NewJob(rollup.Options{Source: opened.Store, Writer: rw, Backfill: bw, OutOfOrderWindow: opened.maxAge,
		Late: late, Horizon: rollupHorizon, Logger: log})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := job.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("hourly rollups stopped", "err", err)
		}
	})
	return func() { cancel(); wg.Wait() }, nil
}

// startGroupRollups runs rollup's GroupJob over the ClickHouse store: the
// hours of the raw samples' retention (less a day, as partitions go by
// whole days) are computed and kept up to date from the sample counts of
// the hourly rollup, whoever wrote the samples; the group-sum tables keep
// the hourly rollup's retention, enforced here hourly on servers without TTL.
func startGroupRollups(ctx context.Context, log *slog.Logger, chs *clickhouse.Store) (stop func(), err error) {
	eg, err := chs.EnergyGroups(ctx)
	if err != nil {
		return nil, err
	}
	job, err := rollup.NewGroupJob(rollup.Options{Source: chs, Horizon: max(chs.RawRetention()-24*time.Hour, 2*time.Hour), Logger: log},
		rollup.GroupOptions{Store: service.ClickHouseGroups{Groups: eg}})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := job.Run(ctx); err != nil && ctx.Err() == nil {
			log.Error("hourly energy group sums stopped", "err", err)
		}
	})
	wg.Go(func() {
		t := time.NewTicker(time.Hour)
		defer t.Stop()
		for {
			if dropped, err := eg.Retain(ctx); err != nil && ctx.Err() == nil {
				log.Warn("energy group retention failed", "err", err)
			} else if len(dropped) > 0 {
				log.Info("energy group retention dropped partitions", "partitions", dropped)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	})
	log.Info("hourly energy group sums kept in ClickHouse", "horizon", max(chs.RawRetention()-24*time.Hour, 2*time.Hour))
	return func() { cancel(); wg.Wait() }, nil
}
