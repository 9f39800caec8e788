package pdu

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Profile says where one family of devices keeps its readings: which
// sysObjectID prefixes it matches, and which SNMP table columns hold which
// reading in which unit. Profiles are data (YAML, see profiles/*.yaml); the
// collector's code knows no vendor OID.
type Profile struct {
	// Name picks the profile in a target's "profile" setting.
	Name string `yaml:"name"`
	// Description says which devices and which MIB it covers.
	Description string `yaml:"description"`
	// Match says when automatic selection picks the profile.
	Match Match `yaml:"match"`
	// Priority orders profiles that match the same device: higher first.
	Priority int `yaml:"priority"`
	// Tables are read in order.
	Tables []Table `yaml:"tables"`
}

// Match selects a profile for a device.
type Match struct {
	// SysObjectID lists prefixes of sysObjectID.0 (whole arcs) this profile
	// applies to.
	SysObjectID []string `yaml:"sysobjectid"`
	// Probe, when set, is a subtree that must hold at least one object for
	// the profile to apply (a MIB the device may or may not implement).
	Probe string `yaml:"probe"`
	// Fallback profiles match any device whose Probe answers, when no
	// profile matched its sysObjectID (the UPS-MIB).
	Fallback bool `yaml:"fallback"`
}

// Table is a set of columns that share an index (one conceptual row per
// outlet, phase, inlet...). A scalar is a table whose only row is ".0".
type Table struct {
	// Name is for humans and error messages ("outlet", "phase").
	Name string `yaml:"name"`
	// Component is the component label of every reading of the table.
	Component string `yaml:"component"`
	// Sensor says how each row's sensor label is made.
	Sensor Sensor `yaml:"sensor"`
	// Where keeps only the rows whose columns hold one of the listed values
	// (a probe that is connected, a row that is a bank and not a phase).
	Where []Cond `yaml:"where"`
	// Values are the readings of each row.
	Values []Value `yaml:"values"`
}

// Sensor makes a row's sensor label from the first column of OIDs that has
// something at the row's index: a non-empty string as it is (the name an
// operator gave an outlet on the device), a number after Prefix ("L" and
// a phase number); else Fixed; else Prefix followed by the row index.
type Sensor struct {
	OIDs   []string `yaml:"oids"`
	Fixed  string   `yaml:"fixed"`
	Prefix string   `yaml:"prefix"`
}

// Cond keeps a row when the integer column OID at the row's index holds one
// of In (when In is set) and none of NotIn.
type Cond struct {
	OID   string  `yaml:"oid"`
	In    []int64 `yaml:"in"`
	NotIn []int64 `yaml:"not_in"`
}

// Value is one column holding one kind of reading.
type Value struct {
	// OID is the column (the table entry OID followed by the column number).
	OID string `yaml:"oid"`
	// Metric is the kind of reading: power, energy, apparent_power,
	// current, voltage, power_factor, temperature or humidity.
	Metric string `yaml:"metric"`
	// Unit is the column's unit as the MIB states it: an optional decimal
	// factor and a symbol, e.g. "W", "0.01kW", "0.1kWh", "Wh", "0.1A",
	// "mA", "V", "mV", "0.1C", "%RH", "0.01" (a ratio in hundredths).
	Unit string `yaml:"unit"`
	// Digits, when set, is a column at the same index holding the number
	// of decimal digits of the value (Raritan): the value is divided by
	// 10^digits after Unit is applied.
	Digits string `yaml:"digits"`
	// Absent lists raw values that mean "not supported" or "not
	// available" (-1 in most MIBs); such a value is not emitted.
	Absent []int64 `yaml:"absent"`
	// ByType, instead of Metric and Unit, picks them per row from a type:
	// the last arc of the index (Raritan sensor tables) or a column.
	ByType *ByType `yaml:"by_type"`
	// Where keeps only the values whose conditions hold at the value's
	// full index (an "is available" flag, a units column).
	Where []Cond `yaml:"where"`
	// Key groups alternative sources of the same reading: once a value
	// with a key produced a reading, later values with that key are
	// skipped (a newer MIB's table first, an older one as fallback).
	Key string `yaml:"key"`

	unit unit // Metric and Unit, parsed by validate
}

// ByType picks a value's metric and unit from a type number.
type ByType struct {
	// Column, when set, is an integer column at the row's index holding
	// the type; otherwise the type is the last arc of the value's index,
	// which is then not part of the row index.
	Column string `yaml:"column"`
	// Types maps a type number to the reading it holds. Types not listed
	// are ignored.
	Types map[int64]TypedUnit `yaml:"types"`
}

// TypedUnit is the metric and unit of one type number.
type TypedUnit struct {
	Metric string `yaml:"metric"`
	Unit   string `yaml:"unit"`

	unit unit // parsed by validate
}

// maxProfileBytes bounds one profile file.
const maxProfileBytes = 1 << 20

//go:embed profiles/*.yaml
var builtinFS embed.FS

// Profiles is a validated set of profiles, in file order.
type Profiles struct {
	list   []*Profile
	byName map[string]*Profile
}

// Builtin returns the profiles shipped with greenloop, parsed once. The
// set is shared: callers must not modify it.
func Builtin() (*Profiles, error) { return builtin() }

var builtin = sync.OnceValues(func() (*Profiles, error) { return LoadProfiles(builtinFS, "profiles") })

// LoadProfiles reads every *.yaml file of dir in fsys, in name order.
func LoadProfiles(fsys fs.FS, dir string) (*Profiles, error) {
	ents, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("pdu: profiles: %w", err)
	}
	var names []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), ".yaml") {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	var all []*Profile
	for _, n := range names {
		b, err := fs.ReadFile(fsys, path.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("pdu: profile file %s: %w", n, err)
		}
		ps, err := ParseProfiles(b)
		if err != nil {
			return nil, fmt.Errorf("pdu: profile file %s: %w", n, err)
		}
		all = append(all, ps...)
	}
	return NewProfiles(all...)
}

// NewProfiles checks that names are unique and returns the set.
func NewProfiles(ps ...*Profile) (*Profiles, error) {
	s := &Profiles{byName: map[string]*Profile{}}
	for _, p := range ps {
		if _, dup := s.byName[p.Name]; dup {
			return nil, fmt.Errorf("pdu: profile %q defined twice", p.Name)
		}
		s.byName[p.Name] = p
		s.list = append(s.list, p)
	}
	return s, nil
}

// Get returns the profile called name.
func (s *Profiles) Get(name string) (*Profile, bool) {
	p, ok := s.byName[name]
	return p, ok
}

// Names returns the profiles' names, sorted.
func (s *Profiles) Names() []string {
	ns := make([]string, 0, len(s.list))
	for _, p := range s.list {
		ns = append(ns, p.Name)
	}
	sort.Strings(ns)
	return ns
}

// ParseProfiles decodes one YAML stream of one or more profile documents
// (separated by "---") and validates each, reporting every problem found.
func ParseProfiles(b []byte) ([]*Profile, error) {
	if len(b) > maxProfileBytes {
		return nil, fmt.Errorf("profile data larger than %d bytes", maxProfileBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var out []*Profile
	for i := 0; ; i++ {
		var p Profile
		err := dec.Decode(&p)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("document %d (profile %q): %w", i+1, p.Name, err)
		}
		out = append(out, &p)
	}
	if len(out) == 0 {
		return nil, errors.New("no profile in data")
	}
	return out, nil
}

// validate normalises OIDs (no leading dot) and checks every field.
func (p *Profile) validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if !validName(p.Name) {
		bad("name %q: want lower-case letters, digits, '-' or '_'", p.Name)
	}
	if p.Name == "auto" {
		bad(`name "auto" is reserved`)
	}
	if len(p.Match.SysObjectID) == 0 && !p.Match.Fallback {
		bad("match: no sysobjectid prefix and not a fallback")
	}
	if p.Match.Fallback && p.Match.Probe == "" {
		bad("match: a fallback profile needs a probe")
	}
	for i := range p.Match.SysObjectID {
		if !normOID(&p.Match.SysObjectID[i]) {
			bad("match.sysobjectid[%d]: %q is not an OID", i, p.Match.SysObjectID[i])
		}
	}
	if p.Match.Probe != "" && !normOID(&p.Match.Probe) {
		bad("match.probe: %q is not an OID", p.Match.Probe)
	}
	if len(p.Tables) == 0 {
		bad("no tables")
	}
	for ti := range p.Tables {
		t := &p.Tables[ti]
		where := fmt.Sprintf("tables[%d] (%s)", ti, t.Name)
		if t.Name == "" {
			bad("%s: no name", where)
		}
		if !validName(t.Component) {
			bad("%s: component %q: want lower-case letters, digits, '-' or '_'", where, t.Component)
		}
		for i := range t.Sensor.OIDs {
			if !normOID(&t.Sensor.OIDs[i]) {
				bad("%s: sensor.oids[%d]: %q is not an OID", where, i, t.Sensor.OIDs[i])
			}
		}
		for i := range t.Where {
			if !normOID(&t.Where[i].OID) {
				bad("%s: where[%d].oid: %q is not an OID", where, i, t.Where[i].OID)
			}
			if len(t.Where[i].In) == 0 && len(t.Where[i].NotIn) == 0 {
				bad("%s: where[%d]: neither in nor not_in", where, i)
			}
		}
		if len(t.Values) == 0 {
			bad("%s: no values", where)
		}
		for vi := range t.Values {
			v := &t.Values[vi]
			vw := fmt.Sprintf("%s.values[%d]", where, vi)
			if !normOID(&v.OID) {
				bad("%s: oid %q is not an OID", vw, v.OID)
			}
			for i := range v.Where {
				if !normOID(&v.Where[i].OID) {
					bad("%s: where[%d].oid: %q is not an OID", vw, i, v.Where[i].OID)
				}
				if len(v.Where[i].In) == 0 && len(v.Where[i].NotIn) == 0 {
					bad("%s: where[%d]: neither in nor not_in", vw, i)
				}
			}
			if v.Digits != "" && !normOID(&v.Digits) {
				bad("%s: digits %q is not an OID", vw, v.Digits)
			}
			if v.ByType != nil {
				if v.Metric != "" || v.Unit != "" {
					bad("%s: by_type and metric/unit are exclusive", vw)
				}
				if v.ByType.Column != "" && !normOID(&v.ByType.Column) {
					bad("%s: by_type.column %q is not an OID", vw, v.ByType.Column)
				}
				if len(v.ByType.Types) == 0 {
					bad("%s: by_type has no types", vw)
				}
				for n, tu := range v.ByType.Types {
					u, err := parseUnit(tu.Metric, tu.Unit)
					if err != nil {
						bad("%s: by_type.types[%d]: %w", vw, n, err)
					}
					tu.unit = u
					v.ByType.Types[n] = tu
				}
				continue
			}
			u, err := parseUnit(v.Metric, v.Unit)
			if err != nil {
				bad("%s: %w", vw, err)
			}
			v.unit = u
		}
	}
	return errors.Join(errs...)
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// normOID strips a leading dot and reports whether *s is a dotted list of
// at least two decimal arcs, each fitting 32 bits.
func normOID(s *string) bool {
	o := strings.TrimPrefix(strings.TrimSpace(*s), ".")
	*s = o
	parts := strings.Split(o, ".")
	if len(parts) < 2 || len(parts) > 128 {
		return false
	}
	for _, a := range parts {
		if a == "" || len(a) > 10 || (len(a) > 1 && a[0] == '0') {
			return false
		}
		if _, err := strconv.ParseUint(a, 10, 32); err != nil {
			return false
		}
	}
	return true
}

// hasOIDPrefix reports whether oid is prefix or lies under it (whole arcs).
func hasOIDPrefix(oid, prefix string) bool {
	return oid == prefix || strings.HasPrefix(oid, prefix) && len(oid) > len(prefix) && oid[len(prefix)] == '.'
}

// columns returns every column the profile reads, in first-use order
// without duplicates.
func (p *Profile) columns() []string {
	seen := map[string]bool{}
	var cols []string
	add := func(o string) {
		if o != "" && !seen[o] {
			seen[o] = true
			cols = append(cols, o)
		}
	}
	for _, t := range p.Tables {
		for _, v := range t.Values {
			add(v.OID)
			add(v.Digits)
			for _, c := range v.Where {
				add(c.OID)
			}
			if v.ByType != nil {
				add(v.ByType.Column)
			}
		}
		for _, o := range t.Sensor.OIDs {
			add(o)
		}
		for _, c := range t.Where {
			add(c.OID)
		}
	}
	return cols
}
