package report

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
)

// MarshalCanonical returns the canonical JSON of a report: object keys
// sorted at every level, numbers as Go prints float64 (shortest
// round-trip form), no HTML escaping, two-space indentation and a final
// newline. The same report always gives the same bytes, and the snapshot
// hash is the SHA-256 of exactly these bytes.
func MarshalCanonical(r *Report) ([]byte, error) {
	raw, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("marshal report %s: %w", r.ReportID, err)
	}
	return canonicalize(raw)
}

func canonicalize(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil { // maps encode with sorted keys
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseReport reads a report from its JSON export (a snapshot), restoring
// the typed field values against the catalogue of its schema version.
func ParseReport(data []byte) (*Report, error) {
	var r Report
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("parse report: %w", err)
	}
	cat, ok := LookupCatalogue(r.SchemaVersion)
	if !ok {
		return nil, fmt.Errorf("parse report %s: unknown schema_version %q", r.ReportID, r.SchemaVersion)
	}
	r.Assumptions.Catalogue = cat
	s, err1 := time.Parse(time.DateOnly, r.PeriodStart)
	e, err2 := time.Parse(time.DateOnly, r.PeriodEnd)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("parse report %s: bad period %q – %q", r.ReportID, r.PeriodStart, r.PeriodEnd)
	}
	r.start, r.end, r.year = s, e.AddDate(0, 0, 1), r.ReportingYear-1
	for id, fv := range r.Fields {
		f, ok := cat.Field(id)
		if !ok {
			return nil, fmt.Errorf("parse report %s: %w", r.ReportID, &FieldError{Field: id, Err: ErrUnknownField})
		}
		v, err := decodeFieldValue(f, fv.Value)
		if err != nil {
			// Keep what was frozen even if it breaks a constraint (a draft).
			continue
		}
		fv.Value = v
		r.Fields[id] = fv
	}
	return &r, nil
}

// Snapshot is a frozen report: its canonical JSON and that JSON's SHA-256.
type Snapshot struct {
	ID        string    `json:"id"`
	SHA256    string    `json:"sha256"`
	Tenant    string    `json:"tenant"`
	Site      string    `json:"site"`
	Year      int       `json:"year"`
	Status    string    `json:"status"` // draft or final
	By        string    `json:"by"`
	CreatedAt time.Time `json:"created_at"`
	// JSON is the canonical report; it is the JSON export, byte for byte.
	JSON []byte `json:"-"`
}

// Report parses the snapshot's JSON.
func (s Snapshot) Report() (*Report, error) { return ParseReport(s.JSON) }

// ErrBlocking is returned when a report with blocking validation errors is
// frozen as final.
var ErrBlocking = errors.New("report has blocking validation errors; fix them or freeze it as a draft")

// ErrSnapshotNotFound is returned for an unknown snapshot id.
var ErrSnapshotNotFound = errors.New("snapshot not found")

// FreezeOptions are the choices of Freeze.
type FreezeOptions struct {
	// Draft freezes even with blocking errors; the status is then "draft".
	Draft bool
	By    string
	Now   time.Time
}

// Freeze turns a report into a snapshot: final (submitted_at set) unless
// Draft, refused with ErrBlocking when the report has blocking errors and
// Draft is false. The report itself is not changed.
func Freeze(tenant string, r *Report, o FreezeOptions) (Snapshot, error) {
	if !o.Draft && !r.Validation.OK() {
		var msgs []string
		for _, e := range r.Validation.Errors {
			msgs = append(msgs, e.Field+": "+e.Message)
		}
		return Snapshot{}, fmt.Errorf("freeze %s: %w (%d: %s)", r.ReportID, ErrBlocking, len(msgs), strings.Join(msgs, "; "))
	}
	c := *r
	c.Status = StatusFinal
	at := o.Now.UTC()
	c.SubmittedAt = &at
	if o.Draft {
		c.Status, c.SubmittedAt = StatusDraft, nil
	}
	data, err := MarshalCanonical(&c)
	if err != nil {
		return Snapshot{}, err
	}
	sum := sha256.Sum256(data)
	h := hex.EncodeToString(sum[:])
	return Snapshot{
		ID:     fmt.Sprintf("%s-%d-%s", r.DataCentreID, r.year, h[:16]),
		SHA256: h, Tenant: tenantOr(tenant), Site: r.DataCentreID, Year: r.year, Status: c.Status, By: o.By, CreatedAt: at, JSON: data,
	}, nil
}

// SnapshotStore keeps frozen reports.
type SnapshotStore interface {
	// Save stores a snapshot; saving the same id again is a no-op.
	Save(ctx context.Context, s Snapshot) error
	// Get returns a snapshot, its JSON checked against its hash.
	Get(ctx context.Context, tenant, id string) (Snapshot, error)
	// List returns the snapshots of a site and year (all years when year is
	// 0), newest first, without their JSON.
	List(ctx context.Context, tenant, site string, year int) ([]Snapshot, error)
}

// FileSnapshotStore keeps each snapshot as two files under
// <dir>/<tenant>/<id>/: report.json (the canonical bytes) and meta.json.
// It is safe for concurrent use within one process.
type FileSnapshotStore struct {
	dir string
	log *slog.Logger
	mu  sync.Mutex
}

// NewFileSnapshotStore opens (creating it) a snapshot store under dir.
func NewFileSnapshotStore(dir string, log *slog.Logger) (*FileSnapshotStore, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("snapshot store %s: %w", dir, err)
	}
	return &FileSnapshotStore{dir: dir, log: log}, nil
}

var snapshotIDRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}-\d{4}-[0-9a-f]{16}$`)

// Save implements SnapshotStore.
func (s *FileSnapshotStore) Save(ctx context.Context, snap Snapshot) error {
	if !idRe.MatchString(snap.Tenant) || !snapshotIDRe.MatchString(snap.ID) {
		return fmt.Errorf("save snapshot %q of tenant %q: invalid id", snap.ID, snap.Tenant)
	}
	sum := sha256.Sum256(snap.JSON)
	if hex.EncodeToString(sum[:]) != snap.SHA256 {
		return fmt.Errorf("save snapshot %s: JSON does not match its hash", snap.ID)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := filepath.Join(s.dir, snap.Tenant, snap.ID)
	if _, err := os.Stat(filepath.Join(dir, "meta.json")); err == nil {
		return nil
	}
	meta, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.ID, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "report.json"), snap.JSON); err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.ID, err)
	}
	// meta.json last: its presence marks a complete snapshot.
	if err := writeFileAtomic(filepath.Join(dir, "meta.json"), meta); err != nil {
		return fmt.Errorf("save snapshot %s: %w", snap.ID, err)
	}
	s.log.InfoContext(ctx, "report snapshot saved", "tenant", snap.Tenant, "id", snap.ID, "status", snap.Status, "by", snap.By)
	return nil
}

// Get implements SnapshotStore.
func (s *FileSnapshotStore) Get(ctx context.Context, tenant, id string) (Snapshot, error) {
	if !idRe.MatchString(tenant) || !snapshotIDRe.MatchString(id) {
		return Snapshot{}, fmt.Errorf("snapshot %q: %w", id, ErrSnapshotNotFound)
	}
	if err := ctx.Err(); err != nil {
		return Snapshot{}, err
	}
	dir := filepath.Join(s.dir, tenant, id)
	snap, err := readMeta(filepath.Join(dir, "meta.json"))
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "report.json"))
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s: %w", id, err)
	}
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != snap.SHA256 {
		return Snapshot{}, fmt.Errorf("snapshot %s: report.json does not match its SHA-256 %s (altered on disk)", id, snap.SHA256)
	}
	snap.JSON = data
	return snap, nil
}

func readMeta(p string) (Snapshot, error) {
	var snap Snapshot
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return snap, ErrSnapshotNotFound
	}
	if err != nil {
		return snap, err
	}
	if err := json.Unmarshal(data, &snap); err != nil {
		return snap, fmt.Errorf("%s: %w", p, err)
	}
	return snap, nil
}

// List implements SnapshotStore.
func (s *FileSnapshotStore) List(ctx context.Context, tenant, site string, year int) ([]Snapshot, error) {
	if !idRe.MatchString(tenant) {
		return nil, fmt.Errorf("list snapshots: tenant %q invalid", tenant)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(filepath.Join(s.dir, tenant))
	if errors.Is(err, fs.ErrNotExist) {
		return []Snapshot{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list snapshots: %w", err)
	}
	out := []Snapshot{}
	for _, e := range ents {
		if !e.IsDir() || !snapshotIDRe.MatchString(e.Name()) {
			continue
		}
		snap, err := readMeta(filepath.Join(s.dir, tenant, e.Name(), "meta.json"))
		if errors.Is(err, ErrSnapshotNotFound) {
			continue // being written
		}
		if err != nil {
			return nil, fmt.Errorf("list snapshots: %w", err)
		}
		if snap.Site == site && (year == 0 || snap.Year == year) {
			out = append(out, snap)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.After(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// All returns every complete snapshot of every tenant, with its JSON
// checked against its hash (for copying them elsewhere).
func (s *FileSnapshotStore) All(ctx context.Context) ([]Snapshot, error) {
	tenants, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("snapshots %s: %w", s.dir, err)
	}
	var out []Snapshot
	for _, t := range tenants {
		if !t.IsDir() || !idRe.MatchString(t.Name()) {
			continue
		}
		ids, err := os.ReadDir(filepath.Join(s.dir, t.Name()))
		if err != nil {
			return nil, fmt.Errorf("snapshots: %w", err)
		}
		for _, id := range ids {
			if !id.IsDir() || !snapshotIDRe.MatchString(id.Name()) {
				continue
			}
			snap, err := s.Get(ctx, t.Name(), id.Name())
			if errors.Is(err, ErrSnapshotNotFound) {
				continue // being written
			}
			if err != nil {
				return nil, err
			}
			out = append(out, snap)
		}
	}
	return out, nil
}
