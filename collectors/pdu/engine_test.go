package pdu

import (
	"errors"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/greenloop/greenloop/collectors"
)

func TestParseUnit(t *testing.T) {
	f := func(metric, u string, raw int64, digits int, want int64) {
		t.Helper()
		un, err := parseUnit(metric, u)
		if err != nil {
			t.Fatalf("parseUnit(%q, %q): %v", metric, u, err)
		}
		got, ok := un.scale(raw, digits)
		if !ok || got != want {
			t.Errorf("%s %q: %d (digits %d) → %d (ok %v), want %d", metric, u, raw, digits, got, ok, want)
		}
	}
	f("power", "W", 163, 0, 163e6)                    // µW
	f("power", "0.01kW", 121, 0, 1210e6)              // APC rPDU2 device power
	f("power", "kW", 3, 0, 3000e6)                    //
	f("energy", "0.1kWh", 19516, 0, 19516*360000*1e6) // APC energy → µJ
	f("energy", "Wh", 98765, 0, 98765*3600*1e6)       //
	f("energy", "Wh", 12345, 1, 1234.5*3600*1e6)      // Raritan, 1 decimal digit
	f("energy", "kWh", 1, 0, 3.6e12)                  //
	f("current", "0.1A", 65, 0, 6500)                 // mA
	f("current", "0.01A", 512, 0, 5120)               // Sentry
	f("current", "A", 4210, 3, 4210)                  // Raritan 3 digits
	f("current", "A", 4215, 4, 422)                   // 0.4215 A rounds to 422 mA
	f("current", "A", -4215, 4, -422)                 // half away from zero
	f("current", "mA", 4210, 0, 4210)                 // Eaton
	f("voltage", "mV", 230120, 0, 230120)             //
	f("voltage", "0.1V", 2081, 0, 208100)             //
	f("temperature", "0.1C", 245, 0, 24500)           // m°C
	f("temperature", "0.1C", -5, 0, -500)             //
	f("temperature", "C", 243, 1, 24300)              // Raritan external sensor
	f("power_factor", "0.01", 94, 0, 940000)          // millionths
	f("power_factor", "1", 95, 2, 950000)             //
	f("power_factor", "%", 94, 0, 940000)             //
	f("humidity", "%RH", 39, 0, 390000)               //
	f("humidity", "0.1%RH", 453, 0, 453000)           //
	f("apparent_power", "0.01kVA", 131, 0, 1310e6)    //
	f("energy", "Wh", 1<<30, 0, (1<<30)*3600*1000000) // large but fits int64
}

func TestParseUnitErrors(t *testing.T) {
	for _, c := range []struct{ metric, unit, want string }{
		{"power", "Wh", `symbol "Wh"`},
		{"energy", "W", `symbol "W"`},
		{"power", "0kW", "bad factor"},
		{"power", "1.2.3W", "bad factor"},
		{"watts", "W", `metric "watts"`},
		{"temperature", "F", `symbol "F"`},
		{"current", "", `symbol ""`},
	} {
		_, err := parseUnit(c.metric, c.unit)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("parseUnit(%q, %q) = %v, want error containing %q", c.metric, c.unit, err, c.want)
		}
	}
}

func TestScaleOverflow(t *testing.T) {
	u, _ := parseUnit("energy", "kWh")
	if _, ok := u.scale(1<<62, 0); ok {
		t.Error("2^62 kWh in µJ fits an int64?")
	}
}

func TestRawOf(t *testing.T) {
	for _, c := range []struct {
		name string
		pdu  gosnmp.SnmpPDU
		want raw
	}{
		{"integer", gosnmp.SnmpPDU{Type: gosnmp.Integer, Value: -1}, raw{isNum: true, num: -1}},
		{"gauge", gosnmp.SnmpPDU{Type: gosnmp.Gauge32, Value: uint(84)}, raw{isNum: true, num: 84}},
		{"counter32", gosnmp.SnmpPDU{Type: gosnmp.Counter32, Value: uint(4294967295)}, raw{isNum: true, num: 4294967295}},
		{"counter64", gosnmp.SnmpPDU{Type: gosnmp.Counter64, Value: uint64(1 << 40)}, raw{isNum: true, num: 1 << 40}},
		{"counter64 too big", gosnmp.SnmpPDU{Type: gosnmp.Counter64, Value: uint64(1 << 63)}, raw{}},
		{"unsigned32", gosnmp.SnmpPDU{Type: gosnmp.Uinteger32, Value: uint32(7)}, raw{isNum: true, num: 7}},
		{"string", gosnmp.SnmpPDU{Type: gosnmp.OctetString, Value: []byte(" web-01\x00\x00")}, raw{str: "web-01"}},
		{"control chars", gosnmp.SnmpPDU{Type: gosnmp.OctetString, Value: []byte("a\nb\x7f")}, raw{str: "a b"}},
		{"bad utf-8", gosnmp.SnmpPDU{Type: gosnmp.OctetString, Value: []byte{'x', 0xff}}, raw{str: "x\uFFFD"}},
		{"no such instance", gosnmp.SnmpPDU{Type: gosnmp.NoSuchInstance}, raw{missing: true}},
		{"ip address", gosnmp.SnmpPDU{Type: gosnmp.IPAddress, Value: "10.0.0.1"}, raw{}},
		{"integer with wrong Go type", gosnmp.SnmpPDU{Type: gosnmp.Integer, Value: "12"}, raw{}},
	} {
		if got := rawOf(c.pdu); got != c.want {
			t.Errorf("%s: got %+v, want %+v", c.name, got, c.want)
		}
	}
	long := rawOf(gosnmp.SnmpPDU{Type: gosnmp.OctetString, Value: []byte(strings.Repeat("é", 100))})
	if len(long.str) > maxLabelLen || !strings.HasPrefix(long.str, "éé") || strings.ContainsRune(long.str, '\uFFFD') {
		t.Errorf("long label cut badly: %d bytes %q", len(long.str), long.str)
	}
}

const testProfile = `
name: test
match: {sysobjectid: [1.3.6.1.4.1.99999]}
tables:
  - name: outlet
    component: outlet
    sensor: {oids: [1.2.3.3, 1.2.3.2]}
    where: [{oid: 1.2.3.9, not_in: [3]}]
    values:
      - {metric: power, oid: 1.2.3.7, unit: W, absent: [-1]}
      - {metric: energy, oid: 1.2.3.11, unit: 0.1kWh, absent: [-1]}
  - name: phase
    component: phase
    sensor: {oids: [1.2.4.3], prefix: L}
    values:
      - {metric: current, oid: 1.2.4.5, unit: 0.1A, absent: [-1, -2]}
  - name: total
    component: inlet
    sensor: {fixed: total}
    values:
      - {metric: power, oid: 1.2.5.1, unit: 0.01kW, absent: [-1], key: total}
      - {metric: power, oid: 1.2.5.2, unit: W, key: total}
  - name: typed
    component: inlet
    sensor: {oids: [1.2.6.2], prefix: I}
    values:
      - oid: 1.2.6.4
        digits: 1.2.6.7
        where: [{oid: 1.2.6.1, in: [1]}]
        by_type:
          types:
            1: {metric: current, unit: A}
            5: {metric: power, unit: W}
  - name: ext
    component: ambient
    sensor: {prefix: sensor}
    values:
      - oid: 1.2.7.4
        by_type:
          column: 1.2.7.2
          types:
            10: {metric: temperature, unit: 0.1C}
            11: {metric: humidity, unit: "%RH"}
`

func num(n int64) raw  { return raw{isNum: true, num: n} }
func str(s string) raw { return raw{str: s} }
func mustProfile(t testing.TB, y string) *Profile {
	t.Helper()
	ps, err := ParseProfiles([]byte(y))
	if err != nil {
		t.Fatal(err)
	}
	return ps[0]
}

func TestEvaluate(t *testing.T) {
	p := mustProfile(t, testProfile)
	d := walkData{
		// outlets 1..4: named, unnamed (falls back to the second column),
		// power not supported, row excluded by where.
		"1.2.3.3":  {"1": str("web-01"), "2": str(""), "3": str("db"), "4": str("x")},
		"1.2.3.2":  {"2": str("A2")},
		"1.2.3.9":  {"1": num(1), "2": num(1), "3": num(1), "4": num(3)},
		"1.2.3.7":  {"1": num(163), "2": num(0), "3": num(-1), "4": num(50)},
		"1.2.3.11": {"1": num(3046), "2": raw{missing: true}, "3": num(-1), "4": num(5)},
		// phases: a number column for the sensor; -2 is absent too.
		"1.2.4.3": {"1": num(1), "2": num(2), "10": num(3)},
		"1.2.4.5": {"1": num(65), "2": num(-2), "10": num(7)},
		// total: the first keyed value reports -1, so the second is used.
		"1.2.5.1": {"0": num(-1)},
		"1.2.5.2": {"0": num(1840)},
		// typed: index pdu.inlet.type; type 7 unknown, type 5 unavailable.
		"1.2.6.2": {"1.1": str("")},
		"1.2.6.1": {"1.1.1": num(1), "1.1.5": num(2), "1.1.7": num(1)},
		"1.2.6.4": {"1.1.1": num(4215), "1.1.5": num(900), "1.1.7": num(95)},
		"1.2.6.7": {"1.1.1": num(3), "1.1.5": num(0), "1.1.7": num(2)},
		// ext: type from a column; type 12 not listed.
		"1.2.7.2": {"1.1": num(10), "1.2": num(11), "1.3": num(12)},
		"1.2.7.4": {"1.1": num(243), "1.2": num(45), "1.3": num(1)},
	}
	got, skipped := evaluate(p, d)
	if len(skipped) != 0 {
		t.Errorf("skipped: %v", skipped)
	}
	want := []reading{
		{qPower, "outlet", "web-01", "1", 163e6},
		{qEnergy, "outlet", "web-01", "1", 3046 * 360000 * 1e6},
		{qPower, "outlet", "A2", "2", 0},
		{qCurrent, "phase", "L1", "1", 6500},
		{qCurrent, "phase", "L3", "10", 700},
		{qPower, "inlet", "total", "", 1840e6},
		{qCurrent, "inlet", "I1.1", "1.1", 4215},
		{qTemperature, "ambient", "sensor1.1", "1.1", 24300},
		{qHumidity, "ambient", "sensor1.2", "1.2", 450000},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d readings, want %d:\n%+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("reading %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestEvaluateKeyTakesFirst(t *testing.T) {
	p := mustProfile(t, testProfile)
	got, _ := evaluate(p, walkData{"1.2.5.1": {"0": num(121)}, "1.2.5.2": {"0": num(1840)}})
	if len(got) != 1 || got[0].value != 1210e6 {
		t.Errorf("got %+v, want only the first keyed value (1210 W)", got)
	}
}

func TestEvaluateSkips(t *testing.T) {
	p := mustProfile(t, testProfile)
	_, skipped := evaluate(p, walkData{
		"1.2.3.7": {"1": num(-5)}, // negative power
		"1.2.3.9": {"1": num(1)},
		"1.2.6.1": {"1.1.1": num(1), "1.1.5": num(1)},    //
		"1.2.6.4": {"1.1.1": num(1), "1.1.5": num(1)},    //
		"1.2.6.7": {"1.1.1": num(99), "1.1.5": str("x")}, // digits out of range, not a number
	})
	if len(skipped) != 3 {
		t.Errorf("want 3 skipped values, got %v", skipped)
	}
}

func TestCompareIndex(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{
		{"1", "2", -1}, {"2", "10", -1}, {"1.2", "1.10", -1}, {"1", "1.1", -1}, {"1.1", "1.1", 0}, {"10.1", "9.9", 1}, {"", "1", -1},
	} {
		got := compareIndex(c.a, c.b)
		if (got < 0) != (c.want < 0) || (got > 0) != (c.want > 0) {
			t.Errorf("compareIndex(%q, %q) = %d, want sign %d", c.a, c.b, got, c.want)
		}
	}
}

func TestParseProfilesErrors(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"empty", ``, "no profile"},
		{"unknown field", "name: x\nmatch: {sysobjectid: [1.3]}\ncolour: red\n", "field colour not found"},
		{"bad name", "name: X Y\nmatch: {sysobjectid: [1.3]}\ntables: [{name: t, component: c, values: [{metric: power, oid: 1.2, unit: W}]}]\n", "name"},
		{"auto", "name: auto\nmatch: {sysobjectid: [1.3]}\ntables: [{name: t, component: c, values: [{metric: power, oid: 1.2, unit: W}]}]\n", "reserved"},
		{"no match", "name: x\ntables: [{name: t, component: c, values: [{metric: power, oid: 1.2, unit: W}]}]\n", "no sysobjectid"},
		{"fallback without probe", "name: x\nmatch: {fallback: true}\ntables: [{name: t, component: c, values: [{metric: power, oid: 1.2, unit: W}]}]\n", "needs a probe"},
		{"bad oid", "name: x\nmatch: {sysobjectid: [1.3]}\ntables: [{name: t, component: c, values: [{metric: power, oid: 1.x, unit: W}]}]\n", "not an OID"},
		{"bad unit", "name: x\nmatch: {sysobjectid: [1.3]}\ntables: [{name: t, component: c, values: [{metric: power, oid: 1.2, unit: kWh}]}]\n", `symbol "kWh"`},
		{"no tables", "name: x\nmatch: {sysobjectid: [1.3]}\n", "no tables"},
		{"by_type and metric", "name: x\nmatch: {sysobjectid: [1.3]}\ntables: [{name: t, component: c, values: [{metric: power, oid: 1.2, by_type: {types: {1: {metric: power, unit: W}}}}]}]\n", "exclusive"},
		{"where without set", "name: x\nmatch: {sysobjectid: [1.3]}\ntables: [{name: t, component: c, where: [{oid: 1.2}], values: [{metric: power, oid: 1.2, unit: W}]}]\n", "neither in nor not_in"},
		{"not yaml", "{{{", "document 1"},
	} {
		_, err := ParseProfiles([]byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want error containing %q", c.name, err, c.want)
		}
	}
}

func TestParseProfilesReportsEveryProblem(t *testing.T) {
	_, err := ParseProfiles([]byte("name: x\nmatch: {sysobjectid: [1.x]}\ntables: [{name: t, component: C, values: [{metric: power, oid: 1.2, unit: kWh}]}]\n"))
	for _, want := range []string{"sysobjectid[0]", "component \"C\"", `symbol "kWh"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %s", err, want)
		}
	}
}

func TestLoadProfilesDuplicate(t *testing.T) {
	y := "name: dup\nmatch: {sysobjectid: [1.3]}\ntables: [{name: t, component: c, values: [{metric: power, oid: 1.2, unit: W}]}]\n"
	_, err := LoadProfiles(fstest.MapFS{"p/a.yaml": {Data: []byte(y)}, "p/b.yaml": {Data: []byte(y)}}, "p")
	if err == nil || !strings.Contains(err.Error(), "defined twice") {
		t.Errorf("got %v, want a duplicate error", err)
	}
}

func TestBuiltinProfiles(t *testing.T) {
	ps, err := Builtin()
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"apc-rpdu", "apc-rpdu2", "eaton-epdu", "liebert-gp", "raritan-pdu2", "servertech-sentry3", "servertech-sentry4", "ups-mib", "vertiv-geist"}
	if got := strings.Join(ps.Names(), ","); got != strings.Join(want, ",") {
		t.Errorf("builtin profiles %s, want %s", got, strings.Join(want, ","))
	}
	p, _ := ps.Get("ups-mib")
	if !p.Match.Fallback {
		t.Error("ups-mib is not the fallback")
	}
}

func TestHasOIDPrefix(t *testing.T) {
	for _, c := range []struct {
		oid, pre string
		want     bool
	}{
		{"1.3.6.1.4.1.318.1.3.4.6", "1.3.6.1.4.1.318.1.3.4", true},
		{"1.3.6.1.4.1.318.1.3.4", "1.3.6.1.4.1.318.1.3.4", true},
		{"1.3.6.1.4.1.3181", "1.3.6.1.4.1.318", false},
		{"1.3.6.1.4.1.31", "1.3.6.1.4.1.318", false},
	} {
		if got := hasOIDPrefix(c.oid, c.pre); got != c.want {
			t.Errorf("hasOIDPrefix(%s, %s) = %v", c.oid, c.pre, got)
		}
	}
}

// TestEnergyReset: a counter that goes down carries on from the last value
// emitted; one that goes up is passed through.
func TestEnergyReset(t *testing.T) {
	c, err := New(Config{Address: "127.0.0.1", Community: "x"}, collectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	k := seriesKey{q: qEnergy, component: "outlet", sensor: "a", index: "1"}
	other := seriesKey{q: qEnergy, component: "outlet", sensor: "b", index: "2"}
	steps := []struct {
		k         seriesKey
		raw, want int64
	}{
		{k, 1000, 1000},
		{k, 1500, 1500},
		{other, 10, 10}, // its own counter
		{k, 200, 1700},  // reset: 1500 carried
		{k, 300, 1800},
		{k, 0, 1800}, // reset to 0
		{k, 50, 1850},
	}
	for i, s := range steps {
		if got := c.monotonic(s.k, s.raw); got != s.want {
			t.Errorf("step %d: raw %d → %d, want %d", i, s.raw, got, s.want)
		}
	}
}

func TestNewValidates(t *testing.T) {
	neg := -1
	for _, c := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no address", Config{Community: "x"}, "address"},
		{"bad port", Config{Address: "h:99999", Community: "x"}, "bad port"},
		{"bad version", Config{Address: "h", Version: "2", Community: "x"}, "version"},
		{"no community", Config{Address: "h"}, "community"},
		{"v3 no user", Config{Address: "h", Version: "3"}, "username"},
		{"v3 bad auth", Config{Address: "h", Version: "3", Username: "u", AuthProtocol: "SHA1024", AuthPassword: "12345678"}, "auth protocol"},
		{"v3 auth no pass", Config{Address: "h", Version: "3", Username: "u", AuthProtocol: "SHA"}, "go together"},
		{"v3 priv without auth", Config{Address: "h", Version: "3", Username: "u", PrivProtocol: "AES", PrivPassword: "12345678"}, "privacy needs authentication"},
		{"v3 short pass", Config{Address: "h", Version: "3", Username: "u", AuthProtocol: "SHA", AuthPassword: "short"}, "shorter than 8"},
		{"retries", Config{Address: "h", Community: "x", Retries: &neg}, "retries"},
		{"profile", Config{Address: "h", Community: "x", Profile: "nope"}, `profile "nope"`},
		{"timeout", Config{Address: "h", Community: "x", Timeout: -time.Second}, "negative"},
	} {
		_, err := New(c.cfg, collectors.Deps{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want error containing %q", c.name, err, c.want)
		}
	}
	for _, c := range []struct {
		addr, want string
	}{{"10.0.0.20", "10.0.0.20:161"}, {"10.0.0.20:1161", "10.0.0.20:1161"}, {"pdu-a", "pdu-a:161"}, {"[::1]:162", "[::1]:162"}, {"::1", "[::1]:161"}} {
		col, err := New(Config{Address: c.addr, Community: "x"}, collectors.Deps{})
		if err != nil {
			t.Errorf("%s: %v", c.addr, err)
			continue
		}
		if col.addr != c.want {
			t.Errorf("address %s → %s, want %s", c.addr, col.addr, c.want)
		}
	}
	// Secrets never appear in errors.
	_, err := New(Config{Address: "h", Version: "3", Username: "u", AuthProtocol: "SHA", AuthPassword: "secret-pass-1", PrivProtocol: "AES"}, collectors.Deps{})
	if err == nil || strings.Contains(err.Error(), "secret-pass-1") {
		t.Errorf("error %v shows the password (or no error)", err)
	}
}

func TestRegistered(t *testing.T) {
	c, err := collectors.New(collectors.TargetConfig{Name: "pdu-a", Type: Type, Address: "10.0.0.20", Version: "2c", Community: "public", Profile: "auto"}, collectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*Collector); !ok {
		t.Errorf("factory built %T", c)
	}
	_, err = collectors.New(collectors.TargetConfig{Name: "pdu-b", Type: Type, Address: "10.0.0.21"}, collectors.Deps{})
	if err == nil || !strings.Contains(err.Error(), "community") {
		t.Errorf("got %v, want a missing-community error", err)
	}
	if errors.Is(err, collectors.ErrUnknownType) {
		t.Error("type snmp not registered")
	}
}
