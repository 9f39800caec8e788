package clickhouse_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
)

type sampleT struct {
	l labels.Labels
	t int64
	v float64
}

func commit(t testing.TB, s storage.Appendable, batch []sampleT) error {
	t.Helper()
	app := s.Appender(context.Background())
	for _, x := range batch {
		if _, err := app.Append(0, x.l, x.t, x.v); err != nil {
			t.Fatalf("append: %v", err)
		}
	}
	return app.Commit()
}

// powerBatch is nodes power series at site fra1 (node n0, n1, ...), each
// with steps samples 15 s apart from first, valued v(node, step).
func powerBatch(nodes, steps int, first int64, v func(node, step int) float64) []sampleT {
	var batch []sampleT
	for i := range nodes {
		l := labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1", "node", fmt.Sprint("n", i))
		for j := range steps {
			batch = append(batch, sampleT{l, first + int64(j)*15_000, v(i, j)})
		}
	}
	return batch
}

func mustCommit(t testing.TB, s storage.Appendable, batch []sampleT) {
	t.Helper()
	if err := commit(t, s, batch); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

func queryUint(t testing.TB, st *clickhouse.Store, q string) uint64 {
	t.Helper()
	var n uint64
	if err := st.Conn().QueryRow(context.Background(), q).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestMigrationsIdempotent(t *testing.T) {
	db := newDB(t)
	for i := range 3 {
		st := open(t, db)
		rows, err := st.Conn().Query(context.Background(), "SELECT version FROM "+db+".schema_migrations ORDER BY version")
		if err != nil {
			t.Fatal(err)
		}
		var got []uint32
		for rows.Next() {
			var v uint32
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			got = append(got, v)
		}
		rows.Close()
		if !slices.Equal(got, []uint32{1, 2}) {
			t.Fatalf("open #%d: migrations recorded %v, want [1 2] once each", i+1, got)
		}
		if n := queryUint(t, st, "SELECT count() FROM system.tables WHERE database = '"+db+"'"); n != 7 {
			t.Fatalf("open #%d: %d tables, want 7 (migrations, series, samples, 2 rollups and their 2 views)", i+1, n)
		}
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A resent batch is counted once, in raw reads and rollups alike, with
// blocks sent and read uncompressed or LZ4-compressed.
func TestDedupResentBatch(t *testing.T) {
	for _, compression := range []string{"none", "lz4"} {
		t.Run(compression, func(t *testing.T) {
			db := newDB(t)
			st := open(t, db, func(o *clickhouse.Options) { o.Compression = compression })
			defer st.Close()
			base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixMilli()
			batch := powerBatch(3, 100, base, func(i, j int) float64 { return float64(100*i + j) })
			mustCommit(t, st, batch)
			mustCommit(t, st, batch) // the agent resends after a lost acknowledgement
			if n := queryUint(t, st, "SELECT count() FROM "+db+".samples"); n < 300 || n > 600 {
				t.Fatalf("raw rows %d, want between 300 and 600", n)
			}
			if n := queryUint(t, st, "SELECT count() FROM "+db+".samples FINAL"); n != 300 {
				t.Fatalf("deduplicated rows %d, want 300", n)
			}
			// Through PromQL: the sum of all samples and their number are counted once.
			got := promInstant(t, st, "sum(count_over_time(greenloop_power_watts[1h]))", base+99*15_000)
			if got != 300 {
				t.Errorf("count_over_time sum = %v, want 300", got)
			}
			// sum over i of sum over j of (100i + j) = 100*100*(0+1+2) + 3*4950
			got = promInstant(t, st, "sum(sum_over_time(greenloop_power_watts[1h]))", base+99*15_000)
			if want := float64(30000 + 3*4950); got != want {
				t.Errorf("sum_over_time sum = %v, want %v", got, want)
			}
			// The rollups' averages and counts also ignore the duplicate.
			rs, err := st.Rollups(context.Background(), time.Hour, base, base+2*3_600_000, labels.MustNewMatcher(labels.MatchEqual, "node", "n1"))
			if err != nil {
				t.Fatal(err)
			}
			// Buckets are (h-1h, h]: base is on the hour, so j=0 ends the first bucket.
			if len(rs) != 1 || len(rs[0].Buckets) != 2 {
				t.Fatalf("rollups %+v", rs)
			}
			b := rs[0].Buckets[1]
			// Bucket (base, base+1h] holds j = 1..99 (the window ends before j=240).
			if b.Count != 99 || b.Avg != 150 || b.Min != 101 || b.Max != 199 || b.First != 101 || b.Last != 199 {
				t.Errorf("bucket %+v, want 99 samples 101..199 avg 150", b)
			}
		})
	}
}

func TestMatchersEdgeCases(t *testing.T) {
	st := open(t, newDB(t))
	defer st.Close()
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixMilli()
	var batch []sampleT
	for i, site := range []string{"fra", "fra1", "a|b", "x.y", "xzy", "", "line\nbreak", "quo'te\\"} {
		kv := []string{"__name__", "m", "i", fmt.Sprint(i)}
		if site != "" {
			kv = append(kv, "site", site)
		}
		batch = append(batch, sampleT{labels.FromStrings(kv...), base, float64(i)})
	}
	mustCommit(t, st, batch)
	m := labels.MustNewMatcher
	cases := []struct {
		m    *labels.Matcher
		want []string // values of i
	}{
		{m(labels.MatchRegexp, "site", "fra"), []string{"0"}}, // anchored: not fra1
		{m(labels.MatchRegexp, "site", "fra.*"), []string{"0", "1"}},
		{m(labels.MatchRegexp, "site", `a\|b`), []string{"2"}},
		{m(labels.MatchRegexp, "site", "a|b"), nil}, // alternation inside the anchors
		{m(labels.MatchRegexp, "site", `x\.y`), []string{"3"}},
		{m(labels.MatchRegexp, "site", "x.y"), []string{"3", "4"}},
		{m(labels.MatchRegexp, "site", "(?i)FRA"), []string{"0"}},
		{m(labels.MatchRegexp, "site", "line.break"), []string{"6"}}, // dot matches a newline
		{m(labels.MatchEqual, "site", "quo'te\\"), []string{"7"}},
		{m(labels.MatchRegexp, "site", ""), []string{"5"}},                                  // only the series without site
		{m(labels.MatchNotRegexp, "site", "fra.*"), []string{"2", "3", "4", "5", "6", "7"}}, // includes the missing label
		{m(labels.MatchNotEqual, "site", ""), []string{"0", "1", "2", "3", "4", "6", "7"}},
		{m(labels.MatchRegexp, "site", ".+"), []string{"0", "1", "2", "3", "4", "6", "7"}},
		{m(labels.MatchNotEqual, "site", "fra"), []string{"1", "2", "3", "4", "5", "6", "7"}},
		{m(labels.MatchRegexp, "__name__", "m|n"), []string{"0", "1", "2", "3", "4", "5", "6", "7"}},
		{m(labels.MatchNotRegexp, "__name__", "m"), nil},
	}
	for _, c := range cases {
		q, err := st.Querier(base-1, base+1)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		ss := q.Select(context.Background(), true, nil, c.m)
		for ss.Next() {
			got = append(got, ss.At().Labels().Get("i"))
		}
		if err := ss.Err(); err != nil {
			t.Fatalf("%s: %v", c.m, err)
		}
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("%s: got %q want %q", c.m, got, c.want)
		}
		vals, _, err := q.LabelValues(context.Background(), "i", nil, c.m)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(vals, c.want) {
			t.Errorf("label values of i for %s: got %q want %q", c.m, vals, c.want)
		}
		q.Close()
	}
}

// expectBuckets computes left-open buckets of res from samples (sorted by time).
func expectBuckets(pts []sampleT, res int64) []clickhouse.Bucket {
	var out []clickhouse.Bucket
	var sum float64
	for _, p := range pts {
		end := (p.t + res - 1) / res * res
		if len(out) == 0 || out[len(out)-1].End != end {
			if len(out) > 0 {
				out[len(out)-1].Avg = sum / float64(out[len(out)-1].Count)
			}
			out = append(out, clickhouse.Bucket{End: end, Min: p.v, Max: p.v, First: p.v})
			sum = 0
		}
		b := &out[len(out)-1]
		b.Min, b.Max, b.Last = min(b.Min, p.v), max(b.Max, p.v), p.v
		b.Count++
		sum += p.v
	}
	if len(out) > 0 {
		out[len(out)-1].Avg = sum / float64(out[len(out)-1].Count)
	}
	return out
}

func TestRollupsMatchRaw(t *testing.T) {
	st := open(t, newDB(t))
	defer st.Close()
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixMilli()
	l := labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1")
	var pts []sampleT
	// 3 hours, irregular spacing (1..20 s, landing on bucket edges now and
	// then, and now and then 300 ms: two samples in one second).
	for ts := base; ts < base+3*3_600_000; {
		pts = append(pts, sampleT{l, ts, math.Round(rng.Float64()*1e6) / 100})
		if len(pts)%50 == 0 {
			ts += 300
		} else {
			ts += int64(1+rng.IntN(20)) * 1000
		}
	}
	// Written in three overlapping batches: the overlap is a resend.
	third := len(pts) / 3
	mustCommit(t, st, pts[:2*third])
	mustCommit(t, st, pts[third:])
	for _, res := range []time.Duration{time.Minute, time.Hour} {
		want := expectBuckets(pts, res.Milliseconds())
		rs, err := st.Rollups(context.Background(), res, math.MinInt64, math.MaxInt64, labels.MustNewMatcher(labels.MatchEqual, "site", "fra1"))
		if err != nil {
			t.Fatal(err)
		}
		if len(rs) != 1 || len(rs[0].Buckets) != len(want) {
			t.Fatalf("%v: got %d series, want 1 with %d buckets", res, len(rs), len(want))
		}
		for i, b := range rs[0].Buckets {
			w := want[i]
			if res == time.Minute {
				if !math.IsNaN(b.First) {
					t.Fatalf("minute bucket %d: first %v, want NaN (not kept)", i, b.First)
				}
				b.First = w.First
			}
			if b.End != w.End || b.Count != w.Count || b.Min != w.Min || b.Max != w.Max || b.First != w.First || b.Last != w.Last ||
				math.Abs(b.Avg-w.Avg) > 1e-9*math.Abs(w.Avg) {
				t.Errorf("%v bucket %d: got %+v want %+v", res, i, b, w)
			}
		}
	}
}

func TestEnergyByHour(t *testing.T) {
	st := open(t, newDB(t))
	defer st.Close()
	h := int64(3_600_000)
	base := time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC).UnixMilli()
	a := labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", "fra1", "component", "it")
	b := labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", "fra1", "component", "facility")
	var batch []sampleT
	// a: 1,000 J a minute from 00:01 to 05:00, so 60,000 J per full hour.
	for m := int64(1); m <= 300; m++ {
		batch = append(batch, sampleT{a, base + m*60_000, float64(5000 + 1000*m)})
	}
	// b: 10 J a minute, reset to zero at 02:30 (then 10 J a minute again), ends at 04:00.
	for m := int64(1); m <= 240; m++ {
		v := float64(10 * m)
		if m > 150 {
			v = float64(10 * (m - 150))
		}
		batch = append(batch, sampleT{b, base + m*60_000, v})
	}
	mustCommit(t, st, batch)
	es, err := st.EnergyByHour(context.Background(), base+h, base+4*h, labels.MustNewMatcher(labels.MatchEqual, "__name__", "greenloop_energy_joules_total"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]float64{}
	for _, s := range es {
		var hs []float64
		for i, x := range s.Hours {
			if x.Start != base+int64(i+1)*h {
				t.Errorf("%s hour %d starts at %d", s.Labels, i, x.Start)
			}
			hs = append(hs, x.Joules)
		}
		got[s.Labels.Get("component")] = hs
	}
	want := map[string][]float64{
		"it": {60000, 60000, 60000},
		// 01:00-02:00: 600; 02:00-03:00: the reset hour counts the 300 J since the reset
		// (the 300 J before it are lost inside the hour); 03:00-04:00: 600.
		"facility": {600, 300, 600},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("energy by hour %v, want %v", got, want)
	}
	// The first hour of a series, with no reading before it, counts last - first.
	es, err = st.EnergyByHour(context.Background(), base, base+h, labels.MustNewMatcher(labels.MatchEqual, "component", "it"))
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || len(es[0].Hours) != 1 || es[0].Hours[0].Joules != 59000 {
		t.Errorf("first hour %+v, want 59000 J (60 readings 1 minute apart)", es)
	}
	// The hourly buckets carry their last sample's time (the energy
	// accounting places the hour's readings with it): b's last reading is at 04:00.
	rs, err := st.Rollups(context.Background(), time.Hour, base+h, base+5*h, labels.MustNewMatcher(labels.MatchEqual, "component", "facility"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || len(rs[0].Buckets) != 4 {
		t.Fatalf("facility rollups %+v, want 4 hourly buckets", rs)
	}
	for i, bk := range rs[0].Buckets {
		if want := base + int64(i+1)*h; bk.LastTS != want || bk.End != want {
			t.Errorf("bucket %d: ends %d, last sample at %d; want both %d", i, bk.End, bk.LastTS, want)
		}
	}
}

// TestOutage stops ClickHouse in the middle of ingestion: Commit must fail
// with ErrUnavailable within a bounded time, and after a restart the resent
// batch is stored once.
func TestOutage(t *testing.T) {
	server(t)
	own, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = own.Stop() })
	ctx := context.Background()
	st, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: []string{own.Addr}, Database: "outage",
		WriteTimeout: 3 * time.Second, DialTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixMilli()
	batch := func(from int) []sampleT {
		var out []sampleT
		for i := from; i < from+500; i++ {
			out = append(out, sampleT{labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1", "node", fmt.Sprint("n", i%5)), base + int64(i)*1000, float64(i)})
		}
		return out
	}
	mustCommit(t, st, batch(0))
	if err := own.Kill(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = commit(t, st, batch(500))
	took := time.Since(start)
	if !errors.Is(err, clickhouse.ErrUnavailable) {
		t.Fatalf("commit with the server down: %v, want ErrUnavailable", err)
	}
	if took > 8*time.Second {
		t.Errorf("commit took %v to fail, want under 8 s (write timeout 3 s)", took)
	}
	t.Logf("commit failed after %v: %v", took.Round(time.Millisecond), err)
	if err := own.Restart(); err != nil {
		t.Fatal(err)
	}
	// The client resends, as an agent's queue does, until acknowledged.
	var attempts int
	for attempts = 1; ; attempts++ {
		err = commit(t, st, batch(500))
		if err == nil {
			break
		}
		if !errors.Is(err, clickhouse.ErrUnavailable) || attempts == 5 {
			t.Fatalf("resend #%d after restart: %v", attempts, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("resend acknowledged on attempt %d", attempts)
	mustCommit(t, st, batch(500)) // and once more: a duplicate resend

	// A server that hangs (rather than refusing connections) fails the commit after WriteTimeout.
	if err := own.Pause(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	err = commit(t, st, batch(1000))
	took = time.Since(start)
	if err := own.Resume(); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(err, clickhouse.ErrUnavailable) || took > 8*time.Second {
		t.Fatalf("commit to a hung server: %v after %v, want ErrUnavailable within 8 s", err, took)
	}
	t.Logf("commit to a hung server failed after %v: %v", took.Round(time.Millisecond), err)
	for attempts = 1; ; attempts++ {
		err = commit(t, st, batch(1000))
		if err == nil {
			break
		}
		if !errors.Is(err, clickhouse.ErrUnavailable) || attempts == 5 {
			t.Fatalf("resend #%d after resume: %v", attempts, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// The timed-out insert may have landed after all; counted once either way.
	if n := queryUint(t, st, "SELECT count() FROM outage.samples FINAL"); n != 1500 {
		t.Fatalf("%d samples stored, want 1500 (no loss, no duplicates)", n)
	}
	q, err := st.Querier(base, base+2_000_000)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ss := q.Select(ctx, true, nil, labels.MustNewMatcher(labels.MatchEqual, "node", "n3"))
	var n int
	for ss.Next() {
		it := ss.At().Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			n++
		}
	}
	if ss.Err() != nil || n != 300 {
		t.Fatalf("node n3 has %d samples (%v), want 300", n, ss.Err())
	}
}

// TestRetentionDropsOldPartitions: on a server without TTL, Open drops the
// day partitions older than the retention, per table.
func TestRetentionDropsOldPartitions(t *testing.T) {
	db := newDB(t)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	opts := func(o *clickhouse.Options) {
		o.Retention = 48 * time.Hour
		o.MinuteRetention = 72 * time.Hour
		o.Now = func() time.Time { return now }
	}
	st := open(t, db, opts)
	l := labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1")
	var batch []sampleT
	for _, age := range []time.Duration{10 * 24 * time.Hour, 3 * 24 * time.Hour, time.Hour} {
		batch = append(batch, sampleT{l, now.Add(-age).UnixMilli(), 1})
	}
	mustCommit(t, st, batch)
	st.Close()
	st = open(t, db, opts) // Open enforces retention
	defer st.Close()
	for _, c := range []struct {
		table string
		want  uint64
	}{
		{"samples", 1},    // 10 d and 3 d old are past 48 h
		{"samples_1m", 2}, // 10 d is past 72 h
		{"samples_1h", 3}, // 400 days by default
	} {
		if n := queryUint(t, st, "SELECT count() FROM "+db+"."+c.table); n != c.want {
			t.Errorf("%s: %d rows after retention, want %d", c.table, n, c.want)
		}
	}
}

// Series rows whose samples have left every table (raw and both rollups) are
// deleted by the retention job, after a day's grace; a pruned series that
// reports again is stored again.
func TestRetentionPrunesSeries(t *testing.T) {
	db := newDB(t)
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(now.Add(-48 * time.Hour).UnixMilli())
	st := open(t, db, func(o *clickhouse.Options) {
		o.Retention, o.MinuteRetention, o.HourRetention = 48*time.Hour, 48*time.Hour, 72*time.Hour
		o.RetentionInterval = 200 * time.Millisecond
		o.Now = func() time.Time { return time.UnixMilli(clock.Load()) }
	})
	defer st.Close()
	ser := func(node string) labels.Labels {
		return labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1", "node", node)
	}
	old, recent := now.Add(-60*24*time.Hour).UnixMilli(), now.Add(-time.Hour).UnixMilli()
	// Stored two days before now: gone (a), current (b), current but NaN only,
	// so in no rollup (c).
	mustCommit(t, st, []sampleT{{ser("a"), old, 1}, {ser("b"), recent, 2}, {ser("c"), recent, math.NaN()}})
	clock.Store(now.UnixMilli())
	// Stored now, samples already past retention: within the grace (e).
	mustCommit(t, st, []sampleT{{ser("e"), old, 3}})
	nodes := func() []string {
		rows, err := st.Conn().Query(context.Background(), "SELECT DISTINCT label_values[1] FROM "+db+".series")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []string
		for rows.Next() {
			var n string
			if err := rows.Scan(&n); err != nil {
				t.Fatal(err)
			}
			out = append(out, n)
		}
		slices.Sort(out)
		return out
	}
	deadline := time.Now().Add(20 * time.Second)
	for !slices.Equal(nodes(), []string{"b", "c", "e"}) {
		if time.Now().After(deadline) {
			t.Fatalf("series after retention: %v, want [b c e]", nodes())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := queryUint(t, st, "SELECT count() FROM "+db+".samples WHERE ts = "+fmt.Sprint(old)); n != 0 {
		t.Errorf("%d samples past retention left", n)
	}
	// a reports again: its series row is written again and it is queryable.
	time.Sleep(300 * time.Millisecond) // a retention pass after the deletion forgets a
	mustCommit(t, st, []sampleT{{ser("a"), now.Add(-time.Minute).UnixMilli(), 4}})
	if got := promInstant(t, st, `greenloop_power_watts{node="a"}`, now.UnixMilli()); got != 4 {
		t.Errorf("a after reporting again = %v, want 4", got)
	}
}
