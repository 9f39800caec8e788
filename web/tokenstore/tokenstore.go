// Package tokenstore keeps greenloop's bearer tokens in ClickHouse, so that
// several greenloop servers sharing one ClickHouse accept the same tokens:
// one added or revoked through any of them (or `greenloop token`) applies on
// all once each has refreshed (Syncer).
//
// Only the SHA-256 of a token is stored, never the token, and neither is
// ever logged. The table auth_tokens holds one row per change of a token,
// keyed by its hash: a ReplacingMergeTree(version) that merges the rows of a
// hash down to the latest, and every read takes the row with the highest
// version itself (LIMIT 1 BY hash), so it is right before a merge too. A
// revoked token keeps its row (revoked = 1): adding or importing its hash
// again does not bring it back.
//
// Like the report tables (accounting/report/chstore) the table lives where
// the connection points: the server (or fail-over group) of a single-server
// store; on a cluster, callers hand a connection to the first shard only, so
// that every read sees every write that returned, whichever server made it.
package tokenstore

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/greenloop/greenloop/internal/chsync"
	"github.com/greenloop/greenloop/web"
)

// Table is the table's name in the database.
const Table = "auth_tokens"

// MinPrefix is the fewest hex digits of a hash that select a token to revoke.
const MinPrefix = 6

// Errors callers tell apart with errors.Is.
var (
	// ErrExists: the hash is in the table already (live or revoked).
	ErrExists = errors.New("token hash already stored")
	// ErrNameTaken: the tenant has a live token of that name already.
	ErrNameTaken = errors.New("tenant has a live token of that name")
	// ErrNoMatch: no live token matches a revoke selector.
	ErrNoMatch = errors.New("no live token matches")
	// ErrAmbiguous: several live tokens match a revoke selector meant for one.
	ErrAmbiguous = errors.New("several live tokens match")
	// ErrBadSelector: a revoke selector names neither or both of name and
	// hash prefix, or the prefix is not hex of the right length.
	ErrBadSelector = errors.New("bad selector")
)

// Entry is the current state of one stored token.
type Entry struct {
	// Hash is the token's SHA-256 as 64 lower-case hex digits (as stored;
	// a hand-written row may hold anything). Show at most Prefix of it.
	Hash      string
	Tenant    string
	Role      web.Role
	Name      string
	CreatedAt time.Time
	CreatedBy string
	Revoked   bool
	RevokedAt time.Time
	RevokedBy string
	// Version orders the rows of one hash; the highest is the current one.
	Version uint64
}

// Prefix is the first eight characters of the hash: enough to tell tokens
// apart in a listing and to revoke one, useless to an attacker.
func (e Entry) Prefix() string { return e.Hash[:min(8, len(e.Hash))] }

// Token converts a live, well-formed entry to what the web server checks,
// or says what is wrong with it.
func (e Entry) Token() (web.Token, error) {
	var t web.Token
	if len(e.Hash) != 2*sha256.Size || strings.ToLower(e.Hash) != e.Hash {
		return t, fmt.Errorf("hash is not %d lower-case hex digits (SHA-256 of the token)", 2*sha256.Size)
	}
	if _, err := hex.Decode(t.Hash[:], []byte(e.Hash)); err != nil {
		return t, fmt.Errorf("hash is not hex")
	}
	t.Identity = web.Identity{Tenant: e.Tenant, Role: e.Role, Name: e.Name}
	if err := CheckIdentity(t.Identity); err != nil {
		return t, err
	}
	return t, nil
}

// CheckIdentity checks that id is what a tokens file line can hold, so that
// tokens move between file and table unchanged: a known role; a tenant of
// 1-200 bytes of printable UTF-8 without spaces; a name of 1-200 bytes of
// printable UTF-8 whose words are separated by single spaces.
func CheckIdentity(id web.Identity) error {
	if !id.Role.Valid() {
		return fmt.Errorf("unknown role %q (want admin, operator, officer, scheduler or agent)", id.Role)
	}
	if id.Tenant == "" || len(id.Tenant) > 200 || !utf8.ValidString(id.Tenant) ||
		strings.IndexFunc(id.Tenant, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("tenant %q: want 1-200 bytes of printable UTF-8 without spaces", id.Tenant)
	}
	if id.Name == "" || len(id.Name) > 200 || !utf8.ValidString(id.Name) || strings.Join(strings.Fields(id.Name), " ") != id.Name ||
		strings.IndexFunc(id.Name, func(r rune) bool { return !unicode.IsPrint(r) && r != ' ' }) >= 0 {
		return fmt.Errorf("name %q: want 1-200 bytes of printable UTF-8, words separated by single spaces", id.Name)
	}
	return nil
}

// NewToken returns a new random bearer token (256 bits, "glt_" and
// base64url) and its SHA-256, which is what gets stored.
func NewToken() (token string, hash [sha256.Size]byte) {
	var b [32]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics instead)
	token = "glt_" + base64.RawURLEncoding.EncodeToString(b[:])
	return token, sha256.Sum256([]byte(token))
}

// Store is the token table in one ClickHouse database. It is safe for
// concurrent use, and any number of Stores (on any number of greenloop
// servers) may share the table.
type Store struct {
	conn driver.Conn
	tbl  string
	log  *slog.Logger
	now  func() time.Time
}

// New creates the table auth_tokens in database if missing (the database
// too) and returns a store on it. A nil logger discards; a nil clock is
// time.Now.
func New(ctx context.Context, conn driver.Conn, database string, log *slog.Logger, now func() time.Time) (*Store, error) {
	tbl, err := chsync.CreateDatabase(ctx, conn, database, Table)
	if err != nil {
		return nil, fmt.Errorf("token store: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	create := "CREATE TABLE IF NOT EXISTS " + tbl + " (hash String, tenant String, role String, name String," +
		" created_at_ns Int64, created_by String, revoked UInt8, revoked_at_ns Int64, revoked_by String, version UInt64)" +
		" ENGINE = ReplacingMergeTree(version) ORDER BY hash"
	if err := conn.Exec(ctx, create); err != nil {
		return nil, fmt.Errorf("token store: create %s: %w", tbl, err)
	}
	return &Store{conn: conn, tbl: tbl, log: log, now: now}, nil
}

const columns = "hash, tenant, role, name, created_at_ns, created_by, revoked, revoked_at_ns, revoked_by, version"

// Entries returns the current state of every stored token (revoked ones
// too), ordered by hash.
func (s *Store) Entries(ctx context.Context) ([]Entry, error) {
	return s.entries(ctx, "", nil)
}

// matching returns the current state of the tokens any row of which
// matches where: the filter picks hashes, whose current rows are then read
// whole, as an older row of a hash may match where the current one does
// not. Callers check the current rows against what they look for.
func (s *Store) matching(ctx context.Context, where string, args []any) ([]Entry, error) {
	return s.entries(ctx, "hash IN (SELECT hash FROM "+s.tbl+" WHERE "+where+")", args)
}

func (s *Store) entries(ctx context.Context, where string, args []any) ([]Entry, error) {
	q := "SELECT " + columns + " FROM " + s.tbl
	if where != "" {
		q += " WHERE " + where
	}
	return chsync.Select(ctx, s.conn, s.tbl, q+" ORDER BY hash, version DESC LIMIT 1 BY hash", args, func(rows driver.Rows) (Entry, error) {
		var (
			e         Entry
			role      string
			created   int64
			revokedAt int64
			revoked   uint8
		)
		if err := rows.Scan(&e.Hash, &e.Tenant, &role, &e.Name, &created, &e.CreatedBy, &revoked, &revokedAt, &e.RevokedBy, &e.Version); err != nil {
			return Entry{}, err
		}
		e.Role, e.Revoked, e.CreatedAt = web.Role(role), revoked != 0, time.Unix(0, created).UTC()
		if e.Revoked {
			e.RevokedAt = time.Unix(0, revokedAt).UTC()
		}
		return e, nil
	})
}

// Load returns the live tokens, ready for web.Server.SetTokens. A live row
// that cannot be a token (unknown role, bad hash, empty tenant: a hand
// edit of the table) is left out and reported in bad, naming its tenant and
// name but never its hash; err is for a failed read only.
func (s *Store) Load(ctx context.Context) (toks []web.Token, bad []error, err error) {
	entries, err := s.entries(ctx, "", nil)
	if err != nil {
		return nil, nil, err
	}
	toks = make([]web.Token, 0, len(entries))
	for _, e := range entries {
		if e.Revoked {
			continue
		}
		t, err := e.Token()
		if err != nil {
			bad = append(bad, fmt.Errorf("%s row of tenant %q named %q skipped: %w", Table, e.Tenant, e.Name, err))
			continue
		}
		toks = append(toks, t)
	}
	return toks, bad, nil
}

// version returns a version above cur taken from the clock (chsync.Version).
func (s *Store) version(cur uint64) uint64 { return chsync.Version(s.now(), cur) }

// insert writes rows in one batch (one part: all of them or none).
func (s *Store) insert(ctx context.Context, rows []Entry) error {
	return chsync.Insert(ctx, s.conn, s.tbl, columns, rows, func(e Entry) []any {
		var revoked uint8
		var revokedAt int64
		if e.Revoked {
			revoked, revokedAt = 1, e.RevokedAt.UnixNano()
		}
		return []any{e.Hash, e.Tenant, string(e.Role), e.Name, e.CreatedAt.UnixNano(), e.CreatedBy,
			revoked, revokedAt, e.RevokedBy, e.Version}
	})
}

// Add stores a new token's hash with its identity; by names who added it
// (for the audit columns). A hash stored before, even revoked, is refused
// (ErrExists), as is a name the tenant has a live token of (ErrNameTaken),
// so that revoking by name is unambiguous. Two servers adding the same name
// at the same moment may both succeed; revoke then needs All.
func (s *Store) Add(ctx context.Context, tok web.Token, by string) error {
	if err := CheckIdentity(tok.Identity); err != nil {
		return fmt.Errorf("add token: %w", err)
	}
	hash := hex.EncodeToString(tok.Hash[:])
	cur, err := s.matching(ctx, "hash = ? OR (tenant = ? AND name = ?)", []any{hash, tok.Tenant, tok.Name})
	if err != nil {
		return fmt.Errorf("add token %q of tenant %q: %w", tok.Name, tok.Tenant, err)
	}
	for _, e := range cur {
		if e.Hash == hash {
			return fmt.Errorf("add token %q of tenant %q: %w", tok.Name, tok.Tenant, ErrExists)
		}
		if !e.Revoked && e.Tenant == tok.Tenant && e.Name == tok.Name {
			return fmt.Errorf("add token %q of tenant %q (%s…): %w", tok.Name, tok.Tenant, e.Prefix(), ErrNameTaken)
		}
	}
	now := s.now().UTC()
	if err := s.insert(ctx, []Entry{{Hash: hash, Tenant: tok.Tenant, Role: tok.Role, Name: tok.Name,
		CreatedAt: now, CreatedBy: by, Version: s.version(0)}}); err != nil {
		return fmt.Errorf("add token %q of tenant %q: %w", tok.Name, tok.Tenant, err)
	}
	s.log.InfoContext(ctx, "token added", "tenant", tok.Tenant, "role", tok.Role, "name", tok.Name, "by", by)
	return nil
}

// Selector picks live tokens to revoke: by Name or by HashPrefix (at
// least MinPrefix hex digits), exactly one of them, within Tenant when set.
type Selector struct {
	Name, Tenant, HashPrefix string
	// All revokes every match; without it a selector matching several
	// tokens is refused (ErrAmbiguous).
	All bool
}

// Revoke marks the live tokens sel picks revoked, by who (for the audit
// columns), and returns them. No match is ErrNoMatch.
func (s *Store) Revoke(ctx context.Context, sel Selector, by string) ([]Entry, error) {
	var (
		where string
		args  []any
		what  string
	)
	switch {
	case sel.Name != "" && sel.HashPrefix != "", sel.Name == "" && sel.HashPrefix == "":
		return nil, fmt.Errorf("revoke: %w: give a name or a hash prefix", ErrBadSelector)
	case sel.Name != "":
		where, args, what = "name = ?", []any{sel.Name}, fmt.Sprintf("name %q", sel.Name)
		if sel.Tenant != "" {
			where, args, what = where+" AND tenant = ?", append(args, sel.Tenant), what+fmt.Sprintf(" in tenant %q", sel.Tenant)
		}
	default:
		p := strings.ToLower(sel.HashPrefix)
		if len(p) < MinPrefix || len(p) > 2*sha256.Size || strings.Trim(p, "0123456789abcdef") != "" {
			return nil, fmt.Errorf("revoke: %w: hash prefix must be %d to %d hex digits", ErrBadSelector, MinPrefix, 2*sha256.Size)
		}
		where, args, what = "startsWith(hash, ?)", []any{p}, "hash prefix "+p[:min(8, len(p))]
		if sel.Tenant != "" {
			what += fmt.Sprintf(" in tenant %q", sel.Tenant)
		}
	}
	cands, err := s.matching(ctx, where, args)
	if err != nil {
		return nil, fmt.Errorf("revoke %s: %w", what, err)
	}
	var hit []Entry
	for _, e := range cands {
		if e.Revoked {
			continue
		}
		if (sel.Name != "" && e.Name != sel.Name) || (sel.Tenant != "" && e.Tenant != sel.Tenant) {
			continue
		}
		hit = append(hit, e)
	}
	switch {
	case len(hit) == 0:
		return nil, fmt.Errorf("revoke %s: %w", what, ErrNoMatch)
	case len(hit) > 1 && !sel.All:
		return nil, fmt.Errorf("revoke %s: %w (%d); narrow it (--tenant, a longer prefix) or revoke them all (--all)", what, ErrAmbiguous, len(hit))
	}
	now := s.now().UTC()
	for i := range hit {
		hit[i].Revoked, hit[i].RevokedAt, hit[i].RevokedBy, hit[i].Version = true, now, by, s.version(hit[i].Version)
	}
	if err := s.insert(ctx, hit); err != nil {
		return nil, fmt.Errorf("revoke %s: %w", what, err)
	}
	for _, e := range hit {
		s.log.InfoContext(ctx, "token revoked", "tenant", e.Tenant, "role", e.Role, "name", e.Name, "by", by)
	}
	return hit, nil
}

// ImportResult counts what Import did with each token of a file.
type ImportResult struct {
	// Added were not stored before.
	Added int
	// Unchanged are stored, live, with the same tenant, role and name.
	Unchanged int
	// Updated are stored and live but had another tenant, role or name: the file's now apply.
	Updated int
	// StillRevoked are revoked in the table and stay so.
	StillRevoked int
}

// Import copies tokens (a parsed tokens file) into the table, by who. It
// is idempotent: a second run of the same file finds every token
// unchanged. All changes go in one insert.
func (s *Store) Import(ctx context.Context, toks []web.Token, by string) (ImportResult, error) {
	var res ImportResult
	for _, t := range toks {
		if err := CheckIdentity(t.Identity); err != nil {
			return res, fmt.Errorf("import token %q of tenant %q: %w", t.Name, t.Tenant, err)
		}
	}
	entries, err := s.entries(ctx, "", nil)
	if err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	byHash := make(map[string]Entry, len(entries))
	for _, e := range entries {
		byHash[e.Hash] = e
	}
	now := s.now().UTC()
	var rows []Entry
	for _, t := range toks {
		hash := hex.EncodeToString(t.Hash[:])
		cur, ok := byHash[hash]
		switch {
		case !ok:
			res.Added++
			rows = append(rows, Entry{Hash: hash, Tenant: t.Tenant, Role: t.Role, Name: t.Name, CreatedAt: now, CreatedBy: by, Version: s.version(0)})
		case cur.Revoked:
			res.StillRevoked++
		case cur.Tenant == t.Tenant && cur.Role == t.Role && cur.Name == t.Name:
			res.Unchanged++
		default:
			res.Updated++
			cur.Tenant, cur.Role, cur.Name, cur.Version = t.Tenant, t.Role, t.Name, s.version(cur.Version)
			rows = append(rows, cur)
		}
	}
	if err := s.insert(ctx, rows); err != nil {
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	s.log.InfoContext(ctx, "tokens imported", "added", res.Added, "unchanged", res.Unchanged, "updated", res.Updated,
		"still_revoked", res.StillRevoked, "by", by)
	return res, nil
}
