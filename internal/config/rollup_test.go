package config

import (
	"strings"
	"testing"
)

func TestAccountingRollupEnabled(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       bool
		err        string
	}{
		{"default on", "storage: {backend: tsdb}\n", true, ""},
		{"off on clickhouse", "storage: {backend: clickhouse, clickhouse: {addrs: ['127.0.0.1:9000']}}\naccounting: {rollup: {enabled: false}}\n", false, ""},
		{"on on clickhouse", "storage: {backend: clickhouse, clickhouse: {addrs: ['127.0.0.1:9000']}}\naccounting: {rollup: {enabled: true}}\n", true, ""},
		{"off on tsdb refused", "accounting: {rollup: {enabled: false}}\n", false, "accounting.rollup.enabled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Load(strings.NewReader(c.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Accounting.Rollup.Enabled != c.want {
				t.Fatalf("enabled = %v, want %v", cfg.Accounting.Rollup.Enabled, c.want)
			}
			err = cfg.Validate()
			switch {
			case c.err == "" && err != nil:
				t.Fatalf("validate: %v", err)
			case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
				t.Fatalf("validate: %v, want an error naming %s", err, c.err)
			}
		})
	}
}
