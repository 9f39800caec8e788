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
	"strconv"
	"strings"
	"sync"
	"time"
)

// Entry is one operator entry of one field.
type Entry struct {
	// Value is the field's value as JSON; empty when the entry clears the
	// field or only states an omission reason.
	Value json.RawMessage `json:"value,omitempty"`
	// Quality is entered (default) or estimated.
	Quality        Quality   `json:"quality"`
	OmissionReason string    `json:"omission_reason,omitempty"`
	By             string    `json:"by"`
	At             time.Time `json:"at"`
}

// Inputs are the operator entries of one site and year.
type Inputs struct {
	Tenant string `json:"tenant"`
	Site   string `json:"site"`
	Year   int    `json:"year"`
	// Fields holds every entry per field id, oldest first; the last is current.
	Fields map[string][]Entry `json:"fields"`
}

// Current returns the latest entry of a field.
func (in Inputs) Current(id string) (Entry, bool) {
	h := in.Fields[id]
	if len(h) == 0 {
		return Entry{}, false
	}
	return h[len(h)-1], true
}

// InputStore keeps operator-entered report fields per tenant, site and the
// calendar year the report covers, with who entered what and when.
type InputStore interface {
	// Put records new values for some fields. Each raw value is either the
	// bare JSON value of the field, null to clear it, or an object
	// {"value": ..., "quality": "entered"|"estimated", "omission_reason": "..."}.
	// Unknown, derived or wrongly typed fields reject the whole call with an
	// error naming each field (a *FieldError, joined).
	Put(ctx context.Context, tenant, site string, year int, fields map[string]json.RawMessage, who string) error
	// Get returns the entries; a site and year with none yields empty Inputs.
	Get(ctx context.Context, tenant, site string, year int) (Inputs, error)
}

// entryForm is the object form of a submitted value.
type entryForm struct {
	Value          json.RawMessage `json:"value"`
	Quality        Quality         `json:"quality"`
	OmissionReason string          `json:"omission_reason"`
}

// ParseEntry checks one submitted raw value for a field of the catalogue and
// returns the entry to store (without By and At).
func ParseEntry(cat *Catalogue, id string, raw json.RawMessage) (Entry, error) {
	f, ok := cat.Field(id)
	if !ok {
		return Entry{}, &FieldError{Field: id, Err: ErrUnknownField}
	}
	if !f.Enterable() {
		return Entry{}, &FieldError{Field: id, Err: ErrNotEnterable}
	}
	e := Entry{Quality: QualityEntered}
	raw = bytes.TrimSpace(raw)
	if len(raw) > 0 && raw[0] == '{' {
		var form entryForm
		if err := strictDecode(raw, &form); err != nil {
			return Entry{}, &FieldError{Field: id, Err: fmt.Errorf("entry object: %w", err)}
		}
		switch form.Quality {
		case "":
		case QualityEntered, QualityEstimated:
			e.Quality = form.Quality
		default:
			return Entry{}, &FieldError{Field: id, Err: fmt.Errorf("quality %q: want entered or estimated", form.Quality)}
		}
		e.OmissionReason = form.OmissionReason
		raw = bytes.TrimSpace(form.Value)
	}
	v, err := ParseValue(f, raw)
	if err != nil {
		return Entry{}, err
	}
	if v != nil {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err != nil {
			return Entry{}, &FieldError{Field: id, Err: err}
		}
		e.Value = buf.Bytes()
	}
	return e, nil
}

var idRe = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// CheckKey checks the tenant, site and year of an InputStore call: every
// store refuses the same keys.
func CheckKey(tenant, site string, year int) error { return checkKey(tenant, site, year) }

// ValidTenant reports whether tenant can key a store.
func ValidTenant(tenant string) bool { return idRe.MatchString(tenant) }

// ValidSnapshotRef reports whether tenant and id can name a stored snapshot.
func ValidSnapshotRef(tenant, id string) bool {
	return idRe.MatchString(tenant) && snapshotIDRe.MatchString(id)
}

// CheckSnapshot checks a snapshot before a SnapshotStore saves it: a
// well-formed tenant and id, and JSON matching its SHA-256.
func CheckSnapshot(snap Snapshot) error {
	if !ValidSnapshotRef(snap.Tenant, snap.ID) {
		return fmt.Errorf("save snapshot %q of tenant %q: invalid id", snap.ID, snap.Tenant)
	}
	sum := sha256.Sum256(snap.JSON)
	if hex.EncodeToString(sum[:]) != snap.SHA256 {
		return fmt.Errorf("save snapshot %s: JSON does not match its hash", snap.ID)
	}
	return nil
}

// PrepareEntries checks an InputStore.Put before anything is stored, as
// every store must: the key, who, and each field against cat (unknown,
// derived or wrongly typed fields give *FieldErrors naming them, joined).
// It returns the field ids sorted and their entries, By and At unset. A nil
// cat is the default catalogue.
func PrepareEntries(cat *Catalogue, tenant, site string, year int, fields map[string]json.RawMessage, who string) ([]string, map[string]Entry, error) {
	if cat == nil {
		cat = DefaultCatalogue()
	}
	if err := checkKey(tenant, site, year); err != nil {
		return nil, nil, fmt.Errorf("put report inputs: %w", err)
	}
	if who == "" {
		return nil, nil, errors.New("put report inputs: who must be set")
	}
	if len(fields) == 0 {
		return nil, nil, errors.New("put report inputs: no fields")
	}
	ids := make([]string, 0, len(fields))
	for id := range fields {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	entries := make(map[string]Entry, len(fields))
	var errs []error
	for _, id := range ids {
		e, err := ParseEntry(cat, id, fields[id])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		entries[id] = e
	}
	if len(errs) > 0 {
		return nil, nil, fmt.Errorf("put report inputs %s/%s/%d: %w", tenant, site, year, errors.Join(errs...))
	}
	return ids, entries, nil
}

func checkKey(tenant, site string, year int) error {
	if !idRe.MatchString(tenant) {
		return fmt.Errorf("tenant %q: want lower-case letters, digits, '-' or '_'", tenant)
	}
	if !idRe.MatchString(site) {
		return fmt.Errorf("site %q: want lower-case letters, digits, '-' or '_'", site)
	}
	if year < 2000 || year > 2200 {
		return fmt.Errorf("year %d out of range", year)
	}
	return nil
}

// FileInputStore is an InputStore keeping one JSON file per tenant, site and
// year under a directory (<dir>/<tenant>/<site>/<year>.json), written
// atomically (temporary file, fsync, rename). It is safe for concurrent use
// within one process; several processes must not share a directory.
type FileInputStore struct {
	dir string
	cat *Catalogue
	now func() time.Time
	log *slog.Logger

	mu sync.Mutex
}

// NewFileInputStore opens (creating it) a store under dir that checks
// entries against cat (nil: the default catalogue). A nil clock is
// time.Now, a nil logger discards.
func NewFileInputStore(dir string, cat *Catalogue, now func() time.Time, log *slog.Logger) (*FileInputStore, error) {
	if cat == nil {
		cat = DefaultCatalogue()
	}
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("input store %s: %w", dir, err)
	}
	return &FileInputStore{dir: dir, cat: cat, now: now, log: log}, nil
}

func (s *FileInputStore) path(tenant, site string, year int) string {
	return filepath.Join(s.dir, tenant, site, strconv.Itoa(year)+".json")
}

// Put implements InputStore.
func (s *FileInputStore) Put(ctx context.Context, tenant, site string, year int, fields map[string]json.RawMessage, who string) error {
	ids, entries, err := PrepareEntries(s.cat, tenant, site, year, fields, who)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	in, err := s.read(tenant, site, year)
	if err != nil {
		return err
	}
	at := s.now().UTC()
	for _, id := range ids {
		e := entries[id]
		e.By, e.At = who, at
		in.Fields[id] = append(in.Fields[id], e)
	}
	data, err := json.MarshalIndent(in, "", " ")
	if err != nil {
		return fmt.Errorf("put report inputs: %w", err)
	}
	p := s.path(tenant, site, year)
	if err := writeFileAtomic(p, data); err != nil {
		return fmt.Errorf("put report inputs: %w", err)
	}
	s.log.InfoContext(ctx, "report inputs stored", "tenant", tenant, "site", site, "year", year, "fields", ids, "by", who)
	return nil
}

// Get implements InputStore.
func (s *FileInputStore) Get(ctx context.Context, tenant, site string, year int) (Inputs, error) {
	if err := checkKey(tenant, site, year); err != nil {
		return Inputs{}, fmt.Errorf("get report inputs: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return Inputs{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read(tenant, site, year)
}

func (s *FileInputStore) read(tenant, site string, year int) (Inputs, error) {
	in := Inputs{Tenant: tenant, Site: site, Year: year, Fields: map[string][]Entry{}}
	p := s.path(tenant, site, year)
	data, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return in, nil
	}
	if err != nil {
		return in, fmt.Errorf("report inputs %s: %w", p, err)
	}
	if err := json.Unmarshal(data, &in); err != nil {
		return in, fmt.Errorf("report inputs %s: %w", p, err)
	}
	if in.Fields == nil {
		in.Fields = map[string][]Entry{}
	}
	return in, nil
}

// writeFileAtomic writes data to a temporary file in the same directory,
// syncs it and renames it over path, so readers see the old or the new file.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// All returns the entries of every tenant, site and year the store holds
// (for copying them elsewhere), in path order.
func (s *FileInputStore) All(ctx context.Context) ([]Inputs, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Inputs
	tenants, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("report inputs %s: %w", s.dir, err)
	}
	for _, t := range tenants {
		if !t.IsDir() || !idRe.MatchString(t.Name()) {
			continue
		}
		sites, err := os.ReadDir(filepath.Join(s.dir, t.Name()))
		if err != nil {
			return nil, fmt.Errorf("report inputs: %w", err)
		}
		for _, st := range sites {
			if !st.IsDir() {
				continue
			}
			years, err := os.ReadDir(filepath.Join(s.dir, t.Name(), st.Name()))
			if err != nil {
				return nil, fmt.Errorf("report inputs: %w", err)
			}
			for _, y := range years {
				ys, ok := strings.CutSuffix(y.Name(), ".json")
				year, err := strconv.Atoi(ys)
				if !ok || err != nil || y.IsDir() || checkKey(t.Name(), st.Name(), year) != nil {
					continue
				}
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				in, err := s.read(t.Name(), st.Name(), year)
				if err != nil {
					return nil, err
				}
				out = append(out, in)
			}
		}
	}
	return out, nil
}
