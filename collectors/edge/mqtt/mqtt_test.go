package mqtt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenloop/greenloop/collectors"
)

var t0 = time.Date(2026, 11, 22, 15, 0, 0, 0, time.UTC)

// clock is a settable clock for Deps.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// syncBuffer is a log sink safe for paho's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

// collected is one Collect's readings keyed "metric{sensor}".
type collected struct {
	byKey map[string]collectors.Reading
	err   error
}

func (c collected) value(metric, sensor string) (float64, bool) {
	r, ok := c.byKey[metric+"{"+sensor+"}"]
	return r.Value, ok
}

func (c collected) keys() []string {
	ks := make([]string, 0, len(c.byKey))
	for k := range c.byKey {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func collectOnce(t *testing.T, c *Collector) collected {
	t.Helper()
	out := collected{byKey: map[string]collectors.Reading{}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out.err = c.Collect(ctx, collectors.EmitterFunc(func(r collectors.Reading) {
		var sensor string
		for _, l := range r.Labels {
			if l.Name == collectors.LabelSensor {
				sensor = l.Value
			}
		}
		k := r.Metric + "{" + sensor + "}"
		if _, dup := out.byKey[k]; dup {
			t.Errorf("reading %s emitted twice", k)
		}
		out.byKey[k] = r
	}))
	return out
}

// waitFor collects until ok holds, or fails after 10 s.
func waitFor(t *testing.T, c *Collector, what string, ok func(collected) bool) collected {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := collectOnce(t, c)
		if ok(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; last collection: %v, err %v", what, got.keys(), got.err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// hasValue is a waitFor condition: the series has exactly this value.
func hasValue(metric, sensor string, want float64) func(collected) bool {
	return func(c collected) bool {
		v, ok := c.value(metric, sensor)
		return ok && near(v, want)
	}
}

func newTestCollector(t *testing.T, cfg Config, clk *clock, logs *syncBuffer) *Collector {
	t.Helper()
	deps := collectors.Deps{Now: clk.Now}
	if logs != nil {
		deps.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}
	if cfg.MaxReconnectInterval == 0 {
		cfg.MaxReconnectInterval = time.Second
	}
	c, err := New(cfg, deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitSubscribed waits for the collector's first subscription: messages
// published before it are not delivered to it.
func waitSubscribed(t *testing.T, c *Collector) {
	t.Helper()
	select {
	case <-c.subscribed:
	case <-time.After(10 * time.Second):
		t.Fatal("collector did not subscribe within 10s")
	}
}

func TestTasmotaFromBroker(t *testing.T) {
	b := startBroker(t)
	clk := &clock{t: t0}
	c := newTestCollector(t, Config{Broker: b.url("tcp"), Format: FormatTasmota, StaleAfter: 5 * time.Minute}, clk, nil)
	waitSubscribed(t, c)
	// Nothing received yet: no data, but connected.
	if got := collectOnce(t, c); !errors.Is(got.err, collectors.ErrNoData) || len(got.byKey) != 0 {
		t.Fatalf("before any message: %v, err %v; want no readings and ErrNoData", got.keys(), got.err)
	}
	pub := newPublisher(t, b, nil)
	pub.publish("tele/plug-rack42/SENSOR", readFixture(t, "tasmota/pow-single.json"))
	pub.publish("tele/sw25/SENSOR", readFixture(t, "tasmota/dual-channel.json"))
	pub.publish("tele/ds18/SENSOR", readFixture(t, "tasmota/no-energy.json"))
	got := waitFor(t, c, "the three devices", func(c collected) bool {
		_, a := c.value(mP, "plug-rack42")
		_, b := c.value(mP, "sw25/ch2")
		_, d := c.value(mT, "ds18/DS18B20")
		return a && b && d
	})
	if got.err != nil {
		t.Errorf("Collect: %v", got.err)
	}
	want := map[string]float64{
		mP + "{plug-rack42}": 42, mVA + "{plug-rack42}": 45, mPF + "{plug-rack42}": 0.93,
		mV + "{plug-rack42}": 231, mA + "{plug-rack42}": 0.19, mJ + "{plug-rack42}": 44442000,
		mJ + "{sw25}":     11556000,
		mP + "{sw25/ch1}": 25, mVA + "{sw25/ch1}": 30, mPF + "{sw25/ch1}": 0.83, mV + "{sw25/ch1}": 229, mA + "{sw25/ch1}": 0.131,
		mP + "{sw25/ch2}": 0, mVA + "{sw25/ch2}": 0, mPF + "{sw25/ch2}": 0, mV + "{sw25/ch2}": 229, mA + "{sw25/ch2}": 0,
		mT + "{sw25/ANALOG}": 41.2, mT + "{ds18/DS18B20}": 21.4,
	}
	if len(got.byKey) != len(want) {
		t.Errorf("readings %v, want %d", got.keys(), len(want))
	}
	for k, v := range want {
		r, ok := got.byKey[k]
		if !ok || !near(r.Value, v) {
			t.Errorf("%s = %v (present %v), want %v", k, r.Value, ok, v)
			continue
		}
		if !r.Time.Equal(t0) {
			t.Errorf("%s time %v, want the receive time %v", k, r.Time, t0)
		}
	}
	if s := got.byKey[mT+"{ds18/DS18B20}"].String(); s != `greenloop_temperature_celsius{source="mqtt",sensor="ds18/DS18B20"} 21.4` {
		t.Errorf("reading %s", s)
	}
	r := got.byKey[mJ+"{plug-rack42}"]
	if s := r.String(); s != `greenloop_energy_joules_total{source="mqtt",component="outlet",sensor="plug-rack42"} 4.4442e+07` {
		t.Errorf("reading %s", s)
	}

	// The plug is reset (Total back to 0.010 kWh), then counts on: the
	// counter carries on from the 44442000 J it emitted.
	clk.Set(t0.Add(time.Minute))
	pub.publish("tele/plug-rack42/SENSOR", []byte(`{"ENERGY":{"Total":0.010,"Power":40}}`))
	got = waitFor(t, c, "energy after the reset", hasValue(mJ, "plug-rack42", 44442000+36000))
	if v, _ := got.value(mV, "plug-rack42"); v != 231 {
		t.Errorf("voltage kept from the first message = %v, want 231", v)
	}
	if r := got.byKey[mJ+"{plug-rack42}"]; !r.Time.Equal(t0.Add(time.Minute)) {
		t.Errorf("energy time %v, want %v", r.Time, t0.Add(time.Minute))
	}
	pub.publish("tele/plug-rack42/SENSOR", []byte(`{"ENERGY":{"Total":0.020,"Power":40}}`))
	waitFor(t, c, "energy after the reset, counting", hasValue(mJ, "plug-rack42", 44442000+72000))

	// 5m30s after t0 the first messages' values are stale, sw25 is silent
	// and only plug-rack42's values received at t0+1m are emitted.
	clk.Set(t0.Add(5*time.Minute + 30*time.Second))
	got = collectOnce(t, c)
	for _, k := range got.keys() {
		if !strings.HasPrefix(k, mJ+"{plug-rack42}") && !strings.HasPrefix(k, mP+"{plug-rack42}") {
			t.Errorf("stale reading %s emitted", k)
		}
	}
	if len(got.byKey) != 2 {
		t.Errorf("after 5m30s: %v, want the power and energy of plug-rack42 received at t0+1m", got.keys())
	}
	clk.Set(t0.Add(20 * time.Minute))
	if got = collectOnce(t, c); len(got.byKey) != 0 || !errors.Is(got.err, collectors.ErrNoData) {
		t.Errorf("after 20 min: %v, err %v; want nothing (all stale)", got.keys(), got.err)
	}
}

func TestShellyFromBroker(t *testing.T) {
	b := startBroker(t)
	clk := &clock{t: t0}
	c := newTestCollector(t, Config{Broker: b.url("mqtt"), Format: FormatShelly}, clk, nil)
	waitSubscribed(t, c)
	pub := newPublisher(t, b, nil)
	const dev = "shellyplus1pm-a8032ab12345"
	pub.publish(dev+"/status/switch:0", readFixture(t, "shelly/switch0.json"))
	got := waitFor(t, c, "switch status", hasValue(mJ, dev+"/switch:0", 2345.678*3600))
	for m, v := range map[string]float64{mP: 118.3, mV: 230.4, mA: 0.556, mPF: 0.92, mT: 38.4} {
		if g, ok := got.value(m, dev+"/switch:0"); !ok || !near(g, v) {
			t.Errorf("%s = %v (present %v), want %v", m, g, ok, v)
		}
	}
	// A NotifyStatus with only power and current changes those two.
	clk.Set(t0.Add(10 * time.Second))
	pub.publish(dev+"/events/rpc", readFixture(t, "shelly/notifystatus-power.json"))
	got = waitFor(t, c, "NotifyStatus power", hasValue(mP, dev+"/switch:0", 90.2))
	if v, _ := got.value(mA, dev+"/switch:0"); !near(v, 0.402) {
		t.Errorf("current = %v, want 0.402", v)
	}
	if v, _ := got.value(mV, dev+"/switch:0"); !near(v, 230.4) {
		t.Errorf("voltage = %v, want 230.4 kept from the status", v)
	}
	if r := got.byKey[mV+"{"+dev+"/switch:0}"]; !r.Time.Equal(t0) {
		t.Errorf("voltage time %v, want %v (when it was received)", r.Time, t0)
	}
	// The device rebooted and its aenergy.total restarted at 812.5 Wh: the
	// counter goes on from 2345.678 Wh.
	pub.publish(dev+"/events/rpc", readFixture(t, "shelly/notifystatus-energy.json"))
	waitFor(t, c, "energy after the reboot", hasValue(mJ, dev+"/switch:0", (2345.678+812.5)*3600))

	// A Pro 3EM's full status: three phases and the total.
	const em = "shellypro3em-c8f09e8812ab"
	pub.publish(em+"/events/rpc", readFixture(t, "shelly/pro3em-fullstatus.json"))
	got = waitFor(t, c, "Pro 3EM", hasValue(mJ, em+"/em:0", 6311.34*3600))
	if v, _ := got.value(mP, em+"/em:0/b"); v != -951.1 {
		t.Errorf("phase b power = %v, want -951.1 (returned to the grid)", v)
	}
	for _, r := range got.byKey {
		if strings.Contains(r.String(), em+"/em:0/") && !strings.Contains(r.String(), `component="phase"`) {
			t.Errorf("phase reading without component phase: %s", r)
		}
	}
	if got.err != nil {
		t.Errorf("Collect: %v", got.err)
	}
}

func TestMalformedPayload(t *testing.T) {
	b := startBroker(t)
	clk := &clock{t: t0}
	logs := &syncBuffer{}
	c := newTestCollector(t, Config{Broker: b.url("tcp"), Format: FormatTasmota}, clk, logs)
	waitSubscribed(t, c)
	pub := newPublisher(t, b, nil)
	pub.publish("tele/bad/SENSOR", []byte(`{"ENERGY":{"Power":`))
	pub.publish("tele/bad/SENSOR", []byte(`{"ENERGY":{"Power":"many"}}`))
	pub.publish("tele/good/SENSOR", readFixture(t, "tasmota/pow-single.json"))
	// The errors are reported by whichever Collect runs after the payloads
	// arrived, and then cleared: keep those of every attempt.
	var seen []error
	got := waitFor(t, c, "the good plug", func(c collected) bool {
		if c.err != nil {
			seen = append(seen, c.err)
		}
		return hasValue(mP, "good", 42)(c)
	})
	err := errors.Join(seen...)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), `topic "tele/bad/SENSOR" (`) {
		t.Fatalf("Collect errors = %v; want ErrMalformed naming tele/bad/SENSOR", err)
	}
	if n := c.Malformed(); n != 2 {
		t.Errorf("Malformed() = %d, want 2", n)
	}
	for _, k := range got.keys() {
		if strings.Contains(k, "{bad}") {
			t.Errorf("reading from the malformed topic: %s", k)
		}
	}
	// The error is reported once; the good plug goes on.
	if got = collectOnce(t, c); got.err != nil || len(got.byKey) != 6 {
		t.Errorf("next Collect: %v, err %v; want the 6 readings of the good plug and no error", got.keys(), got.err)
	}
	// Logged once within LogEvery, the second line held back.
	if n := strings.Count(logs.String(), `msg="mqtt: malformed payload"`); n != 1 {
		t.Errorf("malformed payload logged %d times, want 1 (throttled):\n%s", n, logs)
	}
}

func TestBrokerRestart(t *testing.T) {
	b := startBroker(t)
	clk := &clock{t: t0}
	c := newTestCollector(t, Config{Broker: b.url("tcp"), Format: FormatTasmota}, clk, nil)
	waitSubscribed(t, c)
	pub := newPublisher(t, b, nil)
	pub.publish("tele/p1/SENSOR", []byte(`{"ENERGY":{"Total":1.0,"Power":10}}`))
	waitFor(t, c, "first message", hasValue(mP, "p1", 10))

	b.stop()
	got := waitFor(t, c, "the connection loss", func(c collected) bool { return errors.Is(c.err, ErrNotConnected) })
	if v, ok := got.value(mP, "p1"); !ok || v != 10 {
		t.Errorf("while disconnected, the last reading (fresh) should still be emitted: %v", got.keys())
	}
	b.start()
	// Reconnected and subscribed again (a clean session: the broker forgot
	// the subscription), so a message published now arrives.
	waitFor(t, c, "reconnection", func(c collected) bool { return c.err == nil })
	pub.publish("tele/p1/SENSOR", []byte(`{"ENERGY":{"Total":1.5,"Power":20}}`))
	waitFor(t, c, "message after the restart", hasValue(mP, "p1", 20))
	got = collectOnce(t, c)
	if v, _ := got.value(mJ, "p1"); v != 1.5*3.6e6 {
		t.Errorf("energy %v, want %v", v, 1.5*3.6e6)
	}
}

func TestBrokerDown(t *testing.T) {
	port := freePort(t)
	clk := &clock{t: t0}
	c := newTestCollector(t, Config{Broker: fmt.Sprintf("tcp://127.0.0.1:%d", port), Format: FormatShelly,
		FirstWait: 200 * time.Millisecond, ConnectTimeout: 500 * time.Millisecond}, clk, nil)
	got := collectOnce(t, c)
	if !errors.Is(got.err, ErrNotConnected) || len(got.byKey) != 0 {
		t.Fatalf("broker down: %v, err %v; want ErrNotConnected", got.keys(), got.err)
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v", d)
	}
	if err := c.Collect(context.Background(), collectors.EmitterFunc(func(collectors.Reading) {})); !errors.Is(err, ErrClosed) {
		t.Errorf("Collect after Close: %v, want ErrClosed", err)
	}
}

func TestNewRejects(t *testing.T) {
	f := func(cfg Config, want string) {
		t.Helper()
		c, err := New(cfg, collectors.Deps{})
		if err == nil {
			c.Close()
			t.Fatalf("New(%+v) accepted", cfg)
		}
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New(%+v): %v; want it to mention %q", cfg, err, want)
		}
		if cfg.Password != "" && strings.Contains(err.Error(), cfg.Password) {
			t.Errorf("error shows the password: %v", err)
		}
	}
	f(Config{Broker: "tcp://127.0.0.1:1883", Format: "zigbee"}, `format "zigbee"`)
	f(Config{Format: FormatTasmota}, "no broker")
	f(Config{Broker: "http://127.0.0.1:1883", Format: FormatTasmota}, "scheme")
	f(Config{Broker: "tcp://", Format: FormatTasmota}, "no host")
	f(Config{Broker: "tcp://u:pw-secret@127.0.0.1:1883", Format: FormatTasmota, Password: "pw-secret"}, "must not carry credentials")
	f(Config{Broker: "tcp://127.0.0.1:1883", Format: FormatTasmota, Topics: []string{"tele/#/SENSOR"}}, "# must be")
	f(Config{Broker: "tcp://127.0.0.1:1883", Format: FormatTasmota, Topics: []string{"tele/a+/SENSOR", ""}}, "+ must be")
	f(Config{Broker: "ssl://127.0.0.1:8883", Format: FormatTasmota, CAFile: "/nonexistent/ca.pem"}, "CA file")
}

func TestSplitTopics(t *testing.T) {
	got := splitTopics(" +/status/+ , +/events/rpc,,")
	if len(got) != 2 || got[0] != "+/status/+" || got[1] != "+/events/rpc" {
		t.Errorf("splitTopics = %q", got)
	}
	if got := splitTopics(""); got != nil {
		t.Errorf("splitTopics(\"\") = %q, want nil (defaults)", got)
	}
}
