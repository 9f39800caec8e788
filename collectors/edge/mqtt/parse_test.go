package mqtt

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// flat is a parse result as sensor → metric → value, plus each sensor's component.
type flat struct {
	values     map[string]map[string]float64
	components map[string]string
}

func flatten(t *testing.T, us []update) flat {
	t.Helper()
	f := flat{values: map[string]map[string]float64{}, components: map[string]string{}}
	for _, u := range us {
		if f.values[u.sensor] == nil {
			f.values[u.sensor] = map[string]float64{}
		}
		if c, ok := f.components[u.sensor]; ok && c != u.component {
			t.Fatalf("sensor %s has components %q and %q", u.sensor, c, u.component)
		}
		f.components[u.sensor] = u.component
		for fl := field(0); fl < numFields; fl++ {
			if u.has[fl] {
				f.values[u.sensor][fl.metric()] = u.values[fl]
			}
		}
	}
	return f
}

func readFixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func near(a, b float64) bool {
	return math.Abs(a-b) <= 1e-9*math.Max(1, math.Abs(b))
}

// Metric names, short.
const (
	mP  = "greenloop_power_watts"
	mVA = "greenloop_apparent_power_voltamperes"
	mPF = "greenloop_power_factor_ratio"
	mV  = "greenloop_voltage_volts"
	mA  = "greenloop_current_amperes"
	mT  = "greenloop_temperature_celsius"
	mJ  = "greenloop_energy_joules_total"
	mH  = "greenloop_humidity_ratio"
)

type sensorWant struct {
	component string
	values    map[string]float64
}

func TestParse(t *testing.T) {
	f := func(format, topic, fixture string, want map[string]sensorWant) {
		t.Helper()
		payload := []byte(fixture)
		if strings.HasSuffix(fixture, ".json") {
			payload = readFixture(t, fixture)
		}
		us, err := parse(format, topic, payload)
		if err != nil {
			t.Fatalf("%s %s: %v", topic, fixture, err)
		}
		got := flatten(t, us)
		if len(got.values) != len(want) {
			t.Errorf("%s %s: sensors %v, want %d: %v", topic, fixture, got.values, len(want), want)
		}
		for s, w := range want {
			g, ok := got.values[s]
			if !ok {
				t.Errorf("%s %s: no sensor %q (got %v)", topic, fixture, s, got.values)
				continue
			}
			if got.components[s] != w.component {
				t.Errorf("%s: component %q, want %q", s, got.components[s], w.component)
			}
			if len(g) != len(w.values) {
				t.Errorf("%s: values %v, want %v", s, g, w.values)
			}
			for m, v := range w.values {
				if gv, ok := g[m]; !ok || !near(gv, v) {
					t.Errorf("%s %s = %v (present %v), want %v", s, m, gv, ok, v)
				}
			}
		}
	}

	f(FormatTasmota, "tele/plug-rack42/SENSOR", "tasmota/pow-single.json", map[string]sensorWant{
		"plug-rack42": {ComponentOutlet, map[string]float64{mP: 42, mVA: 45, mPF: 0.93, mV: 231, mA: 0.19, mJ: 12.345 * 3.6e6}},
	})
	// FullTopic %topic%/%prefix%/ gives the same device name.
	f(FormatTasmota, "plug-rack42/tele/SENSOR", "tasmota/pow-single.json", map[string]sensorWant{
		"plug-rack42": {ComponentOutlet, map[string]float64{mP: 42, mVA: 45, mPF: 0.93, mV: 231, mA: 0.19, mJ: 44442000}},
	})
	f(FormatTasmota, "tele/sw25/SENSOR", "tasmota/dual-channel.json", map[string]sensorWant{
		"sw25":     {ComponentOutlet, map[string]float64{mJ: 3.21 * 3.6e6}},
		"sw25/ch1": {ComponentOutlet, map[string]float64{mP: 25, mVA: 30, mPF: 0.83, mV: 229, mA: 0.131}},
		"sw25/ch2": {ComponentOutlet, map[string]float64{mP: 0, mVA: 0, mPF: 0, mV: 229, mA: 0}},
		// The Shelly 2.5's NTC, as Tasmota reports it.
		"sw25/ANALOG": {"", map[string]float64{mT: 41.2}},
	})
	f(FormatTasmota, "stat/plug2/STATUS10", "tasmota/status10.json", map[string]sensorWant{
		"plug2": {ComponentOutlet, map[string]float64{mP: 1800, mVA: 1812, mPF: 0.99, mV: 228, mA: 7.947, mJ: 376200000}},
	})
	f(FormatTasmota, "tele/ds/SENSOR", "tasmota/no-energy.json", map[string]sensorWant{
		"ds/DS18B20": {"", map[string]float64{mT: 21.4}},
	})
	// Fahrenheit, humidity, the MCU's own temperature left out, a failing
	// probe skipped without hiding the others or the energy readings.
	f(FormatTasmota, "tele/rack7/SENSOR", `{"Time":"2026-11-22T15:00:00","ESP32":{"Temperature":51.1},`+
		`"AM2301":{"Temperature":77.0,"Humidity":40.5,"DewPoint":51.3},"DS18B20":{"Temperature":"err"},`+
		`"SHT3X":{"Temperature":68.0,"Humidity":140},"ENERGY":{"Power":5},"TempUnit":"F"}`, map[string]sensorWant{
		"rack7":        {ComponentOutlet, map[string]float64{mP: 5}},
		"rack7/AM2301": {"", map[string]float64{mT: 25, mH: 0.405}},
		"rack7/SHT3X":  {"", map[string]float64{mT: 20}},
	})
	f(FormatTasmota, "stat/rack7/STATUS10", `{"StatusSNS":{"DS18B20-1":{"Id":"0316A27913FF","Temperature":-3.5},"TempUnit":"C"}}`, map[string]sensorWant{
		"rack7/DS18B20-1": {"", map[string]float64{mT: -3.5}},
	})
	f(FormatTasmota, "tele/perch/SENSOR", `{"ENERGY":{"Total":[1.5,2.25],"Power":[10,20]}}`, map[string]sensorWant{
		"perch/ch1": {ComponentOutlet, map[string]float64{mP: 10, mJ: 5.4e6}},
		"perch/ch2": {ComponentOutlet, map[string]float64{mP: 20, mJ: 8.1e6}},
	})

	f(FormatShelly, "shellyplusplugs-e86beae1b8a0/status/switch:0", "shelly/switch0.json", map[string]sensorWant{
		"shellyplusplugs-e86beae1b8a0/switch:0": {ComponentOutlet, map[string]float64{
			mP: 118.3, mV: 230.4, mA: 0.556, mPF: 0.92, mJ: 2345.678 * 3600, mT: 38.4}},
	})
	f(FormatShelly, "pm/shellypmminig3-1/status/pm1:0", "shelly/pm1.json", map[string]sensorWant{
		"pm/shellypmminig3-1/pm1:0": {ComponentOutlet, map[string]float64{
			mP: 265.1, mVA: 286.1, mV: 229.8, mA: 1.245, mPF: 0.93, mJ: 18044280}},
	})
	f(FormatShelly, "shellyplus1pm-a8032ab12345/events/rpc", "shelly/notifystatus-energy.json", map[string]sensorWant{
		"shellyplus1pm-a8032ab12345/switch:0": {ComponentOutlet, map[string]float64{mJ: 2925000}},
	})
	f(FormatShelly, "shellyplus1pm-a8032ab12345/events/rpc", "shelly/notifystatus-power.json", map[string]sensorWant{
		"shellyplus1pm-a8032ab12345/switch:0": {ComponentOutlet, map[string]float64{mP: 90.2, mA: 0.402}},
	})
	f(FormatShelly, "shellyplus1pm-a8032ab12345/events/rpc", "shelly/notifyevent.json", nil)
	f(FormatShelly, "shellypro3em-c8f09e8812ab/events/rpc", "shelly/pro3em-fullstatus.json", map[string]sensorWant{
		"shellypro3em-c8f09e8812ab/em:0/a":        {ComponentPhase, map[string]float64{mA: 4.029, mV: 236.1, mP: 951.2, mVA: 951.9, mPF: 1, mJ: 2776.21 * 3600}},
		"shellypro3em-c8f09e8812ab/em:0/b":        {ComponentPhase, map[string]float64{mA: 4.027, mV: 236.2, mP: -951.1, mVA: 951.6, mPF: 1, mJ: 3675960}},
		"shellypro3em-c8f09e8812ab/em:0/c":        {ComponentPhase, map[string]float64{mA: 3.03, mV: 236.3, mP: 715.4, mVA: 715.9, mPF: 1, mJ: 9050508}},
		"shellypro3em-c8f09e8812ab/em:0":          {ComponentBranch, map[string]float64{mA: 11.086, mP: 715.5, mVA: 2619.4, mJ: 22720824}},
		"shellypro3em-c8f09e8812ab/temperature:0": {"", map[string]float64{mT: 44.9}},
	})
	f(FormatShelly, "shellyplus1-aa/events/rpc", `{"method":"NotifyStatus","params":{"ts":1.5,`+
		`"temperature:100":{"id":100,"tC":21.5,"tF":70.7},"humidity:100":{"id":100,"rh":45.2}}}`, map[string]sensorWant{
		"shellyplus1-aa/temperature:100": {"", map[string]float64{mT: 21.5}},
		"shellyplus1-aa/humidity:100":    {"", map[string]float64{mH: 0.452}},
	})
	f(FormatShelly, "shellyproem50-0cb815fc11aa/status/em1:1", "shelly/em1.json", map[string]sensorWant{
		"shellyproem50-0cb815fc11aa/em1:1": {ComponentBranch, map[string]float64{mA: 2.598, mV: 234.9, mP: 501.8, mVA: 612.4, mPF: 0.84}},
	})
	f(FormatShelly, "shellyproem50-0cb815fc11aa/status/em1data:1", "shelly/em1data.json", map[string]sensorWant{
		"shellyproem50-0cb815fc11aa/em1:1": {ComponentBranch, map[string]float64{mJ: 54074700}},
	})
	f(FormatShelly, "s/status/switch:0007", `{"apower":1}`, map[string]sensorWant{
		"s/switch:7": {ComponentOutlet, map[string]float64{mP: 1}},
	})
	// Topics and components without readings are ignored, whatever their payload.
	f(FormatShelly, "shellyplus1pm-a8032ab12345/status/sys", `{"mac":"A8032AB12345"}`, nil)
	f(FormatShelly, "shellyplus1pm-a8032ab12345/status/input:0", `{"id":0,"state":false}`, nil)
	f(FormatShelly, "shellyplus1pm-a8032ab12345/online", `true`, nil)
	f(FormatShelly, "shellyplus1pm-a8032ab12345/status/switch:0", `{"id":0,"output":false,"apower":null}`, nil)
}

func TestParseMalformed(t *testing.T) {
	f := func(format, topic, payload, wantInErr string) {
		t.Helper()
		us, err := parse(format, topic, []byte(payload))
		if !errors.Is(err, errMalformed) {
			t.Fatalf("%s %q: err = %v, updates %v; want a malformed-payload error", topic, payload, err, us)
		}
		if !strings.Contains(err.Error(), wantInErr) {
			t.Errorf("%s %q: error %q does not mention %q", topic, payload, err, wantInErr)
		}
	}
	f(FormatTasmota, "tele/p/SENSOR", `{"ENERGY":{"Power":42`, "unexpected end")
	f(FormatTasmota, "tele/p/SENSOR", `{"ENERGY":{"Power":"42"}}`, "cannot unmarshal string")
	f(FormatTasmota, "tele/p/SENSOR", `{"ENERGY":{"Total":-1.5}}`, "negative energy")
	f(FormatTasmota, "tele/p/SENSOR", `{"ENERGY":{"Power":1e400}}`, "cannot unmarshal number 1e400")
	f(FormatTasmota, "tele/SENSOR", `{"ENERGY":{"Power":4}}`, "names no device")
	f(FormatTasmota, "tele/p/SENSOR", `{"ENERGY":{"Power":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17]}}`, "17 channels")
	f(FormatTasmota, "tele/"+strings.Repeat("x", 201)+"/SENSOR", `{}`, "over 200")
	f(FormatShelly, "s1/status/switch:0", `{"apower":"118.3"}`, "switch:0")
	f(FormatShelly, "s1/status/switch:0", `not json`, "invalid character")
	f(FormatShelly, "s1/status/emdata:0", `{"a_total_act_energy":"lots"}`, "emdata:0.a_total_act_energy")
	f(FormatShelly, "s1/status/emdata:0", `{"total_act":-3}`, "negative energy")
	f(FormatShelly, "s1/events/rpc", `{"method":"NotifyStatus","params":{"pm1:0":{"aenergy":{"total":"x"}}}}`, "pm1:0")
	f(FormatShelly, "/status/switch:0", `{"apower":1}`, "no device prefix")
	f(FormatShelly, "s1/status/humidity:100", `{"rh":101}`, "outside 0–100")
	f(FormatShelly, "s1/status/temperature:100", `{"tC":"warm"}`, "temperature:100")
}
