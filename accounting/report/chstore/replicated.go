package chstore

import (
	"context"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/greenloop/greenloop/internal/chsync"
)

// engineFor returns the engine of the report table name in database on the
// server behind conn: MergeTree, or, where the series store's samples table
// on that server is replicated, a ReplicatedMergeTree beside it
// (chsync.Engine). The report tables then live on every replica of the
// first shard, and a failed first replica loses none of them. It refuses an
// existing table of the other kind, which it does not convert.
func engineFor(ctx context.Context, conn driver.Conn, database, name string) (string, error) {
	return chsync.Engine(ctx, conn, database, name, "MergeTree", "")
}
