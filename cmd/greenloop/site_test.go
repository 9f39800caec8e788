package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
)

// greenloop site add|list|remove|import against a real ClickHouse: what the
// CLI writes, list shows with its source; file sites are refused.
func TestSiteCommands(t *testing.T) {
	chtest.Require(t)
	s, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Stop() })
	dir := t.TempDir()
	write := func(name, text string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	cfg := write("server.yaml", fmt.Sprintf(`storage:
  backend: clickhouse
  clickhouse: {addrs: [%s], database: glsites}
sites_store: clickhouse
sites:
  - {id: fra1, name: Frankfurt 1, tenant: acme, zone: DE}
`, s.Addr))
	ctx := context.Background()
	cli := func(want int, args ...string) string {
		t.Helper()
		var out, errOut bytes.Buffer
		if code := run(ctx, append([]string{"site"}, args...), &out, &errOut); code != want {
			t.Fatalf("site %v: exit %d, want %d: %s%s", args, code, want, out.String(), errOut.String())
		}
		return out.String() + errOut.String()
	}
	for _, tc := range []struct {
		name string
		args []string
		code int
		has  []string
	}{
		{"add", []string{"add", "--config", cfg, "--file", write("ams1.yaml", "id: ams1\nname: Amsterdam 1\ntenant: acme\nzone: NL\nit_capacity_kw: 450\n")}, 0,
			[]string{"site ams1 of tenant acme added"}},
		{"replace", []string{"add", "--config", cfg, "--file", write("ams1b.yaml", "id: ams1\nname: Amsterdam One\ntenant: acme\nzone: NL\n")}, 0,
			[]string{"site ams1 of tenant acme replaced"}},
		{"file site refused", []string{"add", "--config", cfg, "--file", write("fra1.yaml", "id: fra1\ntenant: acme\nzone: DE\n")}, 1,
			[]string{"configuration file"}},
		{"invalid, fields named", []string{"add", "--config", cfg, "--file", write("bad.yaml", "id: bad\nlocation: {lat: 100}\n")}, 1,
			[]string{"zone: must be set", "location.lat: must be within"}},
		{"unknown field", []string{"add", "--config", cfg, "--file", write("typo.yaml", "id: x\nzone: DE\nit_capacity: 1\n")}, 1,
			[]string{"it_capacity"}},
		{"import", []string{"import", "--config", cfg, write("list.yaml", "- {id: par1, zone: FR}\n- {id: ams1, name: Amsterdam One, tenant: acme, zone: NL}\n")}, 0,
			[]string{"2 sites: 1 added, 1 unchanged, 0 updated"}},
		{"list", []string{"list", "--config", cfg}, 0,
			[]string{"fra1  acme", "file", "ams1  acme     Amsterdam One", "par1  default", "clickhouse"}},
		{"remove", []string{"remove", "--config", cfg, "--id", "ams1", "--tenant", "acme"}, 0, []string{"site ams1 of tenant acme removed"}},
		{"remove again", []string{"remove", "--config", cfg, "--id", "ams1", "--tenant", "acme"}, 1, []string{"no such site"}},
		{"remove a file site", []string{"remove", "--config", cfg, "--id", "fra1", "--tenant", "acme"}, 1, []string{"configuration file"}},
		{"no subcommand", nil, 1, []string{"missing subcommand"}},
	} {
		out := cli(tc.code, tc.args...)
		for _, h := range tc.has {
			if !strings.Contains(out, h) {
				t.Errorf("%s: output lacks %q:\n%s", tc.name, h, out)
			}
		}
	}
	if out := cli(0, "list", "--config", cfg); strings.Contains(out, "ams1") {
		t.Errorf("removed site still listed:\n%s", out)
	}
}
