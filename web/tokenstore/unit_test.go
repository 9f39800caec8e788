package tokenstore_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenloop/greenloop/web"
	"github.com/greenloop/greenloop/web/tokenstore"
)

var okHash = strings.Repeat("ab", 32)

func TestCheckIdentity(t *testing.T) {
	for _, tc := range []struct {
		name string
		id   web.Identity
		want string // substring of the error; "" = valid
	}{
		{"ok", web.Identity{Tenant: "acme", Role: web.RoleAgent, Name: "fra1 agent"}, ""},
		{"every role", web.Identity{Tenant: "acme", Role: web.RoleScheduler, Name: "k8s"}, ""},
		{"unknown role", web.Identity{Tenant: "acme", Role: "root", Name: "x"}, `unknown role "root"`},
		{"empty role", web.Identity{Tenant: "acme", Name: "x"}, "unknown role"},
		{"empty tenant", web.Identity{Role: web.RoleAdmin, Name: "x"}, "tenant"},
		{"tenant with a space", web.Identity{Tenant: "ac me", Role: web.RoleAdmin, Name: "x"}, "tenant"},
		{"tenant with a tab", web.Identity{Tenant: "ac\tme", Role: web.RoleAdmin, Name: "x"}, "tenant"},
		{"tenant too long", web.Identity{Tenant: strings.Repeat("a", 201), Role: web.RoleAdmin, Name: "x"}, "tenant"},
		{"empty name", web.Identity{Tenant: "acme", Role: web.RoleAdmin}, "name"},
		{"name with a newline", web.Identity{Tenant: "acme", Role: web.RoleAdmin, Name: "a\nb"}, "name"},
		{"name with a trailing space", web.Identity{Tenant: "acme", Role: web.RoleAdmin, Name: "ab "}, "name"},
		{"name with a tab", web.Identity{Tenant: "acme", Role: web.RoleAdmin, Name: "a\tb"}, "name"},
		{"name with two spaces", web.Identity{Tenant: "acme", Role: web.RoleAdmin, Name: "a  b"}, "name"},
		{"tenant not UTF-8", web.Identity{Tenant: "ac\xc3me", Role: web.RoleAdmin, Name: "x"}, "tenant"},
		{"name not UTF-8", web.Identity{Tenant: "acme", Role: web.RoleAdmin, Name: "x\xa9"}, "name"},
		{"unicode", web.Identity{Tenant: "été", Role: web.RoleAdmin, Name: "équipe ops"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tokenstore.CheckIdentity(tc.id)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one naming %q", err, tc.want)
			}
		})
	}
}

func TestEntryToken(t *testing.T) {
	var want [sha256.Size]byte
	for i := range want {
		want[i] = 0xab
	}
	for _, tc := range []struct {
		name string
		e    tokenstore.Entry
		err  string
	}{
		{"ok", tokenstore.Entry{Hash: okHash, Tenant: "acme", Role: web.RoleOfficer, Name: "olga"}, ""},
		{"upper-case hash", tokenstore.Entry{Hash: strings.ToUpper(okHash), Tenant: "acme", Role: web.RoleOfficer, Name: "olga"}, "lower-case hex"},
		{"short hash", tokenstore.Entry{Hash: okHash[:62], Tenant: "acme", Role: web.RoleOfficer, Name: "olga"}, "64 lower-case hex"},
		{"not hex", tokenstore.Entry{Hash: strings.Repeat("zz", 32), Tenant: "acme", Role: web.RoleOfficer, Name: "olga"}, "not hex"},
		{"bad role", tokenstore.Entry{Hash: okHash, Tenant: "acme", Role: "boss", Name: "olga"}, `unknown role "boss"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tok, err := tc.e.Token()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if strings.Contains(err.Error(), tc.e.Hash) {
					t.Errorf("error %q shows the hash", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tok.Hash != want || tok.Tenant != "acme" || tok.Role != web.RoleOfficer || tok.Name != "olga" {
				t.Errorf("token %+v", tok)
			}
		})
	}
	if p := (tokenstore.Entry{Hash: okHash}).Prefix(); p != "abababab" {
		t.Errorf("prefix %q", p)
	}
	if p := (tokenstore.Entry{Hash: "abc"}).Prefix(); p != "abc" {
		t.Errorf("prefix of a short hash %q", p)
	}
}

// Rows of the table are outside input (anyone with write access to
// ClickHouse may insert some): Token never panics, and what it accepts
// is a token a tokens file could hold.
func FuzzEntryToken(f *testing.F) {
	f.Add(okHash, "acme", "admin", "ops team")
	f.Add(strings.ToUpper(okHash), "acme", "agent", "fra1")
	f.Add("xyz", "", "root", "")
	f.Add(okHash, "a b", "officer", " n")
	f.Fuzz(func(t *testing.T, hash, tenant, role, name string) {
		tok, err := tokenstore.Entry{Hash: hash, Tenant: tenant, Role: web.Role(role), Name: name}.Token()
		if err != nil {
			return
		}
		line := hex.EncodeToString(tok.Hash[:]) + " " + tok.Tenant + " " + string(tok.Role) + " " + tok.Name + "\n"
		back, err := web.ParseTokens(strings.NewReader(line))
		if err != nil || len(back) != 1 || back[0] != tok {
			t.Fatalf("accepted %+v, which as a tokens file line reads %+v, %v", tok, back, err)
		}
	})
}

func TestNewToken(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		tok, hash := tokenstore.NewToken()
		rest, ok := strings.CutPrefix(tok, "glt_")
		if !ok {
			t.Fatalf("token %q lacks the glt_ prefix", tok)
		}
		if b, err := base64.RawURLEncoding.DecodeString(rest); err != nil || len(b) != 32 {
			t.Fatalf("token %q: %d random bytes, %v; want 32", tok, len(b), err)
		}
		if hash != sha256.Sum256([]byte(tok)) {
			t.Fatal("hash is not the SHA-256 of the token")
		}
		if seen[tok] {
			t.Fatal("token repeated")
		}
		seen[tok] = true
	}
}

// fakeSource returns what it is set to, as a ClickHouse table would.
type fakeSource struct {
	mu   sync.Mutex
	toks []web.Token
	bad  []error
	err  error
}

func (f *fakeSource) set(toks []web.Token, bad []error, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.toks, f.bad, f.err = toks, bad, err
}

func (f *fakeSource) Load(ctx context.Context) ([]web.Token, []error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.toks, f.bad, f.err
}

// syncBuf is a log sink safe for concurrent writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func tok(b byte, tenant string, role web.Role, name string) web.Token {
	t := web.Token{Identity: web.Identity{Tenant: tenant, Role: role, Name: name}}
	t.Hash[0] = b
	return t
}

func TestSyncer(t *testing.T) {
	src := &fakeSource{}
	var applied [][]web.Token
	reg := prometheus.NewRegistry()
	var logs syncBuf
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	s, err := tokenstore.NewSyncer(src, func(t []web.Token) { applied = append(applied, t) }, tokenstore.SyncOptions{
		Registerer: reg, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Clock: func() time.Time { return now },
	})
	if err != nil {
		t.Fatal(err)
	}
	if s.InForce() != -1 {
		t.Errorf("InForce before a refresh: %d", s.InForce())
	}
	metric := func(name string) float64 {
		t.Helper()
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				m := mf.GetMetric()[0]
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	ctx := context.Background()
	a, b := tok(1, "acme", web.RoleAdmin, "a"), tok(2, "globex", web.RoleAgent, "b")

	type step struct {
		name      string
		toks      []web.Token
		bad       []error
		err       error
		clock     time.Duration // since the start
		wantErr   bool
		applied   int // len(applied) after the step
		inForce   int
		errors    float64
		badRows   float64
		logErrors int // "refreshing tokens from ClickHouse failed" lines so far
		logBad    int // "bad token row skipped" lines so far
	}
	badRow := errors.New(`auth_tokens row of tenant "acme" named "x" skipped: unknown role "root"`)
	for _, st := range []step{
		{name: "first", toks: []web.Token{a, b}, applied: 1, inForce: 2},
		{name: "bad rows are skipped, logged once", toks: []web.Token{a}, bad: []error{badRow}, clock: 10 * time.Second, applied: 2, inForce: 1, badRows: 1, logBad: 1},
		{name: "same bad rows not logged again", toks: []web.Token{a}, bad: []error{badRow}, clock: 20 * time.Second, applied: 3, inForce: 1, badRows: 1, logBad: 1},
		{name: "ClickHouse down keeps the set", err: errors.New("dial tcp: connection refused"), clock: 30 * time.Second, wantErr: true,
			applied: 3, inForce: 1, errors: 1, badRows: 1, logErrors: 1, logBad: 1},
		{name: "still down: counted, not logged again within a minute", err: errors.New("dial tcp: connection refused"), clock: 40 * time.Second,
			wantErr: true, applied: 3, inForce: 1, errors: 2, badRows: 1, logErrors: 1, logBad: 1},
		{name: "down a minute later: logged again", err: errors.New("dial tcp: connection refused"), clock: 91 * time.Second,
			wantErr: true, applied: 3, inForce: 1, errors: 3, badRows: 1, logErrors: 2, logBad: 1},
		{name: "back", toks: []web.Token{b}, clock: 100 * time.Second, applied: 4, inForce: 1, errors: 3, logErrors: 2, logBad: 1},
		{name: "empty table applies an empty set", toks: []web.Token{}, clock: 110 * time.Second, applied: 5, inForce: 0, errors: 3, logErrors: 2, logBad: 1},
	} {
		now = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC).Add(st.clock)
		src.set(st.toks, st.bad, st.err)
		err := s.Refresh(ctx)
		if (err != nil) != st.wantErr {
			t.Fatalf("%s: Refresh error %v, want error %v", st.name, err, st.wantErr)
		}
		if len(applied) != st.applied {
			t.Fatalf("%s: %d sets applied, want %d", st.name, len(applied), st.applied)
		}
		if !st.wantErr && len(applied[len(applied)-1]) != len(st.toks) {
			t.Errorf("%s: applied %d tokens, want %d", st.name, len(applied[len(applied)-1]), len(st.toks))
		}
		if s.InForce() != st.inForce {
			t.Errorf("%s: InForce %d, want %d", st.name, s.InForce(), st.inForce)
		}
		if got := metric("greenloop_auth_tokens_refresh_errors_total"); got != st.errors {
			t.Errorf("%s: refresh errors %v, want %v", st.name, got, st.errors)
		}
		if got := metric("greenloop_auth_tokens"); got != float64(st.inForce) {
			t.Errorf("%s: greenloop_auth_tokens %v, want %d", st.name, got, st.inForce)
		}
		if got := metric("greenloop_auth_tokens_bad_rows"); got != st.badRows {
			t.Errorf("%s: bad rows %v, want %v", st.name, got, st.badRows)
		}
		if got := strings.Count(logs.String(), "refreshing tokens from ClickHouse failed"); got != st.logErrors {
			t.Errorf("%s: %d failure log lines, want %d:\n%s", st.name, got, st.logErrors, logs.String())
		}
		if got := strings.Count(logs.String(), "bad token row skipped"); got != st.logBad {
			t.Errorf("%s: %d bad-row log lines, want %d", st.name, got, st.logBad)
		}
	}
	if got, want := metric("greenloop_auth_tokens_last_refresh_timestamp_seconds"), float64(now.Unix()); got != want {
		t.Errorf("last refresh %v, want %v", got, want)
	}
	if !strings.Contains(logs.String(), "tokens refreshed from ClickHouse again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
}

// Run refreshes on its interval and stops with its context.
func TestSyncerRun(t *testing.T) {
	src := &fakeSource{toks: []web.Token{tok(1, "acme", web.RoleAdmin, "a")}}
	applied := make(chan int, 100)
	s, err := tokenstore.NewSyncer(src, func(t []web.Token) { applied <- len(t) }, tokenstore.SyncOptions{Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	if n := <-applied; n != 1 {
		t.Fatalf("first tick applied %d tokens", n)
	}
	src.set(nil, nil, nil)
	deadline := time.After(5 * time.Second)
	for n := -1; n != 0; {
		select {
		case n = <-applied:
		case <-deadline:
			t.Fatal("an emptied table was not applied within 5 s")
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
}

// Registering twice on one registry is an error, not a panic.
func TestSyncerMetricsRegistered(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := tokenstore.NewSyncer(&fakeSource{}, func([]web.Token) {}, tokenstore.SyncOptions{Registerer: reg}); err != nil {
		t.Fatal(err)
	}
	if _, err := tokenstore.NewSyncer(&fakeSource{}, func([]web.Token) {}, tokenstore.SyncOptions{Registerer: reg}); err == nil {
		t.Error("second syncer on one registry: no error")
	}
}
