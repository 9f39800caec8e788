package clickhouse

import (
	"context"
	"fmt"
	"strings"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// Hourly energy group sums (package accounting/rollup's GroupJob computes
// them, the accounting reads them): tables beside the samples, kept as
// long as the hourly rollup (HourRetention), not the raw samples.
//
//	energy_group_1h          (tenant, source_metric, site, component, hour, energy, covered, estimated, inputs, version)
//	                         ReplacingMergeTree(version), ORDER BY (tenant, source_metric, site, component, hour)
//	energy_group_members     (tenant, source_metric, site, component, series, day, hours groupBitOr(UInt32))
//	                         AggregatingMergeTree, ORDER BY (tenant, source_metric, site, component, series, day)
//	energy_group_members_in  a Null table whose materialized view ORs each write's hour bits into the members
//
// A row with tenant, source_metric, site and component all empty is an
// hour's marker: the hour was computed (from inputs samples). Reads take the
// row of the greatest version per group and hour with argMax, so they are
// right before any background merge; the merges only drop what argMax
// skips. The members say which series a group summed in which hours of a UTC
// day (bit h: hour h), one row per series and day once merged (3.65 M a
// year for 10,000 series, whatever the batches), OR-ed at read time before.
// With a cluster, every table has a *_local table on every shard
// (Replicated engines where the store's tables are, see
// resolveReplication) and a Distributed table sharded by the group, written
// synchronously (insert_distributed_sync), so a write that returned is
// read by every server.
const (
	tblEnergyGroup          = "energy_group_1h"
	tblEnergyGroupMembers   = "energy_group_members"
	tblEnergyGroupMembersIn = "energy_group_members_in"
)

// EnergyGroupRow is one row of energy_group_1h.
type EnergyGroupRow struct {
	Tenant, SourceMetric, Site, Component string
	// Hour is the hour's start in Unix ms.
	Hour                       int64
	Energy, Covered, Estimated float64
	Inputs, Version            uint64
}

// EnergyGroupMember says that raw series Series (a key chosen by the
// writer) is summed in the group over the hours [From, To) (ms, whole hours).
type EnergyGroupMember struct {
	Tenant, SourceMetric, Site, Component string
	From, To                              int64
	Series                                uint64
}

// EnergyGroupHour is the sums of a read's groups in one hour.
type EnergyGroupHour struct {
	Energy, Covered, Estimated float64
}

// EnergyGroups reads and writes the group-sum tables of a Store.
type EnergyGroups struct{ s *Store }

func energyGroupPartition(col string) string {
	return "toYYYYMM(toDateTime(intDiv(" + col + ", 1000)))"
}

// energyGroupStmts are the statements that create the tables on one server.
func energyGroupStmts(t tables, f features, hourRetention time.Duration) []string {
	ttl := func(col string) string {
		if !f.TTL {
			return ""
		}
		return fmt.Sprintf(" TTL toDateTime(intDiv(%s, 1000)) + INTERVAL %d SECOND", col, int64(hourRetention.Seconds()))
	}
	group := "tenant String, source_metric String, site String, component String"
	stmts := []string{
		"CREATE TABLE IF NOT EXISTS " + t.local(tblEnergyGroup) + " (" + group +
			", hour Int64, energy Float64, covered Float64, estimated Float64, inputs UInt64, version UInt64)" +
			" ENGINE = " + t.engine("ReplacingMergeTree", tblEnergyGroup, "version") + " PARTITION BY " + energyGroupPartition("hour") +
			" ORDER BY (tenant, source_metric, site, component, hour)" + ttl("hour"),
		"CREATE TABLE IF NOT EXISTS " + t.local(tblEnergyGroupMembers) + " (" + group +
			", series UInt64, day Int64, hours AggregateFunction(groupBitOr, UInt32))" +
			" ENGINE = " + t.engine("AggregatingMergeTree", tblEnergyGroupMembers) + " PARTITION BY " + energyGroupPartition("day") +
			" ORDER BY (tenant, source_metric, site, component, series, day)" + ttl("day"),
		"CREATE TABLE IF NOT EXISTS " + t.local(tblEnergyGroupMembersIn) + " (" + group + ", series UInt64, day Int64, hours UInt32) ENGINE = Null",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS " + t.local(tblEnergyGroupMembers+"_mv") + " TO " + t.local(tblEnergyGroupMembers) +
			" AS SELECT tenant, source_metric, site, component, series, day, groupBitOrState(hours) AS hours FROM " +
			t.local(tblEnergyGroupMembersIn) + " GROUP BY tenant, source_metric, site, component, series, day",
	}
	if t.cluster != "" {
		for _, name := range []string{tblEnergyGroup, tblEnergyGroupMembers, tblEnergyGroupMembersIn} {
			stmts = append(stmts, fmt.Sprintf("CREATE TABLE IF NOT EXISTS %s AS %s ENGINE = Distributed(%s, %s, %s, cityHash64(tenant, source_metric, site, component))",
				t.q(name), t.local(name), quoteIdent(t.cluster), t.db, quoteIdent(name+"_local")))
		}
	}
	return stmts
}

const dayMs = 24 * 3600 * 1000

// dayHours returns, for each UTC day the hours [from, to) overlap, its
// start (ms) and the bits of those hours (bit h: hour h of the day).
func dayHours(from, to int64) (days []int64, masks []uint32) {
	h := time.Hour.Milliseconds()
	for d := from - ((from%dayMs)+dayMs)%dayMs; d < to; d += dayMs {
		var m uint32
		for i := range int64(24) {
			if hs := d + i*h; hs+h > from && hs < to {
				m |= 1 << i
			}
		}
		days, masks = append(days, d), append(masks, m)
	}
	return days, masks
}

// EnergyGroups creates the group-sum tables where missing (on every shard
// with a cluster; idempotent, several servers may do it at once) and
// returns their reader and writer.
func (s *Store) EnergyGroups(ctx context.Context) (*EnergyGroups, error) {
	for i, c := range s.shards {
		// Replicated like the store's own tables on this server.
		t, err := resolveReplication(ctx, c, s.t)
		if err != nil {
			return nil, classify(fmt.Errorf("clickhouse store: energy group tables on %s: %w", s.addr(i), err))
		}
		for _, stmt := range energyGroupStmts(t, s.f, s.ret.hour) {
			if err := c.Exec(ctx, stmt); err != nil {
				return nil, classify(fmt.Errorf("clickhouse store: create energy group tables on %s: %w", s.addr(i), err))
			}
		}
	}
	return &EnergyGroups{s: s}, nil
}

// RawSince is the oldest time the raw samples still cover: now less their
// retention.
func (s *Store) RawSince() time.Time { return s.now().Add(-s.ret.raw) }

// RawRetention is how long raw samples are kept.
func (s *Store) RawRetention() time.Duration { return s.ret.raw }

// Counts returns the number of samples of the metrics inserted per hourly
// bucket (start, start+1h] whose start lies in [from, to), by the start
// (the hourly rollup's cnt: every inserted row, a resent one included, so
// it only grows while the bucket is kept).
func (g *EnergyGroups) Counts(ctx context.Context, metrics []string, from, to int64) (map[int64]uint64, error) {
	out := map[int64]uint64{}
	if len(metrics) == 0 || to <= from {
		return out, nil
	}
	h := time.Hour.Milliseconds()
	args := []any{from, to}
	ph := make([]string, len(metrics))
	for i, m := range metrics {
		ph[i] = "?"
		args = append(args, m)
	}
	s := g.s
	rows, err := s.conn.Query(ctx, "SELECT bucket, countMerge(cnt) FROM "+s.t.q(tbl1h)+
		" WHERE bucket > ? AND bucket <= ? AND series_id IN (SELECT series_id FROM "+s.t.local(tblSeries)+
		" WHERE metric IN ("+strings.Join(ph, ", ")+")) GROUP BY bucket", args...)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: count samples per hour: %w", err))
	}
	defer rows.Close()
	for rows.Next() {
		var end int64
		var n uint64
		if err := rows.Scan(&end, &n); err != nil {
			return nil, fmt.Errorf("clickhouse store: count samples per hour: %w", err)
		}
		out[end-h] += n
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: count samples per hour: %w", err))
	}
	return out, nil
}

// markerCond selects the hours' markers.
const markerCond = "tenant = '' AND source_metric = '' AND site = '' AND component = ''"

// Computed returns the inputs of the current marker of each hour in [from, to).
func (g *EnergyGroups) Computed(ctx context.Context, from, to int64) (map[int64]uint64, error) {
	s := g.s
	rows, err := s.conn.Query(ctx, "SELECT hour, argMax(inputs, version) FROM "+s.t.q(tblEnergyGroup)+
		" WHERE "+markerCond+" AND hour >= ? AND hour < ? GROUP BY hour", from, to)
	if err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: read energy group markers: %w", err))
	}
	defer rows.Close()
	out := map[int64]uint64{}
	for rows.Next() {
		var h int64
		var in uint64
		if err := rows.Scan(&h, &in); err != nil {
			return nil, fmt.Errorf("clickhouse store: read energy group markers: %w", err)
		}
		out[h] = in
	}
	if err := rows.Err(); err != nil {
		return nil, classify(fmt.Errorf("clickhouse store: read energy group markers: %w", err))
	}
	return out, nil
}

// Write stores rows and members, one INSERT each (rows first, members
// after: a reader that sees a row finds its members once this returns).
func (g *EnergyGroups) Write(ctx context.Context, rows []EnergyGroupRow, members []EnergyGroupMember) error {
	s := g.s
	if s.opts.Cluster != "" {
		ctx = ch.Context(ctx, ch.WithSettings(ch.Settings{"insert_distributed_sync": 1}))
	}
	if len(members) > 0 {
		b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.t.q(tblEnergyGroupMembersIn)+" (tenant, source_metric, site, component, series, day, hours)")
		if err != nil {
			return classify(fmt.Errorf("clickhouse store: insert energy group members: %w", err))
		}
		for _, m := range members {
			days, masks := dayHours(m.From, m.To)
			for i, d := range days {
				if err := b.Append(m.Tenant, m.SourceMetric, m.Site, m.Component, m.Series, d, masks[i]); err != nil {
					_ = b.Abort()
					return fmt.Errorf("clickhouse store: insert energy group members: %w", err)
				}
			}
		}
		if err := b.Send(); err != nil {
			return classify(fmt.Errorf("clickhouse store: insert %d energy group members: %w", len(members), err))
		}
	}
	if len(rows) == 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.t.q(tblEnergyGroup)+
		" (tenant, source_metric, site, component, hour, energy, covered, estimated, inputs, version)")
	if err != nil {
		return classify(fmt.Errorf("clickhouse store: insert energy group rows: %w", err))
	}
	for _, r := range rows {
		if err := b.Append(r.Tenant, r.SourceMetric, r.Site, r.Component, r.Hour, r.Energy, r.Covered, r.Estimated, r.Inputs, r.Version); err != nil {
			_ = b.Abort()
			return fmt.Errorf("clickhouse store: insert energy group rows: %w", err)
		}
	}
	if err := b.Send(); err != nil {
		return classify(fmt.Errorf("clickhouse store: insert %d energy group rows: %w", len(rows), err))
	}
	return nil
}

// groupColumns are the label names a group-sum read may match on, by column.
var groupColumns = map[string]string{"tenant": "tenant", "source_metric": "source_metric", "site": "site", "component": "component"}

// groupCond turns matchers on the group's labels into a condition.
func groupCond(ms []*labels.Matcher) (string, []any, error) {
	conds := []string{"source_metric != ''"}
	var args []any
	for _, m := range ms {
		col, ok := groupColumns[m.Name]
		if !ok {
			return "", nil, fmt.Errorf("clickhouse store: energy groups have no label %q", m.Name)
		}
		conds = append(conds, matcherCond(col, m, &args))
	}
	return strings.Join(conds, " AND "), args, nil
}

// Sums returns, for each hour in [from, to) with a marker, the sums over the
// groups ms match (matchers on tenant, source_metric, site and component)
// of each group's current row, and the distinct members of those groups
// over hours overlapping [from, to).
func (g *EnergyGroups) Sums(ctx context.Context, ms []*labels.Matcher, from, to int64) (map[int64]EnergyGroupHour, []uint64, error) {
	if to <= from {
		return map[int64]EnergyGroupHour{}, nil, nil
	}
	cond, args, err := groupCond(ms)
	if err != nil {
		return nil, nil, err
	}
	done, err := g.Computed(ctx, from, to)
	if err != nil {
		return nil, nil, err
	}
	out := make(map[int64]EnergyGroupHour, len(done))
	for h := range done {
		out[h] = EnergyGroupHour{}
	}
	if len(done) == 0 {
		return out, nil, nil
	}
	s := g.s
	rows, err := s.conn.Query(ctx, "SELECT hour, sum(e), sum(c), sum(x) FROM (SELECT hour,"+
		" argMax(energy, version) AS e, argMax(covered, version) AS c, argMax(estimated, version) AS x FROM "+s.t.q(tblEnergyGroup)+
		" WHERE "+cond+" AND hour >= ? AND hour < ? GROUP BY tenant, source_metric, site, component, hour) GROUP BY hour",
		append(args, from, to)...)
	if err != nil {
		return nil, nil, classify(fmt.Errorf("clickhouse store: read energy groups: %w", err))
	}
	for rows.Next() {
		var h int64
		var v EnergyGroupHour
		if err := rows.Scan(&h, &v.Energy, &v.Covered, &v.Estimated); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("clickhouse store: read energy groups: %w", err)
		}
		if _, ok := done[h]; ok {
			out[h] = v
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, classify(fmt.Errorf("clickhouse store: read energy groups: %w", err))
	}
	// The members with a bit set in the hours of [from, to): on the days
	// between the first and the last any row (a row has a bit set), on
	// those two the bits of the range's hours.
	days, masks := dayHours(from, to)
	d0, d1 := days[0], days[len(days)-1]
	seen := map[uint64]struct{}{}
	var members []uint64
	read := func(query string, qargs ...any) error {
		rows, err := s.conn.Query(ctx, query, append(args[:len(args):len(args)], qargs...)...)
		if err != nil {
			return classify(fmt.Errorf("clickhouse store: read energy group members: %w", err))
		}
		defer rows.Close()
		for rows.Next() {
			var k uint64
			if err := rows.Scan(&k); err != nil {
				return fmt.Errorf("clickhouse store: read energy group members: %w", err)
			}
			if _, ok := seen[k]; !ok {
				seen[k] = struct{}{}
				members = append(members, k)
			}
		}
		if err := rows.Err(); err != nil {
			return classify(fmt.Errorf("clickhouse store: read energy group members: %w", err))
		}
		return nil
	}
	if d1-d0 > dayMs {
		if err := read("SELECT DISTINCT series FROM "+s.t.q(tblEnergyGroupMembers)+" WHERE "+cond+" AND day > ? AND day < ?", d0, d1); err != nil {
			return nil, nil, err
		}
	}
	if err := read("SELECT DISTINCT series FROM (SELECT series, day, groupBitOrMerge(hours) AS m FROM "+
		s.t.q(tblEnergyGroupMembers)+" WHERE "+cond+" AND day IN (?, ?) GROUP BY tenant, source_metric, site, component, series, day)"+
		" WHERE bitAnd(m, if(day = ?, toUInt32(?), toUInt32(?))) != 0", d0, d1, d0, masks[0], masks[len(masks)-1]); err != nil {
		return nil, nil, err
	}
	return out, members, nil
}

// Retain drops, on servers without TTL, the partitions of the group-sum
// tables older than the hourly rollup's retention (servers with TTL expire
// rows themselves).
func (g *EnergyGroups) Retain(ctx context.Context) (dropped []string, err error) {
	s := g.s
	if s.f.TTL {
		return nil, nil
	}
	for i, c := range s.shards {
		for _, name := range []string{tblEnergyGroup, tblEnergyGroupMembers} {
			local := name
			if s.t.cluster != "" {
				local += "_local"
			}
			rows, err := c.Query(ctx, "SELECT DISTINCT partition FROM system.parts WHERE database = ? AND table = ? AND active",
				strings.Trim(s.t.db, "`"), local)
			if err != nil {
				return dropped, classify(fmt.Errorf("clickhouse store: list partitions of %s on %s: %w", local, s.addr(i), err))
			}
			var parts []string
			for rows.Next() {
				var p string
				if err := rows.Scan(&p); err != nil {
					rows.Close()
					return dropped, fmt.Errorf("clickhouse store: list partitions of %s: %w", local, err)
				}
				parts = append(parts, p)
			}
			rows.Close()
			for _, p := range partitionsToDrop(parts, s.ret.hour, s.now()) {
				if err := c.Exec(ctx, "ALTER TABLE "+s.t.local(name)+" DROP PARTITION "+p); err != nil {
					return dropped, classify(fmt.Errorf("clickhouse store: drop partition %s of %s on %s: %w", p, local, s.addr(i), err))
				}
				dropped = append(dropped, local+"/"+p)
			}
		}
	}
	return dropped, nil
}
