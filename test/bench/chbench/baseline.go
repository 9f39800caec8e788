package main

import (
	"context"
	"fmt"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// batchedInsert inserts the rows into table with clickhouse-go column
// batches of batch rows, one after another on one connection, the way
// greenloop's store sends them but without remote_write in front: it tells
// how much of the gap to the one-INSERT client is the size of the INSERTs.
func batchedInsert(ctx context.Context, addr, table string, r rows, batch int) (time.Duration, int, error) {
	conn, err := ch.Open(&ch.Options{Addr: []string{addr}, Protocol: ch.Native,
		Auth: ch.Auth{Username: "default", Database: "default"}, Compression: &ch.Compression{Method: ch.CompressionLZ4},
		ReadTimeout: time.Minute})
	if err != nil {
		return 0, 0, fmt.Errorf("connect to %s: %w", addr, err)
	}
	defer conn.Close()
	if err := conn.Ping(ctx); err != nil {
		return 0, 0, fmt.Errorf("ping %s: %w", addr, err)
	}
	start := time.Now()
	inserts := 0
	for lo := 0; lo < r.len(); lo += batch {
		hi := min(lo+batch, r.len())
		b, err := conn.PrepareBatch(ctx, "INSERT INTO "+table+" (series_id, ts, value)")
		if err != nil {
			return 0, inserts, fmt.Errorf("prepare insert of rows %d-%d: %w", lo, hi, err)
		}
		err = b.Column(0).Append(r.ids[lo:hi])
		if err == nil {
			err = b.Column(1).Append(r.ts[lo:hi])
		}
		if err == nil {
			err = b.Column(2).Append(r.vals[lo:hi])
		}
		if err == nil {
			err = b.Send()
		}
		if err != nil {
			_ = b.Close()
			return 0, inserts, fmt.Errorf("insert rows %d-%d: %w", lo, hi, err)
		}
		inserts++
	}
	return time.Since(start), inserts, nil
}
