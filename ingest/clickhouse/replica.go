package clickhouse

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Replication of the local tables.
//
// On a cluster whose shards have several replicas (system.clusters), every
// local table is created with the Replicated engine of its family
// (ReplicatedReplacingMergeTree for series and samples,
// ReplicatedAggregatingMergeTree for the rollups), registered in ZooKeeper
// under a path made from a template (DefaultZooKeeperPath) and the server's
// {replica} macro. The Distributed tables then write one replica of each
// shard (the cluster must say internal_replication=true) and ClickHouse
// copies each inserted part to the shard's other replicas.
//
// The rollups stay exact on every replica: a materialized view runs only on
// the replica that receives an INSERT, and writes its rollup rows there as a
// part of the replicated rollup table, which is copied like the samples'
// part; a replica that fetches parts runs no view, so nothing is counted
// twice and every replica holds the same rollups.
//
// Resends: ClickHouse deduplicates identical blocks inserted into a
// replicated table, and (18.16 as later versions) then skips the table's
// materialized views. Should an INSERT store the samples' part and fail
// before the rollups' (a server crash, a lost ZooKeeper session), the
// agent's resend would be dropped as a duplicate and its rollups never
// written: the rollups would undercount for good, which no read can see. So
// greenloop requires insert_deduplicate=0 in its user's profile on a
// replicated cluster (checked at Open): a resend is stored again, as on a
// single server, the ReplacingMergeTree samples collapse it and reads drop
// twins no merge has collapsed yet, and the rollups' distinct counts reveal
// the buckets that counted it twice, which are then read from the samples.

// DefaultZooKeeperPath is the ZooKeeper path template of a replicated table.
// {database} and {table} are replaced by greenloop (the database and the
// local table's name); every other {macro}, {shard} among them, is left to
// the server, which replaces it from the <macros> of its config.
const DefaultZooKeeperPath = "/clickhouse/tables/{shard}/{database}/{table}"

// Replication modes (Options.Replication).
const (
	ReplicationAuto = "auto" // replicated where the cluster has more than one replica in a shard
	ReplicationOn   = "on"   // always replicated (a cluster must be set)
	ReplicationOff  = "off"  // never replicated
)

// ErrReplication wraps every reason the replicated schema cannot be set up:
// a server without ZooKeeper or without a macro the ZooKeeper path names, a
// cluster unknown to a server, or existing tables of the other kind (which
// greenloop never converts). Check with errors.Is.
var ErrReplication = errors.New("clickhouse replication")

var macroRE = regexp.MustCompile(`\{([A-Za-z0-9_]*)\}`)

// zooKeeperPath fills the template's {database} and {table}.
func zooKeeperPath(template, database, table string) string {
	if template == "" {
		template = DefaultZooKeeperPath
	}
	return strings.NewReplacer("{database}", database, "{table}", table).Replace(template)
}

// checkReplicationOptions checks a replication mode and ZooKeeper path
// template, as Open takes them.
func checkReplicationOptions(mode, template, cluster string) error {
	switch mode {
	case "", ReplicationAuto, ReplicationOff:
	case ReplicationOn:
		if cluster == "" {
			return fmt.Errorf("replication %q needs a cluster: the replicas are those of the cluster's shards", mode)
		}
	default:
		return fmt.Errorf("replication: want auto, on or off, got %q", mode)
	}
	if template == "" {
		return nil
	}
	if !strings.HasPrefix(template, "/") {
		return fmt.Errorf("zookeeper path %q: must start with /", template)
	}
	if strings.ContainsAny(template, "'\\` \t\n") {
		return fmt.Errorf("zookeeper path %q: must not hold quotes, backslashes or spaces", template)
	}
	if !strings.Contains(template, "{table}") {
		return fmt.Errorf("zookeeper path %q: must name {table}, or every table would share one path", template)
	}
	for _, m := range macroRE.FindAllStringSubmatch(template, -1) {
		if m[1] == "" || m[1] == "replica" {
			return fmt.Errorf("zookeeper path %q: %s is not allowed (the path is the table's, shared by its replicas)", template, m[0])
		}
	}
	return nil
}

// serverMacros are the macros a replicated table needs on a server: those
// the ZooKeeper path template names, besides greenloop's own, and {replica}.
func serverMacros(template string) []string {
	if template == "" {
		template = DefaultZooKeeperPath
	}
	var out []string
	for _, m := range macroRE.FindAllStringSubmatch(template, -1) {
		if m[1] != "database" && m[1] != "table" && !slices.Contains(out, m[1]) {
			out = append(out, m[1])
		}
	}
	return append(out, "replica")
}

// resolveReplication decides, on the server behind conn, whether t's local
// tables are replicated, checks that the server can hold such tables, and
// refuses existing local tables of the other kind: plain MergeTree tables
// where the schema is replicated (greenloop does not convert them;
// docs/operator.md says how), replicated ones where replication is off. In
// auto mode, existing replicated tables keep the schema replicated even when
// the cluster has (for now) one replica a shard.
func resolveReplication(ctx context.Context, conn driver.Conn, t tables) (tables, error) {
	if err := checkReplicationOptions(t.replication, t.zkPath, t.cluster); err != nil {
		return t, fmt.Errorf("%w: %w", ErrReplication, err)
	}
	t.replicated = false
	if t.cluster == "" {
		return t, nil
	}
	var rows, maxReplicas uint64
	if err := conn.QueryRow(ctx, "SELECT count(), toUInt64(max(replica_num)) FROM system.clusters WHERE cluster = ?",
		t.cluster).Scan(&rows, &maxReplicas); err != nil {
		return t, fmt.Errorf("read cluster %s from system.clusters: %w", t.cluster, err)
	}
	if rows == 0 {
		return t, fmt.Errorf("%w: cluster %q is not in the server's remote_servers", ErrReplication, t.cluster)
	}
	engines, err := localEngines(ctx, conn, t)
	if err != nil {
		return t, err
	}
	var plain, repl []string
	for _, name := range slices.Sorted(maps.Keys(engines)) {
		if e := engines[name]; strings.HasPrefix(e, "Replicated") {
			repl = append(repl, name+" ("+e+")")
		} else {
			plain = append(plain, name+" ("+e+")")
		}
	}
	switch t.replication {
	case ReplicationOff:
		if len(repl) > 0 {
			return t, fmt.Errorf("%w: replication is off but the existing tables %s are replicated; set replication to auto or on",
				ErrReplication, strings.Join(repl, ", "))
		}
		return t, nil
	case ReplicationOn:
		t.replicated = true
	default:
		t.replicated = maxReplicas > 1 || len(repl) > 0
	}
	if !t.replicated {
		return t, nil
	}
	if len(plain) > 0 {
		return t, fmt.Errorf("%w: cluster %s is replicated (%d replicas in its largest shard, replication %q) but the existing tables %s"+
			" are not, and greenloop does not convert them: move them to replicated tables as docs/operator.md says, or set replication to off",
			ErrReplication, t.cluster, maxReplicas, cmp.Or(t.replication, ReplicationAuto), strings.Join(plain, ", "))
	}
	return t, checkReplicaReady(ctx, conn, t)
}

// localEngines returns the engine of each of t's local MergeTree tables that exists.
func localEngines(ctx context.Context, conn driver.Conn, t tables) (map[string]string, error) {
	names := []string{t.localName(tblSeries), t.localName(tblSamples), t.localName(tbl1m), t.localName(tbl1h)}
	rows, err := conn.Query(ctx, "SELECT name, engine FROM system.tables WHERE database = ? AND name IN (?, ?, ?, ?)",
		strings.Trim(t.db, "`"), names[0], names[1], names[2], names[3])
	if err != nil {
		return nil, fmt.Errorf("read the engines of the local tables: %w", err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, engine string
		if err := rows.Scan(&name, &engine); err != nil {
			return nil, fmt.Errorf("read the engines of the local tables: %w", err)
		}
		out[name] = engine
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read the engines of the local tables: %w", err)
	}
	return out, nil
}

// checkReplicaReady checks that the server has ZooKeeper and the macros of
// the replicated tables' paths, and that greenloop's user INSERTs without
// block deduplication (see the package's replication notes).
func checkReplicaReady(ctx context.Context, conn driver.Conn, t tables) error {
	var dedup string
	if err := conn.QueryRow(ctx, "SELECT value FROM system.settings WHERE name = 'insert_deduplicate'").Scan(&dedup); err != nil {
		return fmt.Errorf("read setting insert_deduplicate: %w", err)
	}
	if dedup != "0" {
		return fmt.Errorf("%w: cluster %s is replicated and the user's profile has insert_deduplicate=%s: set"+
			" <insert_deduplicate>0</insert_deduplicate> in the profile of greenloop's user (users.xml) on every server;"+
			" with deduplication, a batch resent after an INSERT that stored its samples but failed before its rollups"+
			" would never reach the rollups (ClickHouse skips the materialized views of a deduplicated block)",
			ErrReplication, t.cluster, dedup)
	}
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM system.zookeeper WHERE path = '/'").Scan(&n); err != nil {
		return fmt.Errorf("%w: cluster %s is replicated, and replicated tables need ZooKeeper, which the server cannot reach"+
			" (<zookeeper> in its config, and the ensemble up): %w", ErrReplication, t.cluster, err)
	}
	rows, err := conn.Query(ctx, "SELECT macro FROM system.macros")
	if err != nil {
		return fmt.Errorf("read system.macros: %w", err)
	}
	var have []string
	for rows.Next() {
		var m string
		if err := rows.Scan(&m); err != nil {
			rows.Close()
			return fmt.Errorf("read system.macros: %w", err)
		}
		have = append(have, m)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read system.macros: %w", err)
	}
	var lack []string
	for _, m := range serverMacros(t.zkPath) {
		if !slices.Contains(have, m) {
			lack = append(lack, "{"+m+"}")
		}
	}
	if len(lack) > 0 {
		return fmt.Errorf("%w: the server defines no macro %s, which the replicated tables' ZooKeeper path %q and replica name need"+
			" (<macros> in its config: a shard id the same on every replica of a shard, a replica name unique in the shard)",
			ErrReplication, strings.Join(lack, ", "), zooKeeperPath(t.zkPath, "{database}", "{table}"))
	}
	return nil
}

// ShardReplicas returns, for each shard of the store's cluster in order,
// the host:port of its replicas as the cluster's remote_servers names them
// (read from system.clusters on the server the store is connected to). The
// small tables kept on the first shard only (the EU report's inputs and
// snapshots) are created on each of ShardReplicas()[0] and read through a
// fail-over connection over them. Without a cluster it returns nil.
func (s *Store) ShardReplicas(ctx context.Context) ([][]string, error) {
	if s.opts.Cluster == "" {
		return nil, nil
	}
	rows, err := s.conn.Query(ctx, "SELECT toUInt64(shard_num), host_name, toUInt64(port) FROM system.clusters WHERE cluster = ? ORDER BY shard_num, replica_num", s.opts.Cluster)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: read cluster %s: %w", s.opts.Cluster, err))
	}
	defer rows.Close()
	var out [][]string
	last := uint64(0)
	for rows.Next() {
		var shard, port uint64
		var host string
		if err := rows.Scan(&shard, &host, &port); err != nil {
			return nil, fmt.Errorf("clickhouse store: read cluster %s: %w", s.opts.Cluster, err)
		}
		if shard != last {
			out = append(out, nil)
			last = shard
		}
		out[len(out)-1] = append(out[len(out)-1], net.JoinHostPort(host, strconv.FormatUint(port, 10)))
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: read cluster %s: %w", s.opts.Cluster, err))
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: cluster %q is not in the server's remote_servers", ErrReplication, s.opts.Cluster)
	}
	return out, nil
}
