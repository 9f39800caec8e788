package chstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/greenloop/greenloop/accounting/report"
)

// SnapshotStore is a report.SnapshotStore on a ClickHouse table, one row per
// snapshot with its canonical JSON. It is safe for concurrent use, and any
// number of SnapshotStores may share the table.
type SnapshotStore struct {
	conn driver.Conn
	tbl  string
	log  *slog.Logger
}

var _ report.SnapshotStore = (*SnapshotStore)(nil)

// NewSnapshotStore creates the table report_snapshots in database if missing
// and returns a store on it. A nil logger discards.
func NewSnapshotStore(ctx context.Context, conn driver.Conn, database string, log *slog.Logger) (*SnapshotStore, error) {
	tbl, err := table(database, SnapshotsTable)
	if err != nil {
		return nil, fmt.Errorf("report snapshot store: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	eng, err := engineFor(ctx, conn, database, SnapshotsTable)
	if err != nil {
		return nil, fmt.Errorf("report snapshot store: %w", err)
	}
	create := "CREATE TABLE IF NOT EXISTS " + tbl + " (tenant String, id String, site String, year UInt16, sha256 String," +
		" status String, created_by String, created_at_ns Int64, body String)" +
		" ENGINE = " + eng + " ORDER BY (tenant, id)"
	if err := ensure(ctx, conn, database, create); err != nil {
		return nil, fmt.Errorf("report snapshot store: create %s: %w", tbl, err)
	}
	return &SnapshotStore{conn: conn, tbl: tbl, log: log}, nil
}

// Save implements report.SnapshotStore: checked as every store checks it
// (report.CheckSnapshot), stored unless the id is there already.
func (s *SnapshotStore) Save(ctx context.Context, snap report.Snapshot) error {
	if err := report.CheckSnapshot(snap); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var n uint64
	if err := s.conn.QueryRow(ctx, "SELECT count() FROM "+s.tbl+" WHERE tenant = ? AND id = ?", snap.Tenant, snap.ID).Scan(&n); err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.ID, err)
	}
	if n > 0 {
		return nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.tbl+
		" (tenant, id, site, year, sha256, status, created_by, created_at_ns, body)")
	if err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.ID, err)
	}
	defer b.Close()
	if err := b.Append(snap.Tenant, snap.ID, snap.Site, uint16(snap.Year), snap.SHA256, snap.Status, snap.By,
		snap.CreatedAt.UnixNano(), string(snap.JSON)); err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.ID, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.ID, err)
	}
	s.log.InfoContext(ctx, "report snapshot saved", "tenant", snap.Tenant, "id", snap.ID, "status", snap.Status, "by", snap.By)
	return nil
}

// metaColumns are the columns of a Snapshot without its JSON.
const metaColumns = "id, site, year, sha256, status, created_by, created_at_ns"

// scanner is a row of a query.
type scanner interface{ Scan(dest ...any) error }

func scanMeta(r scanner, tenant string, body *string) (report.Snapshot, error) {
	snap := report.Snapshot{Tenant: tenant}
	var year uint16
	var ns int64
	dest := []any{&snap.ID, &snap.Site, &year, &snap.SHA256, &snap.Status, &snap.By, &ns}
	if body != nil {
		dest = append(dest, body)
	}
	if err := r.Scan(dest...); err != nil {
		return snap, err
	}
	snap.Year, snap.CreatedAt = int(year), time.Unix(0, ns).UTC()
	return snap, nil
}

// Get implements report.SnapshotStore. Should two servers have saved the
// same id, the earliest row is read (their JSON is the same).
func (s *SnapshotStore) Get(ctx context.Context, tenant, id string) (report.Snapshot, error) {
	if !report.ValidSnapshotRef(tenant, id) {
		return report.Snapshot{}, fmt.Errorf("snapshot %q: %w", id, report.ErrSnapshotNotFound)
	}
	if err := ctx.Err(); err != nil {
		return report.Snapshot{}, err
	}
	var body string
	snap, err := scanMeta(s.conn.QueryRow(ctx, "SELECT "+metaColumns+", body FROM "+s.tbl+
		" WHERE tenant = ? AND id = ? ORDER BY created_at_ns, created_by LIMIT 1", tenant, id), tenant, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return report.Snapshot{}, fmt.Errorf("snapshot %s: %w", id, report.ErrSnapshotNotFound)
	}
	if err != nil {
		return report.Snapshot{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	sum := sha256.Sum256([]byte(body))
	if hex.EncodeToString(sum[:]) != snap.SHA256 {
		return report.Snapshot{}, fmt.Errorf("snapshot %s: stored JSON does not match its SHA-256 %s (altered in %s)", id, snap.SHA256, s.tbl)
	}
	snap.JSON = []byte(body)
	return snap, nil
}

// List implements report.SnapshotStore: newest first, each id once.
func (s *SnapshotStore) List(ctx context.Context, tenant, site string, year int) ([]report.Snapshot, error) {
	if !report.ValidTenant(tenant) {
		return nil, fmt.Errorf("list snapshots: tenant %q invalid", tenant)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	where, args := "tenant = ? AND site = ?", []any{tenant, site}
	if year != 0 {
		where, args = where+" AND year = ?", append(args, year)
	}
	rows, err := s.conn.Query(ctx, "SELECT "+metaColumns+" FROM (SELECT "+metaColumns+" FROM "+s.tbl+" WHERE "+where+
		" ORDER BY id, created_at_ns, created_by LIMIT 1 BY id) ORDER BY created_at_ns DESC, id", args...)
	if err != nil {
		return nil, fmt.Errorf("list snapshots of %s: %w", site, err)
	}
	defer rows.Close()
	out := []report.Snapshot{}
	for rows.Next() {
		snap, err := scanMeta(rows, tenant, nil)
		if err != nil {
			return nil, fmt.Errorf("list snapshots of %s: %w", site, err)
		}
		out = append(out, snap)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return nil, fmt.Errorf("list snapshots of %s: %w", site, err)
	}
	return out, nil
}
