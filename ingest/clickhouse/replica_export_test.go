package clickhouse

import (
	"context"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// MigrateWithReplication runs the migrations of database on the server
// behind conn as a store on cluster with the replication mode would (a test
// makes a plain schema on a replicated cluster this way).
func MigrateWithReplication(ctx context.Context, conn driver.Conn, database, cluster, mode string) ([]uint32, error) {
	return migrate(ctx, conn, tables{db: quoteIdent(database), cluster: cluster, replication: mode}, features{}, time.Now())
}
