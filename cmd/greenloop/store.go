package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/config"
)

// openedStore is the series store the configuration chose.
type openedStore struct {
	ingest.Store
	// db is the embedded TSDB; nil with ClickHouse.
	db *tsdb.Store
	// backfill takes samples older than maxAge, up to backfillMaxAge.
	backfill       ingest.Store
	maxAge         time.Duration
	backfillMaxAge time.Duration
	desc           string
}

// openStore opens storage.backend: the embedded TSDB in data_dir, or ClickHouse.
func openStore(ctx context.Context, cfg config.Server, reg prometheus.Registerer, log *slog.Logger) (*openedStore, error) {
	switch cfg.Storage.Backend {
	case "clickhouse":
		c := cfg.Storage.ClickHouse
		password, err := secret(c.PasswordFile, c.PasswordEnv, "storage.clickhouse.password")
		if err != nil {
			return nil, err
		}
		st, err := clickhouse.Open(ctx, clickhouse.Options{
			Addrs: c.Addrs, Database: c.Database, Username: c.Username, Password: password, Cluster: c.Cluster,
			Replication: c.Replication, ZooKeeperPath: c.ZooKeeperPath,
			Retention: c.Retention.D(), MinuteRetention: c.MinuteRetention.D(), HourRetention: c.HourRetention.D(),
			BatchSize: c.BatchSize, FlushInterval: c.FlushInterval.D(), WriteTimeout: c.WriteTimeout.D(),
			AsyncInsert: c.AsyncInsert, Compression: c.Compression, Buffer: clickhouse.BufferOptions{Enabled: c.Buffer.Enabled, Layers: c.Buffer.Layers,
				MinTime: c.Buffer.MinTime.D(), MaxTime: c.Buffer.MaxTime.D(), MinRows: c.Buffer.MinRows, MaxRows: c.Buffer.MaxRows,
				MinBytes: int64(c.Buffer.MinBytes), MaxBytes: int64(c.Buffer.MaxBytes)},
			LookbackDelta: cfg.Query.LookbackDelta.D(), Logger: log.With("component", "clickhouse"),
		})
		if err != nil {
			return nil, fmt.Errorf("storage.clickhouse: %w", err)
		}
		retention := c.Retention.D()
		if retention <= 0 {
			retention = 15 * 24 * time.Hour
		}
		// ClickHouse takes samples of any age: late data and backfills are
		// plain writes, bounded by the retention.
		age := max(retention-time.Hour, time.Hour)
		return &openedStore{Store: st, backfill: st, maxAge: age, backfillMaxAge: age,
			desc: fmt.Sprintf("clickhouse %v database %q", c.Addrs, st.Database())}, nil
	default:
		db, err := tsdb.Open(cfg.DataDir, tsdb.Options{
			Retention:        cfg.Storage.TSDB.Retention.D(),
			OutOfOrderWindow: cfg.Storage.TSDB.OutOfOrderWindow.D(),
			WALCompression:   cfg.Storage.TSDB.WALCompression,
			Registerer:       reg,
			Logger:           log.With("component", "tsdb"),
		})
		if err != nil {
			return nil, err
		}
		// History older than the out-of-order window (a meter export from
		// before greenloop ran) goes in as whole blocks, up to the retention.
		return &openedStore{Store: db, db: db, backfill: db.Backfill(),
			maxAge: cfg.Storage.TSDB.OutOfOrderWindow.D(), backfillMaxAge: max(cfg.Storage.TSDB.Retention.D()-time.Hour, time.Hour),
			desc: "tsdb in " + cfg.DataDir}, nil
	}
}
