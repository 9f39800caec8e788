package chstore_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/greenloop/greenloop/accounting/report"
	"github.com/greenloop/greenloop/accounting/report/chstore"
	"github.com/greenloop/greenloop/ingest/clickhouse"
	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
)

// dialAddrs opens a connection over addrs, tried in order (fail-over).
func dialAddrs(t testing.TB, addrs ...string) driver.Conn {
	t.Helper()
	conn, err := ch.Open(&ch.Options{Addr: addrs, Protocol: ch.Native, DialTimeout: time.Second,
		Auth: ch.Auth{Username: "default", Database: "default"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// TestReplicatedTables: on a cluster whose shard has two replicas, the
// report tables are ReplicatedMergeTree tables beside the series store's
// samples; an input and a snapshot written through the first replica are on
// the second, and still readable there once the first has crashed.
func TestReplicatedTables(t *testing.T) {
	rc := chtest.StartReplicated(t, "rc", 1, 2)
	addrs := rc.Addrs()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const db = "reports"
	series, err := clickhouse.Open(ctx, clickhouse.Options{Addrs: addrs, Database: db, Cluster: rc.Cluster.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer series.Close()

	// Each replica gets its tables (a greenloop server creates them on
	// every replica of the first shard); reads and writes then go through
	// a fail-over connection, the first replica while it is up.
	var inputs []*chstore.InputStore
	var snaps []*chstore.SnapshotStore
	for _, a := range addrs {
		in, err := chstore.NewInputStore(ctx, dialAddrs(t, a), db, nil, nil, nil)
		if err != nil {
			t.Fatalf("input store on %s: %v", a, err)
		}
		inputs = append(inputs, in)
		sn, err := chstore.NewSnapshotStore(ctx, dialAddrs(t, a), db, nil)
		if err != nil {
			t.Fatalf("snapshot store on %s: %v", a, err)
		}
		snaps = append(snaps, sn)
	}
	for i, a := range addrs {
		conn := dialAddrs(t, a)
		for _, tb := range []string{chstore.InputsTable, chstore.SnapshotsTable} {
			var engine, path string
			if err := conn.QueryRow(ctx, "SELECT engine, zookeeper_path FROM system.replicas WHERE database = ? AND table = ?", db, tb).Scan(&engine, &path); err != nil {
				t.Fatalf("replica %d: %s not replicated: %v", i, tb, err)
			}
			if want := "/clickhouse/tables/01/reports/" + tb; engine != "ReplicatedMergeTree" || path != want {
				t.Errorf("replica %d: %s is %s at %s, want ReplicatedMergeTree at %s", i, tb, engine, path, want)
			}
		}
	}

	if err := inputs[0].Put(ctx, "acme", "fra1", 2025, map[string]json.RawMessage{report.FFloorTotal: json.RawMessage("1200")}, "alice"); err != nil {
		t.Fatal(err)
	}
	body := []byte(`{"site":"fra1","year":2025}`)
	snap := synthetic("acme", "fra1", 2025, body, time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC))
	if err := snaps[0].Save(ctx, snap); err != nil {
		t.Fatal(err)
	}
	second := dialAddrs(t, addrs[1])
	for _, tb := range []string{chstore.InputsTable, chstore.SnapshotsTable} {
		if err := second.Exec(ctx, "SYSTEM SYNC REPLICA "+db+"."+tb); err != nil {
			t.Fatal(err)
		}
	}
	if err := rc.Servers[0][0].Kill(); err != nil {
		t.Fatal(err)
	}
	in, err := inputs[1].Get(ctx, "acme", "fra1", 2025)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := in.Current(report.FFloorTotal); !ok || string(e.Value) != "1200" || e.By != "alice" {
		t.Errorf("floor area on the second replica after the first crashed: %+v, %v; want 1200 by alice", e, ok)
	}
	got, err := snaps[1].Get(ctx, "acme", snap.ID)
	if err != nil || string(got.JSON) != string(body) || got.SHA256 != snap.SHA256 {
		t.Errorf("snapshot on the second replica after the first crashed: %+v, %v", got, err)
	}
}

// TestPlainTableOnReplicatedCluster: a report table made before the cluster
// had replicas is refused, not silently left unreplicated.
func TestPlainTableOnReplicatedCluster(t *testing.T) {
	rc := chtest.StartReplicated(t, "rc", 1, 1)
	ctx := context.Background()
	conn := dialAddrs(t, rc.Addrs()[0])
	for _, q := range []string{"CREATE DATABASE old",
		"CREATE TABLE old.samples_local (series_id UInt64, ts Int64, value Float64) ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/old/samples_local', '{replica}') ORDER BY (series_id, ts)",
		"CREATE TABLE old.report_snapshots (tenant String, id String) ENGINE = MergeTree ORDER BY (tenant, id)"} {
		if err := conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	_, err := chstore.NewSnapshotStore(ctx, conn, "old", nil)
	if err == nil || !contains(err.Error(), "report_snapshots is a MergeTree table", "replicated", "docs/operator.md") {
		t.Errorf("snapshot store over a plain table on a replicated cluster: %v", err)
	}
	if _, err := chstore.NewInputStore(ctx, conn, "old", nil, nil, nil); err != nil {
		t.Errorf("a new input table beside replicated samples: %v", err)
	}
}

func contains(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
