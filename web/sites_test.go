package web

import (
	"encoding/json"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/greenloop/greenloop/internal/config"
)

// withSiteSource serves the sites src returns at each request.
func withSiteSource(src func() []config.Site) envOpt {
	return func(c *envConfig) { c.deps.SiteSource = src }
}

// With a SiteSource, /api/v1/sites answers what it returns at each request
// (a site added or removed in between shows at once), each tenant its own,
// and Sites is not read.
func TestSiteSourceReadAtEachRequest(t *testing.T) {
	fra1 := config.Site{ID: "fra1", Name: "Frankfurt 1", Tenant: "a", Zone: "DE", ITCapacityKW: 800}
	par1 := config.Site{ID: "par1", Name: "Paris 1", Tenant: "a", Zone: "FR", Location: config.Location{Lat: 48.85, Lon: 2.35}}
	other := config.Site{ID: "lon1", Tenant: "b", Zone: "GB"}
	var cur atomic.Pointer[[]config.Site]
	set := func(s ...config.Site) { cur.Store(&s) }
	set(fra1, other)
	e := newEnv(t,
		withTokens(tokenLine("tok-a", "a", "operator", "alice"), tokenLine("tok-b", "b", "operator", "bob")),
		withSites(config.Site{ID: "static", Tenant: "a", Zone: "DE"}),
		withSiteSource(func() []config.Site { return *cur.Load() }))
	ids := func(token string) []string {
		t.Helper()
		var out struct {
			Sites []struct {
				ID   string  `json:"id"`
				Zone string  `json:"zone"`
				Cap  float64 `json:"it_capacity_kw"`
			} `json:"sites"`
		}
		if err := json.Unmarshal(e.get("/api/v1/sites", token, 200), &out); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range out.Sites {
			got = append(got, s.ID+"/"+s.Zone)
		}
		return got
	}
	for _, tc := range []struct {
		name  string
		sites []config.Site
		a, b  []string
	}{
		{"start", []config.Site{fra1, other}, []string{"fra1/DE"}, []string{"lon1/GB"}},
		{"par1 added", []config.Site{fra1, other, par1}, []string{"fra1/DE", "par1/FR"}, []string{"lon1/GB"}},
		{"fra1 and lon1 removed", []config.Site{par1}, []string{"par1/FR"}, nil},
	} {
		set(tc.sites...)
		if got := ids("tok-a"); !slices.Equal(got, tc.a) {
			t.Errorf("%s: tenant a sees %v, want %v", tc.name, got, tc.a)
		}
		if got := ids("tok-b"); !slices.Equal(got, tc.b) {
			t.Errorf("%s: tenant b sees %v, want %v", tc.name, got, tc.b)
		}
	}
}
