package mqtt

import (
	"errors"
	"math"
	"strings"
	"testing"
)

// checkUpdates holds for whatever parse accepts: finite values, no negative
// energy, humidity within 0–1, a sensor name of bounded length under the topic's device, and a
// known component.
func checkUpdates(t *testing.T, topic string, us []update) {
	t.Helper()
	for _, u := range us {
		if u.sensor == "" || len(u.sensor) > maxSensorName+max(len("/em1data:65535/a"), 1+maxProbeName) {
			t.Fatalf("topic %q: sensor name %q", topic, u.sensor)
		}
		switch u.component {
		case ComponentOutlet, ComponentPhase, ComponentBranch, "":
		default:
			t.Fatalf("topic %q: component %q", topic, u.component)
		}
		if u.empty() {
			t.Fatalf("topic %q: empty update for %s", topic, u.sensor)
		}
		for f := field(0); f < numFields; f++ {
			v := u.values[f]
			if u.has[f] && (math.IsNaN(v) || math.IsInf(v, 0) || (f == fieldEnergy && v < 0) ||
				(f == fieldHumidity && (v < 0 || v > 1))) {
				t.Fatalf("topic %q: %s = %v accepted", topic, f.metric(), v)
			}
		}
	}
}

func FuzzParseTasmota(f *testing.F) {
	for _, name := range []string{"pow-single", "dual-channel", "status10", "no-energy"} {
		f.Add("tele/plug/SENSOR", readFixture(f, "tasmota/"+name+".json"))
	}
	f.Add("plug/tele/SENSOR", []byte(`{"ENERGY":{"Total":[1,2],"Power":3}}`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		us, err := parse(FormatTasmota, topic, payload)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			if us != nil {
				t.Fatalf("updates with an error")
			}
			return
		}
		checkUpdates(t, topic, us)
		for _, u := range us {
			if !strings.HasPrefix(u.sensor, tasmotaDevice(topic)) {
				t.Fatalf("sensor %q not under the device of topic %q", u.sensor, topic)
			}
		}
	})
}

func FuzzParseShelly(f *testing.F) {
	for _, c := range []struct{ topic, fixture string }{
		{"shellyplusplugs-e86beae1b8a0/status/switch:0", "switch0"},
		{"pm/shellypmminig3-1/status/pm1:0", "pm1"},
		{"shellyplus1pm-a8032ab12345/events/rpc", "notifystatus-energy"},
		{"shellyplus1pm-a8032ab12345/events/rpc", "notifyevent"},
		{"shellypro3em-c8f09e8812ab/events/rpc", "pro3em-fullstatus"},
		{"shellyproem50-0cb815fc11aa/status/em1:1", "em1"},
		{"shellyproem50-0cb815fc11aa/status/em1data:1", "em1data"},
	} {
		f.Add(c.topic, readFixture(f, "shelly/"+c.fixture+".json"))
	}
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		us, err := parse(FormatShelly, topic, payload)
		if err != nil {
			if !errors.Is(err, errMalformed) {
				t.Fatalf("error %v does not wrap errMalformed", err)
			}
			return
		}
		checkUpdates(t, topic, us)
	})
}
