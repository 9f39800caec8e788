package clickhouse

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
)

func TestFeaturesFor(t *testing.T) {
	f := func(major, minor uint64, want features) {
		t.Helper()
		if got := featuresFor(major, minor); got != want {
			t.Errorf("%d.%d: got %+v want %+v", major, minor, got, want)
		}
	}
	f(18, 16, features{})
	f(19, 17, features{})
	f(20, 1, features{Codecs: true, TTL: true})
	f(21, 10, features{Codecs: true, TTL: true})
	f(21, 11, features{Codecs: true, TTL: true, AsyncInsert: true})
	f(23, 9, features{Codecs: true, TTL: true, AsyncInsert: true})
	f(23, 10, features{Codecs: true, TTL: true, AsyncInsert: true, AsyncInsertNative: true})
	f(24, 8, features{Codecs: true, TTL: true, AsyncInsert: true, AsyncInsertNative: true})
}

func TestChooseAsyncInsert(t *testing.T) {
	v18, v22, v24 := featuresFor(18, 16), featuresFor(22, 8), featuresFor(24, 8)
	for _, tc := range []struct {
		mode     string
		buffer   bool
		f        features
		use      bool
		warn     bool
		errMatch string
	}{
		{"", false, v24, true, false, ""},
		{"auto", false, v24, true, false, ""},
		{"auto", true, v24, false, false, ""},  // the buffer already gathers the rows
		{"auto", false, v22, false, false, ""}, // 22.8 would write native blocks at once anyway
		{"auto", false, v18, false, false, ""},
		{"off", false, v24, false, false, ""},
		{"on", false, v24, true, false, ""},
		{"on", false, v22, true, true, ""},
		{"on", false, v18, false, false, "has no async_insert"},
		{"on", true, v24, false, false, "choose one"},
		{"yes", false, v24, false, false, `"yes": want auto, on or off`},
	} {
		use, warn, err := chooseAsyncInsert(tc.mode, tc.buffer, tc.f, "x.y")
		if tc.errMatch != "" {
			if err == nil || !strings.Contains(err.Error(), tc.errMatch) {
				t.Errorf("%q buffer=%v %+v: err %v, want %q", tc.mode, tc.buffer, tc.f, err, tc.errMatch)
			}
			continue
		}
		if err != nil || use != tc.use || (warn != "") != tc.warn {
			t.Errorf("%q buffer=%v %+v: use %v warn %q err %v, want use %v warn %v", tc.mode, tc.buffer, tc.f, use, warn, err, tc.use, tc.warn)
		}
	}
}

func TestInsertSettings(t *testing.T) {
	for _, tc := range []struct {
		cluster string
		async   bool
		want    ch.Settings
	}{
		{"", false, ch.Settings{}},
		{"c2", false, ch.Settings{"insert_distributed_sync": 1}},
		{"", true, ch.Settings{"async_insert": 1, "wait_for_async_insert": 1}},
		{"c2", true, ch.Settings{"insert_distributed_sync": 1, "async_insert": 1, "wait_for_async_insert": 1}},
	} {
		s := &Store{opts: Options{Cluster: tc.cluster}, async: tc.async}
		if got := s.insertSettings(); fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("cluster %q async %v: %v, want %v", tc.cluster, tc.async, got, tc.want)
		}
	}
}

func TestBufferOptions(t *testing.T) {
	d := BufferOptions{Enabled: true}.withDefaults()
	if d.Layers != 4 || d.MinTime != 5*time.Second || d.MaxTime != 30*time.Second || d.MinRows != 100_000 ||
		d.MaxRows != 1_000_000 || d.MinBytes != 1<<20 || d.MaxBytes != 100<<20 {
		t.Errorf("defaults %+v", d)
	}
	if got, want := d.engine("g", "samples"), "Buffer('g', 'samples', 4, 5, 30, 100000, 1000000, 1048576, 104857600)"; got != want {
		t.Errorf("engine %s, want %s", got, want)
	}
	if err := d.check(100_000); err != nil {
		t.Errorf("defaults: %v", err)
	}
	bad := BufferOptions{Layers: 1, MinTime: 1500 * time.Millisecond, MaxTime: time.Second, MinRows: 10, MaxRows: 5, MinBytes: 10, MaxBytes: 5}
	err := bad.check(6)
	for _, want := range []string{"whole seconds", "min_time 1.5s exceeds max_time 1s", "min_rows 10 exceeds max_rows 5",
		"min_bytes 10 exceeds max_bytes 5", "batch size 6 exceeds buffer max_rows 5"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("check: %v, want %q", err, want)
		}
	}
	// A definition as a server shows it (other spacing and quoting) compares equal.
	shown := "CREATE TABLE g.samples_buffer (series_id UInt64, ts Int64, value Float64) ENGINE = Buffer(`g`,'samples',4,5,30, 100000, 1000000, 1048576, 104857600)"
	m := bufferParamsRE.FindStringSubmatch(shown)
	want := bufferParamsRE.FindStringSubmatch("ENGINE = " + d.engine("g", "samples"))
	if m == nil || normalizeBufferParams(m[1]) != normalizeBufferParams(want[1]) {
		t.Errorf("parameters of %q: %q", shown, m)
	}
	other := d
	other.MaxTime = time.Minute
	if o := bufferParamsRE.FindStringSubmatch("ENGINE = " + other.engine("g", "samples")); normalizeBufferParams(o[1]) == normalizeBufferParams(want[1]) {
		t.Error("different max_time compares equal")
	}
}

func TestPlanRollupBuffer(t *testing.T) {
	now := time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)
	s := &Store{opts: Options{LookbackDelta: 5 * time.Minute, Buffer: BufferOptions{Enabled: true, MaxTime: 30 * time.Second}},
		now: func() time.Time { return now }}
	const m = int64(60_000)
	end := now.Truncate(time.Minute).UnixMilli()
	// Up to now: the newest samples may be in the buffer, read raw.
	if _, ok := s.planRollup(&storage.SelectHints{Start: end - 60*m - 5*m + 1, End: end, Step: m}); ok {
		t.Error("a range ending now read a rollup with the buffer on")
	}
	// Ending before the buffer's window (2 max_time + slack = 70 s): rollups.
	if _, ok := s.planRollup(&storage.SelectHints{Start: end - 62*m - 5*m + 1, End: end - 2*m, Step: m}); !ok {
		t.Error("a range ending 2 minutes ago did not read the rollup")
	}
	since := now.Add(-70 * time.Second).UnixMilli()
	recent := " OR series_id IN (SELECT series_id FROM .`samples_buffer` WHERE ts >= ? AND ts <= ?) "
	newSeries := " OR series_id IN (SELECT series_id FROM .`samples_buffer` WHERE ts >= ? AND ts <= ? AND series_id IN (SELECT series_id FROM .`series` WHERE created_ms >= ?)))"
	args := []any{}
	if sql := s.presenceSQL(end-10*m, end, &args); !strings.Contains(sql, recent) || !strings.HasSuffix(sql, newSeries) {
		t.Errorf("presence of a recent range: %s", sql)
	}
	if want := []any{end - 10*m, end + 3_599_999, since, end, end - 10*m, end, since}; fmt.Sprint(args) != fmt.Sprint(want) {
		t.Errorf("presence args %v, want %v", args, want)
	}
	// An old range: only new series are looked for in raw samples.
	args = nil
	if sql := s.presenceSQL(end-70*m, end-10*m, &args); strings.Contains(sql, recent) || !strings.HasSuffix(sql, newSeries) {
		t.Errorf("presence of an old range: %s", sql)
	}
	if want := []any{end - 70*m, end - 10*m + 3_599_999, end - 70*m, end - 10*m, since}; fmt.Sprint(args) != fmt.Sprint(want) {
		t.Errorf("presence args %v, want %v", args, want)
	}
}

func TestMigrationDDL(t *testing.T) {
	all := func(tb tables, f features) string {
		var out []string
		for _, m := range migrations {
			out = append(out, m.stmts(tb, f)...)
		}
		return strings.Join(out, "\n")
	}
	single := tables{db: "`g`"}
	old := all(single, features{})
	for _, bad := range []string{"CODEC", "TTL", "LowCardinality", "Distributed", "_local"} {
		if strings.Contains(old, bad) {
			t.Errorf("18.16 DDL contains %s:\n%s", bad, old)
		}
	}
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS `g`.`samples` (series_id UInt64, ts Int64, value Float64) ENGINE = ReplacingMergeTree PARTITION BY toYYYYMMDD(toDateTime(intDiv(ts, 1000))) ORDER BY (series_id, ts)",
		"metric String,",
		"CREATE MATERIALIZED VIEW IF NOT EXISTS `g`.`samples_1m_mv` TO `g`.`samples_1m` AS SELECT series_id, intDiv(ts + 59999, 60000) * 60000 AS bucket",
		"intDiv(ts + 3599999, 3600000) * 3600000 AS bucket",
		"PARTITION BY toYYYYMM(toDateTime(intDiv(bucket, 1000)))",
	} {
		if !strings.Contains(old, want) {
			t.Errorf("18.16 DDL lacks %q:\n%s", want, old)
		}
	}
	modern := all(single, features{Codecs: true, TTL: true})
	for _, want := range []string{"ts Int64 CODEC(DoubleDelta, LZ4)", "value Float64 CODEC(Gorilla, LZ4)", "metric LowCardinality(String)"} {
		if !strings.Contains(modern, want) {
			t.Errorf("modern DDL lacks %q:\n%s", want, modern)
		}
	}
	cl := all(tables{db: "`g`", cluster: "c2"}, features{})
	for _, want := range []string{
		"CREATE TABLE IF NOT EXISTS `g`.`samples_local` (",
		"CREATE TABLE IF NOT EXISTS `g`.`samples` AS `g`.`samples_local` ENGINE = Distributed(`c2`, `g`, `samples_local`, intHash64(series_id))",
		"CREATE TABLE IF NOT EXISTS `g`.`series` AS `g`.`series_local` ENGINE = Distributed(`c2`, `g`, `series_local`, intHash64(series_id))",
		"TO `g`.`samples_1h_local` AS SELECT", "FROM `g`.`samples_local` WHERE",
	} {
		if !strings.Contains(cl, want) {
			t.Errorf("cluster DDL lacks %q:\n%s", want, cl)
		}
	}
}

func TestRetentionTTL(t *testing.T) {
	got := retentionTTL(tables{db: "`g`"}, retention{raw: 15 * 24 * time.Hour, minute: 30 * 24 * time.Hour, hour: 400 * 24 * time.Hour})
	want := []string{
		"ALTER TABLE `g`.`samples` MODIFY TTL toDateTime(intDiv(ts, 1000)) + INTERVAL 1296000 SECOND",
		"ALTER TABLE `g`.`samples_1m` MODIFY TTL toDateTime(intDiv(bucket, 1000)) + INTERVAL 2592000 SECOND",
		"ALTER TABLE `g`.`samples_1h` MODIFY TTL toDateTime(intDiv(bucket, 1000)) + INTERVAL 34560000 SECOND",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got %q\nwant %q", got, want)
	}
}

func TestPartitionsToDrop(t *testing.T) {
	now := time.Date(2026, 11, 22, 18, 0, 0, 0, time.UTC)
	f := func(parts []string, keep time.Duration, want []string) {
		t.Helper()
		if got := partitionsToDrop(parts, keep, now); !slices.Equal(got, want) {
			t.Errorf("keep %v of %v: got %v want %v", keep, parts, got, want)
		}
	}
	// Cutoff 2026-11-20 18:00: the 19th ends before it, the 20th after.
	f([]string{"20261118", "20261119", "20261120", "20261122"}, 48*time.Hour, []string{"20261118", "20261119"})
	// Cutoff exactly at midnight: the day ending then goes.
	f([]string{"20261121", "20261122"}, 18*time.Hour, []string{"20261121"})
	// Months: cutoff 2026-10-23 18:00; October ends after it.
	f([]string{"202609", "202610", "202611"}, 30*24*time.Hour, []string{"202609"})
	// Anything that is not a partition name of ours is left alone.
	f([]string{"tuple()", "2026-11-01", "x"}, time.Hour, nil)
}

func TestMatchersSQL(t *testing.T) {
	f := func(ms []*labels.Matcher, wantSQL string, wantArgs ...any) {
		t.Helper()
		sql, args := matchersSQL(ms)
		if sql != wantSQL || !slices.Equal(args, wantArgs) {
			t.Errorf("got %q %v\nwant %q %v", sql, args, wantSQL, wantArgs)
		}
	}
	m := labels.MustNewMatcher
	f(nil, "1")
	f([]*labels.Matcher{m(labels.MatchEqual, "__name__", "x"), m(labels.MatchNotEqual, "site", "a'b")},
		"metric = ? AND label_values[indexOf(label_names, ?)] != ?", "x", "site", "a'b")
	f([]*labels.Matcher{m(labels.MatchRegexp, "site", "fra|par"), m(labels.MatchNotRegexp, "__name__", "go_.*")},
		"match(label_values[indexOf(label_names, ?)], ?) AND NOT match(metric, ?)", "site", "(?s)^(?:fra|par)$", "(?s)^(?:go_.*)$")
}

func TestSeriesIDStable(t *testing.T) {
	a := SeriesID(labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1"))
	// The on-disk key must never change between releases.
	if a != 0xecc147efb3051bfe {
		t.Errorf("SeriesID = %#x, the ids on disk would change", a)
	}
	if SeriesID(labels.FromStrings("site", "fra1", "__name__", "greenloop_power_watts")) != a {
		t.Error("label order changes the id")
	}
	// The separator keeps "ab"+"c" apart from "a"+"bc".
	if SeriesID(labels.FromStrings("ab", "c")) == SeriesID(labels.FromStrings("a", "bc")) {
		t.Error("names and values run together")
	}
}

func TestPlanRollup(t *testing.T) {
	s := &Store{opts: Options{LookbackDelta: 5 * time.Minute}}
	const m, h = int64(60_000), int64(3_600_000)
	end := 1000 * h
	f := func(hints *storage.SelectHints, wantTable, wantCol string) {
		t.Helper()
		r, ok := s.planRollup(hints)
		if !ok {
			r = rollupRead{}
		}
		if r.table != wantTable || r.col != wantCol {
			t.Errorf("%+v: got %q %q want %q %q", *hints, r.table, r.col, wantTable, wantCol)
		}
	}
	lb := 5 * m
	// Instant selection at minute-aligned steps: last per minute.
	f(&storage.SelectHints{Start: end - 60*m - lb + 1, End: end, Step: m}, tbl1m, "last")
	f(&storage.SelectHints{Start: end - 60*m - lb + 1, End: end, Step: 5 * m, Func: "sum"}, tbl1m, "last")
	// Hour-aligned steps: the hourly rollup.
	f(&storage.SelectHints{Start: end - 24*h - lb + 1, End: end, Step: h}, tbl1h, "last")
	// Unaligned start or step, or an instant query: raw.
	f(&storage.SelectHints{Start: end - 60*m - lb + 1 + 15_000, End: end, Step: m}, "", "")
	f(&storage.SelectHints{Start: end - 60*m - lb + 1, End: end, Step: 90_000}, "", "")
	f(&storage.SelectHints{Start: end - lb + 1, End: end}, "", "")
	// Range functions: only max/min/last_over_time over whole buckets.
	f(&storage.SelectHints{Start: end - 60*m - 10*m + 1, End: end, Step: m, Range: 10 * m, Func: "max_over_time"}, tbl1m, "max")
	f(&storage.SelectHints{Start: end - 60*m - 10*m + 1, End: end, Step: m, Range: 10 * m, Func: "min_over_time"}, tbl1m, "min")
	f(&storage.SelectHints{Start: end - 2*h + 1, End: end, Step: h, Range: 2 * h, Func: "last_over_time"}, tbl1h, "last")
	f(&storage.SelectHints{Start: end - 2*h + 1, End: end, Step: h, Range: 90 * m, Func: "max_over_time"}, tbl1m, "max")
	f(&storage.SelectHints{Start: end - 60*m - 90_000 + 1, End: end, Step: m, Range: 90_000, Func: "max_over_time"}, "", "")
	for _, fn := range []string{"rate", "increase", "avg_over_time", "count_over_time", "sum_over_time", ""} {
		f(&storage.SelectHints{Start: end - 60*m - 10*m + 1, End: end, Step: m, Range: 10 * m, Func: fn}, "", "")
	}
	s.opts.DisableRollupReads = true
	f(&storage.SelectHints{Start: end - 60*m - lb + 1, End: end, Step: m}, "", "")
}

func TestClassify(t *testing.T) {
	f := func(err error, want bool) {
		t.Helper()
		if got := errors.Is(classify(err), ErrUnavailable); got != want {
			t.Errorf("%v: unavailable %v, want %v", err, got, want)
		}
	}
	f(nil, false)
	f(fmt.Errorf("insert: %w", syscall.ECONNREFUSED), true)
	f(fmt.Errorf("read: %w", io.EOF), true)
	f(&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, true)
	f(context.DeadlineExceeded, true)
	f(fmt.Errorf("insert: %w", &ch.Exception{Code: 252, Message: "Too many parts"}), true)
	// A replica whose ZooKeeper is gone comes back by itself: retry later.
	f(fmt.Errorf("insert: %w", &ch.Exception{Code: 242, Message: "Table is in readonly mode"}), true)
	f(fmt.Errorf("insert: %w", &ch.Exception{Code: 999, Message: "Connection loss"}), true)
	f(fmt.Errorf("insert: %w", &ch.Exception{Code: 225, Message: "Cannot get ZooKeeper"}), true)
	f(fmt.Errorf("insert: %w", &ch.Exception{Code: 62, Message: "Syntax error"}), false)
	f(errors.New("converting String to UInt64 is unsupported"), false)
	if err := classify(syscall.ECONNRESET); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("the cause is lost: %v", err)
	}
}

func TestReplicatedDDL(t *testing.T) {
	all := func(tb tables) string {
		var out []string
		for _, m := range migrations {
			out = append(out, m.stmts(tb, features{})...)
		}
		return strings.Join(out, "\n")
	}
	repl := all(tables{db: "`g`", cluster: "c", replicated: true})
	for _, want := range []string{
		"`g`.`series_local` (series_id UInt64, metric String, label_names Array(String), label_values Array(String), created_ms Int64)" +
			" ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/g/series_local', '{replica}') ORDER BY (metric, series_id)",
		"ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/g/samples_local', '{replica}') PARTITION BY toYYYYMMDD(",
		"ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/g/samples_1m_local', '{replica}') PARTITION BY",
		"ENGINE = ReplicatedAggregatingMergeTree('/clickhouse/tables/{shard}/g/samples_1h_local', '{replica}') PARTITION BY",
		// The views and the Distributed tables are the same as without replicas.
		"CREATE MATERIALIZED VIEW IF NOT EXISTS `g`.`samples_1m_mv_local` TO `g`.`samples_1m_local` AS SELECT",
		"CREATE TABLE IF NOT EXISTS `g`.`samples` AS `g`.`samples_local` ENGINE = Distributed(`c`, `g`, `samples_local`, intHash64(series_id))",
	} {
		if !strings.Contains(repl, want) {
			t.Errorf("replicated DDL lacks %q:\n%s", want, repl)
		}
	}
	if n := strings.Count(repl, "ENGINE = Replicated"); n != 4 {
		t.Errorf("replicated DDL has %d Replicated engines, want 4 (series, samples, two rollups):\n%s", n, repl)
	}
	plain := all(tables{db: "`g`", cluster: "c"})
	if strings.Contains(plain, "Replicated") {
		t.Errorf("DDL without replicas names a Replicated engine:\n%s", plain)
	}
	custom := all(tables{db: "`g`", cluster: "c", replicated: true, zkPath: "/ch/{layer}-{shard}/{database}.{table}"})
	if !strings.Contains(custom, "ReplicatedReplacingMergeTree('/ch/{layer}-{shard}/g.samples_local', '{replica}')") {
		t.Errorf("custom path not applied:\n%s", custom)
	}
}

func TestCheckReplicationOptions(t *testing.T) {
	f := func(mode, path, cluster, wantErr string) {
		t.Helper()
		err := checkReplicationOptions(mode, path, cluster)
		switch {
		case wantErr == "" && err != nil:
			t.Errorf("(%q, %q, %q): %v, want nil", mode, path, cluster, err)
		case wantErr != "" && (err == nil || !strings.Contains(err.Error(), wantErr)):
			t.Errorf("(%q, %q, %q): %v, want an error saying %q", mode, path, cluster, err, wantErr)
		}
	}
	f("", "", "", "")
	f("auto", "", "", "")
	f("off", "", "c", "")
	f("on", "", "c", "")
	f("on", "", "", "needs a cluster")
	f("yes", "", "c", "want auto, on or off")
	f("auto", "/clickhouse/{shard}/{database}/{table}", "c", "")
	f("auto", "/clickhouse/{layer}/{table}", "c", "")
	f("auto", "clickhouse/{shard}/{table}", "c", "must start with /")
	f("auto", "/clickhouse/{shard}/{database}", "c", "must name {table}")
	f("auto", "/clickhouse/{shard}/{table}/{replica}", "c", "{replica} is not allowed")
	f("auto", "/clickhouse/{}/{table}", "c", "{} is not allowed")
	f("auto", "/click'house/{table}", "c", "quotes")
}

func TestServerMacros(t *testing.T) {
	for _, tc := range []struct {
		path string
		want []string
	}{
		{"", []string{"shard", "replica"}},
		{DefaultZooKeeperPath, []string{"shard", "replica"}},
		{"/ch/{layer}/{shard}/{table}/{layer}", []string{"layer", "shard", "replica"}},
		{"/ch/{table}", []string{"replica"}},
	} {
		if got := serverMacros(tc.path); !slices.Equal(got, tc.want) {
			t.Errorf("serverMacros(%q) = %v, want %v", tc.path, got, tc.want)
		}
	}
	if got, want := zooKeeperPath("", "db", "samples_local"), "/clickhouse/tables/{shard}/db/samples_local"; got != want {
		t.Errorf("default path = %q, want %q", got, want)
	}
}

func TestEngine(t *testing.T) {
	plain := tables{db: "`g`", cluster: "c"}
	repl := tables{db: "`g`", cluster: "c", replicated: true}
	for _, tc := range []struct {
		t      tables
		family string
		params []string
		want   string
	}{
		{plain, "MergeTree", nil, "MergeTree"},
		{plain, "ReplacingMergeTree", []string{"version"}, "ReplacingMergeTree(version)"},
		{repl, "MergeTree", nil, "ReplicatedMergeTree('/clickhouse/tables/{shard}/g/x_local', '{replica}')"},
		{repl, "ReplacingMergeTree", []string{"version"}, "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/g/x_local', '{replica}', version)"},
		{tables{db: "`g`", replicated: true, zkPath: "/z/{table}"}, "AggregatingMergeTree", nil, "ReplicatedAggregatingMergeTree('/z/x', '{replica}')"},
	} {
		if got := tc.t.engine(tc.family, "x", tc.params...); got != tc.want {
			t.Errorf("engine(%s, %v) = %s, want %s", tc.family, tc.params, got, tc.want)
		}
	}
}

// FuzzZooKeeperPath: whatever template checkReplicationOptions accepts
// yields, for every table, a path that starts with /, names the table, and
// cannot break out of the engine's quoted argument; the server's macros
// always include {replica} and never greenloop's own.
func FuzzZooKeeperPath(f *testing.F) {
	for _, s := range []string{DefaultZooKeeperPath, "/ch/{layer}/{shard}/{table}", "/{table}", "/a'b/{table}", "/x/{replica}/{table}", "/{}/{table}", "/{{table}}"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tmpl string) {
		if checkReplicationOptions(ReplicationAuto, tmpl, "c") != nil || tmpl == "" {
			return
		}
		p := zooKeeperPath(tmpl, "db", "samples_local")
		if !strings.HasPrefix(p, "/") || !strings.Contains(p, "samples_local") || strings.ContainsAny(p, "'\\") {
			t.Errorf("template %q gives path %q", tmpl, p)
		}
		e := tables{db: "`db`", cluster: "c", replicated: true, zkPath: tmpl}.engine("MergeTree", tblSamples)
		if strings.Count(e, "'") != 4 {
			t.Errorf("template %q gives engine %s", tmpl, e)
		}
		m := serverMacros(tmpl)
		if m[len(m)-1] != "replica" || slices.Contains(m, "database") || slices.Contains(m, "table") {
			t.Errorf("template %q needs macros %v", tmpl, m)
		}
	})
}
