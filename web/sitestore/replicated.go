package sitestore

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// samplesLocal is the series store's local samples table on a cluster
// (ingest/clickhouse); its engine tells whether the cluster is replicated.
const samplesLocal = "samples_local"

// engineFor returns the engine of the table name in database on the server
// behind conn: ReplacingMergeTree(version), or, where the series store's
// samples table on that server is replicated, a
// ReplicatedReplacingMergeTree registered in ZooKeeper beside it (the
// samples' path with the table's name in place of samples_local, so under
// the same {shard}), with the server's {replica} macro; as the report
// tables (accounting/report/chstore) do. It refuses an existing table of
// the other kind, which it does not convert.
func engineFor(ctx context.Context, conn driver.Conn, database, name string) (string, error) {
	var samplesPath, existing string
	if err := scanOne(ctx, conn, &samplesPath, "SELECT zookeeper_path FROM system.replicas WHERE database = ? AND table = ?", database, samplesLocal); err != nil {
		return "", fmt.Errorf("read system.replicas: %w", err)
	}
	engine := "ReplacingMergeTree(version)"
	if samplesPath != "" {
		i := strings.LastIndex(samplesPath, samplesLocal)
		if i < 0 || strings.ContainsAny(samplesPath, `'\`) {
			return "", fmt.Errorf("zookeeper path %q of %s.%s: want one naming %s", samplesPath, database, samplesLocal, samplesLocal)
		}
		engine = fmt.Sprintf("ReplicatedReplacingMergeTree('%s', '{replica}', version)", samplesPath[:i]+name+samplesPath[i+len(samplesLocal):])
	}
	if err := scanOne(ctx, conn, &existing, "SELECT engine FROM system.tables WHERE database = ? AND name = ?", database, name); err != nil {
		return "", fmt.Errorf("read system.tables: %w", err)
	}
	if existing != "" && strings.HasPrefix(existing, "Replicated") != (samplesPath != "") {
		return "", fmt.Errorf("table %s.%s is a %s table but the series store's samples table there is %s;"+
			" greenloop does not convert it: move it as docs/operator.md says", database, name, existing,
			map[bool]string{true: "replicated", false: "not replicated"}[samplesPath != ""])
	}
	return engine, nil
}

// scanOne reads the one string column of query's rows into dst (the last
// row's; none leaves it).
func scanOne(ctx context.Context, conn driver.Conn, dst *string, query string, args ...any) error {
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dst); err != nil {
			return err
		}
	}
	return rows.Err()
}
