package sitestore_test

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenloop/greenloop/ingest/clickhouse/chtest"
	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/web/sitestore"
)

func ids(sites []config.Site) []string {
	var out []string
	for _, s := range sites {
		out = append(out, s.SiteTenant()+"/"+s.ID)
	}
	return out
}

// Set merges the file's sites and ClickHouse's; a ClickHouse site with a
// file site's tenant and id is skipped and reported; Source tells them apart.
func TestRegistrySet(t *testing.T) {
	r := sitestore.NewRegistry(fileSites)
	if got := ids(r.Sites()); !slices.Equal(got, []string{"acme/fra1", "default/lon1"}) {
		t.Fatalf("file only: %v", got)
	}
	skipped := r.Set([]config.Site{site("ams1", "acme", "NL", 1), site("lon1", "", "GB", 1), site("fra1", "globex", "DE", 1)})
	if got := ids(r.Sites()); !slices.Equal(got, []string{"acme/fra1", "default/lon1", "acme/ams1", "globex/fra1"}) {
		t.Errorf("merged: %v", got)
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0].Error(), `site "lon1" of tenant "default" skipped`) {
		t.Errorf("skipped %v", skipped)
	}
	for _, tc := range []struct{ tenant, id, want string }{
		{"acme", "fra1", sitestore.SourceFile}, {"acme", "ams1", sitestore.SourceClickHouse}, {"default", "lon1", sitestore.SourceFile},
		{"globex", "fra1", sitestore.SourceClickHouse}, {"acme", "nope", ""},
	} {
		if got := r.Source(tc.tenant, tc.id); got != tc.want {
			t.Errorf("Source(%s, %s) = %q, want %q", tc.tenant, tc.id, got, tc.want)
		}
	}
	old := r.Sites()
	r.Set(nil)
	if got := ids(r.Sites()); !slices.Equal(got, []string{"acme/fra1", "default/lon1"}) || len(old) != 4 {
		t.Errorf("after an empty set: %v (the old snapshot %v must stay whole)", got, ids(old))
	}
}

// With its ClickHouse stopped, a refresh fails, counts the error and keeps
// the last good set; once it is back, the next refresh applies the table.
func TestSyncerKeepsLastSetWhileClickHouseDown(t *testing.T) {
	chtest.Require(t)
	srv, err := chtest.Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop() })
	ctx := context.Background()
	st, err := sitestore.New(ctx, dialAddr(t, srv.Addr), "gl", fileSites, nil, stepClock())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(ctx, site("ams1", "acme", "NL", 1), "t"); err != nil {
		t.Fatal(err)
	}
	reg := sitestore.NewRegistry(fileSites)
	pr := prometheus.NewRegistry()
	var logs syncBuf
	sy, err := sitestore.NewSyncer(st, reg, sitestore.SyncOptions{Timeout: time.Second, Registerer: pr, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	metric := func(name, source string) float64 {
		t.Helper()
		mfs, err := pr.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, m := range mf.GetMetric() {
				if source != "" && (len(m.GetLabel()) == 0 || m.GetLabel()[0].GetValue() != source) {
					continue
				}
				if m.Counter != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("no metric %s{source=%q}", name, source)
		return 0
	}
	if err := sy.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	want := []string{"acme/fra1", "default/lon1", "acme/ams1"}
	if got := ids(reg.Sites()); !slices.Equal(got, want) || sy.InForce() != 1 || metric("greenloop_sites", "clickhouse") != 1 || metric("greenloop_sites", "file") != 2 {
		t.Fatalf("first refresh: %v, in force %d", got, sy.InForce())
	}
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := sy.Refresh(ctx); err == nil {
			t.Fatalf("refresh %d with ClickHouse down succeeded", i)
		}
	}
	if got := ids(reg.Sites()); !slices.Equal(got, want) {
		t.Errorf("while down: %v, want the last good %v", got, want)
	}
	if n := metric("greenloop_sites_refresh_errors_total", ""); n != 2 {
		t.Errorf("refresh errors counted %v, want 2", n)
	}
	if n := strings.Count(logs.String(), "refreshing sites from ClickHouse failed"); n != 1 {
		t.Errorf("failure logged %d times, want once (throttled):\n%s", n, logs.String())
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if err := sy.Refresh(ctx); err != nil {
		t.Fatalf("refresh after restart: %v", err)
	}
	if !strings.Contains(logs.String(), "sites refreshed from ClickHouse again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
}
