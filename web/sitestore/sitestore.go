// Package sitestore keeps greenloop's sites in ClickHouse beside those of the
// configuration file, so that several greenloop servers sharing one
// ClickHouse answer any request about any site: one added or removed through
// any of them (the admin API, or `greenloop site`) applies on all once each
// has refreshed its Registry (Syncer).
//
// The table sites holds one row per change of a site, keyed by (tenant, id):
// the site as JSON (EncodeSite: the YAML shape of an entry of the
// configuration's sites), a deleted flag and the audit columns. It is a
// ReplacingMergeTree(version) that merges the rows of a site down to the
// latest, and every read takes the row with the highest version itself
// (LIMIT 1 BY tenant, id), so it is right before a merge too.
//
// The sites of the configuration file stay the operator's baseline: read
// only here, and a site of the table whose tenant and id are a file site's
// is refused at write time (ErrFileSite) and skipped, with an error, at load
// time.
//
// As the token and report tables, the table lives where the connection
// points: one server (or fail-over group); on a cluster, callers hand a
// connection to the first shard only. Where the series store's samples
// table there is replicated, the table is a ReplicatedReplacingMergeTree
// beside it, created on each replica of the first shard.
package sitestore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/greenloop/greenloop/internal/chsync"
	"github.com/greenloop/greenloop/internal/config"
)

// Table is the table's name in the database.
const Table = "sites"

// Errors callers tell apart with errors.Is.
var (
	// ErrFileSite: the tenant and id are a site of the configuration file,
	// which only an edit of that file changes.
	ErrFileSite = errors.New("the site is in the configuration file (read-only here)")
	// ErrNotFound: no live site of that tenant and id in the table.
	ErrNotFound = errors.New("no such site in ClickHouse")
	// ErrInvalid: the site fails config.Site.Validate; the error joins every
	// problem (*config.FieldError, by field path).
	ErrInvalid = errors.New("invalid site")
)

// Entry is the current state of one site of the table.
type Entry struct {
	// Tenant and ID key the site (Tenant as config.Site.SiteTenant).
	Tenant, ID string
	// Site is the decoded site; zero when Problem is set.
	Site config.Site
	// JSON is the stored document.
	JSON      string
	Deleted   bool
	UpdatedAt time.Time
	UpdatedBy string
	// Version orders the rows of one site; the highest is the current one.
	Version uint64
	// Problem says why a live row cannot be a site (a hand edit of the
	// table): not JSON of a site, invalid, another tenant or id inside.
	Problem error
}

// Store is the site table in one ClickHouse database. It is safe for
// concurrent use, and any number of Stores (on any number of greenloop
// servers) may share the table.
type Store struct {
	conn driver.Conn
	tbl  string
	file []config.Site
	log  *slog.Logger
	now  func() time.Time
}

// New creates the table sites in database if missing (the database too)
// and returns a store on it; fileSites are the configuration file's, whose
// tenants and ids the store refuses. A nil logger discards; a nil clock is
// time.Now.
func New(ctx context.Context, conn driver.Conn, database string, fileSites []config.Site, log *slog.Logger, now func() time.Time) (*Store, error) {
	tbl, err := chsync.CreateDatabase(ctx, conn, database, Table)
	if err != nil {
		return nil, fmt.Errorf("site store: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if now == nil {
		now = time.Now
	}
	engine, err := engineFor(ctx, conn, database, Table)
	if err != nil {
		return nil, fmt.Errorf("site store: %w", err)
	}
	create := "CREATE TABLE IF NOT EXISTS " + tbl + " (tenant String, id String, site String, version UInt64, deleted UInt8," +
		" updated_by String, updated_at_ns Int64) ENGINE = " + engine + " ORDER BY (tenant, id)"
	if err := conn.Exec(ctx, create); err != nil {
		return nil, fmt.Errorf("site store: create %s: %w", tbl, err)
	}
	return &Store{conn: conn, tbl: tbl, file: fileSites, log: log, now: now}, nil
}

// FileSites are the configuration file's sites the store was given.
func (s *Store) FileSites() []config.Site { return s.file }

// fileSite reports whether tenant and id are a file site's.
func (s *Store) fileSite(tenant, id string) bool {
	for _, f := range s.file {
		if f.ID == id && f.SiteTenant() == tenant {
			return true
		}
	}
	return false
}

const columns = "tenant, id, site, version, deleted, updated_by, updated_at_ns"

// Entries returns the current state of every site of the table (deleted
// ones too), ordered by tenant and id; tenant, when set, confines it.
func (s *Store) Entries(ctx context.Context, tenant string) ([]Entry, error) {
	q := "SELECT " + columns + " FROM " + s.tbl
	var args []any
	if tenant != "" {
		q, args = q+" WHERE tenant = ?", []any{tenant}
	}
	return chsync.Select(ctx, s.conn, s.tbl, q+" ORDER BY tenant, id, version DESC LIMIT 1 BY tenant, id", args, func(rows driver.Rows) (Entry, error) {
		var (
			e       Entry
			deleted uint8
			at      int64
		)
		if err := rows.Scan(&e.Tenant, &e.ID, &e.JSON, &e.Version, &deleted, &e.UpdatedBy, &at); err != nil {
			return Entry{}, err
		}
		e.Deleted, e.UpdatedAt = deleted != 0, time.Unix(0, at).UTC()
		if !e.Deleted {
			e.Site, e.Problem = decodeRow(e)
		}
		return e, nil
	})
}

// decodeRow reads a live row's site and checks it as a write would.
func decodeRow(e Entry) (config.Site, error) {
	site, err := ParseSite([]byte(e.JSON))
	if err != nil {
		return config.Site{}, err
	}
	if site.ID != e.ID || site.SiteTenant() != e.Tenant {
		return config.Site{}, fmt.Errorf("the document names site %q of tenant %q", site.ID, site.SiteTenant())
	}
	if err := site.Validate(""); err != nil {
		return config.Site{}, fmt.Errorf("%w: %s", ErrInvalid, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return site, nil
}

// Load returns the live sites of the table. A live row that cannot be a
// site (a hand edit) or whose tenant and id are a file site's is left out
// and reported in bad, naming its tenant and id; err is for a failed read
// only.
func (s *Store) Load(ctx context.Context) (sites []config.Site, bad []error, err error) {
	entries, err := s.Entries(ctx, "")
	if err != nil {
		return nil, nil, err
	}
	for _, e := range entries {
		switch {
		case e.Deleted:
		case e.Problem != nil:
			bad = append(bad, fmt.Errorf("%s row of site %q of tenant %q skipped: %w", Table, e.ID, e.Tenant, e.Problem))
		case s.fileSite(e.Tenant, e.ID):
			bad = append(bad, fmt.Errorf("%s row of site %q of tenant %q skipped: %w", Table, e.ID, e.Tenant, ErrFileSite))
		default:
			sites = append(sites, e.Site)
		}
	}
	return sites, bad, nil
}

// version returns a version above cur taken from the clock (chsync.Version).
func (s *Store) version(cur uint64) uint64 { return chsync.Version(s.now(), cur) }

// insert writes rows in one batch (one part: all of them or none).
func (s *Store) insert(ctx context.Context, rows []Entry) error {
	return chsync.Insert(ctx, s.conn, s.tbl, columns, rows, func(e Entry) []any {
		var deleted uint8
		if e.Deleted {
			deleted = 1
		}
		return []any{e.Tenant, e.ID, e.JSON, e.Version, deleted, e.UpdatedBy, e.UpdatedAt.UnixNano()}
	})
}

// Check validates site as a write would: every problem of Validate
// (ErrInvalid, joined with the *config.FieldErrors, paths bare: "zone",
// "pue.value"), then a file site's tenant and id (ErrFileSite).
func (s *Store) Check(site config.Site) error {
	if err := site.Validate(""); err != nil {
		return errors.Join(fmt.Errorf("site %q: %w", site.ID, ErrInvalid), err)
	}
	if s.fileSite(site.SiteTenant(), site.ID) {
		return fmt.Errorf("site %q of tenant %q: %w", site.ID, site.SiteTenant(), ErrFileSite)
	}
	return nil
}

// row is the entry that stores site as the version after cur.
func (s *Store) row(site config.Site, cur uint64, by string) (Entry, error) {
	site.Tenant = site.SiteTenant()
	doc, err := EncodeSite(site)
	if err != nil {
		return Entry{}, err
	}
	return Entry{Tenant: site.Tenant, ID: site.ID, Site: site, JSON: string(doc), Version: s.version(cur),
		UpdatedAt: s.now().UTC(), UpdatedBy: by}, nil
}

// current returns the current entry of tenant's site id (ok false: none).
func (s *Store) current(ctx context.Context, tenant, id string) (Entry, bool, error) {
	entries, err := s.Entries(ctx, tenant)
	if err != nil {
		return Entry{}, false, err
	}
	for _, e := range entries {
		if e.ID == id {
			return e, true, nil
		}
	}
	return Entry{}, false, nil
}

// Put stores site (a new one, or a new version of a stored one), by who
// (for the audit columns); created says it was not live before. The
// site's tenant is its SiteTenant. An invalid site is ErrInvalid, a file
// site's tenant and id ErrFileSite; nothing is written then.
func (s *Store) Put(ctx context.Context, site config.Site, by string) (created bool, err error) {
	if err := s.Check(site); err != nil {
		return false, err
	}
	tenant := site.SiteTenant()
	cur, ok, err := s.current(ctx, tenant, site.ID)
	if err != nil {
		return false, fmt.Errorf("put site %q of tenant %q: %w", site.ID, tenant, err)
	}
	r, err := s.row(site, cur.Version, by)
	if err != nil {
		return false, err
	}
	if err := s.insert(ctx, []Entry{r}); err != nil {
		return false, fmt.Errorf("put site %q of tenant %q: %w", site.ID, tenant, err)
	}
	created = !ok || cur.Deleted
	s.log.InfoContext(ctx, "site stored", "tenant", tenant, "site", site.ID, "created", created, "by", by)
	return created, nil
}

// Delete marks tenant's site id deleted, by who. A file site is
// ErrFileSite; no live site of the table ErrNotFound.
func (s *Store) Delete(ctx context.Context, tenant, id, by string) error {
	if s.fileSite(tenant, id) {
		return fmt.Errorf("delete site %q of tenant %q: %w", id, tenant, ErrFileSite)
	}
	cur, ok, err := s.current(ctx, tenant, id)
	if err != nil {
		return fmt.Errorf("delete site %q of tenant %q: %w", id, tenant, err)
	}
	if !ok || cur.Deleted {
		return fmt.Errorf("delete site %q of tenant %q: %w", id, tenant, ErrNotFound)
	}
	cur.Deleted, cur.Version, cur.UpdatedAt, cur.UpdatedBy = true, s.version(cur.Version), s.now().UTC(), by
	if err := s.insert(ctx, []Entry{cur}); err != nil {
		return fmt.Errorf("delete site %q of tenant %q: %w", id, tenant, err)
	}
	s.log.InfoContext(ctx, "site deleted", "tenant", tenant, "site", id, "by", by)
	return nil
}

// ImportResult counts what Import did with each site of a list.
type ImportResult struct {
	// Added were not live in the table (new, or deleted before).
	Added int
	// Unchanged are live with the same document.
	Unchanged int
	// Updated are live with another document: the list's now applies.
	Updated int
}

// Import stores sites (a parsed list), by who. It is idempotent: a second
// run of the same list finds every site unchanged. Every site is checked
// first (each problem named by its index: "[2].zone"), and a list with
// any invalid or file site, or the same tenant and id twice, writes
// nothing; the changes go in one insert.
func (s *Store) Import(ctx context.Context, sites []config.Site, by string) (ImportResult, error) {
	var res ImportResult
	var errs []error
	seen := map[[2]string]int{}
	for i, site := range sites {
		p := fmt.Sprintf("[%d]", i)
		if err := site.Validate(p); err != nil {
			errs = append(errs, err)
		}
		key := [2]string{site.SiteTenant(), site.ID}
		if j, dup := seen[key]; dup {
			errs = append(errs, &config.FieldError{Path: p + ".id", Msg: fmt.Sprintf("duplicate of [%d].id %q (tenant %q)", j, site.ID, key[0])})
		} else {
			seen[key] = i
		}
		if s.fileSite(key[0], site.ID) {
			errs = append(errs, fmt.Errorf("%s: site %q of tenant %q: %w", p, site.ID, key[0], ErrFileSite))
		}
	}
	if len(errs) > 0 {
		return res, errors.Join(append([]error{fmt.Errorf("import: %w", ErrInvalid)}, errs...)...)
	}
	entries, err := s.Entries(ctx, "")
	if err != nil {
		return res, fmt.Errorf("import: %w", err)
	}
	cur := make(map[[2]string]Entry, len(entries))
	for _, e := range entries {
		cur[[2]string{e.Tenant, e.ID}] = e
	}
	var rows []Entry
	for _, site := range sites {
		e, ok := cur[[2]string{site.SiteTenant(), site.ID}]
		r, err := s.row(site, e.Version, by)
		if err != nil {
			return ImportResult{}, fmt.Errorf("import: %w", err)
		}
		switch {
		case !ok || e.Deleted:
			res.Added++
		case e.JSON == r.JSON:
			res.Unchanged++
			continue
		default:
			res.Updated++
		}
		rows = append(rows, r)
	}
	if err := s.insert(ctx, rows); err != nil {
		return ImportResult{}, fmt.Errorf("import: %w", err)
	}
	s.log.InfoContext(ctx, "sites imported", "added", res.Added, "unchanged", res.Unchanged, "updated", res.Updated, "by", by)
	return res, nil
}
