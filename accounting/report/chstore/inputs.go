package chstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/greenloop/greenloop/accounting/report"
)

// InputStore is a report.InputStore on a ClickHouse table: an append-only
// log of entries, one row per field and Put. It is safe for concurrent use,
// and any number of InputStores (in any number of processes) may share the
// table.
type InputStore struct {
	conn driver.Conn
	tbl  string
	cat  *report.Catalogue
	now  func() time.Time
	log  *slog.Logger

	mu   sync.Mutex
	last time.Time // the newest entry time handed out by this store
}

var _ report.InputStore = (*InputStore)(nil)

// NewInputStore creates the table report_inputs in database if missing and
// returns a store on it that checks entries against cat (nil: the default
// catalogue). A nil clock is time.Now, a nil logger discards.
func NewInputStore(ctx context.Context, conn driver.Conn, database string, cat *report.Catalogue, now func() time.Time, log *slog.Logger) (*InputStore, error) {
	tbl, err := table(database, InputsTable)
	if err != nil {
		return nil, fmt.Errorf("report input store: %w", err)
	}
	if cat == nil {
		cat = report.DefaultCatalogue()
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	eng, err := engineFor(ctx, conn, database, InputsTable)
	if err != nil {
		return nil, fmt.Errorf("report input store: %w", err)
	}
	// value is the entry's JSON, empty for a cleared field; at_ns the entry
	// time in Unix nanoseconds (DateTime has seconds only before 20.x);
	// put_id orders the entries of two Puts made in the same nanosecond.
	create := "CREATE TABLE IF NOT EXISTS " + tbl + " (tenant String, site String, year UInt16, field String," +
		" value String, quality String, omission_reason String, entered_by String, at_ns Int64, put_id String)" +
		" ENGINE = " + eng + " ORDER BY (tenant, site, year, field, at_ns, put_id)"
	if err := ensure(ctx, conn, database, create); err != nil {
		return nil, fmt.Errorf("report input store: create %s: %w", tbl, err)
	}
	return &InputStore{conn: conn, tbl: tbl, cat: cat, now: now, log: log}, nil
}

// entryTime returns the time of a new Put: the clock, but always after the
// previous Put of this store, so that one server's entries keep their order
// even when its clock steps back. Entries of different servers are ordered
// by their clocks.
func (s *InputStore) entryTime() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.now().UTC()
	if !at.After(s.last) {
		at = s.last.Add(time.Nanosecond)
	}
	s.last = at
	return at
}

// Put implements report.InputStore. The call is checked (report.PrepareEntries)
// before anything is written; the entries of one Put are one INSERT.
func (s *InputStore) Put(ctx context.Context, tenant, site string, year int, fields map[string]json.RawMessage, who string) error {
	ids, entries, err := report.PrepareEntries(s.cat, tenant, site, year, fields, who)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	at := s.entryTime()
	putID := newID()
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.tbl+
		" (tenant, site, year, field, value, quality, omission_reason, entered_by, at_ns, put_id)")
	if err != nil {
		return fmt.Errorf("put report inputs %s/%s/%d: %w", tenant, site, year, err)
	}
	defer b.Close()
	for _, id := range ids {
		e := entries[id]
		if err := b.Append(tenant, site, uint16(year), id, string(e.Value), string(e.Quality), e.OmissionReason, who, at.UnixNano(), putID); err != nil {
			return fmt.Errorf("put report inputs %s/%s/%d: field %s: %w", tenant, site, year, id, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("put report inputs %s/%s/%d: %w", tenant, site, year, err)
	}
	s.log.InfoContext(ctx, "report inputs stored", "tenant", tenant, "site", site, "year", year, "fields", ids, "by", who)
	return nil
}

// Get implements report.InputStore: every entry of the site and year, oldest
// first per field.
func (s *InputStore) Get(ctx context.Context, tenant, site string, year int) (report.Inputs, error) {
	in := report.Inputs{Tenant: tenant, Site: site, Year: year, Fields: map[string][]report.Entry{}}
	if err := report.CheckKey(tenant, site, year); err != nil {
		return in, fmt.Errorf("get report inputs: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return in, err
	}
	rows, err := s.conn.Query(ctx, "SELECT field, value, quality, omission_reason, entered_by, at_ns FROM "+s.tbl+
		" WHERE tenant = ? AND site = ? AND year = ? ORDER BY at_ns, put_id, field", tenant, site, year)
	if err != nil {
		return in, fmt.Errorf("get report inputs %s/%s/%d: %w", tenant, site, year, err)
	}
	defer rows.Close()
	for rows.Next() {
		var field, value, quality, reason, by string
		var ns int64
		if err := rows.Scan(&field, &value, &quality, &reason, &by, &ns); err != nil {
			return in, fmt.Errorf("get report inputs %s/%s/%d: %w", tenant, site, year, err)
		}
		e := report.Entry{Quality: report.Quality(quality), OmissionReason: reason, By: by, At: time.Unix(0, ns).UTC()}
		if value != "" {
			e.Value = json.RawMessage(value)
		}
		in.Fields[field] = append(in.Fields[field], e)
	}
	if err := errors.Join(rows.Err(), rows.Close()); err != nil {
		return in, fmt.Errorf("get report inputs %s/%s/%d: %w", tenant, site, year, err)
	}
	return in, nil
}

// Import adds entries kept elsewhere (the file store of a server moving to
// ClickHouse) with their own By and At. Entries already stored (same field,
// time, author and value) are skipped, so an interrupted import can run
// again. Values are stored as they are: they were checked when entered, and
// history is kept even where the catalogue has changed since.
func (s *InputStore) Import(ctx context.Context, in report.Inputs) (added int, err error) {
	if err := report.CheckKey(in.Tenant, in.Site, in.Year); err != nil {
		return 0, fmt.Errorf("import report inputs: %w", err)
	}
	type key struct {
		field, value, by string
		ns               int64
	}
	type row struct {
		key
		quality, reason string
	}
	var fresh []row
	have, err := s.Get(ctx, in.Tenant, in.Site, in.Year)
	if err != nil {
		return 0, fmt.Errorf("import report inputs: %w", err)
	}
	seen := map[key]bool{}
	for field, h := range have.Fields {
		for _, e := range h {
			seen[key{field, string(e.Value), e.By, e.At.UnixNano()}] = true
		}
	}
	for field, h := range in.Fields {
		for i, e := range h {
			if field == "" || e.By == "" || e.At.IsZero() {
				return 0, fmt.Errorf("import report inputs %s/%s/%d: field %q entry %d lacks its field, author or time", in.Tenant, in.Site, in.Year, field, i)
			}
			k := key{field, string(e.Value), e.By, e.At.UnixNano()}
			if seen[k] {
				continue
			}
			seen[k] = true
			fresh = append(fresh, row{k, string(e.Quality), e.OmissionReason})
		}
	}
	if len(fresh) == 0 {
		return 0, nil
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.tbl+
		" (tenant, site, year, field, value, quality, omission_reason, entered_by, at_ns, put_id)")
	if err != nil {
		return 0, fmt.Errorf("import report inputs %s/%s/%d: %w", in.Tenant, in.Site, in.Year, err)
	}
	defer b.Close()
	for _, r := range fresh {
		// Entries of one Put share their time; one put_id per time keeps them together.
		putID := fmt.Sprintf("import-%x", r.ns)
		if err := b.Append(in.Tenant, in.Site, uint16(in.Year), r.field, r.value, r.quality, r.reason, r.by, r.ns, putID); err != nil {
			return 0, fmt.Errorf("import report inputs %s/%s/%d: field %s: %w", in.Tenant, in.Site, in.Year, r.field, err)
		}
	}
	if err := b.Send(); err != nil {
		return 0, fmt.Errorf("import report inputs %s/%s/%d: %w", in.Tenant, in.Site, in.Year, err)
	}
	s.log.InfoContext(ctx, "report inputs imported", "tenant", in.Tenant, "site", in.Site, "year", in.Year, "entries", len(fresh))
	return len(fresh), nil
}
