package sitestore

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/greenloop/greenloop/internal/chsync"
)

// engineFor returns the engine of the table name in database on the server
// behind conn: ReplacingMergeTree(version), or, where the series store's
// samples table on that server is replicated, a
// ReplicatedReplacingMergeTree beside it (chsync.Engine), as the report
// tables (accounting/report/chstore) do. It refuses an existing table of
// the other kind, which it does not convert.
func engineFor(ctx context.Context, conn driver.Conn, database, name string) (string, error) {
	return chsync.Engine(ctx, conn, database, name, "ReplacingMergeTree", "version")
}
