package clickhouse_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/ingest/storetest"
)

// replicaConn opens a store on one server of a cluster without a cluster
// (its own probe database), to read that server's local tables.
func replicaConn(t testing.TB, addr string) *clickhouse.Store {
	t.Helper()
	st, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{addr}, Database: "probe"})
	if err != nil {
		t.Fatalf("open %s: %v", addr, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// syncReplica waits until the replica behind st has fetched every part its
// peers announced for the named local tables of db.
func syncReplica(t testing.TB, st *clickhouse.Store, db string, tables ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for _, tb := range tables {
		if err := st.Conn().Exec(ctx, "SYSTEM SYNC REPLICA "+db+"."+tb); err != nil {
			t.Fatalf("sync replica %s.%s: %v", db, tb, err)
		}
	}
}

// rollupTotals are a rollup table's aggregates over all its rows, read on one replica.
type rollupTotals struct {
	Count    uint64
	Sum      float64
	Min, Max float64
}

func readRollup(t testing.TB, st *clickhouse.Store, table string) rollupTotals {
	t.Helper()
	var r rollupTotals
	q := "SELECT countMerge(cnt), sumMerge(sum), minMerge(min), maxMerge(max) FROM " + table
	if err := st.Conn().QueryRow(context.Background(), q).Scan(&r.Count, &r.Sum, &r.Min, &r.Max); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return r
}

// replicatedBatch is 20 series × 30 samples 15 s apart (7.5 minutes), the
// value of series i at step j being i+j, all in the hour bucket ending 11:00.
func replicatedBatch(node string) (batch []sampleT, sum float64) {
	base := time.Date(2026, 11, 20, 10, 1, 0, 0, time.UTC).UnixMilli()
	for i := range 20 {
		l := labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1", "node", fmt.Sprint(node, i))
		for j := range 30 {
			v := float64(i + j)
			batch = append(batch, sampleT{l, base + int64(j)*15_000, v})
			sum += v
		}
	}
	return batch, sum
}

var replicatedTables = []string{"series_local", "samples_local", "samples_1m_local", "samples_1h_local"}

// TestReplicated runs the store on one shard of two replicas sharing a
// ZooKeeper: replicated local tables on both, writes through the Distributed
// tables, and the data and rollups equal and exact on both replicas.
func TestReplicated(t *testing.T) {
	rc := chtest.StartReplicated(t, "greenloop_r", 1, 2)
	addrs := rc.Addrs()
	openCluster := func(t testing.TB, db string) *clickhouse.Store {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		st, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: addrs, Database: db, Cluster: rc.Cluster.Name,
			WriteTimeout: 5 * time.Second, DialTimeout: time.Second})
		if err != nil {
			t.Fatalf("open replicated store: %v", err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	replicas := []*clickhouse.Store{replicaConn(t, addrs[0]), replicaConn(t, addrs[1])}

	t.Run("Schema", func(t *testing.T) {
		openCluster(t, "schema")
		st := openCluster(t, "schema") // again: the migrations are idempotent
		_ = st
		for i, r := range replicas {
			for _, tb := range replicatedTables {
				var engine, path, name string
				q := "SELECT engine, zookeeper_path, replica_name FROM system.replicas WHERE database = 'schema' AND table = '" + tb + "'"
				if err := r.Conn().QueryRow(context.Background(), q).Scan(&engine, &path, &name); err != nil {
					t.Fatalf("replica %d: %s: %v", i, q, err)
				}
				wantEngine := "ReplicatedReplacingMergeTree"
				if strings.HasPrefix(tb, "samples_1") {
					wantEngine = "ReplicatedAggregatingMergeTree"
				}
				if engine != wantEngine || path != "/clickhouse/tables/01/schema/"+tb || name != chtest.ReplicaMacro(0, i) {
					t.Errorf("replica %d: %s is %s at %s as %s, want %s at /clickhouse/tables/01/schema/%s as %s",
						i, tb, engine, path, name, wantEngine, tb, chtest.ReplicaMacro(0, i))
				}
			}
			var views uint64
			if err := r.Conn().QueryRow(context.Background(), "SELECT count() FROM system.tables WHERE database = 'schema' AND engine = 'MaterializedView'").Scan(&views); err != nil || views != 2 {
				t.Errorf("replica %d holds %d materialized views (%v), want 2", i, views, err)
			}
		}
	})

	// A batch written once, then resent, through greenloop's store. After
	// SYSTEM SYNC REPLICA each replica holds every sample and the same,
	// exact rollups: the view ran on the replica that took the INSERT, and
	// the other fetched its rollup part without running the view again.
	// The resend is stored again (insert_deduplicate=0) on both replicas
	// alike, and reads count it once.
	t.Run("WriteResendRead", func(t *testing.T) {
		st := openCluster(t, "rw")
		batch, sum := replicatedBatch("n")
		mustCommit(t, st, batch)
		for i, r := range replicas {
			syncReplica(t, r, "rw", replicatedTables...)
			if n := queryUint(t, r, "SELECT count() FROM rw.samples_local"); n != 600 {
				t.Errorf("replica %d holds %d raw rows, want 600", i, n)
			}
			if n := queryUint(t, r, "SELECT uniqExact(series_id) FROM rw.series_local"); n != 20 {
				t.Errorf("replica %d holds %d series, want 20", i, n)
			}
			for _, tb := range []string{"rw.samples_1m_local", "rw.samples_1h_local"} {
				if got, want := readRollup(t, r, tb), (rollupTotals{600, sum, 0, 48}); got != want {
					t.Errorf("replica %d: %s totals %+v, want %+v", i, tb, got, want)
				}
			}
		}
		mustCommit(t, st, batch) // a resend
		for i, r := range replicas {
			syncReplica(t, r, "rw", replicatedTables...)
			if n := queryUint(t, r, "SELECT count() FROM rw.samples_local FINAL"); n != 600 {
				t.Errorf("replica %d holds %d distinct samples after the resend, want 600", i, n)
			}
			for _, tb := range []string{"rw.samples_1m_local", "rw.samples_1h_local"} {
				if got, want := readRollup(t, r, tb), (rollupTotals{1200, 2 * sum, 0, 48}); got != want {
					t.Errorf("replica %d: %s totals after the resend %+v, want %+v (the resend once, on every replica)", i, tb, got, want)
				}
			}
		}
		end := batch[len(batch)-1].t
		if got := promInstant(t, st, "sum(count_over_time(greenloop_power_watts[10m]))", end); got != 600 {
			t.Errorf("count through the cluster = %v, want 600", got)
		}
		if got := promInstant(t, st, "sum(sum_over_time(greenloop_power_watts[10m]))", end); got != sum {
			t.Errorf("sum through the cluster = %v, want %v", got, sum)
		}
		for _, res := range []time.Duration{time.Minute, time.Hour} {
			es, err := st.Rollups(context.Background(), res, end-time.Hour.Milliseconds(), end+time.Hour.Milliseconds(),
				labels.MustNewMatcher(labels.MatchEqual, "node", "n3"))
			if err != nil || len(es) != 1 {
				t.Fatalf("%v rollups of n3: %+v, %v", res, es, err)
			}
			// n3's 30 samples are 3..32, at 10:01:00 + 15 s steps.
			var n, total float64
			for _, b := range es[0].Buckets {
				n += float64(b.Count)
				total += b.Avg * float64(b.Count)
			}
			if n != 30 || total != 525 {
				t.Errorf("%v rollups of n3 through the cluster count %v samples summing to %v, want 30 and 525: %+v", res, n, total, es[0].Buckets)
			}
		}
	})

	// The replica the store writes through (the first address; its
	// Distributed table prefers itself) crashes in the middle of an ingest
	// and comes back: the writes fail over to the other replica, and every
	// batch the store acknowledged is on both replicas afterwards.
	t.Run("ReplicaDown", func(t *testing.T) {
		st := openCluster(t, "down")
		base := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC).UnixMilli()
		var (
			mu    sync.Mutex
			acked = map[int64]bool{} // timestamps of acknowledged batches
		)
		batchAt := func(k int) []sampleT {
			var b []sampleT
			for i := range 5 {
				b = append(b, sampleT{labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1", "node", fmt.Sprint("d", i)),
					base + int64(k)*1000, float64(k)})
			}
			return b
		}
		stop := make(chan struct{})
		done := make(chan struct{})
		var failed int
		go func() {
			defer close(done)
			// As an agent does, a batch that failed is sent again until
			// acknowledged: the INSERT may have stored the samples but not
			// their rollups when the server died (the view writes after the
			// table), and the resend completes the rollups.
			for k := 0; ; k++ {
				for {
					select {
					case <-stop:
						return
					default:
					}
					err := commit(t, st, batchAt(k))
					if err == nil {
						break
					}
					if !errors.Is(err, clickhouse.ErrUnavailable) {
						t.Errorf("batch %d: %v, want ErrUnavailable or success", k, err)
					}
					failed++
					time.Sleep(20 * time.Millisecond)
				}
				mu.Lock()
				acked[base+int64(k)*1000] = true
				mu.Unlock()
			}
		}()
		time.Sleep(500 * time.Millisecond)
		down := rc.Servers[0][0]
		t0 := time.Now()
		if err := down.Kill(); err != nil { // a crash: graceful stops of 18.16 take 10 s
			t.Fatal(err)
		}
		mu.Lock()
		atStop := len(acked)
		mu.Unlock()
		time.Sleep(1500 * time.Millisecond)
		mu.Lock()
		duringOutage := len(acked)
		mu.Unlock()
		if duringOutage <= atStop {
			t.Errorf("no batch acknowledged while %s was down (%d before, %d after)", down.Addr, atStop, duringOutage)
		}
		if err := down.Restart(); err != nil {
			t.Fatal(err)
		}
		t.Logf("stopped and restarted in %v", time.Since(t0))
		time.Sleep(500 * time.Millisecond)
		close(stop)
		<-done
		mu.Lock()
		defer mu.Unlock()
		after := len(acked)
		if after <= duringOutage {
			t.Errorf("no batch acknowledged after the replica came back (%d before, %d after)", duringOutage, after)
		}
		t.Logf("%d batches acknowledged, %d failed attempts", after, failed)
		var first rollupTotals
		var stored uint64 // batches on replica 0 (each has one sample of d0)
		// The old connections to the restarted replica died with it.
		for i, r := range []*clickhouse.Store{replicaConn(t, addrs[0]), replicas[1]} {
			syncReplica(t, r, "down", replicatedTables...)
			rows, err := r.Conn().Query(context.Background(), "SELECT ts, uniqExact(series_id) FROM down.samples_local GROUP BY ts")
			if err != nil {
				t.Fatal(err)
			}
			have := map[int64]uint64{}
			for rows.Next() {
				var ts int64
				var n uint64
				if err := rows.Scan(&ts, &n); err != nil {
					t.Fatal(err)
				}
				have[ts] = n
			}
			rows.Close()
			if i == 0 {
				stored = uint64(len(have))
			}
			lost := 0
			for ts := range acked {
				if have[ts] != 5 {
					lost++
				}
			}
			if lost > 0 {
				t.Errorf("replica %d lacks samples of %d of %d acknowledged batches", i, lost, len(acked))
			}
			// Every stored sample reached the rollups (a resend may have
			// counted some twice), the same on both replicas.
			got := readRollup(t, r, "down.samples_1m_local")
			if got.Count < uint64(5*len(have)) {
				t.Errorf("replica %d: minute rollups count %d samples, fewer than the %d of its raw table", i, got.Count, 5*len(have))
			}
			if i == 0 {
				first = got
			} else if got != first {
				t.Errorf("replica 1's minute rollups %+v differ from replica 0's %+v", got, first)
			}
		}
		// Through the store, each node's rollups count each stored sample once.
		es, err := st.Rollups(context.Background(), time.Minute, base-60_000, base+3_600_000, labels.MustNewMatcher(labels.MatchEqual, "node", "d0"))
		var n uint64
		for _, e := range es {
			for _, b := range e.Buckets {
				n += uint64(b.Count)
			}
		}
		if err != nil || n != stored {
			t.Errorf("minute rollups of d0 count %d samples (%v), want the %d stored", n, err, stored)
		}
	})

	// Retention on replicated tables: each server drops the old partitions
	// (a replicated DROP PARTITION, idempotent on the second replica) and
	// deletes the series left without samples (a replicated mutation).
	t.Run("Retention", func(t *testing.T) {
		st := openCluster(t, "ret")
		batch, _ := replicatedBatch("r")
		mustCommit(t, st, batch)
		st.Close()
		later := time.Date(2026, 12, 30, 0, 0, 0, 0, time.UTC)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		st2, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: addrs, Database: "ret", Cluster: rc.Cluster.Name,
			Retention: 24 * time.Hour, MinuteRetention: 24 * time.Hour, HourRetention: 24 * time.Hour, Now: func() time.Time { return later }})
		if err != nil {
			t.Fatalf("open with retention: %v", err)
		}
		defer st2.Close()
		for i, r := range replicas {
			syncReplica(t, r, "ret", replicatedTables...)
			for _, tb := range []string{"samples_local", "samples_1m_local", "samples_1h_local"} {
				if n := queryUint(t, r, "SELECT count() FROM ret."+tb); n != 0 {
					t.Errorf("replica %d: %d rows left in %s past retention, want 0", i, n, tb)
				}
			}
			// The series deletion is a mutation: wait for it on this replica.
			deadline := time.Now().Add(30 * time.Second)
			for queryUint(t, r, "SELECT count() FROM ret.series_local") != 0 && time.Now().Before(deadline) {
				time.Sleep(100 * time.Millisecond)
			}
			if n := queryUint(t, r, "SELECT count() FROM ret.series_local"); n != 0 {
				t.Errorf("replica %d: %d series rows left without samples, want 0", i, n)
			}
		}
	})

	// The move of docs/operator.md ("An existing non-replicated schema is
	// not converted"), step by step: a plain schema with data on the first
	// replica ends up replicated on both, with the same samples and rollups
	// (not counted twice by the views).
	t.Run("MoveToReplicated", func(t *testing.T) {
		ctx := context.Background()
		exec := func(r *clickhouse.Store, qs ...string) {
			t.Helper()
			for _, q := range qs {
				if err := r.Conn().Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		}
		for _, r := range replicas {
			if _, err := clickhouse.MigrateWithReplication(ctx, r.Conn(), "mv", rc.Cluster.Name, clickhouse.ReplicationOff); err != nil {
				t.Fatal(err)
			}
		}
		// The old data: on the first replica only (plain tables do not replicate).
		exec(replicas[0],
			"INSERT INTO mv.series_local (series_id, metric, label_names, label_values, created_ms) SELECT number, 'greenloop_power_watts', ['node'], [toString(number)], 0 FROM system.numbers LIMIT 10",
			"INSERT INTO mv.samples_local (series_id, ts, value) SELECT number % 10, 1763632860000 + intDiv(number, 10) * 15000, toFloat64(number) FROM system.numbers LIMIT 400")
		before := readRollup(t, replicas[0], "mv.samples_1h_local")
		if before.Count != 400 {
			t.Fatalf("old hourly rollups count %d, want 400", before.Count)
		}
		if _, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: addrs, Database: "mv", Cluster: rc.Cluster.Name}); !errors.Is(err, clickhouse.ErrReplication) {
			t.Fatalf("open over the plain schema: %v, want ErrReplication", err)
		}
		// Step 1, on each server.
		for _, r := range replicas {
			exec(r, "RENAME TABLE mv.series_local TO mv.series_local_old, mv.samples_local TO mv.samples_local_old,"+
				" mv.samples_1m_local TO mv.samples_1m_local_old, mv.samples_1h_local TO mv.samples_1h_local_old",
				"DROP TABLE mv.samples_1m_mv_local", "DROP TABLE mv.samples_1h_mv_local", "DROP TABLE mv.schema_migrations")
		}
		// Step 3 (step 2, the servers' configuration, is done).
		st := openCluster(t, "mv")
		// Step 4, on one replica.
		exec(replicas[0],
			"INSERT INTO mv.series_local SELECT * FROM mv.series_local_old",
			"INSERT INTO mv.samples_1m_local SELECT * FROM mv.samples_1m_local_old",
			"INSERT INTO mv.samples_1h_local SELECT * FROM mv.samples_1h_local_old",
			"DETACH TABLE mv.samples_1m_mv_local", "DETACH TABLE mv.samples_1h_mv_local",
			"INSERT INTO mv.samples_local SELECT * FROM mv.samples_local_old",
			"ATTACH TABLE mv.samples_1m_mv_local", "ATTACH TABLE mv.samples_1h_mv_local")
		for i, r := range replicas {
			syncReplica(t, r, "mv", replicatedTables...)
			if n := queryUint(t, r, "SELECT count() FROM mv.samples_local"); n != 400 {
				t.Errorf("replica %d holds %d samples after the move, want 400", i, n)
			}
			for _, tb := range []string{"mv.samples_1m_local", "mv.samples_1h_local"} {
				if got := readRollup(t, r, tb); got != before {
					t.Errorf("replica %d: %s totals %+v after the move, want %+v", i, tb, got, before)
				}
			}
		}
		// The views work again: a new sample reaches the rollups once.
		mustCommit(t, st, []sampleT{{labels.FromStrings("__name__", "greenloop_power_watts", "node", "new"), 1763632860000, 1}})
		syncReplica(t, replicas[1], "mv", replicatedTables...)
		if got := readRollup(t, replicas[1], "mv.samples_1h_local").Count; got != 401 {
			t.Errorf("hourly rollups count %d after a new sample, want 401", got)
		}
	})

	// With the Buffer table: each server's buffer sits in front of its
	// replicated samples table. Rows wait in the memory of the replica that
	// took them (the store writes and reads through its first server, whose
	// Distributed tables prefer the local replica), and once flushed they
	// reach the other replica, rollups included, by replication.
	t.Run("Buffer", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		st, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: addrs, Database: "buf", Cluster: rc.Cluster.Name, Buffer: holdBuffer})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		batch, end := recentBatch()
		mustCommit(t, st, batch)
		for range 5 {
			if got := promInstant(t, st, "sum(count_over_time(greenloop_power_watts[15m]))", end); got != 120 {
				t.Errorf("count through the buffers = %v, want 120", got)
			}
		}
		held := []uint64{queryUint(t, replicas[0], "SELECT count() FROM buf.samples_buffer_local"),
			queryUint(t, replicas[1], "SELECT count() FROM buf.samples_buffer_local")}
		if held[0] != 120 || held[1] != 0 {
			t.Errorf("the replicas' buffers hold %v rows, want [120 0]", held)
		}
		if err := replicas[0].Conn().Exec(ctx, "OPTIMIZE TABLE buf.samples_buffer_local"); err != nil { // flushes the buffer
			t.Fatal(err)
		}
		syncReplica(t, replicas[1], "buf", replicatedTables...)
		if n := queryUint(t, replicas[1], "SELECT count() FROM buf.samples_local"); n != 120 {
			t.Errorf("the second replica holds %d rows after the flush, want 120", n)
		}
		if got := readRollup(t, replicas[1], "buf.samples_1m_local").Count; got != 120 {
			t.Errorf("the second replica's minute rollups count %d samples after the flush, want 120", got)
		}
	})

	t.Run("ShardReplicas", func(t *testing.T) {
		got, err := openCluster(t, "schema").ShardReplicas(context.Background())
		if err != nil || len(got) != 1 || !slices.Equal(got[0], addrs) {
			t.Errorf("ShardReplicas = %v, %v; want [%v]", got, err, addrs)
		}
	})

	// Existing plain MergeTree tables on a replicated cluster are refused,
	// never converted behind the operator's back.
	t.Run("RefusesPlainTables", func(t *testing.T) {
		for _, r := range replicas {
			for _, q := range []string{"CREATE DATABASE IF NOT EXISTS plain",
				"CREATE TABLE plain.samples_local (series_id UInt64, ts Int64, value Float64) ENGINE = ReplacingMergeTree PARTITION BY tuple() ORDER BY (series_id, ts)"} {
				if err := r.Conn().Exec(context.Background(), q); err != nil {
					t.Fatal(err)
				}
			}
		}
		_, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: addrs, Database: "plain", Cluster: rc.Cluster.Name})
		if !errors.Is(err, clickhouse.ErrReplication) || !strings.Contains(err.Error(), "samples_local (ReplacingMergeTree)") ||
			!strings.Contains(err.Error(), "docs/operator.md") {
			t.Errorf("open over plain tables: %v, want ErrReplication naming samples_local and the docs", err)
		}
	})

	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, dir string) ingest.Store { return openCluster(t, dbFor(dir)) })
	})

	// ZooKeeper stops during ingest (last: the cluster is read-only until it
	// is back). A write then fails as unavailable (the API answers 503 with
	// Retry-After, and the agent keeps its queue) and is not acknowledged;
	// once ZooKeeper is back the resent write succeeds, and both replicas
	// hold every sample once.
	t.Run("ZooKeeperDown", func(t *testing.T) {
		st := openCluster(t, "zkdown")
		before, _ := replicatedBatch("a")
		during, _ := replicatedBatch("b")
		mustCommit(t, st, before)
		if err := rc.ZooKeeper.Stop(); err != nil {
			t.Fatal(err)
		}
		restarted := false
		defer func() {
			if !restarted {
				_ = rc.ZooKeeper.Restart()
			}
		}()
		t0 := time.Now()
		err := commit(t, st, during)
		if err == nil {
			t.Fatal("a write without ZooKeeper was acknowledged")
		}
		if !errors.Is(err, clickhouse.ErrUnavailable) {
			t.Errorf("write without ZooKeeper: %v, want ErrUnavailable (503)", err)
		}
		t.Logf("without ZooKeeper the write failed after %s: %v", time.Since(t0).Round(time.Millisecond), err)
		if err := rc.ZooKeeper.Restart(); err != nil {
			t.Fatal(err)
		}
		restarted = true
		t0 = time.Now()
		for deadline := time.Now().Add(90 * time.Second); ; {
			err := commit(t, st, during) // the agent's resend
			if err == nil {
				break
			}
			if !errors.Is(err, clickhouse.ErrUnavailable) {
				t.Fatalf("resend after ZooKeeper came back: %v", err)
			}
			if time.Now().After(deadline) {
				t.Fatalf("writes still fail 90 s after ZooKeeper came back: %v", err)
			}
			time.Sleep(500 * time.Millisecond)
		}
		t.Logf("writes accepted %s after ZooKeeper came back", time.Since(t0).Round(time.Millisecond))
		for i, r := range replicas {
			syncReplica(t, r, "zkdown", replicatedTables...)
			if n := queryUint(t, r, "SELECT count() FROM zkdown.samples_local FINAL"); n != 1200 {
				t.Errorf("replica %d holds %d distinct samples, want 1200 (both batches once)", i, n)
			}
			if n := queryUint(t, r, "SELECT uniqExact(series_id) FROM zkdown.series_local"); n != 40 {
				t.Errorf("replica %d holds %d series, want 40", i, n)
			}
		}
	})
}

// TestReplicationMisconfigured: a cluster with replicas on servers without
// ZooKeeper, or without the macros, fails at Open with an error naming what
// is missing.
func TestReplicationMisconfigured(t *testing.T) {
	chtest.Require(t)
	chtest.RequireZooKeeper(t)
	dir := t.TempDir()
	zk, err := chtest.StartZooKeeper(filepath.Join(dir, "zk"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = zk.Stop() })
	noDedup := map[string]string{"insert_deduplicate": "0"}
	macros := map[string]string{"shard": "01", "replica": "a"}
	for _, tc := range []struct {
		name string
		o    chtest.ServerOptions
		want []string
	}{
		{"NoZooKeeper", chtest.ServerOptions{Macros: macros, ProfileSettings: noDedup}, []string{"ZooKeeper", "<zookeeper>"}},
		{"NoMacros", chtest.ServerOptions{ZooKeeper: []string{zk.Addr}, ProfileSettings: noDedup}, []string{"{shard}, {replica}", "<macros>"}},
		{"NoReplicaMacro", chtest.ServerOptions{ZooKeeper: []string{zk.Addr}, Macros: map[string]string{"shard": "01"}, ProfileSettings: noDedup},
			[]string{"no macro {replica}"}},
		{"Deduplication", chtest.ServerOptions{ZooKeeper: []string{zk.Addr}, Macros: macros}, []string{"insert_deduplicate=1", "<insert_deduplicate>0</insert_deduplicate>"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := chtest.FreePort()
			if err != nil {
				t.Fatal(err)
			}
			self := fmt.Sprintf("127.0.0.1:%d", p)
			// The second replica never runs: the schema check comes first.
			tc.o.Port = p
			tc.o.Clusters = []chtest.Cluster{{Name: "rc", Replicas: [][]string{{self, "127.0.0.1:1"}}}}
			s, err := chtest.StartWith(filepath.Join(dir, tc.name), tc.o)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Stop() })
			_, err = clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{self}, Database: "g", Cluster: "rc"})
			if !errors.Is(err, clickhouse.ErrReplication) {
				t.Fatalf("open: %v, want ErrReplication", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

// TestReplicated2x2: two shards of two replicas each on one ZooKeeper. A
// write through the cluster spreads the series over the shards, each shard's
// replicas hold the same rows, and reads through the cluster see every
// sample once.
func TestReplicated2x2(t *testing.T) {
	rc := chtest.StartReplicated(t, "greenloop_2x2", 2, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	st, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: rc.Addrs(), Database: "two", Cluster: rc.Cluster.Name,
		WriteTimeout: 10 * time.Second, DialTimeout: time.Second})
	if err != nil {
		t.Fatalf("open 2x2 store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	batch, sum := replicatedBatch("q")
	mustCommit(t, st, batch)
	var total uint64
	var shardSeries [2]uint64
	for i, shard := range rc.Servers {
		var counts [2]uint64
		for j, srv := range shard {
			r := replicaConn(t, srv.Addr)
			syncReplica(t, r, "two", replicatedTables...)
			counts[j] = queryUint(t, r, "SELECT count() FROM two.samples_local FINAL")
			if j == 0 {
				shardSeries[i] = queryUint(t, r, "SELECT uniqExact(series_id) FROM two.samples_local")
			}
		}
		if counts[0] != counts[1] {
			t.Errorf("shard %d: replicas hold %d and %d samples", i, counts[0], counts[1])
		}
		total += counts[0]
	}
	if total != 600 || shardSeries[0] == 0 || shardSeries[1] == 0 || shardSeries[0]+shardSeries[1] != 20 {
		t.Errorf("shards hold %d samples of %v series, want 600 of 20 spread over both", total, shardSeries)
	}
	end := batch[len(batch)-1].t
	if got := promInstant(t, st, "sum(count_over_time(greenloop_power_watts[10m]))", end); got != 600 {
		t.Errorf("count through the cluster = %v, want 600", got)
	}
	if got := promInstant(t, st, "sum(sum_over_time(greenloop_power_watts[10m]))", end); got != sum {
		t.Errorf("sum through the cluster = %v, want %v", got, sum)
	}
}
