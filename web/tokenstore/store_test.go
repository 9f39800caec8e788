package tokenstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/web"
	"github.com/greenloop/greenloop/web/tokenstore"
)

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// stepClock starts at t0 and steps a second per reading.
func stepClock() func() time.Time {
	n := 0
	return func() time.Time { n++; return t0.Add(time.Duration(n) * time.Second) }
}

func webToken(secret, tenant string, role web.Role, name string) web.Token {
	return web.Token{Hash: sha256.Sum256([]byte(secret)), Identity: web.Identity{Tenant: tenant, Role: role, Name: name}}
}

func hashOf(secret string) string {
	s := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(s[:])
}

// identities are the live tokens' identities, keyed by hash.
func identities(t *testing.T, st *tokenstore.Store) map[string]web.Identity {
	t.Helper()
	toks, bad, err := st.Load(context.Background())
	if err != nil || len(bad) > 0 {
		t.Fatalf("load: %v, bad rows %v", err, bad)
	}
	out := map[string]web.Identity{}
	for _, tk := range toks {
		out[hex.EncodeToString(tk.Hash[:])] = tk.Identity
	}
	return out
}

// Two stores on one database (two servers): what one adds or revokes, the
// other reads; the log never shows a token or a hash.
func TestAddRevokeAcrossStores(t *testing.T) {
	ctx := context.Background()
	db := newDB()
	var logs syncBuf
	a, err := tokenstore.New(ctx, dial(t), db, slog.New(slog.NewTextHandler(&logs, nil)), stepClock())
	if err != nil {
		t.Fatal(err)
	}
	b, err := tokenstore.New(ctx, dial(t), db, nil, stepClock()) // the table exists: created idempotently
	if err != nil {
		t.Fatal(err)
	}
	if len(identities(t, b)) != 0 {
		t.Fatal("a new table has tokens")
	}
	alice := webToken("secret-alice", "acme", web.RoleOperator, "alice")
	bob := webToken("secret-bob", "globex", web.RoleOfficer, "bob")
	for _, tk := range []web.Token{alice, bob} {
		if err := a.Add(ctx, tk, "test"); err != nil {
			t.Fatal(err)
		}
	}
	got := identities(t, b)
	if len(got) != 2 || got[hashOf("secret-alice")] != alice.Identity || got[hashOf("secret-bob")] != bob.Identity {
		t.Fatalf("b reads %v", got)
	}

	for _, tc := range []struct {
		name string
		tok  web.Token
		want error
	}{
		{"same hash", webToken("secret-alice", "acme", web.RoleAdmin, "other"), tokenstore.ErrExists},
		{"same name in the tenant", webToken("secret-2", "acme", web.RoleAgent, "alice"), tokenstore.ErrNameTaken},
	} {
		if err := b.Add(ctx, tc.tok, "test"); !errors.Is(err, tc.want) {
			t.Errorf("add %s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// The same name in another tenant is fine.
	alice2 := webToken("secret-alice-globex", "globex", web.RoleAgent, "alice")
	if err := b.Add(ctx, alice2, "test"); err != nil {
		t.Fatal(err)
	}

	// Revoke through b; a no longer has the token.
	if _, err := b.Revoke(ctx, tokenstore.Selector{Name: "alice"}, "ops"); !errors.Is(err, tokenstore.ErrAmbiguous) {
		t.Fatalf("revoke a name two tenants use: %v, want ErrAmbiguous", err)
	}
	hit, err := b.Revoke(ctx, tokenstore.Selector{Name: "alice", Tenant: "acme"}, "ops")
	if err != nil || len(hit) != 1 || hit[0].Hash != hashOf("secret-alice") || !hit[0].Revoked || hit[0].RevokedBy != "ops" {
		t.Fatalf("revoke alice of acme: %+v, %v", hit, err)
	}
	got = identities(t, a)
	if _, ok := got[hashOf("secret-alice")]; ok || len(got) != 2 {
		t.Fatalf("after revoking alice a reads %v", got)
	}
	if _, err := a.Revoke(ctx, tokenstore.Selector{Name: "alice", Tenant: "acme"}, "ops"); !errors.Is(err, tokenstore.ErrNoMatch) {
		t.Errorf("second revoke: %v, want ErrNoMatch", err)
	}
	// A revoked hash does not come back, and its name is free again.
	if err := a.Add(ctx, alice, "test"); !errors.Is(err, tokenstore.ErrExists) {
		t.Errorf("re-adding a revoked hash: %v, want ErrExists", err)
	}
	if err := a.Add(ctx, webToken("secret-alice-new", "acme", web.RoleOperator, "alice"), "test"); err != nil {
		t.Errorf("new token under a revoked name: %v", err)
	}

	// By hash prefix: too short, ambiguous among all, and exact.
	if _, err := a.Revoke(ctx, tokenstore.Selector{HashPrefix: hashOf("secret-bob")[:5]}, "ops"); err == nil || !strings.Contains(err.Error(), "6 to 64 hex digits") {
		t.Errorf("5-digit prefix: %v", err)
	}
	if _, err := a.Revoke(ctx, tokenstore.Selector{HashPrefix: "zzzzzz"}, "ops"); err == nil {
		t.Error("non-hex prefix accepted")
	}
	if _, err := a.Revoke(ctx, tokenstore.Selector{}, "ops"); err == nil {
		t.Error("empty selector accepted")
	}
	hit, err = a.Revoke(ctx, tokenstore.Selector{HashPrefix: strings.ToUpper(hashOf("secret-bob")[:8])}, "ops")
	if err != nil || len(hit) != 1 || hit[0].Name != "bob" {
		t.Fatalf("revoke by prefix: %+v, %v", hit, err)
	}

	entries, err := b.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	live, revoked := 0, 0
	for _, e := range entries {
		if e.Revoked {
			revoked++
			if !e.RevokedAt.After(e.CreatedAt) {
				t.Errorf("%s revoked at %v, created %v", e.Name, e.RevokedAt, e.CreatedAt)
			}
		} else {
			live++
		}
		if e.CreatedBy != "test" || e.CreatedAt.Before(t0) {
			t.Errorf("entry %+v: audit columns", e)
		}
	}
	if live != 2 || revoked != 2 {
		t.Errorf("%d live and %d revoked entries, want 2 and 2: %+v", live, revoked, entries)
	}
	for _, secret := range []string{"secret-alice", "secret-bob"} {
		if strings.Contains(logs.String(), secret) || strings.Contains(logs.String(), hashOf(secret)[:16]) {
			t.Errorf("log shows a token or its hash:\n%s", logs.String())
		}
	}
	if !strings.Contains(logs.String(), "token revoked") {
		t.Errorf("revocation not logged:\n%s", logs.String())
	}
}

// Revoking several needs All; each revoked row gets a version above the
// previous, even when the clock steps back.
func TestRevokeAllAndClockStepsBack(t *testing.T) {
	ctx := context.Background()
	readings := []time.Time{t0, t0.Add(time.Second), t0.Add(-time.Hour), t0.Add(-time.Hour), t0.Add(-time.Hour)}
	i := 0
	st, err := tokenstore.New(ctx, dial(t), newDB(), nil, func() time.Time { i++; return readings[min(i, len(readings))-1] })
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range []web.Token{webToken("s1", "acme", web.RoleAgent, "fra1"), webToken("s2", "globex", web.RoleAgent, "fra1")} {
		if err := st.Add(ctx, tk, "test"); err != nil {
			t.Fatal(err)
		}
	}
	before, err := st.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hit, err := st.Revoke(ctx, tokenstore.Selector{Name: "fra1", All: true}, "ops")
	if err != nil || len(hit) != 2 {
		t.Fatalf("revoke all: %+v, %v", hit, err)
	}
	after, err := st.Entries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k := range after {
		if !after[k].Revoked || after[k].Version <= before[k].Version {
			t.Errorf("%s: revoked %v, version %d after %d", after[k].Tenant, after[k].Revoked, after[k].Version, before[k].Version)
		}
	}
	if toks, _, err := st.Load(ctx); err != nil || len(toks) != 0 {
		t.Errorf("after revoking all: %d tokens, %v", len(toks), err)
	}
}

// Import is idempotent, updates changed identities and never revives a
// revoked token; it reads what ParseTokens reads.
func TestImport(t *testing.T) {
	ctx := context.Background()
	st, err := tokenstore.New(ctx, dial(t), newDB(), nil, stepClock())
	if err != nil {
		t.Fatal(err)
	}
	file := func(lines ...string) []web.Token {
		t.Helper()
		toks, err := web.ParseTokens(strings.NewReader(strings.Join(lines, "\n")))
		if err != nil {
			t.Fatal(err)
		}
		return toks
	}
	line := func(secret, rest string) string { return hashOf(secret) + " " + rest }
	f1 := file("# first", line("t1", "acme admin Ops Team"), line("t2", "acme agent fra1"), line("t3", "globex officer olga"))
	for _, tc := range []struct {
		name string
		toks []web.Token
		want tokenstore.ImportResult
	}{
		{"first run", f1, tokenstore.ImportResult{Added: 3}},
		{"second run", f1, tokenstore.ImportResult{Unchanged: 3}},
		{"role changed, one new", file(line("t1", "acme operator Ops Team"), line("t2", "acme agent fra1"), line("t4", "acme scheduler k8s")),
			tokenstore.ImportResult{Added: 1, Unchanged: 1, Updated: 1}},
	} {
		got, err := st.Import(ctx, tc.toks, "import:tokens")
		if err != nil || got != tc.want {
			t.Fatalf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
		}
	}
	if _, err := st.Revoke(ctx, tokenstore.Selector{Name: "olga"}, "ops"); err != nil {
		t.Fatal(err)
	}
	got, err := st.Import(ctx, f1, "import:tokens")
	if want := (tokenstore.ImportResult{Unchanged: 1, Updated: 1, StillRevoked: 1}); err != nil || got != want {
		t.Fatalf("after a revoke: %+v, %v; want %+v", got, err, want)
	}
	ids := identities(t, st)
	want := map[string]web.Identity{
		hashOf("t1"): {Tenant: "acme", Role: web.RoleAdmin, Name: "Ops Team"},
		hashOf("t2"): {Tenant: "acme", Role: web.RoleAgent, Name: "fra1"},
		hashOf("t4"): {Tenant: "acme", Role: web.RoleScheduler, Name: "k8s"},
	}
	if len(ids) != len(want) {
		t.Fatalf("live tokens %v, want %v", ids, want)
	}
	for h, id := range want {
		if ids[h] != id {
			t.Errorf("token %s…: %+v, want %+v", h[:8], ids[h], id)
		}
	}
	// A token a file cannot hold is refused before anything is written.
	bad := []web.Token{webToken("t9", "acme", web.RoleAdmin, "ok"), webToken("t10", "ac me", web.RoleAdmin, "x")}
	if _, err := st.Import(ctx, bad, "x"); err == nil || !strings.Contains(err.Error(), "tenant") {
		t.Errorf("import of a bad identity: %v", err)
	}
	if _, ok := identities(t, st)[hashOf("t9")]; ok {
		t.Error("a refused import wrote some of its tokens")
	}
}

// Rows written by hand (a bad hash, an unknown role, no tenant) are
// skipped and reported, by tenant and name, never by hash; the good rows
// load. Merged by OPTIMIZE ... FINAL, the table reads the same.
func TestBadRowsAndMerges(t *testing.T) {
	ctx := context.Background()
	conn, db := dial(t), newDB()
	st, err := tokenstore.New(ctx, conn, db, nil, stepClock())
	if err != nil {
		t.Fatal(err)
	}
	good := webToken("good", "acme", web.RoleOperator, "ok")
	if err := st.Add(ctx, good, "test"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Revoke(ctx, tokenstore.Selector{Name: "ok"}, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := st.Add(ctx, webToken("good2", "acme", web.RoleOperator, "ok"), "test"); err != nil {
		t.Fatal(err)
	}
	insert := "INSERT INTO " + db + "." + tokenstore.Table + " (hash, tenant, role, name, created_at_ns, created_by, revoked, revoked_at_ns, revoked_by, version)"
	b, err := conn.PrepareBatch(ctx, insert)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct {
		hash, tenant, role, name string
		revoked                  uint8
	}{
		{hashOf("x1"), "acme", "root", "bad-role", 0},
		{"not-a-hash", "acme", "admin", "bad-hash", 0},
		{strings.ToUpper(hashOf("x2")), "acme", "admin", "upper-hash", 0},
		{hashOf("x3"), "", "admin", "no-tenant", 0},
		{hashOf("x4"), "acme", "root", "revoked-bad-role", 1}, // revoked: grants nothing, not reported
	} {
		if err := b.Append(r.hash, r.tenant, r.role, r.name, t0.UnixNano(), "hand", r.revoked, int64(0), "", uint64(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}
	check := func(when string) {
		t.Helper()
		toks, bad, err := st.Load(ctx)
		if err != nil {
			t.Fatalf("%s: %v", when, err)
		}
		if len(toks) != 1 || toks[0].Hash != sha256.Sum256([]byte("good2")) {
			t.Errorf("%s: tokens %+v, want only good2", when, toks)
		}
		var msgs []string
		for _, e := range bad {
			msgs = append(msgs, e.Error())
		}
		all := strings.Join(msgs, "\n")
		if len(bad) != 4 {
			t.Errorf("%s: %d bad rows, want 4:\n%s", when, len(bad), all)
		}
		for _, want := range []string{`named "bad-role" skipped: unknown role "root"`, `named "bad-hash" skipped: hash is not 64`,
			`named "upper-hash" skipped: hash is not 64 lower-case`, `named "no-tenant" skipped: tenant ""`} {
			if !strings.Contains(all, want) {
				t.Errorf("%s: bad rows lack %q:\n%s", when, want, all)
			}
		}
		if strings.Contains(all, hashOf("x1")[:12]) || strings.Contains(all, "revoked-bad-role") {
			t.Errorf("%s: bad-row report shows a hash or a revoked row:\n%s", when, all)
		}
	}
	check("before merge")
	if err := conn.Exec(ctx, "OPTIMIZE TABLE "+db+"."+tokenstore.Table+" FINAL"); err != nil {
		t.Fatal(err)
	}
	var rows uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+"."+tokenstore.Table+" WHERE hash = ?", hashOf("good")).Scan(&rows); err != nil || rows != 1 {
		t.Errorf("after OPTIMIZE FINAL the revoked token has %d rows (%v), want 1 (ReplacingMergeTree)", rows, err)
	}
	check("after merge") // the revoked token stays revoked, the bad rows stay skipped
}

func TestNewBadDatabase(t *testing.T) {
	conn := dial(t)
	for _, db := range []string{"", "x`; DROP", "1abc"} {
		if _, err := tokenstore.New(context.Background(), conn, db, nil, nil); err == nil {
			t.Errorf("database %q accepted", db)
		}
	}
}
