package sitestore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenloop/greenloop/internal/config"
	"github.com/greenloop/greenloop/web/sitestore"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// stepClock starts at t0 and steps a second per reading.
func stepClock() func() time.Time {
	var mu sync.Mutex
	n := 0
	return func() time.Time { mu.Lock(); defer mu.Unlock(); n++; return t0.Add(time.Duration(n) * time.Second) }
}

// syncBuf is a log buffer safe for concurrent writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// fileSites are the configuration file's sites of the tests.
var fileSites = []config.Site{
	{ID: "fra1", Name: "Frankfurt 1", Tenant: "acme", Zone: "DE", ITCapacityKW: 800},
	{ID: "lon1", Name: "London 1", Zone: "GB"}, // tenant default
}

func site(id, tenant, zone string, capKW float64) config.Site {
	return config.Site{ID: id, Name: strings.ToUpper(id), Tenant: tenant, Zone: zone, ITCapacityKW: capKW,
		Location: config.Location{Lat: 52.37, Lon: 4.9}, Meters: map[string]string{"it_energy": `greenloop_energy_joules_total{site="` + id + `",scope="it"}`},
		PUE: &config.SitePUE{Value: 1.35, Basis: "measured 2025"}}
}

func load(t *testing.T, st *sitestore.Store) map[string]config.Site {
	t.Helper()
	sites, bad, err := st.Load(context.Background())
	if err != nil || len(bad) > 0 {
		t.Fatalf("load: %v, bad rows %v", err, bad)
	}
	out := map[string]config.Site{}
	for _, s := range sites {
		out[s.SiteTenant()+"/"+s.ID] = s
	}
	return out
}

// Two stores on one database (two servers): what one puts or deletes, the
// other reads, whole; versions grow; a file site cannot be written.
func TestPutDeleteAcrossStores(t *testing.T) {
	ctx := context.Background()
	db := newDB()
	var logs syncBuf
	a, err := sitestore.New(ctx, dial(t), db, fileSites, slog.New(slog.NewTextHandler(&logs, nil)), stepClock())
	if err != nil {
		t.Fatal(err)
	}
	b, err := sitestore.New(ctx, dial(t), db, fileSites, nil, stepClock()) // the table exists: created idempotently
	if err != nil {
		t.Fatal(err)
	}
	if len(load(t, b)) != 0 {
		t.Fatal("a new table has sites")
	}
	ams1 := site("ams1", "acme", "NL", 450.5)
	ams1.Instruments = []config.Instrument{{ID: "go-1", Type: "GO", CertIDs: []string{"NL-1-100"}, From: t0.AddDate(-1, 0, 0), To: t0,
		EnergyMWh: 1234.5678901234567}}
	for _, tc := range []struct {
		name    string
		site    config.Site
		created bool
		err     error
	}{
		{"new", ams1, true, nil},
		{"same id, other tenant", site("ams1", "globex", "NL", 10), true, nil},
		{"no tenant: default", site("par1", "", "FR", 20), true, nil},
		{"file site's id", site("fra1", "acme", "DE", 1), false, sitestore.ErrFileSite},
		{"file site's id, default tenant", site("lon1", "default", "GB", 1), false, sitestore.ErrFileSite},
		{"file site's id in another tenant is fine", site("fra1", "globex", "DE", 5), true, nil},
		{"invalid", config.Site{ID: "Bad ID", Tenant: "acme"}, false, sitestore.ErrInvalid},
	} {
		created, err := a.Put(ctx, tc.site, "test")
		if !errors.Is(err, tc.err) || created != tc.created {
			t.Errorf("put %s: created %v, %v; want %v, %v", tc.name, created, err, tc.created, tc.err)
		}
	}
	got := load(t, b)
	if len(got) != 4 {
		t.Fatalf("b reads %d sites, want 4: %v", len(got), got)
	}
	g := got["acme/ams1"]
	if g.Name != "AMS1" || g.Zone != "NL" || g.ITCapacityKW != 450.5 || g.Location.Lat != 52.37 || g.PUE == nil || g.PUE.Value != 1.35 ||
		g.Meters["it_energy"] != ams1.Meters["it_energy"] || len(g.Instruments) != 1 || g.Instruments[0].EnergyMWh != 1234.5678901234567 ||
		!g.Instruments[0].To.Equal(t0) || g.Tenant != "acme" {
		t.Errorf("acme/ams1 read back as %+v", g)
	}
	if got["default/par1"].Tenant != "default" || got["globex/ams1"].ITCapacityKW != 10 {
		t.Errorf("b reads %+v", got)
	}

	// Replace through b: a new version, created false; a reads the new one.
	before, err := a.Entries(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	ams1.ITCapacityKW = 600
	if created, err := b.Put(ctx, ams1, "ops"); err != nil || created {
		t.Fatalf("replace: created %v, %v", created, err)
	}
	after, err := a.Entries(ctx, "acme")
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 1 || after[0].Version <= before[0].Version || after[0].UpdatedBy != "ops" || after[0].Site.ITCapacityKW != 600 {
		t.Errorf("after replace: %+v (before %+v)", after, before)
	}

	// Delete: gone for both; twice is ErrNotFound; a file site ErrFileSite.
	if err := a.Delete(ctx, "acme", "ams1", "ops"); err != nil {
		t.Fatal(err)
	}
	if _, ok := load(t, b)["acme/ams1"]; ok {
		t.Error("deleted site still loads")
	}
	for _, tc := range []struct{ tenant, id string }{{"acme", "ams1"}, {"acme", "nope"}, {"globex", "par1"}} {
		if err := b.Delete(ctx, tc.tenant, tc.id, "ops"); !errors.Is(err, sitestore.ErrNotFound) {
			t.Errorf("delete %s/%s: %v, want ErrNotFound", tc.tenant, tc.id, err)
		}
	}
	if err := b.Delete(ctx, "acme", "fra1", "ops"); !errors.Is(err, sitestore.ErrFileSite) {
		t.Errorf("delete a file site: %v", err)
	}
	// Put again after a delete: created.
	if created, err := b.Put(ctx, ams1, "ops"); err != nil || !created {
		t.Errorf("put after delete: created %v, %v", created, err)
	}
	if !strings.Contains(logs.String(), "site deleted") || !strings.Contains(logs.String(), "site stored") {
		t.Errorf("changes not logged:\n%s", logs.String())
	}
}

// The invalid-site error names every problem by its field path.
func TestPutInvalidNamesFields(t *testing.T) {
	st, err := sitestore.New(context.Background(), dial(t), newDB(), nil, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	bad := config.Site{ID: "x1", Zone: "", Location: config.Location{Lat: 91}, ITCapacityKW: -1,
		PUE: &config.SitePUE{Value: 0.5}, Meters: map[string]string{"it_energy": " "}}
	_, err = st.Put(context.Background(), bad, "t")
	if !errors.Is(err, sitestore.ErrInvalid) {
		t.Fatalf("put: %v", err)
	}
	for _, want := range []string{"zone: must be set", "location.lat: must be within [-90, 90], got 91", "it_capacity_kw: must not be negative, got -1",
		"pue.value: want a PUE within [1, 5], got 0.5", "pue.basis: must say", "meters.it_energy: empty selector"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	var fe *config.FieldError
	if !errors.As(err, &fe) {
		t.Errorf("no *config.FieldError in %v", err)
	}
}

// Import is idempotent, counts additions and updates, and writes nothing
// when any site of the list is invalid, a duplicate or a file site's.
func TestImport(t *testing.T) {
	ctx := context.Background()
	st, err := sitestore.New(ctx, dial(t), newDB(), fileSites, nil, stepClock())
	if err != nil {
		t.Fatal(err)
	}
	l1 := []config.Site{site("a1", "acme", "DE", 1), site("a2", "acme", "FR", 2), site("g1", "globex", "NL", 3)}
	changed := []config.Site{site("a1", "acme", "DE", 1), site("a2", "acme", "FR", 22), site("a3", "acme", "BE", 3)}
	for _, tc := range []struct {
		name  string
		sites []config.Site
		want  sitestore.ImportResult
	}{
		{"first run", l1, sitestore.ImportResult{Added: 3}},
		{"second run", l1, sitestore.ImportResult{Unchanged: 3}},
		{"one changed, one new", changed, sitestore.ImportResult{Added: 1, Unchanged: 1, Updated: 1}},
	} {
		got, err := st.Import(ctx, tc.sites, "import")
		if err != nil || got != tc.want {
			t.Fatalf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	if got := load(t, st); len(got) != 4 || got["acme/a2"].ITCapacityKW != 22 {
		t.Fatalf("after imports: %v", got)
	}
	for _, tc := range []struct {
		name  string
		sites []config.Site
		want  []string
	}{
		{"invalid", []config.Site{site("n1", "acme", "DE", 1), {ID: "n2", Tenant: "acme"}}, []string{"[1].zone: must be set"}},
		{"duplicate", []config.Site{site("n1", "acme", "DE", 1), site("n1", "acme", "FR", 1)}, []string{`[1].id: duplicate of [0].id "n1"`}},
		{"file site", []config.Site{site("n1", "acme", "DE", 1), site("fra1", "acme", "DE", 1)}, []string{"[1]: site \"fra1\"", "configuration file"}},
	} {
		_, err := st.Import(ctx, tc.sites, "import")
		if !errors.Is(err, sitestore.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", tc.name, err)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error lacks %q: %v", tc.name, w, err)
			}
		}
	}
	if _, ok := load(t, st)["acme/n1"]; ok {
		t.Error("a refused import wrote some of its sites")
	}
}

// Rows written by hand that cannot be sites, or that are a file site's,
// are skipped and reported by tenant and id; merged by OPTIMIZE FINAL the
// table reads the same.
func TestBadRowsAndMerges(t *testing.T) {
	ctx := context.Background()
	conn, db := dial(t), newDB()
	st, err := sitestore.New(ctx, conn, db, fileSites, nil, stepClock())
	if err != nil {
		t.Fatal(err)
	}
	good := site("good", "acme", "DE", 1)
	if _, err := st.Put(ctx, good, "t"); err != nil {
		t.Fatal(err)
	}
	good.ITCapacityKW = 2
	if _, err := st.Put(ctx, good, "t"); err != nil {
		t.Fatal(err)
	}
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+"."+sitestore.Table+" (tenant, id, site, version, deleted, updated_by, updated_at_ns)")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ tenant, id, doc string }{
		{"acme", "notjson", `{"id": "notjson", "zone": `},
		{"acme", "unknown", `{"id": "unknown", "tenant": "acme", "zone": "DE", "colour": "green"}`},
		{"acme", "invalid", `{"id": "invalid", "tenant": "acme", "zone": ""}`},
		{"acme", "mismatch", `{"id": "other", "tenant": "acme", "zone": "DE"}`},
		{"acme", "fra1", `{"id": "fra1", "tenant": "acme", "zone": "DE"}`},
	} {
		if err := b.Append(r.tenant, r.id, r.doc, uint64(1), uint8(0), "hand", t0.UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		sites, bad, err := st.Load(ctx)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if len(sites) != 1 || sites[0].ID != "good" || sites[0].ITCapacityKW != 2 {
			t.Errorf("%s: sites %+v, want only good at 2 kW", when, sites)
		}
		var msgs []string
		for _, e := range bad {
			msgs = append(msgs, e.Error())
		}
		all := strings.Join(msgs, "\n")
		if len(bad) != 5 {
			t.Errorf("%s: %d bad rows, want 5:\n%s", when, len(bad), all)
		}
		for _, want := range []string{`site "notjson" of tenant "acme" skipped`, `"unknown" of tenant "acme" skipped: site: yaml: unmarshal errors`,
			`"invalid" of tenant "acme" skipped: invalid site: zone: must be set`, `"mismatch" of tenant "acme" skipped: the document names site "other"`,
			`"fra1" of tenant "acme" skipped: the site is in the configuration file`} {
			if !strings.Contains(all, want) {
				t.Errorf("%s: bad rows lack %q:\n%s", when, want, all)
			}
		}
	}
	check("before merge")
	if err := conn.Exec(ctx, "OPTIMIZE TABLE "+db+"."+sitestore.Table+" FINAL"); err != nil {
		t.Fatal(err)
	}
	var rows uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+"."+sitestore.Table+" WHERE id = 'good'").Scan(&rows); err != nil || rows != 1 {
		t.Errorf("after OPTIMIZE FINAL the replaced site has %d rows (%v), want 1 (ReplacingMergeTree)", rows, err)
	}
	check("after merge")
}

func TestNewBadDatabase(t *testing.T) {
	conn := dial(t)
	for _, db := range []string{"", "x`; DROP", "1abc"} {
		if _, err := sitestore.New(context.Background(), conn, db, nil, nil, nil); err == nil {
			t.Errorf("database %q accepted", db)
		}
	}
}

func sha(s string) [32]byte { return sha256.Sum256([]byte(s)) }
