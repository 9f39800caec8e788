package ipmi

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/bougou/go-ipmi/pkg/client"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/greenloop/greenloop/collectors"
)

func parseSDR(t testing.TB, s sdrSpec) *types.SDR {
	t.Helper()
	sdr, err := types.ParseSDR(s.record(1), 0xffff)
	if err != nil {
		t.Fatalf("ParseSDR(%q): %v", s.name, err)
	}
	return sdr
}

// TestServerSDRs runs the real-server sensor set through the pure part:
// which sensors are kept, their labels, and the conversion of their raw
// readings.
func TestServerSDRs(t *testing.T) {
	var sdrs []*types.SDR
	for _, s := range serverSDRs {
		sdrs = append(sdrs, parseSDR(t, s))
	}
	defs := sensorDefs(sdrs)
	byNum := map[uint8]sensorDef{}
	for _, d := range defs {
		byNum[d.number] = d
	}
	for _, s := range serverSDRs {
		d, kept := byNum[s.num]
		if s.wantMetric == "" {
			if kept {
				t.Errorf("%s (0x%02x): kept as %q, want it skipped (unit is not one greenloop stores)", s.name, s.num, d.label)
			}
			continue
		}
		if !kept {
			// Scanning-disabled and missing sensors are still kept here:
			// that they give no reading is the BMC's answer at poll time.
			if s.wantLabel != "" {
				t.Errorf("%s (0x%02x): skipped, want it kept", s.name, s.num)
			}
			continue
		}
		if s.wantLabel == "" {
			continue
		}
		v, ok := d.convert(s.raw, d.factors)
		r := d.reading(v, time.Unix(1, 0))
		if !ok || r.Metric != s.wantMetric || math.Abs(r.Value-s.wantValue) > 1e-9 {
			t.Errorf("%s: got %s (ok %v), want %s %v", s.name, r, ok, s.wantMetric, s.wantValue)
		}
		want := fmt.Sprintf(`{source="ipmi", sensor=%q}`, s.wantLabel)
		if s.wantComponent != "" {
			want = fmt.Sprintf(`{source="ipmi", component=%q, sensor=%q}`, s.wantComponent, s.wantLabel)
		}
		if got := labelString(r); got != want {
			t.Errorf("%s: labels %s, want %s", s.name, got, want)
		}
	}
}

func labelString(r collectors.Reading) string {
	parts := make([]string, 0, len(r.Labels))
	for _, l := range r.Labels {
		parts = append(parts, fmt.Sprintf("%s=%q", l.Name, l.Value))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// TestConvert covers the parts of IPMI 2.0 §36.3 and §43.1 the collector
// relies on: signed formats, °F and K, linearization, results that are no
// number, and the records it must skip.
func TestConvert(t *testing.T) {
	temp := sdrSpec{num: 1, name: "T", stype: 0x01, evtype: 0x01, entity: 7, inst: 1, base: 1, m: 1}
	with := func(f func(*sdrSpec)) sdrSpec { s := temp; f(&s); return s }
	tests := []struct {
		name   string
		spec   sdrSpec
		raw    uint8
		metric string
		want   float64
		absent bool // convert says no value
		skip   bool // the SDR is not one the collector reads
	}{
		{name: "unsigned", spec: temp, raw: 45, metric: collectors.MetricTemperature, want: 45},
		{name: "2s complement", spec: with(func(s *sdrSpec) { s.unit1 = 0x80 }), raw: 0xf6, metric: collectors.MetricTemperature, want: -10},
		{name: "1s complement", spec: with(func(s *sdrSpec) { s.unit1 = 0x40 }), raw: 0xf5, metric: collectors.MetricTemperature, want: -10},
		{name: "fahrenheit", spec: with(func(s *sdrSpec) { s.base = 2 }), raw: 212, metric: collectors.MetricTemperature, want: 100},
		{name: "kelvin with offset", spec: with(func(s *sdrSpec) { s.base = 3; s.b = 200 }), raw: 100, metric: collectors.MetricTemperature, want: 26.85},
		{name: "B exponent", spec: with(func(s *sdrSpec) { s.b = 3; s.bexp = 1 }), raw: 10, metric: collectors.MetricTemperature, want: 40},
		{name: "negative M", spec: with(func(s *sdrSpec) { s.m = -2; s.b = 100 }), raw: 10, metric: collectors.MetricTemperature, want: 80},
		{name: "sqr", spec: with(func(s *sdrSpec) { s.lin = 0x08 }), raw: 7, metric: collectors.MetricTemperature, want: 49},
		{name: "1/x of 0", spec: with(func(s *sdrSpec) { s.lin = 0x07 }), raw: 0, absent: true},
		{name: "ln of 0", spec: with(func(s *sdrSpec) { s.lin = 0x01 }), raw: 0, absent: true},
		{name: "sqrt of negative", spec: with(func(s *sdrSpec) { s.lin = 0x0a; s.unit1 = 0x80 }), raw: 0xff, absent: true},
		{name: "millivolts", spec: with(func(s *sdrSpec) { s.base = 4; s.m = 157; s.rexp = -4 }), raw: 200, metric: collectors.MetricVoltage, want: 3.14},
		{name: "amperes", spec: with(func(s *sdrSpec) { s.base = 5; s.m = 5; s.rexp = -1 }), raw: 13, metric: collectors.MetricCurrent, want: 6.5},
		{name: "negative amperes", spec: with(func(s *sdrSpec) { s.base = 5; s.unit1 = 0x80; s.rexp = -1 }), raw: 0xfb, metric: collectors.MetricCurrent, want: -0.5},
		{name: "watts", spec: with(func(s *sdrSpec) { s.base = 6; s.m = 10 }), raw: 42, metric: collectors.MetricPower, want: 420},
		{name: "negative watts", spec: with(func(s *sdrSpec) { s.base = 6; s.unit1 = 0x80 }), raw: 0xfe, absent: true},
		{name: "absurd factors", spec: with(func(s *sdrSpec) { s.base = 6; s.m = 511; s.b = 511; s.rexp = 7; s.bexp = 7 }), raw: 255, absent: true},
		{name: "rpm", spec: with(func(s *sdrSpec) { s.base = 18; s.m = 60 }), raw: 100, metric: MetricFanSpeed, want: 6000},
		{name: "not analog", spec: with(func(s *sdrSpec) { s.unit1 = 0xc0 }), skip: true},
		{name: "percentage", spec: with(func(s *sdrSpec) { s.unit1 = 0x01 }), skip: true},
		{name: "per second", spec: with(func(s *sdrSpec) { s.unit1 = 0x04 << 3 }), skip: true},
		{name: "modifier unit", spec: with(func(s *sdrSpec) { s.unit1 = 0x01 << 1; s.modUnit = 24 }), skip: true},
		{name: "CFM", spec: with(func(s *sdrSpec) { s.base = 17 }), skip: true},
		{name: "unspecified", spec: with(func(s *sdrSpec) { s.base = 0 }), skip: true},
		{name: "system software owner", spec: with(func(s *sdrSpec) { s.owner = 0x21 }), skip: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defs := sensorDefs([]*types.SDR{parseSDR(t, tt.spec)})
			if tt.skip {
				if len(defs) != 0 {
					t.Fatalf("kept %+v, want skipped", defs[0])
				}
				return
			}
			if len(defs) != 1 {
				t.Fatalf("skipped, want kept")
			}
			d := defs[0]
			v, ok := d.convert(tt.raw, d.factors)
			if tt.absent {
				if ok {
					t.Fatalf("convert = %v, want no value", v)
				}
				return
			}
			r := d.reading(v, time.Unix(1, 0))
			if !ok || r.Metric != tt.metric || math.Abs(r.Value-tt.want) > 1e-9 {
				t.Fatalf("got %s (ok %v), want %s %v", r, ok, tt.metric, tt.want)
			}
		})
	}
}

// TestNonLinearFactors: a non-linear sensor (linearization 70h) is marked
// so that the poll asks the BMC for its factors, and converts with them.
func TestNonLinearFactors(t *testing.T) {
	s := sdrSpec{num: 9, name: "NL", stype: 0x01, evtype: 0x01, entity: 7, inst: 1, base: 1, m: 1, lin: 0x70}
	defs := sensorDefs([]*types.SDR{parseSDR(t, s)})
	if len(defs) != 1 || !defs[0].nonLinear {
		t.Fatalf("defs = %+v, want one non-linear sensor", defs)
	}
	v, ok := defs[0].convert(30, types.ReadingFactors{M: 3, B: 5, R_Exp: -1})
	if !ok || math.Abs(v-9.5) > 1e-9 {
		t.Fatalf("convert = %v, %v; want 9.5 ((3×30+5)×10⁻¹)", v, ok)
	}
}

func TestSkippedRecords(t *testing.T) {
	full := parseSDR(t, sdrSpec{num: 1, name: "T", stype: 1, evtype: 1, base: 1, m: 1})
	compact := &types.SDR{RecordHeader: &types.SDRHeader{RecordType: types.SDRRecordTypeCompactSensor},
		Compact: &types.SDRCompact{SensorNumber: 2}}
	noBody := &types.SDR{RecordHeader: &types.SDRHeader{RecordType: types.SDRRecordTypeFullSensor}}
	defs := sensorDefs([]*types.SDR{nil, {}, compact, noBody, full})
	if len(defs) != 1 || defs[0].number != 1 {
		t.Fatalf("defs = %+v, want only the full record of sensor 1", defs)
	}
}

func TestLabels(t *testing.T) {
	tests := []struct {
		name string
		in   []sdrSpec
		want []string
	}{
		{name: "padding and spaces", in: []sdrSpec{{num: 1, name: "  CPU1  Temp\x00\x00"}}, want: []string{"CPU1 Temp"}},
		{name: "control bytes", in: []sdrSpec{{num: 1, name: "Fan\x01A"}}, want: []string{"Fan?A"}},
		{name: "latin-1", in: []sdrSpec{{num: 1, name: "Temp \xb0C"}}, want: []string{"Temp ?C"}},
		{name: "empty name", in: []sdrSpec{{num: 0x2a, name: "\x00\x00"}}, want: []string{"sensor 0x2a"}},
		{name: "repeated name, different entity", in: []sdrSpec{
			{num: 1, name: "Temp", entity: 3, inst: 1}, {num: 2, name: "Temp", entity: 3, inst: 2}, {num: 3, name: "Other", entity: 3, inst: 1},
		}, want: []string{"Temp/3.1", "Temp/3.2", "Other"}},
		{name: "repeated name and entity", in: []sdrSpec{
			{num: 0x0e, name: "Temp", entity: 7, inst: 1}, {num: 0x0f, name: "Temp", entity: 7, inst: 1},
		}, want: []string{"Temp/7.1#0x0e", "Temp/7.1#0x0f"}},
		{name: "repeated on two owners", in: []sdrSpec{
			{num: 1, name: "Temp", entity: 7, inst: 1}, {num: 1, name: "Temp", entity: 7, inst: 1, owner: 0x2c},
		}, want: []string{"Temp/7.1#0x01@0x20", "Temp/7.1#0x01@0x2c"}},
		{name: "same name, different metric", in: []sdrSpec{
			{num: 1, name: "PSU1", base: 6}, {num: 2, name: "PSU1", base: 4},
		}, want: []string{"PSU1", "PSU1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var sdrs []*types.SDR
			for _, s := range tt.in {
				s.stype, s.evtype, s.m = 1, 1, 1
				if s.base == 0 {
					s.base = 1
				}
				sdrs = append(sdrs, parseSDR(t, s))
			}
			defs := sensorDefs(sdrs)
			var got []string
			for _, d := range defs {
				got = append(got, d.label)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Fatalf("labels %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDCMIReadings(t *testing.T) {
	at := time.Unix(1763800000, 0)
	got := dcmiReadings(167, 124, 422, 156, 699043*time.Second, true, at)
	want := []string{
		`greenloop_power_watts{source="ipmi",component="chassis",sensor="dcmi"} 167`,
		`greenloop_ipmi_dcmi_power_min_watts{source="ipmi",component="chassis",sensor="dcmi"} 124`,
		`greenloop_ipmi_dcmi_power_max_watts{source="ipmi",component="chassis",sensor="dcmi"} 422`,
		`greenloop_ipmi_dcmi_power_average_watts{source="ipmi",component="chassis",sensor="dcmi"} 156`,
		`greenloop_ipmi_dcmi_sampling_period_seconds{source="ipmi",component="chassis",sensor="dcmi"} 699043`,
	}
	if len(got) != len(want) {
		t.Fatalf("got %d readings %v, want %d", len(got), got, len(want))
	}
	for i := range want {
		if got[i].String() != want[i] || !got[i].Time.Equal(at) {
			t.Errorf("reading %d = %s at %v, want %s at %v", i, got[i], got[i].Time, want[i], at)
		}
	}
	if rs := dcmiReadings(0, 0, 0, 0, time.Second, false, at); len(rs) != 0 {
		t.Errorf("inactive reading gave %v, want nothing", rs)
	}
	if rs := dcmiReadings(10, 10, 10, 10, 0, true, at); len(rs) != 4 {
		t.Errorf("reading without a period gave %d readings, want 4 (no period gauge)", len(rs))
	}
}

func TestIsAuthError(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("rakp2: %w", client.ErrRAKPAuthentication), true},
		{fmt.Errorf("x: %w", errors.Join(errors.New("a"), types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedName))), true},
		{types.NewRmcpStatusError(types.RmcpStatusCodeInvalidAuthAlg), true},
		{types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedRoleOfPriLevel), false}, // see isRoleRefused
		{types.NewRmcpStatusError(types.RmcpStatusCodeNoResToCreateSess), false},
		{types.NewResponseError(types.CodeInvalidCommand, "invalid"), false},
		{errors.New("read from conn failed: i/o timeout"), false},
	}
	for _, tt := range tests {
		if got := isAuthError(tt.err); got != tt.want {
			t.Errorf("isAuthError(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestRefusal(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{errors.New("rakp2 ... RAKP2 authentication code mismatch: RAKP authentication failed"), "wrong user name or password"},
		{fmt.Errorf("errs: \n%v", types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedName)), "unknown or disabled user"},
		{types.NewRmcpStatusError(types.RmcpStatusCodeInvalidIntegrityCheckValue), "wrong password or BMC key"},
		{types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedRoleOfPriLevel), "no privilege level allowed"},
		{types.NewRmcpStatusError(types.RmcpStatusCodeNoCipherSuiteMatch), "cipher suite not accepted"},
	}
	for _, tt := range tests {
		if got := refusal(tt.err); got != tt.want {
			t.Errorf("refusal(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestIsRoleRefused(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{fmt.Errorf("rakp2: %w", types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedRoleOfPriLevel)), true},
		{types.NewRmcpStatusError(types.RmcpStatusCodeInvalidRole), true},
		{fmt.Errorf("set privilege: %w", types.NewResponseError(0x81, "exceeds limit")), true},
		{types.NewResponseError(0x80, "not available"), true},
		{types.NewRmcpStatusError(types.RmcpStatusCodeUnauthorizedName), false},
		{types.NewResponseError(types.CodeInvalidCommand, "invalid"), false},
		{fmt.Errorf("x: %w", client.ErrRAKPAuthentication), false},
	}
	for _, tt := range tests {
		if got := isRoleRefused(tt.err); got != tt.want {
			t.Errorf("isRoleRefused(%v) = %v, want %v", tt.err, got, tt.want)
		}
	}
}

func TestNew(t *testing.T) {
	suite := func(n int) *int { return &n }
	ok := Config{Host: "10.0.0.13", Username: "monitor", Password: "pw"}
	with := func(f func(*Config)) Config { c := ok; f(&c); return c }
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{name: "defaults", cfg: ok},
		{name: "no host", cfg: with(func(c *Config) { c.Host = "" }), wantErr: "no host"},
		{name: "host with port", cfg: with(func(c *Config) { c.Host = "10.0.0.13:623" }), wantErr: "set the port apart"},
		{name: "URL", cfg: with(func(c *Config) { c.Host = "ipmi://10.0.0.13" }), wantErr: "bare name"},
		{name: "IPv6", cfg: with(func(c *Config) { c.Host = "fd00::13" }), wantErr: "IPv6 addresses are not supported"},
		{name: "no user", cfg: with(func(c *Config) { c.Username = "" }), wantErr: "no username"},
		{name: "port", cfg: with(func(c *Config) { c.Port = 70000 }), wantErr: "port 70000"},
		{name: "long user", cfg: with(func(c *Config) { c.Username = strings.Repeat("u", 17) }), wantErr: "16 bytes"},
		{name: "long password", cfg: with(func(c *Config) { c.Password = strings.Repeat("p", 21) }), wantErr: "20 bytes"},
		{name: "suite 20", cfg: with(func(c *Config) { c.CipherSuite = suite(20) }), wantErr: "cipher suite 20"},
		{name: "suite -1", cfg: with(func(c *Config) { c.CipherSuite = suite(-1) }), wantErr: "cipher suite -1"},
		{name: "suite 3", cfg: with(func(c *Config) { c.CipherSuite = suite(3) })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(tt.cfg, collectors.Deps{})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "pw") && tt.cfg.Password == "pw" {
					t.Fatalf("error %q shows the password", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.name == "defaults" && (c.addr != "10.0.0.13:623" || c.suite != 17 || c.timeout != DefaultTimeout) {
				t.Fatalf("defaults: addr %s suite %d timeout %s", c.addr, c.suite, c.timeout)
			}
			if tt.name == "suite 3" && c.suite != 3 {
				t.Fatalf("suite = %d, want 3", c.suite)
			}
		})
	}
}

func TestRegistered(t *testing.T) {
	three := 3
	c, err := collectors.New(collectors.TargetConfig{Name: "bmc-13", Type: Type, Host: "10.0.0.13", Port: 6230,
		Username: "monitor", Password: "pw", CipherSuite: &three, Timeout: 3 * time.Second}, collectors.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ic, ok := c.(*Collector)
	if !ok {
		t.Fatalf("collector is %T", c)
	}
	if ic.addr != "10.0.0.13:6230" || ic.suite != 3 || ic.timeout != 3*time.Second || ic.user != "monitor" {
		t.Fatalf("config not carried over: %+v", ic)
	}
}

// FuzzSensorDefs feeds arbitrary SDR bytes (what a BMC sends) and a raw
// reading through the parser and the collector's selection and conversion:
// no panic, and every value emitted is a finite number with a readable label.
func FuzzSensorDefs(f *testing.F) {
	for _, s := range serverSDRs {
		f.Add(s.record(1), s.raw)
	}
	f.Fuzz(func(t *testing.T, data []byte, raw uint8) {
		sdr, err := types.ParseSDR(data, 0xffff)
		if err != nil {
			return
		}
		for _, d := range sensorDefs([]*types.SDR{sdr}) {
			if d.label == "" || !utf8.ValidString(d.label) {
				t.Fatalf("bad label %q", d.label)
			}
			v, ok := d.convert(raw, d.factors)
			if !ok {
				continue
			}
			r := d.reading(v, time.Unix(1, 0))
			if math.IsNaN(r.Value) || math.IsInf(r.Value, 0) || math.Abs(r.Value-v) > 1e-3+1e-9*math.Abs(v) {
				t.Fatalf("reading %s of value %v: not a number, or not the value", r, v)
			}
		}
	})
}
