package clickhouse

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

func TestEnergyGroupStmts(t *testing.T) {
	cases := []struct {
		name          string
		t             tables
		f             features
		want, notWant []string
		wantStmts     int
	}{
		{"single 18.16", tables{db: "`g`"}, features{}, []string{
			"CREATE TABLE IF NOT EXISTS `g`.`energy_group_1h` (", "ReplacingMergeTree(version)",
			"ORDER BY (tenant, source_metric, site, component, hour)",
			"CREATE TABLE IF NOT EXISTS `g`.`energy_group_members` (", "hours AggregateFunction(groupBitOr, UInt32)) ENGINE = AggregatingMergeTree",
			"`g`.`energy_group_members_in` (tenant String, source_metric String, site String, component String, series UInt64, day Int64, hours UInt32) ENGINE = Null",
			"CREATE MATERIALIZED VIEW IF NOT EXISTS `g`.`energy_group_members_mv` TO `g`.`energy_group_members` AS SELECT", "groupBitOrState(hours) AS hours FROM `g`.`energy_group_members_in`"},
			[]string{"TTL", "Distributed"}, 4},
		{"cluster with TTL", tables{db: "`g`", cluster: "c2"}, features{TTL: true}, []string{
			"`g`.`energy_group_1h_local`", "TTL toDateTime(intDiv(hour, 1000)) + INTERVAL 86400 SECOND",
			"TTL toDateTime(intDiv(day, 1000)) + INTERVAL 86400 SECOND",
			"`g`.`energy_group_members_mv_local` TO `g`.`energy_group_members_local`",
			"ENGINE = Distributed(`c2`, `g`, `energy_group_1h_local`, cityHash64(tenant, source_metric, site, component))",
			"ENGINE = Distributed(`c2`, `g`, `energy_group_members_local`, cityHash64(tenant, source_metric, site, component))",
			"ENGINE = Distributed(`c2`, `g`, `energy_group_members_in_local`, cityHash64(tenant, source_metric, site, component))"},
			nil, 7},
		{"replicated cluster", tables{db: "`g`", cluster: "c2", replicated: true}, features{}, []string{
			"ENGINE = ReplicatedReplacingMergeTree('", "'{replica}', version) PARTITION BY",
			"ENGINE = ReplicatedAggregatingMergeTree('", "energy_group_members_local', '{replica}') PARTITION BY", "ENGINE = Null"},
			[]string{"ENGINE = ReplacingMergeTree", "ENGINE = AggregatingMergeTree"}, 7},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stmts := energyGroupStmts(c.t, c.f, 24*time.Hour)
			if len(stmts) != c.wantStmts {
				t.Fatalf("%d statements, want %d: %q", len(stmts), c.wantStmts, stmts)
			}
			all := strings.Join(stmts, "\n")
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("missing %q in\n%s", w, all)
				}
			}
			for _, w := range c.notWant {
				if strings.Contains(all, w) {
					t.Errorf("unexpected %q in\n%s", w, all)
				}
			}
		})
	}
}

func TestGroupCond(t *testing.T) {
	m := func(ty labels.MatchType, n, v string) *labels.Matcher { return labels.MustNewMatcher(ty, n, v) }
	cases := []struct {
		name  string
		ms    []*labels.Matcher
		cond  string
		nargs int
		err   string
	}{
		{"none: no markers", nil, "source_metric != ''", 0, ""},
		{"all kinds", []*labels.Matcher{m(labels.MatchEqual, "site", "fra1"), m(labels.MatchNotEqual, "component", "it"),
			m(labels.MatchRegexp, "source_metric", "greenloop_.*"), m(labels.MatchNotRegexp, "tenant", "b|c")},
			"source_metric != '' AND site = ? AND component != ? AND match(source_metric, ?) AND NOT match(tenant, ?)", 4, ""},
		{"other label", []*labels.Matcher{m(labels.MatchEqual, "node", "n1")}, "", 0, `no label "node"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cond, args, err := groupCond(c.ms)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || cond != c.cond || len(args) != c.nargs {
				t.Fatalf("got %q %v %v, want %q with %d args", cond, args, err, c.cond, c.nargs)
			}
		})
	}
}

func TestDayHours(t *testing.T) {
	const h = int64(3600_000)
	d0 := time.Date(2026, 5, 4, 0, 0, 0, 0, time.UTC).UnixMilli()
	cases := []struct {
		name     string
		from, to int64
		days     []int64
		masks    []uint32
	}{
		{"one hour", d0 + 5*h, d0 + 6*h, []int64{d0}, []uint32{1 << 5}},
		{"whole day", d0, d0 + 24*h, []int64{d0}, []uint32{1<<24 - 1}},
		{"across midnight", d0 + 22*h, d0 + 26*h, []int64{d0, d0 + 24*h}, []uint32{1<<22 | 1<<23, 1 | 2}},
		{"three days", d0 + 23*h, d0 + 49*h, []int64{d0, d0 + 24*h, d0 + 48*h}, []uint32{1 << 23, 1<<24 - 1, 1}},
		{"before 1970", -2 * h, -h, []int64{-24 * h}, []uint32{1 << 22}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			days, masks := dayHours(c.from, c.to)
			if !slices.Equal(days, c.days) || !slices.Equal(masks, c.masks) {
				t.Fatalf("got %v %b, want %v %b", days, masks, c.days, c.masks)
			}
		})
	}
}
