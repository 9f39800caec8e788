package pdu

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// walkData is what a walk of a profile's columns returned: column OID →
// index (the arcs after the column) → value.
type walkData map[string]map[string]raw

// reading is one value the profile engine extracted, in its quantity's
// base unit, before it gets a time and is made monotonic.
type reading struct {
	q         quantity
	component string
	sensor    string
	index     string // row index; "" for a scalar
	value     int64  // base unit of q (µW, µJ, mA, ...)
}

// key names the series a reading belongs to.
func (r reading) key() seriesKey {
	return seriesKey{q: r.q, component: r.component, sensor: r.sensor, index: r.index}
}

type seriesKey struct {
	q                        quantity
	component, sensor, index string
}

// evaluate extracts every reading profile p describes from d. Rows whose
// value is missing, not a number, or one of the column's "absent" markers
// give no reading; skipped counts values that were present but unusable
// (overflow, a negative power, a bad digits column), for the caller to log.
func evaluate(p *Profile, d walkData) (out []reading, skipped []string) {
	keysDone := map[string]bool{}
	for ti := range p.Tables {
		t := &p.Tables[ti]
		type hit struct {
			row   string
			order int
			idx   string
			r     reading
		}
		var hits []hit
		for vi := range t.Values {
			v := &t.Values[vi]
			if v.Key != "" && keysDone[v.Key] {
				continue
			}
			n := 0
			for _, idx := range sortedIndexes(d[v.OID]) {
				rv := d[v.OID][idx]
				row := idx
				var u unit
				if v.ByType != nil {
					var typ int64
					if v.ByType.Column != "" {
						tv, ok := d[v.ByType.Column][idx]
						if !ok || !tv.isNum {
							continue
						}
						typ = tv.num
					} else {
						dot := strings.LastIndexByte(idx, '.')
						if dot < 0 {
							continue
						}
						t, err := strconv.ParseInt(idx[dot+1:], 10, 64)
						if err != nil {
							continue
						}
						row, typ = idx[:dot], t
					}
					tu, ok := v.ByType.Types[typ]
					if !ok {
						continue
					}
					u = tu.unit
				} else {
					u = v.unit
				}
				if !rv.isNum || slices.Contains(v.Absent, rv.num) {
					continue
				}
				if !keep(t.Where, d, row) || !keep(v.Where, d, idx) {
					continue
				}
				digits := 0
				if v.Digits != "" {
					dv, ok := d[v.Digits][idx]
					if !ok || !dv.isNum || dv.num < 0 || dv.num > maxDigits {
						skipped = append(skipped, fmt.Sprintf("%s %s.%s: no usable decimal digits", t.Name, v.OID, idx))
						continue
					}
					digits = int(dv.num)
				}
				val, ok := u.scale(rv.num, digits)
				if !ok {
					skipped = append(skipped, fmt.Sprintf("%s %s.%s: value %d out of range", t.Name, v.OID, idx, rv.num))
					continue
				}
				if val < 0 && (u.q == qPower || u.q == qEnergy || u.q == qApparentPower) {
					skipped = append(skipped, fmt.Sprintf("%s %s.%s: negative %d", t.Name, v.OID, idx, rv.num))
					continue
				}
				ri := row
				if ri == "0" {
					ri = ""
				}
				hits = append(hits, hit{row: row, order: vi, idx: idx, r: reading{
					q: u.q, component: t.Component, sensor: t.sensor(d, row), index: ri, value: val,
				}})
				n++
			}
			if v.Key != "" && n > 0 {
				keysDone[v.Key] = true
			}
		}
		slices.SortStableFunc(hits, func(a, b hit) int {
			if c := compareIndex(a.row, b.row); c != 0 {
				return c
			}
			if a.order != b.order {
				return a.order - b.order
			}
			return compareIndex(a.idx, b.idx)
		})
		for _, h := range hits {
			out = append(out, h.r)
		}
	}
	return out, skipped
}

// keep applies where conditions at an index.
func keep(where []Cond, d walkData, idx string) bool {
	for _, c := range where {
		v, ok := d[c.OID][idx]
		if !ok || !v.isNum {
			return false
		}
		if len(c.In) > 0 && !slices.Contains(c.In, v.num) {
			return false
		}
		if slices.Contains(c.NotIn, v.num) {
			return false
		}
	}
	return true
}

// sensor returns a row's sensor label.
func (t *Table) sensor(d walkData, row string) string {
	for _, o := range t.Sensor.OIDs {
		if v, ok := d[o][row]; ok {
			if v.str != "" {
				return v.str
			}
			if v.isNum {
				return t.Sensor.Prefix + strconv.FormatInt(v.num, 10)
			}
		}
	}
	if t.Sensor.Fixed != "" {
		return t.Sensor.Fixed
	}
	return t.Sensor.Prefix + row
}

// sortedIndexes returns m's keys in OID order.
func sortedIndexes(m map[string]raw) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.SortFunc(ks, compareIndex)
	return ks
}

// compareIndex orders dotted indexes arc by arc, numerically.
func compareIndex(a, b string) int {
	for a != "" || b != "" {
		var x, y string
		x, a, _ = strings.Cut(a, ".")
		y, b, _ = strings.Cut(b, ".")
		if x == "" && y != "" {
			return -1
		}
		if y == "" && x != "" {
			return 1
		}
		if len(x) != len(y) {
			return len(x) - len(y)
		}
		if c := strings.Compare(x, y); c != 0 {
			return c
		}
	}
	return 0
}
