package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/greenloop/greenloop/accounting/rollup"
	"github.com/greenloop/greenloop/ingest"
)

// rollupHorizon is how far back the hourly rollups reach: a reporting year
// and its margins.
const rollupHorizon = 400 * 24 * time.Hour

// startRollups keeps hourly energy rollups of every energy and power series
// of the embedded store, so that a year's report reads 8,760 points per
// series instead of every raw sample. Writes go through the tracked store
// (a new rollup version invalidates cached query answers over its hour); old
// hours go in as blocks. stop ends the job and waits for it.
func startRollups(ctx context.Context, log *slog.Logger, opened *openedStore, store, backfillStore ingest.Store, late *ingest.LateWrites) (stop func(), err error) {
	if opened.db == nil {
		return func() {}, nil // ClickHouse keeps its own rollups
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
