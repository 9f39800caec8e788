package chtest

import (
	"fmt"
	"path/filepath"
	"testing"
)

// RequireZooKeeper ends the test unless ZooKeeper can be started: a failure
// in CI, a skip naming the Debian package elsewhere.
func RequireZooKeeper(t testing.TB) {
	t.Helper()
	if _, _, err := ZooKeeperBinary(); err != nil {
		if inCI() {
			t.Fatalf("no ZooKeeper (Debian package %s): %v", ZooKeeperPackage, err)
		}
		t.Skipf("no ZooKeeper (Debian package %s): %v", ZooKeeperPackage, err)
	}
}

// Replicated is a cluster of shards × replicas of clickhouse-server sharing
// one ZooKeeper, each server with the macros {shard} and {replica}.
type Replicated struct {
	ZooKeeper *ZooKeeper
	// Cluster is the remote_servers entry every server has
	// (internal_replication=true on each shard).
	Cluster Cluster
	// Servers[i][j] is replica j of shard i.
	Servers [][]*Server
}

// Addrs returns the address of every server, shard by shard.
func (r *Replicated) Addrs() []string {
	var out []string
	for _, sh := range r.Servers {
		for _, s := range sh {
			out = append(out, s.Addr)
		}
	}
	return out
}

// ShardMacro and ReplicaMacro are the macros StartReplicated gives replica
// j of shard i (both counted from 0).
func ShardMacro(i int) string      { return fmt.Sprintf("%02d", i+1) }
func ReplicaMacro(i, j int) string { return fmt.Sprintf("s%dr%d", i+1, j+1) }

// StartReplicated starts ZooKeeper and a cluster named name of shards ×
// replicas servers in t.TempDir(), all on 127.0.0.1 and free ports, and
// stops them in t.Cleanup. Without the server or ZooKeeper it ends the test
// as Require and RequireZooKeeper do.
func StartReplicated(t testing.TB, name string, shards, replicas int) *Replicated {
	t.Helper()
	Require(t)
	RequireZooKeeper(t)
	dir := t.TempDir()
	zk, err := StartZooKeeper(filepath.Join(dir, "zookeeper"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = zk.Stop() })
	r := &Replicated{ZooKeeper: zk, Cluster: Cluster{Name: name}}
	ports := make([][]int, shards)
	for i := range shards {
		var addrs []string
		for range replicas {
			p, err := FreePort()
			if err != nil {
				t.Fatal(err)
			}
			ports[i] = append(ports[i], p)
			addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", p))
		}
		r.Cluster.Replicas = append(r.Cluster.Replicas, addrs)
	}
	for i := range shards {
		var row []*Server
		for j := range replicas {
			s, err := StartWith(filepath.Join(dir, fmt.Sprintf("s%dr%d", i+1, j+1)), ServerOptions{
				Port: ports[i][j], Clusters: []Cluster{r.Cluster}, ZooKeeper: []string{zk.Addr},
				Macros: map[string]string{"shard": ShardMacro(i), "replica": ReplicaMacro(i, j)},
				// What greenloop asks of a replicated cluster (docs/operator.md).
				ProfileSettings: map[string]string{"insert_deduplicate": "0"},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = s.Stop() })
			row = append(row, s)
		}
		r.Servers = append(r.Servers, row)
	}
	return r
}
