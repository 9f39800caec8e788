package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/internal/config"
)

// TestStartRollupsClickHouse checks the wiring on ClickHouse: with
// accounting.rollup.enabled the server computes the hourly group sums of
// recent samples into energy_group_1h; without, it creates nothing.
func TestStartRollupsClickHouse(t *testing.T) {
	chtest.Require(t)
	s, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	log := slog.New(slog.DiscardHandler)
	now := time.Now().UTC()
	cases := []struct {
		name, db string
		enabled  bool
		wantRows bool
	}{
		{"enabled", "rollup_on", true, true},
		{"disabled", "rollup_off", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg := config.Default()
			cfg.Storage.Backend = "clickhouse"
			cfg.Storage.ClickHouse.Addrs = []string{s.Addr}
			cfg.Storage.ClickHouse.Database = c.db
			cfg.Accounting.Rollup.Enabled = c.enabled
			opened, err := openStore(ctx, cfg, nil, log)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = opened.Close() })
			// Three hours of a power gauge at 15 s, ending 30 minutes ago.
			app := opened.Appender(ctx)
			ls := labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1", "component", "it")
			start := now.Truncate(time.Hour).Add(-3 * time.Hour)
			for ts := start; ts.Before(now.Add(-30 * time.Minute)); ts = ts.Add(15 * time.Second) {
				if _, err := app.Append(0, ls, ts.UnixMilli(), 100); err != nil {
					t.Fatal(err)
				}
			}
			if err := app.Commit(); err != nil {
				t.Fatal(err)
			}
			stop, err := startRollups(ctx, log, cfg, opened, opened.Store, opened.backfill, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer stop()
			conn := opened.Store.(*clickhouse.Store).Conn()
			var tables, energyRows uint64
			var energy float64
			deadline := time.Now().Add(30 * time.Second)
			for {
				if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'energy_group_1h'", c.db).Scan(&tables); err != nil {
					t.Fatal(err)
				}
				if tables > 0 {
					if err := conn.QueryRow(ctx, "SELECT count(), sum(energy) FROM "+c.db+".energy_group_1h WHERE site = 'fra1' AND hour = ?",
						start.Add(time.Hour).UnixMilli()).Scan(&energyRows, &energy); err != nil {
						t.Fatal(err)
					}
				}
				if energyRows > 0 || !c.wantRows || time.Now().After(deadline) {
					break
				}
				time.Sleep(200 * time.Millisecond)
			}
			if !c.wantRows {
				time.Sleep(time.Second)
				if err := conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = ? AND name = 'energy_group_1h'", c.db).Scan(&tables); err != nil {
					t.Fatal(err)
				}
				if tables != 0 {
					t.Fatalf("disabled: energy_group_1h created")
				}
				return
			}
			// A full hour at 100 W: 360 kJ.
			if energyRows != 1 || energy != 360_000 {
				t.Fatalf("group row of %s: %d rows, %v J; want 1 row of 360000 J", start.Add(time.Hour), energyRows, energy)
			}
		})
	}
}
