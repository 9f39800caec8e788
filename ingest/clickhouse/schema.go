package clickhouse

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// features are the server capabilities the schema depends on, chosen once at
// Open from the server's version.
type features struct {
	// Codecs: per-column compression codecs (DoubleDelta for timestamps,
	// Gorilla for values) and LowCardinality without an experimental setting.
	Codecs bool
	// TTL: table-level TTL expressions; without them retention drops partitions.
	TTL bool
	// AsyncInsert: the async_insert and wait_for_async_insert settings exist (21.11).
	AsyncInsert bool
	// AsyncInsertNative: async_insert also gathers data sent as native-protocol
	// blocks, the way greenloop sends it (ClickHouse PR #54730, 23.10); before,
	// such an INSERT is written synchronously whatever the setting says.
	AsyncInsertNative bool
}

// atLeast reports whether major.minor is at least wantMajor.wantMinor.
func atLeast(major, minor, wantMajor, wantMinor uint64) bool {
	return major > wantMajor || (major == wantMajor && minor >= wantMinor)
}

// featuresFor maps a server version to its features. Codecs appeared in 19.10
// and table TTL in 19.6, but both matured later; greenloop uses them from 20.1
// on and falls back to plain columns and partition drops before that (18.16 in
// Debian has neither).
func featuresFor(major, minor uint64) features {
	modern := atLeast(major, minor, 20, 1)
	return features{Codecs: modern, TTL: modern,
		AsyncInsert: atLeast(major, minor, 21, 11), AsyncInsertNative: atLeast(major, minor, 23, 10)}
}

// tables names the tables of one database. Reads and writes go to the
// unsuffixed names; with a cluster those are Distributed tables over the
// *_local tables that each shard holds. Every table is sharded by series_id,
// so a subquery inside a distributed query names the local table: each shard
// answers it for its own series (what distributed_product_mode=local does; an
// 18.16 server cannot take that string setting over the native protocol).
type tables struct {
	db      string // quoted database
	cluster string // "" on a single server
	// replication is "auto" (or empty), "on" or "off": whether the local
	// tables use the Replicated engines (see resolveReplication).
	replication string
	// zkPath is the ZooKeeper path template of replicated tables; empty
	// means DefaultZooKeeperPath.
	zkPath string
	// replicated is the resolved choice on one server (set by migrate).
	replicated bool
}

func (t tables) q(name string) string { return t.db + "." + quoteIdent(name) }

// localName is the unquoted name of the table that holds name's data on one server.
func (t tables) localName(name string) string {
	if t.cluster != "" {
		return name + "_local"
	}
	return name
}

// engine returns the engine clause of the local table name of a MergeTree
// family ("MergeTree", "ReplacingMergeTree", "AggregatingMergeTree") with
// the family's own parameters, if any (a ReplacingMergeTree's version
// column): the family itself, or its Replicated variant with the table's
// ZooKeeper path and the {replica} macro before those parameters. Code that
// creates tables outside the migrations resolves t first on each server
// (resolveReplication).
func (t tables) engine(family, name string, params ...string) string {
	if !t.replicated {
		if len(params) == 0 {
			return family
		}
		return family + "(" + strings.Join(params, ", ") + ")"
	}
	args := append([]string{"'" + zooKeeperPath(t.zkPath, strings.Trim(t.db, "`"), t.localName(name)) + "'", "'{replica}'"}, params...)
	return "Replicated" + family + "(" + strings.Join(args, ", ") + ")"
}

// local is the name of the table that holds the data on one server.
func (t tables) local(name string) string {
	if t.cluster != "" {
		return t.q(name + "_local")
	}
	return t.q(name)
}

// Table names (the unsuffixed, query-side names).
const (
	tblSeries     = "series"
	tblSamples    = "samples"
	tbl1m         = "samples_1m"
	tbl1h         = "samples_1h"
	tblMigrations = "schema_migrations"
	// tblBuffer is the Buffer table in front of samples (Options.Buffer); with
	// a cluster, a Distributed table over a Buffer table on every shard.
	tblBuffer = "samples_buffer"
)

var identRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func quoteIdent(s string) string { return "`" + s + "`" }

// validIdent reports whether s can name a database or cluster without quoting surprises.
func validIdent(s string) bool { return identRE.MatchString(s) }

// migration is one versioned schema step. Every statement is idempotent
// (IF NOT EXISTS), so a step interrupted half-way is simply run again.
type migration struct {
	version     uint32
	description string
	stmts       func(t tables, f features) []string
}

var migrations = []migration{
	{1, "series and raw samples", migrateSeriesSamples},
	{2, "1-minute and 1-hour rollups kept by materialized views", migrateRollups},
}

// dayPartition partitions by UTC day of a millisecond column.
func dayPartition(col string) string { return "toYYYYMMDD(toDateTime(intDiv(" + col + ", 1000)))" }

func migrateSeriesSamples(t tables, f features) []string {
	metricType := "String"
	tsCol, valCol := "ts Int64", "value Float64"
	if f.Codecs {
		metricType = "LowCardinality(String)"
		tsCol, valCol = "ts Int64 CODEC(DoubleDelta, LZ4)", "value Float64 CODEC(Gorilla, LZ4)"
	}
	stmts := []string{
		// One row per series; re-inserting a known series is harmless.
		"CREATE TABLE IF NOT EXISTS " + t.local(tblSeries) + " (series_id UInt64, metric " + metricType +
			", label_names Array(String), label_values Array(String), created_ms Int64)" +
			" ENGINE = " + t.engine("ReplacingMergeTree", tblSeries) + " ORDER BY (metric, series_id)",
		// ReplacingMergeTree on (series_id, ts): a retried batch collapses at merge
		// time, and reads drop the twins that no merge has collapsed yet.
		"CREATE TABLE IF NOT EXISTS " + t.local(tblSamples) + " (series_id UInt64, " + tsCol + ", " + valCol + ")" +
			" ENGINE = " + t.engine("ReplacingMergeTree", tblSamples) + " PARTITION BY " + dayPartition("ts") + " ORDER BY (series_id, ts)",
	}
	if t.cluster != "" {
		stmts = append(stmts, distributed(t, tblSeries), distributed(t, tblSamples))
	}
	return stmts
}

// rollupColumn is one aggregate column of a rollup table.
type rollupColumn struct{ name, typ, state string }

// Columns of both rollups. last_ts places a bucket's value in time for PromQL;
// cnt against a duplicate-proof distinct count tells whether sum (and so avg)
// counted a resent sample twice.
var rollupCommon = []rollupColumn{
	{"min", "AggregateFunction(min, Float64)", "minState(value)"},
	{"max", "AggregateFunction(max, Float64)", "maxState(value)"},
	{"sum", "AggregateFunction(sum, Float64)", "sumState(value)"},
	{"cnt", "AggregateFunction(count)", "countState()"},
	{"last", "AggregateFunction(argMax, Float64, Int64)", "argMaxState(value, ts)"},
	{"last_ts", "AggregateFunction(max, Int64)", "maxState(ts)"},
}

// rollupBuckets are the rollup resolutions, their tables, partitioning and
// own columns. The minute rollup stays small: the distinct count is a bitmap
// of the bucket's seconds (8 bytes, where uniqExact costs about 8 bytes a
// sample), and it keeps no first value (argMin states compress poorly and
// only the energy accounting, which reads hours, needs it).
var rollupBuckets = []struct {
	table     string
	bucket    time.Duration
	partition string
	columns   []rollupColumn
}{
	{tbl1m, time.Minute, dayPartition("bucket"), []rollupColumn{
		// Bit k is set when a sample lies in second k of the bucket; a bucket
		// with two samples in one second looks resent and is read from raw.
		{"seen", "AggregateFunction(groupBitOr, UInt64)", "groupBitOrState(bitShiftLeft(toUInt64(1), toUInt64(intDiv(ts - (intDiv(ts + 59999, 60000) * 60000) + 59999, 1000))))"},
	}},
	{tbl1h, time.Hour, "toYYYYMM(toDateTime(intDiv(bucket, 1000)))", []rollupColumn{
		{"uniq", "AggregateFunction(uniqExact, Int64)", "uniqExactState(ts)"},
		{"first", "AggregateFunction(argMin, Float64, Int64)", "argMinState(value, ts)"},
	}},
}

func migrateRollups(t tables, f features) []string {
	var stmts []string
	for _, r := range rollupBuckets {
		b := r.bucket.Milliseconds()
		var cols, states []string
		for _, c := range append(slices.Clone(rollupCommon), r.columns...) {
			cols = append(cols, c.name+" "+c.typ)
			states = append(states, c.state+" AS "+c.name)
		}
		stmts = append(stmts,
			"CREATE TABLE IF NOT EXISTS "+t.local(r.table)+" (series_id UInt64, bucket Int64, "+strings.Join(cols, ", ")+")"+
				" ENGINE = "+t.engine("AggregatingMergeTree", r.table)+" PARTITION BY "+r.partition+" ORDER BY (series_id, bucket)",
			// A bucket is left-open, (end-B, end], and named by its end, like
			// PromQL's range windows; NaN (including staleness markers) is left out.
			fmt.Sprintf("CREATE MATERIALIZED VIEW IF NOT EXISTS %s TO %s AS SELECT series_id,"+
				" intDiv(ts + %d, %d) * %d AS bucket, %s"+
				" FROM %s WHERE NOT isNaN(value) GROUP BY series_id, bucket",
				t.local(r.table+"_mv"), t.local(r.table), b-1, b, b, strings.Join(states, ", "), t.local(tblSamples)),
		)
		if t.cluster != "" {
			stmts = append(stmts, distributed(t, r.table))
		}
	}
	return stmts
}

func distributed(t tables, name string) string {
	return fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s ENGINE = Distributed(%s, %s, %s, intHash64(series_id))",
		t.q(name), t.local(name), quoteIdent(t.cluster), t.db, quoteIdent(name+"_local"))
}

// migrate creates the database and applies the missing migrations on one
// server, recording each in schema_migrations (kept per server). On a
// cluster it first decides whether the local tables are replicated
// (resolveReplication, which refuses existing tables made the other way).
func migrate(ctx context.Context, conn driver.Conn, t tables, f features, now time.Time) (applied []uint32, err error) {
	if t, err = resolveReplication(ctx, conn, t); err != nil {
		return nil, err
	}
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+t.db); err != nil {
		return nil, fmt.Errorf("create database %s: %w", t.db, err)
	}
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+t.q(tblMigrations)+
		" (version UInt32, description String, applied_at DateTime) ENGINE = MergeTree ORDER BY version"); err != nil {
		return nil, fmt.Errorf("create %s: %w", tblMigrations, err)
	}
	rows, err := conn.Query(ctx, "SELECT DISTINCT version FROM "+t.q(tblMigrations))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", tblMigrations, err)
	}
	var done []uint32
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read %s: %w", tblMigrations, err)
		}
		done = append(done, v)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", tblMigrations, err)
	}
	for _, m := range migrations {
		if slices.Contains(done, m.version) {
			continue
		}
		for _, s := range m.stmts(t, f) {
			if err := conn.Exec(ctx, s); err != nil {
				return applied, fmt.Errorf("migration %d (%s): %w", m.version, m.description, err)
			}
		}
		if err := recordMigration(ctx, conn, t, m, now); err != nil {
			return applied, fmt.Errorf("record migration %d: %w", m.version, err)
		}
		applied = append(applied, m.version)
	}
	return applied, nil
}

// retentionTTL returns the statements that set each table's TTL (servers with TTL).
func retentionTTL(t tables, r retention) []string {
	return []string{
		fmt.Sprintf("ALTER TABLE %s MODIFY TTL toDateTime(intDiv(ts, 1000)) + INTERVAL %d SECOND", t.local(tblSamples), int64(r.raw.Seconds())),
		fmt.Sprintf("ALTER TABLE %s MODIFY TTL toDateTime(intDiv(bucket, 1000)) + INTERVAL %d SECOND", t.local(tbl1m), int64(r.minute.Seconds())),
		fmt.Sprintf("ALTER TABLE %s MODIFY TTL toDateTime(intDiv(bucket, 1000)) + INTERVAL %d SECOND", t.local(tbl1h), int64(r.hour.Seconds())),
	}
}

// retention is how long each table keeps its rows.
type retention struct{ raw, minute, hour time.Duration }

// partitionsToDrop picks, among a table's partitions, those that lie wholly
// before now-keep. Partitions are YYYYMMDD (day) or YYYYMM (month) in UTC.
func partitionsToDrop(parts []string, keep time.Duration, now time.Time) []string {
	cutoff := now.Add(-keep).UTC()
	var out []string
	for _, p := range parts {
		var end time.Time
		switch len(p) {
		case 8:
			d, err := time.Parse("20060102", p)
			if err != nil {
				continue
			}
			end = d.AddDate(0, 0, 1)
		case 6:
			d, err := time.Parse("200601", p)
			if err != nil {
				continue
			}
			end = d.AddDate(0, 1, 0)
		default:
			continue
		}
		if !end.After(cutoff) {
			out = append(out, p)
		}
	}
	return out
}

// dropOldPartitions enforces retention on a server without TTL.
func dropOldPartitions(ctx context.Context, conn driver.Conn, t tables, r retention, now time.Time) (dropped []string, err error) {
	for _, tb := range []struct {
		name string
		keep time.Duration
	}{{tblSamples, r.raw}, {tbl1m, r.minute}, {tbl1h, r.hour}} {
		local := tb.name
		if t.cluster != "" {
			local += "_local"
		}
		rows, err := conn.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = ? AND active",
			strings.Trim(t.db, "`"), local)
		if err != nil {
			return dropped, fmt.Errorf("list partitions of %s: %w", local, err)
		}
		var parts []string
		for rows.Next() {
			var p string
			if err := rows.Scan(&p); err != nil {
				rows.Close()
				return dropped, fmt.Errorf("list partitions of %s: %w", local, err)
			}
			parts = append(parts, p)
		}
		rows.Close()
		for _, p := range partitionsToDrop(parts, tb.keep, now) {
			if err := conn.Exec(ctx, "ALTER TABLE "+t.local(tb.name)+" DROP PARTITION "+p); err != nil {
				return dropped, fmt.Errorf("drop partition %s of %s: %w", p, local, err)
			}
			dropped = append(dropped, local+"/"+p)
		}
	}
	return dropped, nil
}

// seriesGrace is how long a series row is kept before it may be pruned,
// whatever the tables hold: its first samples may still be on their way (the
// series row is written before them).
const seriesGrace = 24 * time.Hour

// orphanSeriesSQL is the condition on the local series table of the series
// that no table holds a sample of any more (retention removed them all) and
// that were stored before cutoff (ms). The rollups are checked first (small);
// the raw samples only for the series the rollups lack (NaN-only series),
// which the primary key narrows the read to. raw names the raw table to read
// (the Buffer table, when there is one, covers rows still in memory).
func orphanSeriesSQL(t tables, raw string, cutoff int64) string {
	notInRollups := fmt.Sprintf("created_ms < %d AND series_id NOT IN (SELECT series_id FROM %s) AND series_id NOT IN (SELECT series_id FROM %s)",
		cutoff, t.local(tbl1h), t.local(tbl1m))
	return notInRollups + " AND series_id NOT IN (SELECT series_id FROM " + t.local(raw) +
		" WHERE series_id IN (SELECT series_id FROM " + t.local(tblSeries) + " WHERE " + notInRollups + "))"
}

// pruneSeries deletes, on one server, the rows of the series whose samples
// have all left every table (ALTER TABLE ... DELETE, a mutation: ClickHouse
// 1.1.54388 and later). It returns how many series rows matched; without any,
// it runs no mutation (which would rewrite the table's parts).
func pruneSeries(ctx context.Context, conn driver.Conn, t tables, raw string, now time.Time) (uint64, error) {
	cond := orphanSeriesSQL(t, raw, now.Add(-seriesGrace).UnixMilli())
	var n uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+t.local(tblSeries)+" WHERE "+cond).Scan(&n); err != nil {
		return 0, fmt.Errorf("count series without samples: %w", err)
	}
	if n == 0 {
		return 0, nil
	}
	if err := conn.Exec(ctx, "ALTER TABLE "+t.local(tblSeries)+" DELETE WHERE "+cond); err != nil {
		return 0, fmt.Errorf("delete %d series without samples: %w", n, err)
	}
	return n, nil
}

// recordMigration inserts m's row (a batch: 18.16 cannot take INSERT ... VALUES with binds over the native protocol).
func recordMigration(ctx context.Context, conn driver.Conn, t tables, m migration, now time.Time) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+t.q(tblMigrations)+" (version, description, applied_at)")
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Append(m.version, m.description, now.UTC().Truncate(time.Second)); err != nil {
		return err
	}
	return b.Send()
}
