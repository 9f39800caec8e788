package config

import (
	"strings"
	"testing"
)

// TestValidateClickHouseReplication checks storage.clickhouse.replication and
// zookeeper_path: accepted values load, each bad one is reported under its key.
func TestValidateClickHouseReplication(t *testing.T) {
	const prefix = "listen: 127.0.0.1:8080\nstorage: {backend: clickhouse, clickhouse: {addrs: ['127.0.0.1:9000', '127.0.0.1:9001'], "
	f := func(fields string, want ...string) {
		t.Helper()
		c, err := Load(strings.NewReader(prefix + fields + "}}\n"))
		if err != nil {
			t.Fatalf("%s: %v", fields, err)
		}
		err = c.Validate()
		if len(want) == 0 {
			if err != nil {
				t.Errorf("%s: %v", fields, err)
			}
			return
		}
		for _, w := range want {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Errorf("%s: missing %q in %v", fields, w, err)
			}
		}
	}
	f("cluster: c")
	f("cluster: c, replication: auto")
	f("cluster: c, replication: 'on'")
	f("cluster: c, replication: 'off'")
	f("replication: 'off'")
	f("cluster: c, replication: 'on', zookeeper_path: '/clickhouse/{layer}/{shard}/{database}/{table}'")
	f("replication: 'on'", "storage.clickhouse.replication: on needs a cluster")
	f("cluster: c, replication: 'yes'", `storage.clickhouse.replication: want auto, on or off, got "yes"`)
	f("cluster: c, zookeeper_path: 'clickhouse/{table}'", `storage.clickhouse.zookeeper_path: must start with /, got "clickhouse/{table}"`)
	f("cluster: c, zookeeper_path: '/clickhouse/{shard}'", "storage.clickhouse.zookeeper_path: must name {table}")
	f("cluster: c, zookeeper_path: \"/click'house/{table}\"", "storage.clickhouse.zookeeper_path: must not hold quotes")
	f("cluster: c, zookeeper_path: '/c/{table}/{replica}'", "storage.clickhouse.zookeeper_path: {replica} is not allowed")
	f("cluster: c, replication: maybe, zookeeper_path: '/c/{}'",
		"storage.clickhouse.replication: want auto, on or off", "storage.clickhouse.zookeeper_path: must name {table}",
		"storage.clickhouse.zookeeper_path: {} is not allowed")
}
