package ipmi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenloop/greenloop/collectors"
)

// Accounts of the simulated BMC. The collector uses the read-only one.
const (
	simAdmin, simAdminPass     = "admin", "secret"
	simMonitor, simMonitorPass = "monitor", "monpass"
)

// needTool returns the path of a binary the test needs. Without it the test
// is skipped, or fails when CI=true (where scripts install every tool).
func needTool(t *testing.T, bin, debPkg string) string {
	t.Helper()
	p, err := exec.LookPath(bin)
	if err == nil {
		return p
	}
	msg := fmt.Sprintf("%s not found: install the Debian package %s", bin, debPkg)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// bmcSim is an OpenIPMI ipmi_sim process serving one BMC on 127.0.0.1.
type bmcSim struct {
	t    *testing.T
	dir  string
	port int
	bin  string
	cmd  *exec.Cmd
	done chan struct{}
}

// startSim builds the DCMI module, writes the simulator's configuration for
// specs into a temporary folder and starts ipmi_sim on a free UDP port.
// values are the initial contents of the value files (the sensors' file
// option, and power.val for DCMI).
func startSim(t *testing.T, specs []sdrSpec, values map[string]string) *bmcSim {
	t.Helper()
	bin := needTool(t, "ipmi_sim", "openipmi")
	gcc := needTool(t, "gcc", "gcc")
	if _, err := os.Stat("/usr/include/OpenIPMI/serv.h"); err != nil {
		needTool(t, "libopenipmi-dev-is-missing", "libopenipmi-dev")
	}
	dir := t.TempDir()
	src, err := filepath.Abs("testdata/dcmi_mod.c")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(gcc, "-shared", "-fPIC", "-Wall", "-o", filepath.Join(dir, "dcmi_mod.so"), src).CombinedOutput(); err != nil {
		t.Fatalf("building the DCMI module: %v\n%s", err, out)
	}
	for name, v := range values {
		writeValue(t, dir, name, v)
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := pc.LocalAddr().(*net.UDPAddr).Port
	pc.Close()

	lan := fmt.Sprintf(`name "testbmc"
set_working_mc 0x20
  startlan 1
    addr 127.0.0.1 %d
    priv_limit admin
    allowed_auths_callback none md2 md5 straight
    allowed_auths_user none md2 md5 straight
    allowed_auths_operator none md2 md5 straight
    allowed_auths_admin none md2 md5 straight
    guid a123456789abcdefa123456789abcdef
  endlan
  user 2 true "%s" "%s" admin 10 none md2 md5 straight
  user 3 true "%s" "%s" user 10 none md2 md5 straight
loadlib "%s" "%s"
`, port, simAdmin, simAdminPass, simMonitor, simMonitorPass, filepath.Join(dir, "dcmi_mod.so"), filepath.Join(dir, "power.val"))
	var emu strings.Builder
	emu.WriteString("mc_setbmc 0x20\nmc_add 0x20 0 no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02\nsel_enable 0x20 1000 0x0a\n")
	emu.WriteString("sensor_add 0x20 0 0 35 0x6f event-only\n") // the watchdog must be sensor 0
	for i, s := range specs {
		if !s.notInSim {
			fmt.Fprintf(&emu, "sensor_add 0x20 0 %d 0x%02x 0x%02x", s.num, s.stype, s.evtype)
			if s.file != "" {
				fmt.Fprintf(&emu, " poll 1000 file \"%s\"", filepath.Join(dir, s.file))
			}
			fmt.Fprintf(&emu, "\nsensor_set_value 0x20 0 %d %d 0\n", s.num, s.raw)
			if !s.scanDisabled {
				fmt.Fprintf(&emu, "sensor_set_event_support 0x20 0 %d enable scanning per-state %s %s %s %s\n",
					s.num, zeros15, zeros15, zeros15, zeros15)
			}
		}
		emu.WriteString(s.emuLine(uint16(i+1)) + "\n")
	}
	emu.WriteString("mc_enable 0x20\n")
	if err := os.WriteFile(filepath.Join(dir, "lan.conf"), []byte(lan), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "sim.emu"), []byte(emu.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	sim := &bmcSim{t: t, dir: dir, port: port, bin: bin}
	sim.start()
	t.Cleanup(sim.stop)
	return sim
}

const zeros15 = "000000000000000"

func writeValue(t *testing.T, dir, name, v string) {
	t.Helper()
	// Write and rename, so that the simulator never reads half a file.
	tmp := filepath.Join(dir, name+".tmp")
	if err := os.WriteFile(tmp, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

// start runs ipmi_sim with a fresh state folder and waits until it holds
// its UDP port.
func (s *bmcSim) start() {
	t := s.t
	t.Helper()
	state := filepath.Join(s.dir, "state")
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(s.dir, "sim.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	s.cmd = exec.Command(s.bin, "-c", filepath.Join(s.dir, "lan.conf"), "-f", filepath.Join(s.dir, "sim.emu"), "-s", state, "-n")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("starting ipmi_sim: %v", err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.done:
			log, _ := os.ReadFile(filepath.Join(s.dir, "sim.log"))
			t.Fatalf("ipmi_sim exited at start:\n%s", log)
		default:
		}
		pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", s.port))
		if err != nil {
			break // the simulator holds the port
		}
		pc.Close()
		if time.Now().After(deadline) {
			t.Fatal("ipmi_sim did not open its port within 10 s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *bmcSim) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd = nil
}

// ipmitool runs ipmitool against the simulator as the read-only user, or
// as the administrator for DCMI (ipmi_sim answers DCMI to no one else).
func (s *bmcSim) ipmitool(args ...string) string {
	t := s.t
	t.Helper()
	bin := needTool(t, "ipmitool", "ipmitool")
	user, pass, level := simMonitor, simMonitorPass, "USER"
	if args[0] == "dcmi" {
		user, pass, level = simAdmin, simAdminPass, "ADMINISTRATOR"
	}
	base := []string{"-I", "lanplus", "-C", "3", "-L", level, "-H", "127.0.0.1", "-p", strconv.Itoa(s.port), "-U", user, "-E"}
	cmd := exec.Command(bin, append(base, args...)...)
	cmd.Env = append(os.Environ(), "IPMI_PASSWORD="+pass)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr // ipmi_sim has no HPM.x: ipmitool complains there
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ipmitool %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.Bytes())
	}
	return string(out)
}

// capture collects one poll's readings by series.
type capture struct {
	mu sync.Mutex
	m  map[string]float64
}

func (c *capture) Emit(r collectors.Reading) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := strings.TrimSuffix(r.String(), " "+strconv.FormatFloat(r.Value, 'g', -1, 64))
	c.m[key] = r.Value
}

func poll(ctx context.Context, t *testing.T, c *Collector) (map[string]float64, error) {
	t.Helper()
	cp := &capture{m: map[string]float64{}}
	err := c.Collect(ctx, cp)
	return cp.m, err
}

func seriesKey(metric, component, sensor string) string {
	if component == "" {
		return fmt.Sprintf(`%s{source="ipmi",sensor=%q}`, metric, sensor)
	}
	return fmt.Sprintf(`%s{source="ipmi",component=%q,sensor=%q}`, metric, component, sensor)
}

// wantSeries is what one poll of serverSDRs should emit, DCMI at w watts.
func wantSeries(w float64, change map[string]float64) map[string]float64 {
	want := map[string]float64{
		seriesKey(collectors.MetricPower, "chassis", "dcmi"):   w,
		seriesKey(MetricDCMIPowerMin, "chassis", "dcmi"):       w - 20,
		seriesKey(MetricDCMIPowerMax, "chassis", "dcmi"):       w + 30,
		seriesKey(MetricDCMIPowerAverage, "chassis", "dcmi"):   w,
		seriesKey(MetricDCMISamplingPeriod, "chassis", "dcmi"): 1,
	}
	for _, s := range serverSDRs {
		if s.wantLabel != "" {
			want[seriesKey(s.wantMetric, s.wantComponent, s.wantLabel)] = s.wantValue
		}
	}
	for k, v := range change {
		want[k] = v
	}
	return want
}

func diffSeries(got, want map[string]float64) string {
	var sb strings.Builder
	for k, v := range want {
		g, ok := got[k]
		switch {
		case !ok:
			fmt.Fprintf(&sb, "missing %s %v\n", k, v)
		case g-v > 1e-9 || v-g > 1e-9:
			fmt.Fprintf(&sb, "%s = %v, want %v\n", k, g, v)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			fmt.Fprintf(&sb, "unexpected %s %v\n", k, g)
		}
	}
	return sb.String()
}

// syncBuffer is a log sink the collector and the test share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestSimulator polls an ipmi_sim BMC with a real server's sensor set, and
// checks the readings against the simulator's configuration and against
// what ipmitool reads from the same BMC.
func TestSimulator(t *testing.T) {
	sim := startSim(t, serverSDRs, map[string]string{"inlet.val": "25", "fan1.val": "48", "power.val": strconv.Itoa(dcmiWatts)})
	logs := &syncBuffer{}
	deps := testDeps(logs)
	three := 3
	c, err := New(Config{Host: "127.0.0.1", Port: sim.port, Username: simAdmin, Password: simAdminPass,
		CipherSuite: &three, Timeout: 5 * time.Second}, deps)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	start := time.Now()
	got, err := poll(ctx, t, c)
	if err != nil {
		t.Fatalf("first poll: %v\nlogs:\n%s", err, logs)
	}
	first := time.Since(start)
	if d := diffSeries(got, wantSeries(dcmiWatts, nil)); d != "" {
		t.Fatalf("first poll:\n%s\nlogs:\n%s", d, logs)
	}

	start = time.Now()
	if _, err := poll(ctx, t, c); err != nil {
		t.Fatal(err)
	}
	t.Logf("first poll (session, SDR repository, %d readings) %s; next poll %s", len(got), first, time.Since(start))

	t.Run("ipmitool sdr elist", func(t *testing.T) {
		crossCheckSDR(t, sim, got)
	})
	t.Run("ipmitool dcmi power reading", func(t *testing.T) {
		crossCheckDCMI(t, sim, got)
	})

	t.Run("new values on the next poll", func(t *testing.T) {
		writeValue(t, sim.dir, "power.val", "250")
		writeValue(t, sim.dir, "inlet.val", "31")
		writeValue(t, sim.dir, "fan1.val", "50")
		got, err := poll(ctx, t, c)
		if err != nil {
			t.Fatal(err)
		}
		// DCMI reads its file on each request: the next poll has it.
		if w := got[seriesKey(collectors.MetricPower, "chassis", "dcmi")]; w != 250 {
			t.Fatalf("DCMI power %v after writing 250", w)
		}
		// The simulator re-reads sensor files once a second.
		want := wantSeries(250, map[string]float64{
			seriesKey(collectors.MetricTemperature, componentInlet, "Inlet Temp"): 31,
			seriesKey(MetricFanSpeed, "", "System Fan 1"):                         50 * 98,
		})
		deadline := time.Now().Add(5 * time.Second)
		for diffSeries(got, want) != "" && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
			if got, err = poll(ctx, t, c); err != nil {
				t.Fatal(err)
			}
		}
		if d := diffSeries(got, want); d != "" {
			t.Fatalf("after changing the values:\n%s", d)
		}
		crossCheckSDR(t, sim, got)
	})

	t.Run("session reused", func(t *testing.T) {
		if n := strings.Count(logs.String(), "session open"); n != 1 {
			t.Fatalf("%d sessions opened over several polls, want 1; logs:\n%s", n, logs)
		}
		if n := strings.Count(logs.String(), "SDR repository read"); n != 1 {
			t.Fatalf("SDR repository read %d times, want once while it does not change", n)
		}
	})

	t.Run("reconnect after the BMC restarts", func(t *testing.T) {
		sim.stop()
		sim.start()
		// The old session is unknown to the new BMC: this poll may fail,
		// and it must not leave the collector stuck.
		_, err1 := poll(ctx, t, c)
		t.Logf("first poll after the restart: %v", err1)
		got, err := poll(ctx, t, c)
		if err != nil {
			t.Fatalf("poll after restart: %v (previous: %v)", err, err1)
		}
		if len(got) == 0 {
			t.Fatal("no readings after the restart")
		}
		if n := strings.Count(logs.String(), "session open"); n != 2 {
			t.Fatalf("%d sessions opened, want 2 (first poll, after the restart); first poll's error: %v", n, err1)
		}
	})

	t.Run("close", func(t *testing.T) {
		if err := c.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		if err := c.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		// A collector closed by mistake reconnects rather than failing.
		if _, err := poll(ctx, t, c); err != nil {
			t.Fatalf("poll after Close: %v", err)
		}
	})

	t.Run("user privilege account", func(t *testing.T) {
		// An account limited to the User privilege. ipmi_sim does not
		// enforce the limit (it grants the Administrator session the
		// collector asks for first), so this account reads everything too.
		logs := &syncBuffer{}
		mon, err := New(Config{Host: "127.0.0.1", Port: sim.port, Username: simMonitor, Password: simMonitorPass,
			CipherSuite: &three, Timeout: 5 * time.Second}, testDeps(logs))
		if err != nil {
			t.Fatal(err)
		}
		defer mon.Close()
		for range 2 {
			got, err := poll(ctx, t, mon)
			if err != nil {
				t.Fatal(err)
			}
			want := wantSeries(250, nil)
			want[seriesKey(collectors.MetricTemperature, componentInlet, "Inlet Temp")] = 31
			want[seriesKey(MetricFanSpeed, "", "System Fan 1")] = 50 * 98
			if d := diffSeries(got, want); d != "" {
				t.Fatalf("poll as %s:\n%s", simMonitor, d)
			}
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		bad, err := New(Config{Host: "127.0.0.1", Port: sim.port, Username: simMonitor, Password: "not-the-password",
			CipherSuite: &three, Timeout: 3 * time.Second}, deps)
		if err != nil {
			t.Fatal(err)
		}
		defer bad.Close()
		start := time.Now()
		_, err = poll(ctx, t, bad)
		if !errors.Is(err, ErrAuth) {
			t.Fatalf("err = %v, want ErrAuth", err)
		}
		t.Logf("wrong password: %v", err)
		msg := err.Error()
		for _, s := range []string{fmt.Sprintf("127.0.0.1:%d", sim.port), `user "monitor"`, "cipher suite 3", "wrong user name or password"} {
			if !strings.Contains(msg, s) {
				t.Errorf("error %q does not name %s", msg, s)
			}
		}
		if strings.Contains(msg, "not-the-password") {
			t.Errorf("error %q shows the password", msg)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("refusal took %s", d)
		}
	})

	t.Run("cipher suite 17 refused", func(t *testing.T) {
		// ipmi_sim has no SHA-256 suites; the default suite gets a clear error.
		c17, err := New(Config{Host: "127.0.0.1", Port: sim.port, Username: simMonitor, Password: simMonitorPass,
			Timeout: 3 * time.Second}, deps)
		if err != nil {
			t.Fatal(err)
		}
		defer c17.Close()
		_, err = poll(ctx, t, c17)
		t.Logf("cipher suite 17: %v", err)
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "cipher suite 17") {
			t.Fatalf("err = %v, want ErrAuth naming cipher suite 17", err)
		}
	})
}

func testDeps(logs *syncBuffer) collectors.Deps {
	return collectors.Deps{
		Logger: newTestLogger(logs),
		Now:    func() time.Time { return time.Unix(1763800000, 0) },
	}
}

var elistLine = regexp.MustCompile(`^([^|]*?)\s*\|\s*([0-9A-Fa-f]+)h\s*\|\s*(\w+)\s*\|\s*([0-9.]+)\s*\|\s*(.*)$`)
var elistValue = regexp.MustCompile(`^(-?[0-9.]+) (degrees C|Volts|Amps|Watts|RPM)`)

// crossCheckSDR compares the collector's readings with `ipmitool sdr elist`:
// every sensor ipmitool shows a number for has the same number here, and
// every sensor it shows none for is absent here.
func crossCheckSDR(t *testing.T, sim *bmcSim, got map[string]float64) {
	t.Helper()
	out := sim.ipmitool("sdr", "elist")
	specs := map[uint8]sdrSpec{}
	for _, s := range serverSDRs {
		specs[s.num] = s
	}
	compared, absent := 0, 0
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		m := elistLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			t.Fatalf("unexpected ipmitool line %q", line)
		}
		n, _ := strconv.ParseUint(m[2], 16, 8)
		s, ok := specs[uint8(n)]
		if !ok {
			continue // the watchdog
		}
		if s.name != m[1] {
			t.Errorf("ipmitool names sensor 0x%02x %q, the SDR says %q", n, m[1], s.name)
		}
		v := elistValue.FindStringSubmatch(m[5])
		if v == nil {
			if !s.ipmitoolAbsent {
				// Discrete sensors and units greenloop does not store.
				continue
			}
			absent++
			for k := range got {
				if strings.Contains(k, fmt.Sprintf("sensor=%q", s.name)) {
					t.Errorf("ipmitool has no reading for %s (%q) but the collector emitted %s", s.name, m[5], k)
				}
			}
			continue
		}
		want, _ := strconv.ParseFloat(v[1], 64)
		key := seriesKey(s.wantMetric, s.wantComponent, s.wantLabel)
		g, ok := got[key]
		if !ok {
			t.Errorf("ipmitool reads %s = %s, the collector has no %s", s.name, m[5], key)
			continue
		}
		// ipmitool prints at most 3 decimals (2 for Volts and Amps).
		if d := g - want; d > 0.006 || d < -0.006 {
			t.Errorf("%s: collector %v, ipmitool %q", s.name, g, m[5])
		}
		compared++
	}
	if compared < 12 || absent != 2 {
		t.Fatalf("compared %d readings and %d absent sensors with ipmitool, want ≥12 and 2; output:\n%s", compared, absent, out)
	}
}

var dcmiLine = regexp.MustCompile(`(?m)^\s*(Instantaneous power reading|Minimum during sampling period|Maximum during sampling period|Average power reading over sample period):\s+(\d+) Watts`)

func crossCheckDCMI(t *testing.T, sim *bmcSim, got map[string]float64) {
	t.Helper()
	out := sim.ipmitool("dcmi", "power", "reading")
	keys := map[string]string{
		"Instantaneous power reading":              seriesKey(collectors.MetricPower, "chassis", "dcmi"),
		"Minimum during sampling period":           seriesKey(MetricDCMIPowerMin, "chassis", "dcmi"),
		"Maximum during sampling period":           seriesKey(MetricDCMIPowerMax, "chassis", "dcmi"),
		"Average power reading over sample period": seriesKey(MetricDCMIPowerAverage, "chassis", "dcmi"),
	}
	ms := dcmiLine.FindAllStringSubmatch(out, -1)
	if len(ms) != 4 {
		t.Fatalf("ipmitool dcmi power reading:\n%s", out)
	}
	for _, m := range ms {
		want, _ := strconv.ParseFloat(m[2], 64)
		if g := got[keys[m[1]]]; g != want {
			t.Errorf("%s: collector %v W, ipmitool %v W", m[1], g, want)
		}
	}
}

// TestUnreachable: a BMC that refuses (closed port) or never answers
// (a silent UDP socket) fails the poll within the configured timeout, with
// an error naming it.
func TestUnreachable(t *testing.T) {
	silent, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	closed, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.LocalAddr().(*net.UDPAddr).Port
	closed.Close()

	const timeout = 1500 * time.Millisecond
	for _, tt := range []struct {
		name string
		port int
		min  time.Duration
	}{
		{"silent", silent.LocalAddr().(*net.UDPAddr).Port, timeout - 100*time.Millisecond},
		{"closed port", closedPort, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := New(Config{Host: "127.0.0.1", Port: tt.port, Username: "monitor", Password: "pw", Timeout: timeout}, collectors.Deps{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			start := time.Now()
			_, err = poll(context.Background(), t, c)
			d := time.Since(start)
			if err == nil {
				t.Fatal("poll of an unreachable BMC succeeded")
			}
			if !strings.Contains(err.Error(), fmt.Sprintf("127.0.0.1:%d", tt.port)) {
				t.Errorf("error %q does not name the BMC", err)
			}
			if errors.Is(err, ErrAuth) {
				t.Errorf("error %q claims a refused login", err)
			}
			if d < tt.min || d > timeout+500*time.Millisecond {
				t.Errorf("poll took %s, want between %s and %s", d, tt.min, timeout+500*time.Millisecond)
			}
		})
	}
}

func newTestLogger(w *syncBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
