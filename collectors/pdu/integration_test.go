package pdu

import (
	"context"
	"errors"
	"flag"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosnmp/gosnmp"

	"github.com/greenloop/greenloop/collectors"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

// recordings served in the integration tests, with the profile each must
// select automatically ("" = none).
var recordings = []struct{ name, profile string }{
	{"apc-8641", "apc-rpdu2"},
	{"apc-7902b", "apc-rpdu2"},
	{"geist-temperature-sensor", "vertiv-geist"},
	{"vertiv-v5-synthetic", "vertiv-geist"},
	{"raritan-px2-synthetic", "raritan-pdu2"},
	{"sentry3-synthetic", "servertech-sentry3"},
	{"sentry4-synthetic", "servertech-sentry4"},
	{"eaton-epdu-synthetic", "eaton-epdu"},
	{"ups-mib-synthetic", "ups-mib"},
	{"tripplite-poweralert", "ups-mib"},
	{"vertiv-power", "liebert-gp"},
	{"emerson-network-power", ""},
}

func recordingNames() []string {
	var ns []string
	for _, r := range recordings {
		ns = append(ns, r.name)
	}
	return ns
}

func newTestCollector(tb testing.TB, cfg Config) *Collector {
	tb.Helper()
	c, err := New(cfg, collectors.Deps{Now: func() time.Time { return t0 }})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func collectString(ctx context.Context, c *Collector) (string, []collectors.Reading, error) {
	var b strings.Builder
	var rs []collectors.Reading
	err := c.Collect(ctx, collectors.EmitterFunc(func(r collectors.Reading) {
		b.WriteString(r.String())
		b.WriteByte('\n')
		rs = append(rs, r)
	}))
	return b.String(), rs, err
}

func checkGolden(t *testing.T, name, got string) {
	t.Helper()
	golden := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (run with -update to accept):\n--- got\n%s--- want\n%s", golden, got, want)
	}
}

// TestRecordings collects every recording over SNMPv2c and SNMPv3 authPriv
// (SHA/AES) and compares the readings with the golden file; both versions
// must give the same readings.
func TestRecordings(t *testing.T) {
	sim := startSnmpsim(t, readRecordings(t, recordingNames()...))
	ctx := context.Background()
	for _, rec := range recordings {
		if rec.profile == "" || rec.name == "tripplite-poweralert" { // see TestUnknownDevice
			continue
		}
		t.Run(rec.name, func(t *testing.T) {
			v2 := newTestCollector(t, Config{Address: sim.addr, Community: rec.name, Timeout: 5 * time.Second})
			got, _, err := collectString(ctx, v2)
			if err != nil {
				t.Fatalf("v2c: %v", err)
			}
			if v2.Profile() != rec.profile {
				t.Errorf("v2c selected profile %q, want %q", v2.Profile(), rec.profile)
			}
			checkGolden(t, rec.name, got)

			v3 := newTestCollector(t, Config{Address: sim.addr, Version: "3", Username: v3User,
				AuthProtocol: "SHA", AuthPassword: v3AuthPass, PrivProtocol: "AES", PrivPassword: v3PrivPass,
				Context: rec.name, Timeout: 5 * time.Second})
			got3, _, err := collectString(ctx, v3)
			if err != nil {
				t.Fatalf("v3 authPriv: %v", err)
			}
			if got3 != got {
				t.Errorf("v3 authPriv readings differ from v2c:\n--- v3\n%s--- v2c\n%s", got3, got)
			}
		})
	}
}

// TestAPC8641Readings spells out readings of the APC AP8641 recording
// (hand-checked against the raw values and the PowerNet-MIB units).
func TestAPC8641Readings(t *testing.T) {
	sim := startSnmpsim(t, readRecordings(t, "apc-8641"))
	c := newTestCollector(t, Config{Address: sim.addr, Community: "apc-8641", Version: "1", Profile: "apc-rpdu2"})
	_, rs, err := collectString(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		metric, component, sensor, index string
		value                            float64
	}{
		{collectors.MetricPower, "inlet", "pwr-dc01-pdu-rack01-01", "1", 1210},        // 121 × 0.01 kW
		{collectors.MetricEnergy, "inlet", "pwr-dc01-pdu-rack01-01", "1", 7025760000}, // 19516 × 0.1 kWh
		{MetricApparentPower, "inlet", "pwr-dc01-pdu-rack01-01", "1", 1310},           // 131 × 0.01 kVA
		{MetricPowerFactor, "inlet", "pwr-dc01-pdu-rack01-01", "1", 0.94},             // 94 × 0.01
		{collectors.MetricCurrent, "phase", "L1", "1", 6.5},                           // 65 × 0.1 A
		{collectors.MetricVoltage, "phase", "L1", "1", 201},                           // V
		{collectors.MetricCurrent, "bank", "B2", "2", 2.4},                            // 24 × 0.1 A
		{collectors.MetricPower, "outlet", "CP-CM-SAN-01", "1", 163},                  // W
		{collectors.MetricEnergy, "outlet", "CP-CM-SAN-01", "1", 1096560000},          // 3046 × 0.1 kWh
		{collectors.MetricCurrent, "outlet", "SRV-OPSHOST12", "5", 0.4},               // 4 × 0.1 A
		{collectors.MetricPower, "outlet", "Outlet 24", "24", 0},                      // a real zero
	}
	for _, w := range want {
		found := false
		for _, r := range rs {
			s := r.Series()
			if r.Metric == w.metric && s.Get("component") == w.component && s.Get("sensor") == w.sensor && s.Get("index") == w.index {
				found = true
				if r.Value != w.value {
					t.Errorf("%s %s/%s: got %v, want %v", w.metric, w.component, w.sensor, r.Value, w.value)
				}
			}
		}
		if !found {
			t.Errorf("no %s for %s/%s index %s", w.metric, w.component, w.sensor, w.index)
		}
	}
	// The probe reads -1 (not installed): no temperature, no humidity.
	for _, r := range rs {
		if r.Metric == collectors.MetricTemperature || r.Metric == MetricHumidity {
			t.Errorf("probe not installed, yet %s emitted", r)
		}
		if label(r, "source") != "snmp" {
			t.Errorf("%s: source label not snmp", r)
		}
	}
}

// TestAPC7902BNotSupported: rPDU2 reports -1 for power, energy and voltage;
// nothing of those may be emitted as 0, and the device power comes from the
// rPDU table instead.
func TestAPC7902BNotSupported(t *testing.T) {
	sim := startSnmpsim(t, readRecordings(t, "apc-7902b"))
	c := newTestCollector(t, Config{Address: sim.addr, Community: "apc-7902b"})
	_, rs, err := collectString(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	var power []collectors.Reading
	for _, r := range rs {
		switch r.Metric {
		case collectors.MetricEnergy, collectors.MetricVoltage, MetricPowerFactor, MetricApparentPower:
			t.Errorf("device reports -1 (not supported), yet %s emitted", r)
		case collectors.MetricPower:
			power = append(power, r)
		}
	}
	if len(power) != 1 || power[0].Value != 192 || label(power[0], "index") != "" {
		t.Errorf("want one power reading of 192 W from rPDUIdentDevicePowerWatts, got %v", power)
	}
}

// TestEnergyCounterIncreases serves the AP8641 with its device energy
// counting up (snmpsim's numeric variation) and checks that two
// collections see it increase.
func TestEnergyCounterIncreases(t *testing.T) {
	rec := readRecordings(t, "apc-8641")["apc-8641"]
	rec = replaceRecord(t, rec, "1.3.6.1.4.1.318.1.1.26.4.3.1.9.1", "2:numeric|initial=19516,rate=20,cumulative=1")
	sim := startSnmpsim(t, map[string][]byte{"apc-8641-counting": rec})
	c, err := New(Config{Address: sim.addr, Community: "apc-8641-counting"}, collectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	energy := func() float64 {
		_, rs, err := collectString(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Metric == collectors.MetricEnergy && label(r, "component") == "inlet" {
				return r.Value
			}
		}
		t.Fatal("no inlet energy")
		return 0
	}
	e1 := energy()
	time.Sleep(1500 * time.Millisecond)
	e2 := energy()
	if e1 < 19516*360000 {
		t.Errorf("first reading %v J below the initial 19516 × 0.1 kWh", e1)
	}
	if e2 <= e1 {
		t.Errorf("energy did not increase: %v then %v", e1, e2)
	}
	// rate 20 per second of 0.1 kWh: 1.5 s is about 30 × 360000 J.
	if d := e2 - e1; d < 10*360000 || d > 100*360000 {
		t.Errorf("energy grew by %v J in 1.5 s, want about %v", d, 30*360000)
	}
}

// TestDeadDeviceTimesOut: a UDP port that never answers gives an error
// naming the address, within the configured timeout.
func TestDeadDeviceTimesOut(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() { // swallow requests
		buf := make([]byte, 65536)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	addr := pc.LocalAddr().String()
	retries := 1
	c := newTestCollector(t, Config{Address: addr, Community: "public", Timeout: 600 * time.Millisecond, Retries: &retries})
	start := time.Now()
	_, _, err = collectString(context.Background(), c)
	took := time.Since(start)
	if err == nil {
		t.Fatal("no error from a device that does not answer")
	}
	if !strings.Contains(err.Error(), addr) {
		t.Errorf("error %q does not name %s", err, addr)
	}
	if !errors.Is(err, context.DeadlineExceeded) && !strings.Contains(err.Error(), "timeout") {
		t.Errorf("error %q is not a timeout", err)
	}
	t.Logf("took %v: %v", took, err)
	if took > 600*time.Millisecond+300*time.Millisecond {
		t.Errorf("took %v, configured timeout 600ms", took)
	}
	if strings.Contains(err.Error(), "public") {
		t.Errorf("error %q shows the community", err)
	}
}

// TestUnknownDevice: a device whose sysObjectID no profile lists and that
// has no UPS-MIB is refused with ErrUnknownDevice naming its sysObjectID.
func TestUnknownDevice(t *testing.T) {
	sim := startSnmpsim(t, readRecordings(t, "emerson-network-power", "tripplite-poweralert"))
	c := newTestCollector(t, Config{Address: sim.addr, Community: "emerson-network-power"})
	_, rs, err := collectString(context.Background(), c)
	t.Log(err)
	if !errors.Is(err, ErrUnknownDevice) {
		t.Fatalf("got %v, want ErrUnknownDevice", err)
	}
	if !strings.Contains(err.Error(), "1.3.6.1.4.1.13400.2.1") || !strings.Contains(err.Error(), sim.addr) {
		t.Errorf("error %q does not name the sysObjectID and the address", err)
	}
	if len(rs) != 0 {
		t.Errorf("readings emitted: %v", rs)
	}
	// The Tripp Lite answers upsIdent (so the UPS-MIB profile is chosen)
	// but has no UPS-MIB readings: no data, not a failure.
	c = newTestCollector(t, Config{Address: sim.addr, Community: "tripplite-poweralert"})
	_, rs, err = collectString(context.Background(), c)
	if !errors.Is(err, collectors.ErrNoData) || !strings.Contains(err.Error(), "ups-mib") {
		t.Fatalf("got %v, want ErrNoData naming ups-mib", err)
	}
	if len(rs) != 0 {
		t.Errorf("readings emitted: %v", rs)
	}
	// A wrong community gets no answer from snmpsimd at all: a timeout.
	retries := 0
	c = newTestCollector(t, Config{Address: sim.addr, Community: "no-such-device", Timeout: 500 * time.Millisecond, Retries: &retries})
	if _, _, err = collectString(context.Background(), c); err == nil || !strings.Contains(err.Error(), sim.addr) {
		t.Errorf("unknown community: got %v, want an error naming %s", err, sim.addr)
	}
}

// TestForcedProfile: a forced profile skips detection.
func TestForcedProfile(t *testing.T) {
	sim := startSnmpsim(t, readRecordings(t, "apc-8641"))
	c := newTestCollector(t, Config{Address: sim.addr, Community: "apc-8641", Profile: "apc-rpdu"})
	_, rs, err := collectString(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	if c.Profile() != "apc-rpdu" {
		t.Errorf("profile %q", c.Profile())
	}
	// rPDUIdentDevicePowerWatts of the AP8641 is 1230 W.
	ok := false
	for _, r := range rs {
		if r.Metric == collectors.MetricPower && label(r, "component") == "inlet" {
			ok = r.Value == 1230
		}
	}
	if !ok {
		t.Errorf("legacy rPDU profile: no inlet power of 1230 W in %v", rs)
	}
}

func label(r collectors.Reading, name string) string {
	for _, l := range r.Labels {
		if l.Name == name {
			return l.Value
		}
	}
	return ""
}

// TestSNMPv3SecurityLevels collects the AP8641 as three SNMPv3 users:
// authPriv (SHA/AES, as in RECIPES.md), noAuthNoPriv and authNoPriv (MD5);
// all must give the same readings. Wrong credentials must fail, naming the
// address and not the password.
func TestSNMPv3SecurityLevels(t *testing.T) {
	sim := startSnmpsim(t, readRecordings(t, "apc-8641"),
		"--v3-user=noauth",
		"--v3-user=authonly", "--v3-auth-key=authonly123", "--v3-auth-proto=MD5")
	ctx := context.Background()
	var want string
	for _, c := range []struct {
		name string
		cfg  Config
	}{
		{"authPriv", Config{Username: v3User, AuthProtocol: "SHA", AuthPassword: v3AuthPass, PrivProtocol: "AES", PrivPassword: v3PrivPass}},
		{"noAuthNoPriv", Config{Username: "noauth"}},
		{"authNoPriv", Config{Username: "authonly", AuthProtocol: "MD5", AuthPassword: "authonly123"}},
	} {
		cfg := c.cfg
		cfg.Address, cfg.Version, cfg.Context, cfg.Timeout = sim.addr, "3", "apc-8641", 5*time.Second
		got, rs, err := collectString(ctx, newTestCollector(t, cfg))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if len(rs) != 83 {
			t.Errorf("%s: %d readings, want 83", c.name, len(rs))
		}
		if want == "" {
			want = got
		} else if got != want {
			t.Errorf("%s: readings differ from authPriv", c.name)
		}
	}
	retries := 0
	bad := newTestCollector(t, Config{Address: sim.addr, Version: "3", Context: "apc-8641", Username: v3User,
		AuthProtocol: "SHA", AuthPassword: "wrong-password", PrivProtocol: "AES", PrivPassword: v3PrivPass,
		Timeout: time.Second, Retries: &retries})
	_, rs, err := collectString(ctx, bad)
	if err == nil || len(rs) != 0 {
		t.Fatalf("wrong auth password: got %d readings, error %v", len(rs), err)
	}
	t.Log(err)
	if !strings.Contains(err.Error(), sim.addr) || strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error %q should name %s and not the password", err, sim.addr)
	}
}

// TestAgentVarbindLimit: an agent that refuses large requests (snmpsimd
// --max-varbinds answers genErr; others answer tooBig) is still walked
// completely, with smaller requests, and the smaller size is kept.
func TestAgentVarbindLimit(t *testing.T) {
	sim := startSnmpsim(t, readRecordings(t, "apc-8641"), "--max-varbinds=8")
	c := newTestCollector(t, Config{Address: sim.addr, Community: "apc-8641"})
	got, _, err := collectString(context.Background(), c)
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "apc-8641", got)
	if c.varbindLimit >= maxVarbinds || c.varbindLimit < 1 {
		t.Errorf("varbind limit %d after an agent limited to 8", c.varbindLimit)
	}
}

// TestEnergyResetOnDevice resets the AP8641's device energy meter (an SNMP
// SET on a writecache variation, as a reset from the PDU's web page would)
// and checks the emitted counter carries on from where it was.
func TestEnergyResetOnDevice(t *testing.T) {
	const oid = "1.3.6.1.4.1.318.1.1.26.4.3.1.9.1"
	rec := readRecordings(t, "apc-8641")["apc-8641"]
	rec = replaceRecord(t, rec, oid, "2:writecache|value=19516")
	sim := startSnmpsim(t, map[string][]byte{"apc-8641-reset": rec})
	c := newTestCollector(t, Config{Address: sim.addr, Community: "apc-8641-reset"})
	energy := func() float64 {
		t.Helper()
		_, rs, err := collectString(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			if r.Metric == collectors.MetricEnergy && label(r, "component") == "inlet" {
				return r.Value
			}
		}
		t.Fatal("no inlet energy")
		return 0
	}
	set := func(v int) {
		t.Helper()
		host, port, _ := net.SplitHostPort(sim.addr)
		p, _ := strconv.Atoi(port)
		g := &gosnmp.GoSNMP{Target: host, Port: uint16(p), Community: "apc-8641-reset", Version: gosnmp.Version2c,
			Timeout: 2 * time.Second, Retries: 1, Context: context.Background()}
		if err := g.Connect(); err != nil {
			t.Fatal(err)
		}
		defer g.Conn.Close()
		res, err := g.Set([]gosnmp.SnmpPDU{{Name: oid, Type: gosnmp.Integer, Value: v}})
		if err != nil || res.Error != gosnmp.NoError {
			t.Fatalf("SET %s = %d: %v %v", oid, v, err, res)
		}
	}
	const kWh01 = 360000.0 // J in 0.1 kWh
	if e := energy(); e != 19516*kWh01 {
		t.Fatalf("first reading %v J, want %v", e, 19516*kWh01)
	}
	set(100) // the meter was reset and has counted 10 kWh since
	if e := energy(); e != (19516+100)*kWh01 {
		t.Errorf("after the reset: %v J, want %v (19516 carried + 100)", e, (19516+100)*kWh01)
	}
	set(150)
	if e := energy(); e != (19516+150)*kWh01 {
		t.Errorf("counting on: %v J, want %v", e, (19516+150)*kWh01)
	}
}
