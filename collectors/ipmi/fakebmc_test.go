package ipmi

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bougou/go-ipmi/pkg/bmc"
	"github.com/bougou/go-ipmi/pkg/clock"
	"github.com/bougou/go-ipmi/pkg/hal/mock"
	"github.com/bougou/go-ipmi/pkg/handlers"
	"github.com/bougou/go-ipmi/pkg/server"
	"github.com/bougou/go-ipmi/pkg/transport/udp"
	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/greenloop/greenloop/collectors"
)

// fakeBMC is go-ipmi's in-process reference BMC (RMCP+, SDR repository,
// users and privileges, cipher suites 3 and 17) with the Get Sensor
// Reading, Get Sensor Reading Factors and DCMI answers a test chooses: the
// states ipmi_sim cannot produce.
type fakeBMC struct {
	port int
	hal  *mock.HAL

	mu       sync.Mutex
	readings map[uint8][]byte               // Get Sensor Reading response data by sensor number
	codes    map[uint8]types.CompletionCode // or an error completion code
	factors  map[uint8][]byte               // Get Sensor Reading Factors response data
	dcmi     []byte                         // DCMI Get Power Reading data; nil: command not supported
	dcmiAsks atomic.Int32
}

// Accounts of the fake BMC: one limited to User, one Administrator.
const (
	fakeUser, fakeUserPass   = "reader", "readpass"
	fakeAdmin, fakeAdminPass = "root", "rootpass"
)

func startFakeBMC(t *testing.T, specs []sdrSpec, opts ...bmc.Option) *fakeBMC {
	return startFakeBMCB(t, specs, opts...)
}

// startFakeBMCB starts the fake BMC for a test or a benchmark.
func startFakeBMCB(t testing.TB, specs []sdrSpec, opts ...bmc.Option) *fakeBMC {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h := mock.New()
	for i, s := range specs {
		if err := h.Storage().SDR().Write(ctx, uint16(i+1), s.record(uint16(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	b := bmc.New(bmc.DeviceInfo{DeviceID: 32, IPMIVersion: 0x20}, [16]byte{1}, h, append([]bmc.Option{bmc.WithClock(clock.Real)}, opts...)...)
	for _, u := range []struct {
		id         uint8
		name, pass string
		priv       bmc.PrivilegeLevel
	}{{2, fakeAdmin, fakeAdminPass, bmc.PrivilegeLevelAdministrator}, {3, fakeUser, fakeUserPass, bmc.PrivilegeLevelUser}} {
		if _, err := b.Users.Add(u.id, u.name); err != nil {
			t.Fatal(err)
		}
		err := b.Users.Update(u.id, func(usr *bmc.User) error {
			usr.SetPassword([]byte(u.pass))
			usr.Enabled = true
			usr.ChannelAccess[1] = bmc.UserChannelAccess{MaxPrivilege: u.priv, Enabled: true}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	f := &fakeBMC{hal: h, readings: map[uint8][]byte{}, codes: map[uint8]types.CompletionCode{}, factors: map[uint8][]byte{}}
	reg := handlers.NewRegistry()
	handlers.RegisterAllHandlers(reg)
	reg.RegisterFunc(types.CommandGetSensorReading, func(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if len(req) < 1 {
			return nil, types.CodeRequestDataLengthInvalid, nil
		}
		if cc, ok := f.codes[req[0]]; ok {
			return nil, cc, nil
		}
		if r, ok := f.readings[req[0]]; ok {
			return r, types.CodeOK, nil
		}
		return nil, types.CodeRequestedDataNotPresent, nil
	})
	reg.RegisterFunc(types.CommandGetSensorReadingFactors, func(_ context.Context, _ *handlers.HandlerContext, req []byte) ([]byte, types.CompletionCode, error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		if r, ok := f.factors[req[0]]; ok {
			return r, types.CodeOK, nil
		}
		return nil, types.CodeInvalidCommand, nil
	})
	reg.RegisterFunc(types.CommandGetDCMIPowerReading, func(_ context.Context, _ *handlers.HandlerContext, _ []byte) ([]byte, types.CompletionCode, error) {
		f.dcmiAsks.Add(1)
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.dcmi == nil {
			return nil, types.CodeInvalidCommand, nil
		}
		return f.dcmi, types.CodeOK, nil
	})
	conn, err := udp.Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.port = conn.LocalAddr().(*net.UDPAddr).Port
	srv := server.NewServer(b, conn, server.WithHandlerRegistry(reg))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		_ = srv.Close()
		<-done
	})
	return f
}

// dcmiData is a DCMI Get Power Reading response body.
func dcmiData(cur, minW, maxW, avg uint16, periodMs uint32, active bool) []byte {
	d := make([]byte, 18)
	d[0] = 0xdc
	binary.LittleEndian.PutUint16(d[1:], cur)
	binary.LittleEndian.PutUint16(d[3:], minW)
	binary.LittleEndian.PutUint16(d[5:], maxW)
	binary.LittleEndian.PutUint16(d[7:], avg)
	binary.LittleEndian.PutUint32(d[9:], 1763800000)
	binary.LittleEndian.PutUint32(d[13:], periodMs)
	if active {
		d[17] = 0x40
	}
	return d
}

// TestFakeBMC covers what a real BMC may answer and ipmi_sim cannot:
// readings flagged unavailable, error completion codes per sensor, a
// non-linear sensor, DCMI unsupported or inactive, an account limited to
// the User privilege, and the default cipher suite 17.
func TestFakeBMC(t *testing.T) {
	temp := func(num uint8, name string) sdrSpec {
		return sdrSpec{num: num, name: name, stype: 0x01, evtype: 0x01, entity: 7, inst: 1, base: 1, m: 1}
	}
	specs := []sdrSpec{
		temp(1, "CPU Temp"),
		temp(2, "Unavailable Temp"),
		temp(3, "Unscanned Temp"),
		temp(4, "Absent Temp"),
		temp(5, "Illegal Temp"),
		{num: 6, name: "NL Power", stype: 0x0b, evtype: 0x01, entity: 10, inst: 1, base: 6, m: 1, lin: 0x70},
		temp(7, "Zero Temp"),
	}
	f := startFakeBMC(t, specs)
	f.mu.Lock()
	f.readings[1] = []byte{45, 0xc0, 0x00}         // events and scanning on
	f.readings[2] = []byte{0, 0xe0, 0x00}          // reading unavailable (bit 5)
	f.readings[3] = []byte{0, 0x80, 0x00}          // scanning disabled (bit 6 clear)
	f.codes[4] = types.CodeRequestedDataNotPresent // CBh
	f.codes[5] = types.CodeIllegalCommand          // go-ipmi's GetSensors would report 0 here
	f.readings[6] = []byte{100, 0xc0, 0x00}
	// Factors for reading 100: M = 3, B = 20, R = 0: 320 W.
	f.factors[6] = []byte{101, 3, 0, 20, 0, 0, 0x00}
	f.readings[7] = []byte{0, 0xc0, 0x00} // a real 0 °C stays
	f.mu.Unlock()

	logs := &syncBuffer{}
	c, err := New(Config{Host: "127.0.0.1", Port: f.port, Username: fakeUser, Password: fakeUserPass, Timeout: 5 * time.Second}, testDeps(logs))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()

	want := map[string]float64{
		seriesKey(collectors.MetricTemperature, "", "CPU Temp"):     45,
		seriesKey(collectors.MetricTemperature, "", "Zero Temp"):    0,
		seriesKey(collectors.MetricPower, componentPSU, "NL Power"): 320,
	}
	for i := range 2 {
		got, err := poll(ctx, t, c)
		if err != nil {
			t.Fatalf("poll %d: %v\n%s", i, err, logs)
		}
		if d := diffSeries(got, want); d != "" {
			t.Fatalf("poll %d:\n%s", i, d)
		}
	}
	if n := f.dcmiAsks.Load(); n != 1 {
		t.Errorf("DCMI asked %d times over 2 polls, want once per session after the BMC said it has no DCMI", n)
	}
	if !strings.Contains(logs.String(), "privilege=USER") || strings.Count(logs.String(), "privilege level refused") != 2 {
		t.Errorf("want the session opened as USER after ADMINISTRATOR and OPERATOR were refused; logs:\n%s", logs)
	}

	t.Run("DCMI", func(t *testing.T) {
		f.mu.Lock()
		f.dcmi = dcmiData(412, 392, 442, 405, 5000, true)
		f.mu.Unlock()
		// A new session asks DCMI again.
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		got, err := poll(ctx, t, c)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]float64{
			seriesKey(collectors.MetricPower, componentChassis, sensorDCMI):   412,
			seriesKey(MetricDCMIPowerMin, componentChassis, sensorDCMI):       392,
			seriesKey(MetricDCMIPowerMax, componentChassis, sensorDCMI):       442,
			seriesKey(MetricDCMIPowerAverage, componentChassis, sensorDCMI):   405,
			seriesKey(MetricDCMISamplingPeriod, componentChassis, sensorDCMI): 5,
		}
		for k, v := range got {
			if strings.Contains(k, sensorDCMI) && want[k] != v {
				t.Errorf("%s = %v, want %v", k, v, want[k])
			}
		}
		for k := range want {
			if _, ok := got[k]; !ok {
				t.Errorf("missing %s", k)
			}
		}
		// Reconnecting starts at the privilege that worked.
		if n := strings.Count(logs.String(), "privilege level refused"); n != 2 {
			t.Errorf("privilege refused %d times in all, want 2 (not retried on reconnect)", n)
		}
	})

	t.Run("DCMI inactive", func(t *testing.T) {
		f.mu.Lock()
		f.dcmi = dcmiData(0, 0, 0, 0, 0, false)
		f.mu.Unlock()
		got, err := poll(ctx, t, c)
		if err != nil {
			t.Fatal(err)
		}
		for k := range got {
			if strings.Contains(k, sensorDCMI) {
				t.Errorf("inactive DCMI reading emitted %s", k)
			}
		}
	})

	t.Run("unknown user", func(t *testing.T) {
		uc, err := New(Config{Host: "127.0.0.1", Port: f.port, Username: "nobody", Password: "x", Timeout: 3 * time.Second}, collectors.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		defer uc.Close()
		_, err = poll(ctx, t, uc)
		if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), `user "nobody" with cipher suite 17 (wrong user name or password)`) {
			t.Fatalf("err = %v, want ErrAuth for an unknown user", err)
		}
	})

	t.Run("no readings", func(t *testing.T) {
		g := startFakeBMC(t, []sdrSpec{temp(1, "Gone")})
		g.mu.Lock()
		g.codes[1] = types.CodeRequestedDataNotPresent
		g.mu.Unlock()
		nc, err := New(Config{Host: "127.0.0.1", Port: g.port, Username: fakeAdmin, Password: fakeAdminPass, Timeout: 5 * time.Second}, collectors.Deps{})
		if err != nil {
			t.Fatal(err)
		}
		defer nc.Close()
		if _, err := poll(ctx, t, nc); !errors.Is(err, collectors.ErrNoData) {
			t.Fatalf("err = %v, want ErrNoData", err)
		}
	})

	t.Run("SDR repository change", func(t *testing.T) {
		// go-ipmi's BMC reports the current time as the repository's last
		// addition: the collector learns that the timestamps say nothing
		// and reads the repository again only when it changes.
		reads := func() int { return strings.Count(logs.String(), "SDR repository read") }
		for range 2 {
			if _, err := poll(ctx, t, c); err != nil {
				t.Fatal(err)
			}
			time.Sleep(1100 * time.Millisecond) // the timestamps have a 1 s resolution
		}
		before := reads()
		if _, err := poll(ctx, t, c); err != nil {
			t.Fatal(err)
		}
		if n := reads(); n != before {
			t.Fatalf("SDR repository read again without a change (%d → %d):\n%s", before, n, logs)
		}
		if !strings.Contains(logs.String(), "timestamps move without changes") {
			t.Fatalf("the moving timestamps were not noticed:\n%s", logs)
		}
		added := temp(8, "New Temp")
		if err := f.hal.Storage().SDR().Write(ctx, 8, added.record(8)); err != nil {
			t.Fatal(err)
		}
		f.mu.Lock()
		f.readings[8] = []byte{33, 0xc0, 0x00}
		f.mu.Unlock()
		got, err := poll(ctx, t, c)
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := got[seriesKey(collectors.MetricTemperature, "", "New Temp")]; !ok || v != 33 || reads() != before+1 {
			t.Fatalf("after adding a sensor: New Temp = %v (present %v), repository reads %d → %d", v, ok, before, reads())
		}
	})
}
