package pdu

import (
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gosnmp/gosnmp"
)

// FuzzParseProfiles feeds arbitrary YAML to the profile loader: it must
// return profiles that pass their own invariants, or an error, never panic.
func FuzzParseProfiles(f *testing.F) {
	ents, _ := os.ReadDir("profiles")
	for _, e := range ents {
		if b, err := os.ReadFile(filepath.Join("profiles", e.Name())); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(testProfile))
	f.Fuzz(func(t *testing.T, b []byte) {
		ps, err := ParseProfiles(b)
		if err != nil {
			return
		}
		for _, p := range ps {
			if !validName(p.Name) || len(p.Tables) == 0 {
				t.Fatalf("invalid profile accepted: %+v", p)
			}
			for _, c := range p.columns() {
				if strings.HasPrefix(c, ".") || !normOID(&c) {
					t.Fatalf("column %q not normalised", c)
				}
			}
			// Evaluating an empty walk must work on any accepted profile.
			if rs, _ := evaluate(p, walkData{}); len(rs) != 0 {
				t.Fatalf("readings from nothing: %v", rs)
			}
		}
	})
}

// FuzzConvert drives one SNMP value of any type through the conversion and
// the engine with any unit and digits: no panic; labels stay clean; a
// reading's value is the exact rounded product.
func FuzzConvert(f *testing.F) {
	f.Add(uint8(gosnmp.Integer), int64(121), []byte(nil), "power", "0.01kW", int64(0))
	f.Add(uint8(gosnmp.Gauge32), int64(4215), []byte(nil), "current", "A", int64(3))
	f.Add(uint8(gosnmp.Counter64), int64(-1), []byte(nil), "energy", "Wh", int64(1))
	f.Add(uint8(gosnmp.Integer), int64(-410), []byte(nil), "temperature", "0.1C", int64(0))
	f.Add(uint8(gosnmp.OctetString), int64(0), []byte("web-01\x00"), "power", "W", int64(0))
	f.Add(uint8(gosnmp.Integer), int64(1<<62), []byte(nil), "energy", "kWh", int64(9))
	f.Fuzz(func(t *testing.T, typ uint8, n int64, b []byte, metric, unitStr string, digits int64) {
		p := gosnmp.SnmpPDU{Type: gosnmp.Asn1BER(typ)}
		switch p.Type {
		case gosnmp.Integer:
			p.Value = int(n)
		case gosnmp.Counter32, gosnmp.Gauge32:
			p.Value = uint(uint32(n))
		case gosnmp.Counter64:
			p.Value = uint64(n)
		case gosnmp.Uinteger32, gosnmp.TimeTicks:
			p.Value = uint32(n)
		case gosnmp.OctetString:
			p.Value = b
		default:
			p.Value = b
		}
		rv := rawOf(p)
		if !utf8.ValidString(rv.str) || len(rv.str) > maxLabelLen || strings.TrimSpace(rv.str) != rv.str {
			t.Fatalf("unclean label %q", rv.str)
		}
		u, err := parseUnit(metric, unitStr)
		if err != nil {
			return
		}
		prof := &Profile{Name: "f", Match: Match{SysObjectID: []string{"1.3"}}, Tables: []Table{{Name: "t", Component: "c",
			Sensor: Sensor{OIDs: []string{"1.2.1"}},
			Values: []Value{{OID: "1.2.2", Metric: metric, Unit: unitStr, Digits: "1.2.3", Absent: []int64{-1}}}}}}
		if err := prof.validate(); err != nil {
			t.Fatalf("unit %q %q parses but the profile does not validate: %v", metric, unitStr, err)
		}
		d := walkData{"1.2.1": {"7": rv}, "1.2.2": {"7": rv}, "1.2.3": {"7": num(digits)}}
		rs, _ := evaluate(prof, d)
		if len(rs) > 1 {
			t.Fatalf("one value gave %d readings", len(rs))
		}
		if len(rs) == 0 {
			return
		}
		r := rs[0]
		if !rv.isNum || rv.num == -1 || digits < 0 || digits > maxDigits {
			t.Fatalf("reading %+v from unusable value %+v digits %d", r, rv, digits)
		}
		// Check the value against an exact computation.
		exact := new(big.Rat).SetFrac(new(big.Int).Mul(big.NewInt(rv.num), big.NewInt(u.num)),
			new(big.Int).Mul(big.NewInt(u.den), new(big.Int).Exp(big.NewInt(10), big.NewInt(digits), nil)))
		diff := new(big.Rat).Sub(exact, new(big.Rat).SetInt64(r.value))
		if diff.Abs(diff).Cmp(big.NewRat(1, 2)) > 0 {
			t.Fatalf("%d %s digits %d → %d, exact %s", rv.num, unitStr, digits, r.value, exact.FloatString(3))
		}
		if r.sensor == "" {
			t.Fatal("empty sensor label")
		}
	})
}
