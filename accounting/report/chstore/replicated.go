package chstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// samplesLocal is the series store's local samples table on a cluster
// (ingest/clickhouse); its engine tells whether the cluster is replicated.
const samplesLocal = "samples_local"

// engineFor returns the engine of the report table name in database on the
// server behind conn: MergeTree, or, where the series store's samples table
// on that server is replicated, a ReplicatedMergeTree registered in
// ZooKeeper beside it (the samples' path with the table's name in place of
// samples_local, so under the same {shard}), with the server's {replica}
// macro. The report tables then live on every replica of the first shard,
// and a failed first replica loses none of them. It refuses an existing
// table of the other kind, which it does not convert.
func engineFor(ctx context.Context, conn driver.Conn, database, name string) (string, error) {
	rows, err := conn.Query(ctx, "SELECT zookeeper_path FROM system.replicas WHERE database = ? AND table = ?", database, samplesLocal)
	if err != nil {
		return "", fmt.Errorf("read system.replicas: %w", err)
	}
	var samplesPath string
	for rows.Next() {
		if err := rows.Scan(&samplesPath); err != nil {
			rows.Close()
			return "", fmt.Errorf("read system.replicas: %w", err)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("read system.replicas: %w", err)
	}
	engine := "MergeTree"
	if samplesPath != "" {
		i := strings.LastIndex(samplesPath, samplesLocal)
		if i < 0 || strings.ContainsAny(samplesPath, `'\`) {
			return "", fmt.Errorf("zookeeper path %q of %s.%s: want one naming %s", samplesPath, database, samplesLocal, samplesLocal)
		}
		engine = fmt.Sprintf("ReplicatedMergeTree('%s', '{replica}')", samplesPath[:i]+name+samplesPath[i+len(samplesLocal):])
	}
	var existing string
	rows, err = conn.Query(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = ?", database, name)
	if err != nil {
		return "", fmt.Errorf("read system.tables: %w", err)
	}
	for rows.Next() {
		if err := rows.Scan(&existing); err != nil {
			rows.Close()
			return "", fmt.Errorf("read system.tables: %w", err)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return "", fmt.Errorf("read system.tables: %w", err)
	}
	if existing != "" && strings.HasPrefix(existing, "Replicated") != (samplesPath != "") {
		return "", fmt.Errorf("table %s.%s is a %s table but the series store's samples table there is %s;"+
			" greenloop does not convert it: move it as docs/operator.md says", database, name, existing,
			map[bool]string{true: "replicated", false: "not replicated"}[samplesPath != ""])
	}
	return engine, nil
}
