package redfish

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenloop/greenloop/collectors"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const (
	testUser = "monitor"
	testPass = "s3cret-Pa55"
)

// fakeBMC serves a mockup tree: /redfish/v1/<p> is testdata/<tree>/<p>/index.json.
// Every resource but the service root needs basic auth, as on real BMCs.
// override maps a path (without trailing slash) to a handler that replaces
// the file, to inject failures.
type fakeBMC struct {
	tree     string
	override map[string]http.HandlerFunc

	mu   sync.Mutex
	hits []string
}

func (b *fakeBMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	b.mu.Lock()
	b.hits = append(b.hits, p)
	b.mu.Unlock()
	if p != "/redfish/v1" && p != "/redfish" {
		u, pw, ok := r.BasicAuth()
		if !ok || u != testUser || pw != testPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="bmc"`)
			http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
	}
	if h, ok := b.override[p]; ok {
		h(w, r)
		return
	}
	rel, ok := strings.CutPrefix(p, "/redfish/v1")
	if !ok {
		http.NotFound(w, r)
		return
	}
	body, err := os.ReadFile(filepath.Join("testdata", b.tree, filepath.FromSlash(rel), "index.json"))
	if err != nil {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func (b *fakeBMC) requested(p string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, h := range b.hits {
		if h == p {
			return true
		}
	}
	return false
}

func serve(t *testing.T, b *fakeBMC) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return srv
}

func newCollector(t *testing.T, endpoint string, mod func(*Config)) *Collector {
	t.Helper()
	cfg := Config{Endpoint: endpoint, Username: testUser, Password: testPass, Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg, collectors.Deps{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func collect(c *Collector, ctx context.Context) (string, error) {
	var b strings.Builder
	err := c.Collect(ctx, collectors.EmitterFunc(func(r collectors.Reading) {
		fmt.Fprintf(&b, "%s %d\n", r, r.Time.UnixMilli())
	}))
	return b.String(), err
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

func TestGolden(t *testing.T) {
	for _, tree := range []string{"dmtf-public-rackmount1", "csm-gigabyte-compute", "dmtf-public-pdu"} {
		t.Run(tree, func(t *testing.T) {
			b := &fakeBMC{tree: tree}
			srv := serve(t, b)
			got, err := collect(newCollector(t, srv.URL, nil), context.Background())
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, tree, got)
		})
	}
}

// Exact readings and the rules behind them, spelled out for the two server
// mockups (the golden files hold the same).
func TestRackmountReadings(t *testing.T) {
	srv := serve(t, &fakeBMC{tree: "dmtf-public-rackmount1"})
	got, err := collect(newCollector(t, srv.URL, nil), context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ms := t0.UnixMilli()
	for _, want := range []string{
		// EnvironmentMetrics wins over PowerControl (344 W): one chassis power.
		fmt.Sprintf(`greenloop_power_watts{source="redfish",component="chassis",sensor="1U"} 374 %d`, ms),
		fmt.Sprintf(`greenloop_temperature_celsius{source="redfish",sensor="1U"} 39 %d`, ms),
		fmt.Sprintf(`greenloop_temperature_celsius{source="redfish",component="inlet",sensor="Chassis Intake Temp"} 25 %d`, ms),
		fmt.Sprintf(`greenloop_temperature_celsius{source="redfish",sensor="CPU1 Temp"} 41 %d`, ms),
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("missing %s in\n%s", want, got)
		}
	}
	for _, bad := range []string{`sensor="1U/0"`, `sensor="CPU2 Temp"`, `component="psu"`} {
		if strings.Contains(got, bad) {
			t.Errorf("unexpected %s in\n%s", bad, got)
		}
	}
}

func TestGigabyteQuirks(t *testing.T) {
	srv := serve(t, &fakeBMC{tree: "csm-gigabyte-compute"})
	got, err := collect(newCollector(t, srv.URL, nil), context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The PowerControl is Critical/Disabled (100 W): not emitted. Both PSUs
	// are named "nil" and report no power: nothing. Absent temperatures: nothing.
	for _, bad := range []string{"greenloop_power_watts", `"nil"`, "M2_G1_AMB_TEMP", "OCP20_TEMP"} {
		if strings.Contains(got, bad) {
			t.Errorf("unexpected %s in\n%s", bad, got)
		}
	}
	want := fmt.Sprintf(`greenloop_temperature_celsius{source="redfish",component="inlet",sensor="CPU0_TEMP"} 40 %d`, t0.UnixMilli())
	if !strings.Contains(got, want+"\n") {
		t.Errorf("missing %s in\n%s", want, got)
	}
}

func TestPDU(t *testing.T) {
	b := &fakeBMC{tree: "dmtf-public-pdu"}
	srv := serve(t, b)
	got, err := collect(newCollector(t, srv.URL, nil), context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ms := t0.UnixMilli()
	for _, want := range []string{
		fmt.Sprintf(`greenloop_power_watts{source="redfish",component="inlet",sensor="1"} 6438 %d`, ms),
		// 56438 kWh × 3.6e6 J/kWh
		fmt.Sprintf(`greenloop_energy_joules_total{source="redfish",component="inlet",sensor="1"} 2.031768e+11 %d`, ms),
		fmt.Sprintf(`greenloop_power_watts{source="redfish",component="branch",sensor="1/A"} 937.4 %d`, ms),
		fmt.Sprintf(`greenloop_current_amperes{source="redfish",component="branch",sensor="1/A"} 5.19 %d`, ms),
		fmt.Sprintf(`greenloop_energy_joules_total{source="redfish",component="outlet",sensor="1/A1"} 1.301976e+11 %d`, ms),
		fmt.Sprintf(`greenloop_voltage_volts{source="redfish",component="outlet",sensor="1/A1"} 117.5 %d`, ms),
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("missing %s in\n%s", want, got)
		}
	}
	// 9 of the 11 outlets report 4 values each; A4 and A5 report none, so
	// they are absent rather than 0.
	if n := strings.Count(got, `component="outlet"`); n != 36 {
		t.Errorf("%d outlet readings, want 36:\n%s", n, got)
	}
	if strings.Contains(got, `sensor="1/A4"`) || strings.Contains(got, `sensor="1/A5"`) {
		t.Errorf("outlets without readings emitted:\n%s", got)
	}
	// Readings come from the embedded excerpts: the missing Sensors/PDUEnergy
	// and the TransferSwitch sensors with wrong units are never fetched.
	if b.requested("/redfish/v1/Chassis/PDU/Sensors/PDUEnergy") {
		t.Error("followed a DataSourceUri")
	}
}

func TestMissingLinkIsSkipped(t *testing.T) {
	// The PDU's Metrics are gone (404): a logged note, no error, the rest read.
	b := &fakeBMC{tree: "dmtf-public-pdu", override: map[string]http.HandlerFunc{
		"/redfish/v1/PowerEquipment/RackPDUs/1/Metrics": http.NotFound,
	}}
	srv := serve(t, b)
	got, err := collect(newCollector(t, srv.URL, nil), context.Background())
	if err != nil {
		t.Fatalf("a missing resource is no error: %v", err)
	}
	if strings.Contains(got, `component="inlet"`) || !strings.Contains(got, `sensor="1/C3"`) {
		t.Errorf("got\n%s", got)
	}
}

func status500(w http.ResponseWriter, r *http.Request) {
	http.Error(w, `{"error":"internal"}`, http.StatusInternalServerError)
}

func fileHandler(t *testing.T, name string) http.HandlerFunc {
	body, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write(body)
	}
}

func TestBrokenResources(t *testing.T) {
	tests := []struct {
		name     string
		tree     string
		override map[string]http.HandlerFunc
		wantErr  []string
		want     []string // substrings of the output that must still be there
		notWant  []string
	}{
		{
			name:     "500 on one chassis, PDU still read",
			tree:     "dmtf-public-pdu",
			override: map[string]http.HandlerFunc{"/redfish/v1/Chassis/PDU": status500},
			wantErr:  []string{"/redfish/v1/Chassis/PDU", "HTTP 500"},
			want:     []string{`component="inlet",sensor="1"} 6438`, `sensor="1/C3"`},
		},
		{
			name:     "500 on one outlet",
			tree:     "dmtf-public-pdu",
			override: map[string]http.HandlerFunc{"/redfish/v1/PowerEquipment/RackPDUs/1/Outlets/B2": status500},
			wantErr:  []string{"/redfish/v1/PowerEquipment/RackPDUs/1/Outlets/B2", "HTTP 500"},
			want:     []string{`sensor="1/B1"`, `sensor="1/B3"`},
			notWant:  []string{`sensor="1/B2"`},
		},
		{
			name: "invalid JSON in Power and Thermal",
			tree: "dmtf-public-rackmount1",
			override: map[string]http.HandlerFunc{
				"/redfish/v1/Chassis/1U/Power":   fileHandler(t, "telegraf/dell_powerinvalid.json"),
				"/redfish/v1/Chassis/1U/Thermal": fileHandler(t, "telegraf/dell_thermalinvalid.json"),
			},
			wantErr: []string{"GET /redfish/v1/Chassis/1U/Power: invalid JSON", "GET /redfish/v1/Chassis/1U/Thermal: invalid JSON"},
			want:    []string{`component="chassis",sensor="1U"} 374`},
			notWant: []string{"Intake"},
		},
		{
			name: "link to another host",
			tree: "dmtf-public-rackmount1",
			override: map[string]http.HandlerFunc{"/redfish/v1/Chassis": func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, `{"Members":[{"@odata.id":"http://elsewhere.invalid/redfish/v1/Chassis/X"},{"@odata.id":"/redfish/v1/Chassis/1U"}]}`)
			}},
			wantErr: []string{"leaves the service's host"},
			want:    []string{`sensor="1U"} 374`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, &fakeBMC{tree: tt.tree, override: tt.override})
			got, err := collect(newCollector(t, srv.URL, nil), context.Background())
			if err == nil {
				t.Fatalf("no error; output\n%s", got)
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %s in\n%s", w, got)
				}
			}
			for _, w := range tt.notWant {
				if strings.Contains(got, w) {
					t.Errorf("unexpected %s in\n%s", w, got)
				}
			}
		})
	}
}

func TestWrongPassword(t *testing.T) {
	srv := serve(t, &fakeBMC{tree: "dmtf-public-rackmount1"})
	c := newCollector(t, srv.URL, func(c *Config) { c.Password = "wrong-Pa55word" })
	got, err := collect(c, context.Background())
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if got != "" {
		t.Errorf("emitted without auth:\n%s", got)
	}
	msg := err.Error()
	if strings.Contains(msg, "wrong-Pa55word") || strings.Contains(msg, testPass) {
		t.Errorf("error leaks the password: %s", msg)
	}
	if !strings.Contains(msg, "/redfish/v1/Chassis") || !strings.Contains(msg, "401") || !strings.Contains(msg, testUser) {
		t.Errorf("error should name the URI, the status and the user: %s", msg)
	}
}

func TestSlowBMCTimesOut(t *testing.T) {
	slow := func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(3 * time.Second):
		case <-r.Context().Done():
		}
		http.Error(w, "late", http.StatusServiceUnavailable)
	}
	for _, tt := range []struct {
		name    string
		timeout time.Duration // Config.Timeout
		ctx     time.Duration // caller's deadline, 0 for none
	}{
		{"config timeout", 300 * time.Millisecond, 0},
		{"caller's context", 5 * time.Second, 300 * time.Millisecond},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := serve(t, &fakeBMC{tree: "dmtf-public-rackmount1", override: map[string]http.HandlerFunc{"/redfish/v1/Chassis/1U": slow}})
			c := newCollector(t, srv.URL, func(c *Config) { c.Timeout = tt.timeout })
			ctx := context.Background()
			if tt.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.ctx)
				defer cancel()
			}
			start := time.Now()
			_, err := collect(c, ctx)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("Collect took %v against a 3 s slow BMC", took)
			}
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", err)
			}
		})
	}
}

func TestNoData(t *testing.T) {
	srv := serve(t, &fakeBMC{tree: "dmtf-public-rackmount1", override: map[string]http.HandlerFunc{
		"/redfish/v1/Chassis": func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, `{"Members":[]}`) },
	}})
	_, err := collect(newCollector(t, srv.URL, nil), context.Background())
	if !errors.Is(err, collectors.ErrNoData) {
		t.Errorf("err = %v, want ErrNoData", err)
	}
}

func TestNewValidates(t *testing.T) {
	for _, tt := range []struct {
		cfg  Config
		want string
	}{
		{Config{Username: "u"}, "no endpoint"},
		{Config{Endpoint: "ftp://bmc", Username: "u"}, "scheme"},
		{Config{Endpoint: "https://", Username: "u"}, "no host"},
		{Config{Endpoint: "https://u:hunter2@bmc", Username: "u"}, "must not carry credentials"},
		{Config{Endpoint: "https://bmc"}, "no username"},
		{Config{Endpoint: "https://bmc", Username: "u", CAFile: filepath.Join("testdata", "NOTICE")}, "no PEM certificate"},
	} {
		_, err := New(tt.cfg, collectors.Deps{})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want %q", tt.cfg.Endpoint, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("error leaks the password: %v", err)
		}
	}
}

// The registry builds the collector from a target configuration, as the agent and collect do.
func TestFactory(t *testing.T) {
	srv := serve(t, &fakeBMC{tree: "dmtf-public-rackmount1"})
	c, err := collectors.New(collectors.TargetConfig{Name: "bmc-12", Type: Type, Endpoint: srv.URL,
		Username: testUser, Password: testPass, Timeout: 5 * time.Second}, collectors.Deps{Now: func() time.Time { return t0 }})
	if err != nil {
		t.Fatal(err)
	}
	var n int
	if err := c.Collect(context.Background(), collectors.EmitterFunc(func(collectors.Reading) { n++ })); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no readings through the registry")
	}
	if _, err := collectors.New(collectors.TargetConfig{Name: "bmc-13", Type: Type}, collectors.Deps{}); err == nil {
		t.Fatal("a target without an endpoint was accepted")
	}
}

// extractAll runs every extractor over one resource body, as FuzzExtract does.
func extractAll(body []byte) ([]reading, error) {
	var out []reading
	var em environmentMetrics
	if err := json.Unmarshal(body, &em); err != nil {
		return nil, err
	}
	out = append(out, em.readings("c")...)
	var p power
	if err := json.Unmarshal(body, &p); err == nil {
		out = append(out, p.readings("c", true)...)
	}
	var th thermal
	if err := json.Unmarshal(body, &th); err == nil {
		out = append(out, th.readings()...)
	}
	var ci circuit
	if err := json.Unmarshal(body, &ci); err == nil {
		out = append(out, ci.readings("outlet", "p/o")...)
	}
	return out, nil
}

// Other captures of legacy Power resources (Dell iDRAC, HPE iLO) read as expected.
func TestTelegrafPower(t *testing.T) {
	var b strings.Builder
	for _, f := range []string{"telegraf/dell_power.json", "telegraf/hp_power.json"} {
		body, err := os.ReadFile(filepath.Join("testdata", f))
		if err != nil {
			t.Fatal(err)
		}
		var p power
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		fmt.Fprintf(&b, "# %s\n", f)
		for _, r := range p.readings("System.Embedded.1", true) {
			fmt.Fprintf(&b, "%s\n", r.toReading(t0))
		}
	}
	checkGolden(t, "telegraf", b.String())
}

func FuzzExtract(f *testing.F) {
	// Seeds: every resource in the checked-in trees, plus the corpus under
	// testdata/fuzz/FuzzExtract.
	err := filepath.WalkDir("testdata", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".json") {
			return err
		}
		body, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f.Add(body)
		return nil
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		rs, err := extractAll(body)
		if err != nil {
			return
		}
		for _, r := range rs {
			if math.IsNaN(r.value) || math.IsInf(r.value, 0) {
				t.Fatalf("non-finite value %v from %q", r.value, body)
			}
			if (r.metric == collectors.MetricPower || r.metric == collectors.MetricEnergy) && r.value < 0 {
				t.Fatalf("negative %s %v", r.metric, r.value)
			}
			if r.sensor == "" || r.sensor == "nil" {
				t.Fatalf("bad sensor %q", r.sensor)
			}
		}
	})
}

func TestPowerEntries(t *testing.T) {
	body := `{
	"PowerControl": [
		{"MemberId": "0", "Name": "Chassis Power Control", "PowerConsumedWatts": 100, "Status": {"Health": "Critical", "State": "Disabled"}},
		{"MemberId": "1", "PowerConsumedWatts": "N/A"},
		{"Name": "CPU", "PowerConsumedWatts": 80.5, "Status": null}
	],
	"PowerSupplies": [
		{"MemberId": "0", "Name": "HpeServerPowerSupply", "PowerInputWatts": 120},
		{"MemberId": "1", "Name": "HpeServerPowerSupply", "PowerInputWatts": 130},
		{"MemberId": "2", "Name": "nil", "PowerInputWatts": 140, "Status": {"State": "Enabled"}},
		{"MemberId": "3", "Name": "PSU4", "PowerInputWatts": 150, "Status": {"State": "Absent"}},
		{"Name": "PSU5", "PowerInputWatts": null},
		{"Name": "PSU6", "PowerInputWatts": -3}
	]}`
	var p power
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range p.readings("Self", true) {
		got = append(got, r.toReading(t0).String())
	}
	want := []string{
		`greenloop_power_watts{source="redfish",component="chassis",sensor="Self/CPU"} 80.5`,
		`greenloop_power_watts{source="redfish",component="psu",sensor="HpeServerPowerSupply/0"} 120`,
		`greenloop_power_watts{source="redfish",component="psu",sensor="HpeServerPowerSupply/1"} 130`,
		`greenloop_power_watts{source="redfish",component="psu",sensor="2"} 140`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Without control (EnvironmentMetrics gave the chassis power) only PSUs.
	if n := len(p.readings("Self", false)); n != 3 {
		t.Errorf("%d readings without PowerControl, want 3", n)
	}
}

func TestThermalContexts(t *testing.T) {
	body := `{"Temperatures": [
		{"Name": "Inlet", "ReadingCelsius": 22.5, "PhysicalContext": "Intake"},
		{"Name": "Exhaust", "ReadingCelsius": 35, "PhysicalContext": "Exhaust"},
		{"Name": "Room", "ReadingCelsius": 21, "PhysicalContext": "Room"},
		{"Name": "CPU", "ReadingCelsius": 55, "PhysicalContext": "CPU"},
		{"Name": "Cold", "ReadingCelsius": -5},
		{"Name": "Off", "ReadingCelsius": 0, "Status": {"State": "Disabled"}}
	]}`
	var th thermal
	if err := json.Unmarshal([]byte(body), &th); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range th.readings() {
		got = append(got, r.toReading(t0).String())
	}
	want := []string{
		`greenloop_temperature_celsius{source="redfish",component="inlet",sensor="Inlet"} 22.5`,
		`greenloop_temperature_celsius{source="redfish",component="outlet",sensor="Exhaust"} 35`,
		`greenloop_temperature_celsius{source="redfish",component="ambient",sensor="Room"} 21`,
		`greenloop_temperature_celsius{source="redfish",sensor="CPU"} 55`,
		`greenloop_temperature_celsius{source="redfish",sensor="Cold"} -5`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A PDU whose metrics are reset between two polls: the energy counter goes on.
func TestEnergyReset(t *testing.T) {
	energy := "56438"
	var mu sync.Mutex
	b := &fakeBMC{tree: "dmtf-public-pdu", override: map[string]http.HandlerFunc{
		"/redfish/v1/PowerEquipment/RackPDUs/1/Metrics": func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			defer mu.Unlock()
			fmt.Fprintf(w, `{"Id":"Metrics","PowerWatts":{"Reading":6438},"EnergykWh":{"Reading":%s}}`, energy)
		},
	}}
	srv := serve(t, b)
	c := newCollector(t, srv.URL, nil)
	line := func(out string) string {
		for l := range strings.Lines(out) {
			if strings.HasPrefix(l, `greenloop_energy_joules_total{source="redfish",component="inlet",sensor="1"}`) {
				return strings.Fields(l)[1]
			}
		}
		return "missing"
	}
	steps := []struct{ kWh, want string }{
		{"56438", "2.031768e+11"},
		{"56439", "2.031804e+11"}, // +1 kWh
		{"2", "2.031876e+11"},     // reset, then 2 kWh: +7.2 MJ
		{"3", "2.031912e+11"},
	}
	for i, s := range steps {
		mu.Lock()
		energy = s.kWh
		mu.Unlock()
		out, err := collect(c, context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if got := line(out); got != s.want {
			t.Errorf("step %d (%s kWh): energy %s, want %s", i, s.kWh, got, s.want)
		}
	}
}

func TestTLS(t *testing.T) {
	srv := httptest.NewTLSServer(&fakeBMC{tree: "dmtf-public-rackmount1"})
	t.Cleanup(srv.Close)
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	cert := srv.Certificate()
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	// Verified against the CA file.
	if _, err := collect(newCollector(t, srv.URL, func(c *Config) { c.CAFile = caFile }), context.Background()); err != nil {
		t.Errorf("with the CA file: %v", err)
	}
	// Not trusted without it.
	if _, err := collect(newCollector(t, srv.URL, nil), context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("without the CA file: err = %v, want a certificate error", err)
	}
	// Unless asked explicitly.
	if _, err := collect(newCollector(t, srv.URL, func(c *Config) { c.InsecureSkipVerify = true }), context.Background()); err != nil {
		t.Errorf("insecure_skip_verify: %v", err)
	}
}

func TestRedirectToAnotherHostRefused(t *testing.T) {
	other := serve(t, &fakeBMC{tree: "dmtf-public-rackmount1"})
	b := &fakeBMC{tree: "dmtf-public-rackmount1", override: map[string]http.HandlerFunc{
		"/redfish/v1/Chassis/1U/Thermal": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/redfish/v1/Chassis/1U/Thermal", http.StatusFound)
		},
	}}
	srv := serve(t, b)
	got, err := collect(newCollector(t, srv.URL, nil), context.Background())
	if err == nil || !strings.Contains(err.Error(), "redirect to another host refused") || !strings.Contains(err.Error(), "/redfish/v1/Chassis/1U/Thermal") {
		t.Errorf("err = %v", err)
	}
	if !strings.Contains(got, `sensor="1U"} 374`) {
		t.Errorf("the rest should still be read:\n%s", got)
	}
}

func TestServiceRootDown(t *testing.T) {
	srv := serve(t, &fakeBMC{tree: "dmtf-public-rackmount1", override: map[string]http.HandlerFunc{"/redfish/v1": status500}})
	_, err := collect(newCollector(t, srv.URL, nil), context.Background())
	if err == nil || !strings.Contains(err.Error(), "GET /redfish/v1/: HTTP 500") {
		t.Errorf("err = %v", err)
	}
}
