package web

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"github.com/labstack/echo/v4"
)

// Role is what a token may do. Roles are fixed; a token has exactly one.
type Role string

// The roles a tokens file may name.
const (
	// RoleAdmin may read, write and see the server's own metrics.
	RoleAdmin Role = "admin"
	// RoleOperator runs sites: may read, write and see the server's own metrics.
	RoleOperator Role = "operator"
	// RoleOfficer exports reports: read only.
	RoleOfficer Role = "officer"
	// RoleScheduler asks where and when to run work: read only.
	RoleScheduler Role = "scheduler"
	// RoleAgent is a site agent: may only write series, never read them.
	RoleAgent Role = "agent"
)

// Valid reports whether r is one of the known roles.
func (r Role) Valid() bool {
	switch r {
	case RoleAdmin, RoleOperator, RoleOfficer, RoleScheduler, RoleAgent:
		return true
	}
	return false
}

// CanRead reports whether the role may query series and read greenloop's resources.
func (r Role) CanRead() bool {
	return r == RoleAdmin || r == RoleOperator || r == RoleOfficer || r == RoleScheduler
}

// CanWrite reports whether the role may ingest series.
func (r Role) CanWrite() bool { return r == RoleAdmin || r == RoleOperator || r == RoleAgent }

// CanBackfill reports whether the role may import history (meter exports
// from before greenloop ran): the officer, who needs it for a report, too.
func (r Role) CanBackfill() bool { return r == RoleAdmin || r == RoleOperator || r == RoleOfficer }

// canSeeOps reports whether the role may read the server's own metrics, which span all tenants.
func (r Role) canSeeOps() bool { return r == RoleAdmin || r == RoleOperator }

// Context keys set on every authenticated request that is not an ingest
// request, for handlers registered by other packages (the dashboards).
const (
	// ContextKeyTenant holds the caller's tenant as a string ("" in single-tenant mode).
	ContextKeyTenant = "tenant"
	// ContextKeyRole holds the caller's role as a string (see Role).
	ContextKeyRole = "role"
	// ContextKeyName holds the name of the caller's token (the tokens file's
	// last column; "" when auth is off), for audit trails.
	ContextKeyName = "token_name"
)

// Identity is who a request comes from.
type Identity struct {
	// Tenant confines every read and is stamped on every write; "" when auth is off.
	Tenant string
	Role   Role
	// Name is the token's name from the tokens file, for logs; never the token itself.
	Name string
}

// anonymous is the identity of every request when auth is off: single-tenant, all rights.
var anonymous = Identity{Tenant: "", Role: RoleAdmin, Name: "anonymous"}

// Token is one line of a tokens file.
type Token struct {
	// Hash is the SHA-256 of the bearer token.
	Hash [sha256.Size]byte
	Identity
}

// ParseTokens reads a tokens file: one token per line as
// "<sha256 hex of token> <tenant> <role> <name>", the name being the rest of
// the line; blank lines and lines starting with '#' are skipped. Every bad
// line is reported, each with its line number.
func ParseTokens(r io.Reader) ([]Token, error) {
	var (
		out  []Token
		errs []error
		seen = map[[sha256.Size]byte]int{}
	)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 4 {
			errs = append(errs, fmt.Errorf("line %d: want \"<sha256 hex> <tenant> <role> <name>\", got %d fields", n, len(f)))
			continue
		}
		var t Token
		if len(f[0]) != 2*sha256.Size {
			errs = append(errs, fmt.Errorf("line %d: token hash must be %d hex digits (sha256), got %d characters", n, 2*sha256.Size, len(f[0])))
			continue
		}
		if _, err := hex.Decode(t.Hash[:], []byte(strings.ToLower(f[0]))); err != nil {
			errs = append(errs, fmt.Errorf("line %d: token hash is not hex: %v", n, err))
			continue
		}
		t.Tenant, t.Role, t.Name = f[1], Role(f[2]), strings.Join(f[3:], " ")
		if !t.Role.Valid() {
			errs = append(errs, fmt.Errorf("line %d: unknown role %q (want admin, operator, officer, scheduler or agent)", n, f[2]))
			continue
		}
		if prev, dup := seen[t.Hash]; dup {
			errs = append(errs, fmt.Errorf("line %d: same token hash as line %d", n, prev))
			continue
		}
		seen[t.Hash] = n
		out = append(out, t)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// LoadTokens reads and parses a tokens file.
func LoadTokens(path string) ([]Token, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokens file: %w", err)
	}
	toks, err := ParseTokens(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return toks, nil
}

// tokenTable is an immutable set of tokens, swapped whole on reload.
type tokenTable struct {
	tokens []Token
}

// lookup finds the token whose hash is sha256(bearer). It compares against
// every entry in constant time, so the time taken says nothing about which
// entry, or how much of one, matched.
func (t *tokenTable) lookup(bearer string) (Identity, bool) {
	sum := sha256.Sum256([]byte(bearer))
	found := -1
	for i := range t.tokens {
		if subtle.ConstantTimeCompare(sum[:], t.tokens[i].Hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Identity{}, false
	}
	return t.tokens[found].Identity, true
}

// SetTokens puts toks in force in place of the current set, for a token
// source other than the tokens file (the ClickHouse token store, refreshed
// by its owner). Requests in flight keep the set they started with. The
// caller checks the tokens (as ParseTokens does): hashes unique, roles valid.
func (s *Server) SetTokens(toks []Token) {
	s.tokens.Store(&tokenTable{tokens: slices.Clone(toks)})
}

// ReloadTokens re-reads the tokens file (e.g. on SIGHUP). On error the
// previous tokens stay in force. Without a tokens file it does nothing
// (with auth.store clickhouse the tokens come through SetTokens).
func (s *Server) ReloadTokens() error {
	if s.opts.Auth.TokensFile == "" {
		return nil
	}
	toks, err := LoadTokens(s.opts.Auth.TokensFile)
	if err != nil {
		return err
	}
	s.tokens.Store(&tokenTable{tokens: toks})
	s.log.Info("tokens reloaded", "tokens", len(toks))
	return nil
}

// authEnabled reports whether requests must carry a bearer token: with a
// tokens file or with the tokens in ClickHouse (config.Auth.Enabled).
func (s *Server) authEnabled() bool { return s.opts.Auth.Enabled() }

var errUnauthorized = &Error{Code: 401, Msg: "missing or invalid bearer token"}

// authenticate resolves the caller from the Authorization header.
func (s *Server) authenticate(c echo.Context) (Identity, error) {
	if !s.authEnabled() {
		return anonymous, nil
	}
	h := c.Request().Header.Get(echo.HeaderAuthorization)
	tok, ok := cutPrefixFold(h, "Bearer ")
	tok = strings.TrimSpace(tok)
	if !ok || tok == "" {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="greenloop"`)
		return Identity{}, errUnauthorized
	}
	id, ok := s.tokens.Load().lookup(tok)
	if !ok {
		c.Response().Header().Set(echo.HeaderWWWAuthenticate, `Bearer realm="greenloop", error="invalid_token"`)
		return Identity{}, errUnauthorized
	}
	return id, nil
}

// authorize checks a resolved identity against what a route needs.
func authorize(id Identity, p perm) error {
	switch p {
	case permPublic:
		return nil
	case permWrite:
		if id.Role.CanWrite() {
			return nil
		}
		return &Error{Code: 403, Msg: fmt.Sprintf("role %q may not write series", id.Role)}
	case permBackfill:
		if id.Role.CanBackfill() {
			return nil
		}
		return &Error{Code: 403, Msg: fmt.Sprintf("role %q may not import history", id.Role)}
	case permOps:
		if id.Role.canSeeOps() {
			return nil
		}
		return &Error{Code: 403, Msg: fmt.Sprintf("role %q may not read server metrics", id.Role)}
	default:
		if id.Role.CanRead() {
			return nil
		}
		return &Error{Code: 403, Msg: fmt.Sprintf("role %q may not read", id.Role)}
	}
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) < len(prefix) || !strings.EqualFold(s[:len(prefix)], prefix) {
		return s, false
	}
	return s[len(prefix):], true
}
