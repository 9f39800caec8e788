package redfish

import (
	"cmp"
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"log/slog"
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
// Every resource but the service root and the login needs authentication,
// as on real BMCs: basic, or the X-Auth-Token of a session created by a POST
// to /redfish/v1/SessionService/Sessions. override maps a path (without
// trailing slash) to a handler that replaces the file, to inject failures.
type fakeBMC struct {
	tree       string
	override   map[string]http.HandlerFunc
	expand     bool          // honour $expand=.($levels=1) on collections
	delay      time.Duration // added to every answer
	sessionsAt string        // where logins are accepted: empty for sessionsPath, "-" for nowhere (405)

	mu          sync.Mutex
	hits        []string
	basicHits   int               // requests authenticated with basic auth
	tokenHits   int               // requests authenticated with a session token
	sessions    map[string]string // token → session path
	created     int               // sessions created
	deleted     int               // sessions deleted
	inFlight    int
	maxInFlight int
}

const sessionsPath = "/redfish/v1/SessionService/Sessions"

func (b *fakeBMC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := strings.TrimSuffix(r.URL.Path, "/")
	b.mu.Lock()
	b.hits = append(b.hits, p)
	b.inFlight++
	b.maxInFlight = max(b.maxInFlight, b.inFlight)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.inFlight--
		b.mu.Unlock()
	}()
	if b.delay > 0 {
		select {
		case <-time.After(b.delay):
		case <-r.Context().Done():
			return
		}
	}
	at := cmp.Or(b.sessionsAt, sessionsPath)
	if r.Method == http.MethodPost && p == at {
		b.login(w, r, at)
		return
	}
	if r.Method == http.MethodPost && p == sessionsPath && at == "-" {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if p != "/redfish/v1" && p != "/redfish" && !b.authorized(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="bmc"`)
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	if r.Method == http.MethodDelete {
		b.mu.Lock()
		defer b.mu.Unlock()
		for tok, sp := range b.sessions {
			if sp == p {
				delete(b.sessions, tok)
				b.deleted++
				w.WriteHeader(http.StatusNoContent)
				return
			}
		}
		http.NotFound(w, r)
		return
	}
	if r.Method != http.MethodGet {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if h, ok := b.override[p]; ok {
		h(w, r)
		return
	}
	body, err := b.file(p)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	if b.expand && r.URL.Query().Get("$expand") == ".($levels=1)" {
		body = b.expanded(body)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(body)
}

func (b *fakeBMC) file(p string) ([]byte, error) {
	rel, ok := strings.CutPrefix(p, "/redfish/v1")
	if !ok {
		return nil, fs.ErrNotExist
	}
	return os.ReadFile(filepath.Join("testdata", b.tree, filepath.FromSlash(rel), "index.json"))
}

// expanded inlines a collection's members, as a service that supports
// $expand does; members it has no file for stay links.
func (b *fakeBMC) expanded(body []byte) []byte {
	var coll map[string]any
	if json.Unmarshal(body, &coll) != nil {
		return body
	}
	ms, ok := coll["Members"].([]any)
	if !ok {
		return body
	}
	for i, m := range ms {
		l, _ := m.(map[string]any)
		id, _ := l["@odata.id"].(string)
		if mb, err := b.file(strings.TrimSuffix(id, "/")); err == nil {
			var v any
			if json.Unmarshal(mb, &v) == nil {
				ms[i] = v
			}
		}
	}
	out, _ := json.Marshal(coll)
	return out
}

func (b *fakeBMC) authorized(r *http.Request) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if tok := r.Header.Get("X-Auth-Token"); tok != "" {
		_, ok := b.sessions[tok]
		if ok {
			b.tokenHits++
		}
		return ok
	}
	u, pw, ok := r.BasicAuth()
	if ok && u == testUser && pw == testPass {
		b.basicHits++
		return true
	}
	return false
}

func (b *fakeBMC) login(w http.ResponseWriter, r *http.Request, at string) {
	var creds struct{ UserName, Password string }
	if err := json.NewDecoder(r.Body).Decode(&creds); err != nil {
		http.Error(w, `{"error":"bad request"}`, http.StatusBadRequest)
		return
	}
	if creds.UserName != testUser || creds.Password != testPass {
		http.Error(w, `{"error":"unauthorized"}`, http.StatusUnauthorized)
		return
	}
	b.mu.Lock()
	if b.sessions == nil {
		b.sessions = map[string]string{}
	}
	b.created++
	tok := fmt.Sprintf("tok-%d-%d", b.created, time.Now().UnixNano())
	loc := fmt.Sprintf("%s/%d", at, b.created)
	b.sessions[tok] = loc
	b.mu.Unlock()
	w.Header().Set("X-Auth-Token", tok)
	w.Header().Set("Location", loc)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"@odata.id":%q,"Id":"%d","UserName":%q}`, loc, b.created, creds.UserName)
}

// expire drops every session, as a BMC does when they time out.
func (b *fakeBMC) expire() {
	b.mu.Lock()
	defer b.mu.Unlock()
	clear(b.sessions)
}

// counts returns the sessions created, deleted and still open.
func (b *fakeBMC) counts() (created, deleted, open int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.created, b.deleted, len(b.sessions)
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

func (b *fakeBMC) nhits() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.hits)
}

func serve(t *testing.T, b *fakeBMC) *httptest.Server {
	t.Helper()
	return serveB(t, b)
}

func serveB(t testing.TB, b *fakeBMC) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return srv
}

// fakeClock is a settable clock for Deps.Now.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newCollector(t *testing.T, endpoint string, mod func(*Config)) *Collector {
	t.Helper()
	return newCollectorAt(t, endpoint, mod, func() time.Time { return t0 })
}

func newCollectorAt(t *testing.T, endpoint string, mod func(*Config), now func() time.Time) *Collector {
	t.Helper()
	cfg := Config{Endpoint: endpoint, Username: testUser, Password: testPass, Timeout: 5 * time.Second}
	if mod != nil {
		mod(&cfg)
	}
	c, err := New(cfg, collectors.Deps{Now: now})
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

// The whole output for each mockup, read without and with $expand (the
// same readings either way), over a session.
func TestGolden(t *testing.T) {
	for _, tree := range []string{"dmtf-public-rackmount1", "csm-gigabyte-compute", "dmtf-public-pdu",
		"dmtf-public-power-shelf", "dmtf-public-telemetry"} {
		for _, expand := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/expand=%v", tree, expand), func(t *testing.T) {
				b := &fakeBMC{tree: tree, expand: expand}
				srv := serve(t, b)
				got, err := collect(newCollector(t, srv.URL, nil), context.Background())
				if err != nil {
					t.Fatal(err)
				}
				checkGolden(t, tree, got)
				if b.basicHits != 0 || b.tokenHits == 0 {
					t.Errorf("%d requests with basic auth, %d with the session token; want only the token", b.basicHits, b.tokenHits)
				}
			})
		}
	}
}

// Exact readings and the rules behind them, spelled out for the two server
// mockups (the golden files hold the same).
func TestRackmountReadings(t *testing.T) {
	b := &fakeBMC{tree: "dmtf-public-rackmount1"}
	srv := serve(t, b)
	got, err := collect(newCollector(t, srv.URL, nil), context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The newer model gave everything the legacy one could: not read.
	for _, p := range []string{"/redfish/v1/Chassis/1U/Power", "/redfish/v1/Chassis/1U/Thermal"} {
		if b.requested(p) {
			t.Errorf("%s read although the newer model made it useless", p)
		}
	}
	ms := t0.UnixMilli()
	for _, want := range []string{
		// EnvironmentMetrics wins over PowerControl (344 W) and over the
		// TotalPower sensor it names as DataSourceUri: one chassis power.
		fmt.Sprintf(`greenloop_power_watts{source="redfish",component="chassis",sensor="1U"} 374 %d`, ms),
		fmt.Sprintf(`greenloop_temperature_celsius{source="redfish",sensor="1U"} 39 %d`, ms),
		// PowerSubsystem Bay1 Metrics: 325675 kWh × 3.6e6 J/kWh.
		fmt.Sprintf(`greenloop_power_watts{source="redfish",component="psu",sensor="1U/Bay1"} 937.4 %d`, ms),
		fmt.Sprintf(`greenloop_energy_joules_total{source="redfish",component="psu",sensor="1U/Bay1"} 1.17243e+12 %d`, ms),
		fmt.Sprintf(`greenloop_voltage_volts{source="redfish",component="psu",sensor="1U/Bay1"} 230.2 %d`, ms),
		fmt.Sprintf(`greenloop_current_amperes{source="redfish",component="psu",sensor="1U/Bay1"} 5.19 %d`, ms),
		// ThermalMetrics, not the legacy Thermal (25 °C).
		fmt.Sprintf(`greenloop_temperature_celsius{source="redfish",component="inlet",sensor="1U/Intake"} 24.8 %d`, ms),
		// Sensors: no ReadingType, unit Cel; PhysicalContext Memory.
		fmt.Sprintf(`greenloop_temperature_celsius{source="redfish",component="dram",sensor="1U/DIMM3Temp"} 45 %d`, ms),
		// The only Chassis energy sensor, and EnvironmentMetrics has none.
		fmt.Sprintf(`greenloop_energy_joules_total{source="redfish",component="chassis",sensor="1U/TotalEnergy"} 1.17243e+12 %d`, ms),
		fmt.Sprintf(`greenloop_voltage_volts{source="redfish",component="psu",sensor="1U/PS1Out12V"} 12.08 %d`, ms),
	} {
		if !strings.Contains(got, want+"\n") {
			t.Errorf("missing %s in\n%s", want, got)
		}
	}
	for _, bad := range []string{
		`sensor="1U/0"`,             // PowerControl: EnvironmentMetrics gave the chassis power
		`sensor="1U/TotalPower"`,    // the same value as EnvironmentMetrics' PowerWatts
		`sensor="1U/PS1InputPower"`, // the same as Bay1's InputPowerWatts
		`sensor="1U/IntakeTemp"`,    // the same as ThermalMetrics' Intake
		`sensor="1U/CPU1Temp"`,      // the same as EnvironmentMetrics' TemperatureCelsius
		` Temp"}`,                   // legacy Thermal names ("CPU1 Temp")
		`PS2`, `Bay2`,               // absent PSU
		`Frequency`, `Fan`, `StateOfHealth`, // no canonical series
	} {
		if strings.Contains(got, bad) {
			t.Errorf("unexpected %s in\n%s", bad, got)
		}
	}
}

// Without PowerSubsystem and Sensors the legacy Power is read for the PSUs,
// the legacy Thermal still not (ThermalMetrics gave temperatures). With
// Sensors, their PSU power sensor is enough (TestRackmountReadings).
func TestLegacyReadWhenNeeded(t *testing.T) {
	b := &fakeBMC{tree: "dmtf-public-rackmount1", override: map[string]http.HandlerFunc{
		"/redfish/v1/Chassis/1U/PowerSubsystem": http.NotFound,
		"/redfish/v1/Chassis/1U/Sensors":        http.NotFound,
	}}
	srv := serve(t, b)
	got, err := collect(newCollector(t, srv.URL, nil), context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !b.requested("/redfish/v1/Chassis/1U/Power") || b.requested("/redfish/v1/Chassis/1U/Thermal") {
		t.Errorf("Power read: %v, Thermal read: %v; want true, false",
			b.requested("/redfish/v1/Chassis/1U/Power"), b.requested("/redfish/v1/Chassis/1U/Thermal"))
	}
	// EnvironmentMetrics still gives the chassis power: no PowerControl.
	if strings.Contains(got, `sensor="1U/0"`) || strings.Contains(got, `sensor="1U/Bay1"`) {
		t.Errorf("got\n%s", got)
	}
	// Its only PSU reports LastPowerOutputWatts, an output: not a PSU input.
	if strings.Contains(got, `Power Supply Bay`) {
		t.Errorf("PSU output taken for its input in\n%s", got)
	}
}

// Two chassis with the same sensor names do not collide.
func TestChassisPrefix(t *testing.T) {
	srv := serve(t, &fakeBMC{tree: "dmtf-public-telemetry"})
	got, err := collect(newCollector(t, srv.URL, nil), context.Background())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for l := range strings.Lines(got) {
		series, _, _ := strings.Cut(l, "} ")
		if seen[series] {
			t.Errorf("series %s emitted twice", series)
		}
		seen[series] = true
	}
	for _, ch := range []string{"1", "Tray_1", "Tray_2", "Tray_3"} {
		if !seen[`greenloop_temperature_celsius{source="redfish",sensor="`+ch+`/CPU1 Temp"`] {
			t.Errorf("no CPU1 Temp for chassis %s in\n%s", ch, got)
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
	want := fmt.Sprintf(`greenloop_temperature_celsius{source="redfish",component="inlet",sensor="Self/CPU0_TEMP"} 40 %d`, t0.UnixMilli())
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
	if n := strings.Count(got, `component="outlet",sensor="1/`); n != 36 {
		t.Errorf("%d outlet readings of rack PDU 1, want 36:\n%s", n, got)
	}
	// The transfer switch under PowerEquipment/TransferSwitches: its input
	// metrics, two branches and six outlets of four values each.
	if n := strings.Count(got, `component="outlet",sensor="TransferSwitches/1/`); n != 24 {
		t.Errorf("%d outlet readings of transfer switch 1, want 24:\n%s", n, got)
	}
	if !strings.Contains(got, fmt.Sprintf(`greenloop_power_watts{source="redfish",component="inlet",sensor="TransferSwitches/1"} 1500.1 %d`, ms)) {
		t.Errorf("transfer switch input power missing:\n%s", got)
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
	if strings.Contains(got, `component="inlet",sensor="1"`) || !strings.Contains(got, `sensor="1/C3"`) ||
		!strings.Contains(got, `component="inlet",sensor="TransferSwitches/1"`) {
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
			tree: "dmtf-public-telemetry",
			override: map[string]http.HandlerFunc{
				"/redfish/v1/Chassis/1/Power":   fileHandler(t, "telegraf/dell_powerinvalid.json"),
				"/redfish/v1/Chassis/1/Thermal": fileHandler(t, "telegraf/dell_thermalinvalid.json"),
			},
			wantErr: []string{"GET /redfish/v1/Chassis/1/Power: invalid JSON", "GET /redfish/v1/Chassis/1/Thermal: invalid JSON"},
			want:    []string{`component="chassis",sensor="Tray_1/0"} 8000`, `sensor="Tray_3/CPU1 Temp"} 21`},
			notWant: []string{`sensor="1/`},
		},
		{
			name: "a member that is not an object",
			tree: "dmtf-public-rackmount1",
			override: map[string]http.HandlerFunc{"/redfish/v1/Chassis": func(w http.ResponseWriter, r *http.Request) {
				fmt.Fprint(w, `{"Members":["/redfish/v1/Chassis/X",{"@odata.id":"/redfish/v1/Chassis/1U"}]}`)
			}},
			wantErr: []string{"GET /redfish/v1/Chassis: member skipped"},
			want:    []string{`sensor="1U"} 374`},
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
	for _, tt := range []struct {
		auth string
		uri  string // the request refused
	}{
		{AuthSession, "POST /redfish/v1/SessionService/Sessions"},
		{AuthBasic, "GET /redfish/v1/Chassis"},
	} {
		t.Run(tt.auth, func(t *testing.T) {
			b := &fakeBMC{tree: "dmtf-public-rackmount1"}
			srv := serve(t, b)
			c := newCollector(t, srv.URL, func(c *Config) { c.Password = "wrong-Pa55word"; c.Auth = tt.auth })
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
			if !strings.Contains(msg, tt.uri) || !strings.Contains(msg, "401") || !strings.Contains(msg, testUser) {
				t.Errorf("error should name %q, the status and the user: %s", tt.uri, msg)
			}
		})
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

// extractAll runs every extractor over one resource body, as FuzzExtract
// does: the body is taken as each resource type of a chassis at once, and
// as a rack PDU circuit.
func extractAll(body []byte) ([]reading, error) {
	var em environmentMetrics
	if err := json.Unmarshal(body, &em); err != nil {
		return nil, err
	}
	d := chassisData{id: "c", env: &em}
	var p power
	if json.Unmarshal(body, &p) == nil {
		d.power = &p
	}
	var th thermal
	if json.Unmarshal(body, &th) == nil {
		d.thermal = &th
	}
	var pm powerSupplyMetrics
	if json.Unmarshal(body, &pm) == nil {
		d.psus = []psuData{{id: "PSU1", metrics: &pm}}
	}
	var tm thermalMetrics
	if json.Unmarshal(body, &tm) == nil {
		d.thermalMetrics = &tm
	}
	var s sensor
	if json.Unmarshal(body, &s) == nil {
		s.ref = "/redfish/v1/Chassis/c/Sensors/s"
		d.sensors = []sensor{s}
	}
	// And as an expanded Sensors collection.
	if ms, _, err := decodeMembers[sensor](body); err == nil {
		for i := range ms {
			ms[i].ref = fmt.Sprintf("/redfish/v1/Chassis/c/Sensors/m%d", i)
		}
		d.sensors = append(d.sensors, ms...)
	}
	out := d.readings()
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
		for _, r := range p.readings("System.Embedded.1", true, true) {
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
	for _, r := range p.readings("Self", true, true) {
		got = append(got, r.toReading(t0).String())
	}
	want := []string{
		`greenloop_power_watts{source="redfish",component="chassis",sensor="Self/CPU"} 80.5`,
		`greenloop_power_watts{source="redfish",component="psu",sensor="Self/HpeServerPowerSupply/0"} 120`,
		`greenloop_power_watts{source="redfish",component="psu",sensor="Self/HpeServerPowerSupply/1"} 130`,
		`greenloop_power_watts{source="redfish",component="psu",sensor="Self/2"} 140`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Without control (EnvironmentMetrics gave the chassis power) only PSUs,
	// without psus (PowerSubsystem gave them) only the chassis.
	if n := len(p.readings("Self", false, true)); n != 3 {
		t.Errorf("%d readings without PowerControl, want 3", n)
	}
	if n := len(p.readings("Self", true, false)); n != 1 {
		t.Errorf("%d readings without PowerSupplies, want 1", n)
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
	for _, r := range th.readings("1U") {
		got = append(got, r.toReading(t0).String())
	}
	want := []string{
		`greenloop_temperature_celsius{source="redfish",component="inlet",sensor="1U/Inlet"} 22.5`,
		`greenloop_temperature_celsius{source="redfish",component="outlet",sensor="1U/Exhaust"} 35`,
		`greenloop_temperature_celsius{source="redfish",component="ambient",sensor="1U/Room"} 21`,
		`greenloop_temperature_celsius{source="redfish",sensor="1U/CPU"} 55`,
		`greenloop_temperature_celsius{source="redfish",sensor="1U/Cold"} -5`,
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
	clock := &fakeClock{t: t0}
	c := newCollectorAt(t, srv.URL, nil, clock.Now)
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
		clock.Advance(DefaultMinInterval)
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
		"/redfish/v1/Chassis/1U/ThermalSubsystem/ThermalMetrics": func(w http.ResponseWriter, r *http.Request) {
			http.Redirect(w, r, other.URL+"/redfish/v1/Chassis/1U/ThermalSubsystem/ThermalMetrics", http.StatusFound)
		},
	}}
	srv := serve(t, b)
	got, err := collect(newCollector(t, srv.URL, nil), context.Background())
	if err == nil || !strings.Contains(err.Error(), "redirect to another host refused") || !strings.Contains(err.Error(), "/redfish/v1/Chassis/1U/ThermalSubsystem/ThermalMetrics") {
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

// One session serves every poll; requests carry its token, never the
// password; Close deletes it; a later Collect logs in again.
func TestSessionReuseAndLogout(t *testing.T) {
	b := &fakeBMC{tree: "dmtf-public-rackmount1"}
	srv := serve(t, b)
	clock := &fakeClock{t: t0}
	c := newCollectorAt(t, srv.URL, nil, clock.Now)
	for i := range 3 {
		if _, err := collect(c, context.Background()); err != nil {
			t.Fatalf("poll %d: %v", i, err)
		}
		clock.Advance(DefaultMinInterval)
	}
	if created, deleted, open := b.counts(); created != 1 || deleted != 0 || open != 1 {
		t.Errorf("after 3 polls: %d sessions created, %d deleted, %d open; want 1, 0, 1", created, deleted, open)
	}
	if b.basicHits != 0 {
		t.Errorf("%d requests with basic auth in session mode", b.basicHits)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if created, deleted, open := b.counts(); created != 1 || deleted != 1 || open != 0 {
		t.Errorf("after Close: %d sessions created, %d deleted, %d open; want 1, 1, 0", created, deleted, open)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, deleted, _ := b.counts(); deleted != 1 {
		t.Errorf("second Close deleted again (%d)", deleted)
	}
	if _, err := collect(c, context.Background()); err != nil {
		t.Fatal(err)
	}
	if created, _, open := b.counts(); created != 2 || open != 1 {
		t.Errorf("Collect after Close: %d created, %d open; want 2, 1", created, open)
	}
}

// The BMC drops the session (timeout, reboot): the next poll logs in again,
// once, and reads everything.
func TestSessionExpired(t *testing.T) {
	b := &fakeBMC{tree: "dmtf-public-rackmount1"}
	srv := serve(t, b)
	clock := &fakeClock{t: t0}
	c := newCollectorAt(t, srv.URL, nil, clock.Now)
	first, err := collect(c, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	b.expire()
	clock.Advance(DefaultMinInterval)
	second, err := collect(c, context.Background())
	if err != nil {
		t.Fatalf("after the session expired: %v", err)
	}
	if strings.Count(first, "\n") != strings.Count(second, "\n") {
		t.Errorf("%d readings before, %d after the new login", strings.Count(first, "\n"), strings.Count(second, "\n"))
	}
	if created, _, open := b.counts(); created != 2 || open != 1 {
		t.Errorf("%d sessions created, %d open; want 2, 1", created, open)
	}
}

// A BMC that refuses every token: one login, one more after the 401s, then
// ErrAuth; not a login per request.
func TestSessionRefusedTwice(t *testing.T) {
	var b *fakeBMC
	b = &fakeBMC{tree: "dmtf-public-rackmount1", override: map[string]http.HandlerFunc{
		"/redfish/v1/Chassis": func(w http.ResponseWriter, r *http.Request) {
			b.expire()
			http.Error(w, "unauthorized", http.StatusUnauthorized)
		},
	}}
	srv := serve(t, b)
	c := newCollector(t, srv.URL, nil)
	_, err := collect(c, context.Background())
	if !errors.Is(err, ErrAuth) {
		t.Fatalf("err = %v, want ErrAuth", err)
	}
	if strings.Contains(err.Error(), testPass) || strings.Contains(err.Error(), "tok-") {
		t.Errorf("error leaks a secret: %v", err)
	}
	if created, _, _ := b.counts(); created != 2 {
		t.Errorf("%d sessions created, want 2 (the first and one more after the 401)", created)
	}
}

func TestBasicAuth(t *testing.T) {
	b := &fakeBMC{tree: "dmtf-public-rackmount1"}
	srv := serve(t, b)
	got, err := collect(newCollector(t, srv.URL, func(c *Config) { c.Auth = AuthBasic }), context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "dmtf-public-rackmount1", got)
	if created, _, _ := b.counts(); created != 0 || b.tokenHits != 0 || b.basicHits == 0 {
		t.Errorf("basic mode: %d sessions, %d token requests, %d basic requests", created, b.tokenHits, b.basicHits)
	}
}

// The Sessions URI: the standard one without Links.Sessions in the root; the
// root's own when it names another (after a first attempt at the standard
// one, made while the root is read); a service without a SessionService gives
// an error that says what to do.
func TestSessionsLink(t *testing.T) {
	root := func(links string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"Chassis":{"@odata.id":"/redfish/v1/Chassis"}%s}`, links)
		}
	}
	for _, tt := range []struct {
		name       string
		links      string
		sessionsAt string
		created    int
		wantErr    string
	}{
		{"no Links", "", "", 1, ""},
		{"standard", `,"Links":{"Sessions":{"@odata.id":"/redfish/v1/SessionService/Sessions"}}`, "", 1, ""},
		{"elsewhere", `,"Links":{"Sessions":{"@odata.id":"/redfish/v1/Custom/Sessions"}}`, "/redfish/v1/Custom/Sessions", 1, ""},
		{"no SessionService", "", "-", 0, `POST /redfish/v1/SessionService/Sessions (login as "monitor"): HTTP 405; set auth: basic`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBMC{tree: "dmtf-public-rackmount1", sessionsAt: tt.sessionsAt,
				override: map[string]http.HandlerFunc{"/redfish/v1": root(tt.links)}}
			srv := serve(t, b)
			got, err := collect(newCollector(t, srv.URL, nil), context.Background())
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatal(err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			case tt.wantErr == "" && !strings.Contains(got, `sensor="1U"} 374`):
				t.Errorf("got\n%s", got)
			}
			if created, _, _ := b.counts(); created != tt.created {
				t.Errorf("%d sessions created, want %d", created, tt.created)
			}
		})
	}
}

// Sooner than MinInterval after the last fetch, Collect re-emits the cached
// readings with their original timestamps and does not contact the BMC.
func TestMinInterval(t *testing.T) {
	for _, tt := range []struct {
		name     string
		min      time.Duration
		steps    []time.Duration // clock advance before each Collect
		fetched  []bool          // whether that Collect contacted the BMC
		stampsAt []time.Duration // the readings' time, from t0
	}{
		// 1 s of tolerance for the poll loop's jitter: 9 s is enough.
		{"default 10 s", 0,
			[]time.Duration{0, 5 * time.Second, 3999 * time.Millisecond, time.Millisecond, 3 * time.Second, 6 * time.Second},
			[]bool{true, false, false, true, false, true},
			[]time.Duration{0, 0, 0, 9 * time.Second, 9 * time.Second, 18 * time.Second}},
		// A tenth of tolerance below 10 s: 4.5 s is enough for 5 s.
		{"5 s", 5 * time.Second,
			[]time.Duration{0, 4499 * time.Millisecond, time.Millisecond},
			[]bool{true, false, true},
			[]time.Duration{0, 0, 4500 * time.Millisecond}},
		// The tolerance is at most 1 s: 29 s is enough for 30 s.
		{"30 s", 30 * time.Second,
			[]time.Duration{0, 10 * time.Second, 10 * time.Second, 8999 * time.Millisecond, time.Millisecond},
			[]bool{true, false, false, false, true},
			[]time.Duration{0, 0, 0, 0, 29 * time.Second}},
		{"off", -1,
			[]time.Duration{0, time.Second, 0},
			[]bool{true, true, true},
			[]time.Duration{0, time.Second, time.Second}},
		{"clock went back", 0,
			[]time.Duration{0, -time.Second},
			[]bool{true, true},
			[]time.Duration{0, -time.Second}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := &fakeBMC{tree: "dmtf-public-rackmount1"}
			srv := serve(t, b)
			clock := &fakeClock{t: t0}
			c := newCollectorAt(t, srv.URL, func(c *Config) { c.MinInterval = tt.min }, clock.Now)
			var first string
			for i, step := range tt.steps {
				clock.Advance(step)
				before := b.nhits()
				var stamps []time.Time
				var lines []string
				err := c.Collect(context.Background(), collectors.EmitterFunc(func(r collectors.Reading) {
					stamps = append(stamps, r.Time)
					lines = append(lines, r.String())
				}))
				if err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if fetched := b.nhits() > before; fetched != tt.fetched[i] {
					t.Errorf("step %d: contacted the BMC = %v, want %v", i, fetched, tt.fetched[i])
				}
				for _, s := range stamps {
					if want := t0.Add(tt.stampsAt[i]); !s.Equal(want) {
						t.Fatalf("step %d: reading at %v, want %v", i, s, want)
					}
				}
				got := strings.Join(lines, "\n")
				if i == 0 {
					first = got
				} else if got != first {
					t.Errorf("step %d: readings differ from the first:\n%s", i, got)
				}
			}
		})
	}
}

// A collection that emitted nothing is not cached: the next Collect tries again.
func TestMinIntervalAfterFailure(t *testing.T) {
	var down sync.Mutex
	failing := true
	b := &fakeBMC{tree: "dmtf-public-rackmount1", override: map[string]http.HandlerFunc{
		"/redfish/v1/Chassis": func(w http.ResponseWriter, r *http.Request) {
			down.Lock()
			defer down.Unlock()
			if failing {
				status500(w, r)
				return
			}
			body, _ := os.ReadFile("testdata/dmtf-public-rackmount1/Chassis/index.json")
			w.Write(body)
		},
	}}
	srv := serve(t, b)
	clock := &fakeClock{t: t0}
	c := newCollectorAt(t, srv.URL, nil, clock.Now)
	if _, err := collect(c, context.Background()); err == nil {
		t.Fatal("no error from a failing BMC")
	}
	down.Lock()
	failing = false
	down.Unlock()
	clock.Advance(time.Second)
	got, err := collect(c, context.Background())
	if err != nil || !strings.Contains(got, `sensor="1U"} 374`) {
		t.Errorf("after recovery: %v\n%s", err, got)
	}
}

// At most MaxInFlight requests are in flight at once, and more than one
// when allowed (the resources are read concurrently).
func TestMaxInFlight(t *testing.T) {
	for _, tt := range []struct {
		limit    int
		min, max int
	}{
		{1, 1, 1},
		{0, 2, DefaultMaxInFlight},
		{8, 5, 8},
	} {
		t.Run(fmt.Sprint(tt.limit), func(t *testing.T) {
			b := &fakeBMC{tree: "dmtf-public-rackmount1", delay: 20 * time.Millisecond}
			srv := serve(t, b)
			got, err := collect(newCollector(t, srv.URL, func(c *Config) { c.MaxInFlight = tt.limit }), context.Background())
			if err != nil {
				t.Fatal(err)
			}
			checkGolden(t, "dmtf-public-rackmount1", got)
			if b.maxInFlight < tt.min || b.maxInFlight > tt.max {
				t.Errorf("max %d requests in flight, want %d to %d", b.maxInFlight, tt.min, tt.max)
			}
		})
	}
}

// A service that advertises $expand but answers it with an error is read
// member by member, and not asked with $expand again.
func TestExpandRefused(t *testing.T) {
	refuse := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Has("$expand") {
			http.Error(w, "not implemented", http.StatusNotImplemented)
			return
		}
		body, _ := os.ReadFile("testdata/dmtf-public-rackmount1/Chassis/1U/Sensors/index.json")
		w.Write(body)
	}
	b := &fakeBMC{tree: "dmtf-public-rackmount1", expand: true, override: map[string]http.HandlerFunc{"/redfish/v1/Chassis/1U/Sensors": refuse}}
	srv := serve(t, b)
	clock := &fakeClock{t: t0}
	c := newCollectorAt(t, srv.URL, nil, clock.Now)
	got, err := collect(c, context.Background())
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "dmtf-public-rackmount1", got)
	if !c.noExpand {
		t.Error("the refusal was not remembered")
	}
	// With expand, the Sensors were read in one request; without, one each.
	if !b.requested("/redfish/v1/Chassis/1U/Sensors/DIMM1Temp") {
		t.Error("members not read one by one")
	}
}

func TestNormalise(t *testing.T) {
	const (
		P = collectors.MetricPower
		E = collectors.MetricEnergy
		T = collectors.MetricTemperature
		I = collectors.MetricCurrent
		U = collectors.MetricVoltage
	)
	for _, tt := range []struct {
		typ, unit string
		in        float64
		metric    string
		want      float64
	}{
		{"Power", "W", 374, P, 374},
		{"Power", "kW", 1.5, P, 1500},
		{"Power", "", 12, P, 12},
		{"Power", "kW.h", 1, "", 0}, // energy unit on a power sensor
		{"Power", "W", -3, "", 0},
		{"EnergykWh", "kW.h", 2, E, 7.2e6},
		{"EnergykWh", "kW", 2, E, 7.2e6}, // TransferSwitch quirk: kW for kW.h
		{"EnergykWh", "", 2, E, 7.2e6},
		{"EnergyWh", "W.h", 2, E, 7200},
		{"EnergyWh", "", 2, E, 7200},
		{"EnergyJoules", "J", 5, E, 5},
		{"EnergyJoules", "", 5, E, 5},
		{"EnergyJoules", "kW.h", 1, E, 3.6e6}, // the unit wins over the type's name
		{"Temperature", "Cel", 22.5, T, 22.5},
		{"Temperature", "C", 22.5, T, 22.5}, // CabTemp quirk
		{"Temperature", "K", 300, T, 300 - 273.15},
		{"Temperature", "[degF]", 70, "", 0},
		{"", "Cel", 44, T, 44}, // rackmount1: no ReadingType
		{"", "kW.h", 1, E, 3.6e6},
		{"", "A", 8.92, I, 8.92},
		{"Current", "mA", 500, I, 0.5},
		{"Voltage", "V", 230.2, U, 230.2},
		{"Voltage", "mV", 12000, U, 12},
		{"Frequency", "Hz", 60, "", 0},
		{"Percent", "%", 45, "", 0},
		{"", "", 1, "", 0},
		{"", "%", 1, "", 0},
	} {
		metric, got, ok := normalise(tt.typ, tt.unit, tt.in)
		if ok != (tt.metric != "") || metric != tt.metric || math.Abs(got-tt.want) > 1e-9*math.Max(1, math.Abs(tt.want)) {
			t.Errorf("normalise(%q, %q, %v) = %q %v %v, want %q %v", tt.typ, tt.unit, tt.in, metric, got, ok, tt.metric, tt.want)
		}
	}
}

// The precedence between EnvironmentMetrics, PowerSubsystem, ThermalMetrics,
// Sensors and the legacy model, case by case.
func TestChassisPrecedence(t *testing.T) {
	parse := func(body string, v any) {
		t.Helper()
		if err := json.Unmarshal([]byte(body), v); err != nil {
			t.Fatal(err)
		}
	}
	legacyPower := func() *power {
		var p power
		parse(`{"PowerControl":[{"MemberId":"0","PowerConsumedWatts":300}],"PowerSupplies":[{"Name":"PSU1","PowerInputWatts":150}]}`, &p)
		return &p
	}
	legacyThermal := func() *thermal {
		var th thermal
		parse(`{"Temperatures":[{"Name":"Inlet Temp","ReadingCelsius":21,"PhysicalContext":"Intake"}]}`, &th)
		return &th
	}
	sensors := func(body string) []sensor {
		var ss []sensor
		parse(body, &ss)
		for i := range ss {
			ss[i].ref = "/redfish/v1/Chassis/C/Sensors/" + string(ss[i].Id)
		}
		return ss
	}
	env := func(body string) *environmentMetrics {
		var em environmentMetrics
		parse(body, &em)
		return &em
	}
	psu := func(body string) []psuData {
		var m powerSupplyMetrics
		parse(body, &m)
		return []psuData{{id: "Bay1", metrics: &m}}
	}
	for _, tt := range []struct {
		name string
		d    chassisData
		want []string
	}{
		{"legacy only", chassisData{id: "C", power: legacyPower(), thermal: legacyThermal()}, []string{
			`greenloop_power_watts{source="redfish",component="chassis",sensor="C/0"} 300`,
			`greenloop_power_watts{source="redfish",component="psu",sensor="C/PSU1"} 150`,
			`greenloop_temperature_celsius{source="redfish",component="inlet",sensor="C/Inlet Temp"} 21`,
		}},
		{"EnvironmentMetrics replaces PowerControl, its sensor is not counted again",
			chassisData{id: "C", power: legacyPower(),
				env:     env(`{"PowerWatts":{"Reading":310,"DataSourceUri":"/redfish/v1/Chassis/C/Sensors/Total"}}`),
				sensors: sensors(`[{"Id":"Total","Reading":309,"ReadingType":"Power","PhysicalContext":"Chassis"}]`)}, []string{
				`greenloop_power_watts{source="redfish",component="chassis",sensor="C"} 310`,
				`greenloop_power_watts{source="redfish",component="psu",sensor="C/PSU1"} 150`,
			}},
		{"one Chassis power sensor is the chassis total",
			chassisData{id: "C", power: legacyPower(),
				sensors: sensors(`[{"Id":"Total","Reading":309,"ReadingType":"Power","PhysicalContext":"Chassis"}]`)}, []string{
				`greenloop_power_watts{source="redfish",component="chassis",sensor="C/Total"} 309`,
				`greenloop_power_watts{source="redfish",component="psu",sensor="C/PSU1"} 150`,
			}},
		{"several Chassis power sensors are not",
			chassisData{id: "C", power: legacyPower(),
				sensors: sensors(`[{"Id":"A","Reading":100,"ReadingType":"Power","PhysicalContext":"Chassis"},
					{"Id":"B","Reading":200,"ReadingType":"Power","PhysicalContext":"Chassis"}]`)}, []string{
				`greenloop_power_watts{source="redfish",sensor="C/A"} 100`,
				`greenloop_power_watts{source="redfish",sensor="C/B"} 200`,
				`greenloop_power_watts{source="redfish",component="chassis",sensor="C/0"} 300`,
				`greenloop_power_watts{source="redfish",component="psu",sensor="C/PSU1"} 150`,
			}},
		{"PowerSubsystem replaces the legacy PSUs",
			chassisData{id: "C", power: legacyPower(), psus: psu(`{"InputPowerWatts":{"Reading":151},"OutputPowerWatts":{"Reading":140}}`)}, []string{
				`greenloop_power_watts{source="redfish",component="psu",sensor="C/Bay1"} 151`,
				`greenloop_power_watts{source="redfish",component="chassis",sensor="C/0"} 300`,
			}},
		{"PSU power sensors replace the legacy PSUs; output is no PSU input",
			chassisData{id: "C", power: legacyPower(),
				sensors: sensors(`[{"Id":"PS1InputPower","Reading":152,"ReadingType":"Power","ReadingUnits":"W","PhysicalContext":"PowerSupply"},
					{"Id":"PS1OutputPower","Reading":140,"ReadingType":"Power","PhysicalContext":"PowerSupply"},
					{"Id":"PS1Energy","Reading":2,"ReadingType":"EnergykWh","ReadingUnits":"kW","PhysicalContext":"PowerSupply"}]`)}, []string{
				`greenloop_power_watts{source="redfish",component="psu",sensor="C/PS1InputPower"} 152`,
				`greenloop_power_watts{source="redfish",sensor="C/PS1OutputPower"} 140`,
				`greenloop_energy_joules_total{source="redfish",component="psu",sensor="C/PS1Energy"} 7.2e+06`,
				`greenloop_power_watts{source="redfish",component="chassis",sensor="C/0"} 300`,
			}},
		{"an absent PSU and an absent value give nothing",
			chassisData{id: "C", psus: []psuData{{id: "Bay2", status: status{State: "Absent"}, metrics: &powerSupplyMetrics{}}},
				sensors: sensors(`[{"Id":"PS2InputPower","Reading":null,"ReadingType":"Power"},
					{"Id":"PS3InputPower","Reading":5,"ReadingType":"Power","Status":{"State":"Absent"}}]`)}, nil},
		{"ThermalMetrics replaces the legacy Thermal",
			chassisData{id: "C", thermal: legacyThermal(), thermalMetrics: func() *thermalMetrics {
				var tm thermalMetrics
				parse(`{"TemperatureReadingsCelsius":[{"DeviceName":"Intake","Reading":22},{"DeviceName":"CPU","Reading":50,"PhysicalContext":"CPU"}]}`, &tm)
				return &tm
			}()}, []string{
				`greenloop_temperature_celsius{source="redfish",component="inlet",sensor="C/Intake"} 22`,
				`greenloop_temperature_celsius{source="redfish",sensor="C/CPU"} 50`,
			}},
		{"temperature Sensors replace the legacy Thermal",
			chassisData{id: "C", thermal: legacyThermal(),
				sensors: sensors(`[{"Id":"CabTemp","Reading":23,"ReadingType":"Temperature","ReadingUnits":"C","PhysicalContext":"Intake"}]`)}, []string{
				`greenloop_temperature_celsius{source="redfish",component="inlet",sensor="C/CabTemp"} 23`,
			}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, r := range tt.d.readings() {
				got = append(got, r.toReading(t0).String())
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// Neither the password nor a session token reaches the logs, at any level,
// through a login, a login again after the session expired, and a logout.
func TestSecretsNotLogged(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), &slog.HandlerOptions{Level: slog.LevelDebug}))
	b := &fakeBMC{tree: "dmtf-public-pdu", override: map[string]http.HandlerFunc{
		"/redfish/v1/PowerEquipment/RackPDUs/1/Metrics": http.NotFound, // a logged note
	}}
	srv := serve(t, b)
	clock := &fakeClock{t: t0}
	c, err := New(Config{Endpoint: srv.URL, Username: testUser, Password: testPass}, collectors.Deps{Logger: logger, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := collect(c, context.Background()); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	var tokens []string
	for tok := range b.sessions {
		tokens = append(tokens, tok)
	}
	b.mu.Unlock()
	b.expire()
	clock.Advance(DefaultMinInterval)
	if _, err := collect(c, context.Background()); err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	for tok := range b.sessions {
		tokens = append(tokens, tok)
	}
	b.mu.Unlock()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "logged in") || !strings.Contains(out, "linked resource missing") {
		t.Fatalf("expected log lines missing (the test would prove nothing):\n%s", out)
	}
	if len(tokens) != 2 {
		t.Fatalf("%d tokens issued, want 2", len(tokens))
	}
	for _, secret := range append(tokens, testPass) {
		if strings.Contains(out, secret) {
			t.Errorf("log holds a secret (%.6s...):\n%s", secret, out)
		}
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestStrUnmarshal(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{`"PSU1"`, "PSU1"},
		{`"a\"b"`, `a"b`},
		{`"caf\u00e9"`, "café"},
		{"\"\xff\"", "\ufffd"}, // invalid UTF-8 is replaced, as encoding/json does
		{`null`, ""},
		{`12`, ""},
		{`""`, ""},
	} {
		var s str
		if err := s.UnmarshalJSON([]byte(tt.in)); err != nil || string(s) != tt.want {
			t.Errorf("str(%s) = %q, %v; want %q", tt.in, s, err, tt.want)
		}
	}
}

// Without $expand every sensor costs a request: those that gave nothing
// (covered by an excerpt, Absent, fans, frequency...) are left out of the
// next polls, the readings unchanged, and all are read again after 10 min.
func TestIdleSensorsSkipped(t *testing.T) {
	b := &fakeBMC{tree: "dmtf-public-rackmount1"}
	srv := serve(t, b)
	clock := &fakeClock{t: t0}
	c := newCollectorAt(t, srv.URL, nil, clock.Now)
	sensorGets := func() int {
		b.mu.Lock()
		defer b.mu.Unlock()
		n := 0
		for _, h := range b.hits {
			if strings.HasPrefix(h, "/redfish/v1/Chassis/1U/Sensors/") {
				n++
			}
		}
		b.hits = nil
		return n
	}
	var first string
	for i, tt := range []struct {
		advance time.Duration
		gets    int
	}{
		// 41 sensors. Idle: 8 covered by excerpts (TotalPower, CPU1Temp,
		// IntakeTemp, ExhaustTemp, PS1InputPower, PS1Energy, PS1InputVoltage,
		// PS1InputCurrent), 11 Absent PS2*, 4 fans, PS1Frequency and
		// Battery1StateOfHealth: 25; 16 left.
		{0, 41},
		{DefaultMinInterval, 16},
		{DefaultMinInterval, 16},
		{relearnIdle, 41},
	} {
		clock.Advance(tt.advance)
		got, err := collect(c, context.Background())
		if err != nil {
			t.Fatal(err)
		}
		got = strings.ReplaceAll(got, fmt.Sprint(clock.Now().UnixMilli()), "T")
		if i == 0 {
			first = got
		} else if got != first {
			t.Errorf("poll %d: readings differ:\n%s\nwant\n%s", i, got, first)
		}
		if n := sensorGets(); n != tt.gets {
			t.Errorf("poll %d: %d sensors read one by one, want %d", i, n, tt.gets)
		}
	}
}
