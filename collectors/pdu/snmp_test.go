package pdu

import (
	"strings"
	"testing"

	"github.com/gosnmp/gosnmp"
)

func vbInt(name string, v int) gosnmp.SnmpPDU {
	return gosnmp.SnmpPDU{Name: name, Type: gosnmp.Integer, Value: v}
}

func newWalk(cols ...string) (walkData, []*colWalk) {
	d := walkData{}
	var b []*colWalk
	for _, c := range cols {
		d[c] = map[string]raw{}
		b = append(b, &colWalk{col: c, last: c})
	}
	return d, b
}

func TestAbsorbBulkInterleaved(t *testing.T) {
	d, b := newWalk("1.2.6", "1.2.7")
	done := make([]bool, 2)
	// Three repetitions of two columns: row-major. Column 6 has two rows,
	// then its third successor is column 7's first row (end of column 6).
	errs := absorb(d, b, []gosnmp.SnmpPDU{
		vbInt(".1.2.6.1", 9), vbInt(".1.2.7.1", 163),
		vbInt(".1.2.6.2", 5), vbInt(".1.2.7.2", 4),
		vbInt(".1.2.7.1", 163), vbInt(".1.2.7.3", 81),
	}, done)
	if len(errs) != 0 {
		t.Fatal(errs)
	}
	if !done[0] || done[1] {
		t.Errorf("done = %v, want column 6 finished, 7 not", done)
	}
	if len(d["1.2.6"]) != 2 || d["1.2.6"]["2"].num != 5 || len(d["1.2.7"]) != 3 || d["1.2.7"]["3"].num != 81 {
		t.Errorf("walk data %+v", d)
	}
	if b[1].last != "1.2.7.3" || b[1].rows != 3 {
		t.Errorf("column 7 at %s after %d rows", b[1].last, b[1].rows)
	}
}

func TestAbsorbEnds(t *testing.T) {
	for _, c := range []struct {
		name    string
		vars    []gosnmp.SnmpPDU
		rows    int
		done    bool
		wantErr string
	}{
		{"end of mib", []gosnmp.SnmpPDU{vbInt(".1.2.6.1", 1), {Name: ".1.2.6.1", Type: gosnmp.EndOfMibView}}, 1, true, ""},
		{"next subtree", []gosnmp.SnmpPDU{vbInt(".1.2.60.1", 1)}, 0, true, ""}, // 1.2.60 is not under 1.2.6
		{"the column itself", []gosnmp.SnmpPDU{vbInt(".1.2.6", 1)}, 0, true, ""},
		{"backwards", []gosnmp.SnmpPDU{vbInt(".1.2.6.2", 1), vbInt(".1.2.6.1", 1)}, 1, true, "after 1.2.6.2"},
		{"repeated", []gosnmp.SnmpPDU{vbInt(".1.2.6.2", 1), vbInt(".1.2.6.2", 1)}, 1, true, "column cut short"},
		{"more to come", []gosnmp.SnmpPDU{vbInt(".1.2.6.1", 1), vbInt(".1.2.6.10", 1)}, 2, false, ""},
	} {
		d, b := newWalk("1.2.6")
		done := []bool{false}
		errs := absorb(d, b, c.vars, done)
		if len(d["1.2.6"]) != c.rows || done[0] != c.done {
			t.Errorf("%s: %d rows, done %v; want %d, %v", c.name, len(d["1.2.6"]), done[0], c.rows, c.done)
		}
		if (c.wantErr == "") != (len(errs) == 0) || (c.wantErr != "" && !strings.Contains(errs[0].Error(), c.wantErr)) {
			t.Errorf("%s: errors %v, want %q", c.name, errs, c.wantErr)
		}
	}
}

func TestAbsorbRowLimit(t *testing.T) {
	d, b := newWalk("1.2.6")
	b[0].rows = maxRowsPerColumn - 1
	done := []bool{false}
	errs := absorb(d, b, []gosnmp.SnmpPDU{vbInt(".1.2.6.1", 1), vbInt(".1.2.6.2", 1)}, done)
	if !done[0] || len(errs) != 1 || len(d["1.2.6"]) != 1 {
		t.Errorf("row limit: done %v, errs %v, rows %d", done[0], errs, len(d["1.2.6"]))
	}
}

// FuzzAbsorb feeds responses with arbitrary OIDs and types to the walker:
// every value it keeps lies under its column, each column moves strictly
// forward, and nothing panics.
func FuzzAbsorb(f *testing.F) {
	f.Add(".1.2.6.1 .1.2.7.1 .1.2.6.2 .1.2.7.2", uint8(2), 3)
	f.Add(".1.2.6 .1.2.6.1.0 .1.2.60 .1.2.7..1", uint8(4), 2)
	f.Add("1.2.7.5 .1.2.7.3 .1.2.7.4", uint8(130), 1)
	f.Fuzz(func(t *testing.T, names string, typ uint8, ncols int) {
		cols := []string{"1.2.6", "1.2.7", "1.2.6.1"}
		ncols = 1 + (ncols%3+3)%3
		d, b := newWalk(cols[:ncols]...)
		var vars []gosnmp.SnmpPDU
		for i, n := range strings.Fields(names) {
			vars = append(vars, gosnmp.SnmpPDU{Name: n, Type: gosnmp.Asn1BER(typ + uint8(i)), Value: i})
		}
		before := make([]string, len(b))
		for i, s := range b {
			before[i] = s.last
		}
		done := make([]bool, len(b))
		absorb(d, b, vars, done)
		for i, s := range b {
			for idx := range d[s.col] {
				full := s.col + "." + idx
				if !hasOIDPrefix(full, s.col) || idx == "" {
					t.Fatalf("column %s holds index %q", s.col, idx)
				}
			}
			if s.last != before[i] && compareIndex(s.last, before[i]) <= 0 {
				t.Fatalf("column %s moved backwards: %s → %s", s.col, before[i], s.last)
			}
			if len(d[s.col]) != s.rows {
				t.Fatalf("column %s: %d values, %d rows counted", s.col, len(d[s.col]), s.rows)
			}
		}
	})
}
