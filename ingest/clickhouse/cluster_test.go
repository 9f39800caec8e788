package clickhouse_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/ingest/storetest"
)

// TestCluster runs the store on a cluster of two single-replica shards: the
// schema on each, Distributed tables over them, writes through them.
func TestCluster(t *testing.T) {
	server(t)
	dir := t.TempDir()
	var addrs []string
	for range 2 {
		p, err := chtest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
	}
	cluster := chtest.Cluster{Name: "greenloop2", Shards: addrs}
	for i, a := range addrs {
		var port int
		fmt.Sscanf(a, "127.0.0.1:%d", &port)
		s, err := chtest.Start(filepath.Join(dir, fmt.Sprint("shard", i)), port, cluster)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Stop() })
	}
	openCluster := func(t testing.TB, db string, mod ...func(*clickhouse.Options)) *clickhouse.Store {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		o := clickhouse.Options{Addrs: addrs, Database: db, Cluster: cluster.Name}
		for _, f := range mod {
			f(&o)
		}
		st, err := clickhouse.Open(ctx, o)
		if err != nil {
			t.Fatalf("open cluster store: %v", err)
		}
		return st
	}

	t.Run("Conformance", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, dir string) ingest.Store { return openCluster(t, dbFor(dir)) })
	})

	// With the buffer: a Buffer table on every shard in front of its local
	// samples, a Distributed table over them; rows are read back from the
	// shards' memory at once.
	t.Run("Buffer", func(t *testing.T) {
		st := openCluster(t, "buffered", withBuffer(holdBuffer))
		defer st.Close()
		batch, end := recentBatch()
		mustCommit(t, st, batch)
		mustCommit(t, st, batch) // a resend
		if got := promInstant(t, st, "sum(count_over_time(greenloop_power_watts[15m]))", end); got != 120 {
			t.Errorf("count through the cluster's buffers = %v, want 120", got)
		}
		var held uint64
		for _, a := range addrs {
			one, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{a}, Database: "buffered_probe"})
			if err != nil {
				t.Fatal(err)
			}
			if n := queryUint(t, one, "SELECT count() FROM buffered.samples_local"); n != 0 {
				t.Errorf("shard %s: %d rows in samples_local before any flush, want 0", a, n)
			}
			held += queryUint(t, one, "SELECT count() FROM buffered.samples_buffer_local")
			one.Close()
		}
		if held != 240 {
			t.Errorf("the shards' buffers hold %d rows, want 240 (120 and their resend)", held)
		}
	})

	t.Run("ShardReplicas", func(t *testing.T) {
		st := openCluster(t, "sharding")
		defer st.Close()
		got, err := st.ShardReplicas(context.Background())
		if err != nil || len(got) != 2 || !slices.Equal(got[0], addrs[:1]) || !slices.Equal(got[1], addrs[1:]) {
			t.Errorf("ShardReplicas = %v, %v; want [[%s] [%s]]", got, err, addrs[0], addrs[1])
		}
	})

	t.Run("Sharding", func(t *testing.T) {
		st := openCluster(t, "sharding")
		defer st.Close()
		base := time.Date(2026, 11, 20, 10, 0, 0, 0, time.UTC).UnixMilli()
		batch := powerBatch(100, 10, base, func(i, _ int) float64 { return float64(i) })
		mustCommit(t, st, batch)
		mustCommit(t, st, batch) // a resend
		var total uint64
		for _, a := range addrs {
			one, err := clickhouse.Open(context.Background(), clickhouse.Options{Addrs: []string{a}, Database: "sharding_probe"})
			if err != nil {
				t.Fatal(err)
			}
			n := queryUint(t, one, "SELECT count() FROM sharding.samples_local FINAL")
			one.Close()
			if n < 200 || n > 800 {
				t.Errorf("shard %s holds %d of 1000 samples; sharding by series is off", a, n)
			}
			total += n
		}
		if total != 1000 {
			t.Errorf("shards hold %d samples together, want 1000", total)
		}
		// sum over nodes of count_over_time and sum_over_time across both shards.
		if got := promInstant(t, st, "sum(count_over_time(greenloop_power_watts[5m]))", base+9*15_000); got != 1000 {
			t.Errorf("count through the cluster = %v, want 1000", got)
		}
		if got := promInstant(t, st, "sum(greenloop_power_watts)", base+9*15_000); got != 4950 {
			t.Errorf("sum through the cluster = %v, want 4950", got)
		}
		es, err := st.Rollups(context.Background(), time.Minute, base, base+3*60_000, labels.MustNewMatcher(labels.MatchEqual, "node", "n7"))
		// Buckets (end-1m, end] for end = base .. base+3m hold j = 0, 1-4, 5-8, 9: resent, still counted once.
		if err != nil || len(es) != 1 || len(es[0].Buckets) != 4 || es[0].Buckets[1].Count != 4 || es[0].Buckets[2].Avg != 7 {
			t.Errorf("rollups through the cluster: %+v, %v", es, err)
		}
	})
}
