package mqtt

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Formats of the payloads the collector understands.
const (
	FormatTasmota = "tasmota"
	FormatShelly  = "shelly"
)

// Components the readings carry. A smart plug's (or a Shelly relay's) meter
// measures what is plugged into one outlet; a three-phase meter measures
// phases, and the total of its phases or a single clamp measures a branch
// circuit.
const (
	ComponentOutlet = "outlet"
	ComponentPhase  = "phase"
	ComponentBranch = "branch"
)

// Canonical metric names the collectors package has no constant for
// (DESIGN.md, "Canonical series").
const (
	MetricApparentPower = "greenloop_apparent_power_voltamperes"
	MetricPowerFactor   = "greenloop_power_factor_ratio"
	MetricHumidity      = "greenloop_humidity_ratio"
)

// Limits on outside input.
const (
	// maxSensorName bounds the sensor label derived from a topic.
	maxSensorName = 200
	// maxChannels bounds the channels of one multi-channel Tasmota payload.
	maxChannels = 16
	// maxProbes bounds the temperature and humidity sensors read from one
	// Tasmota payload, and maxProbeName the length of their names.
	maxProbes    = 16
	maxProbeName = 48
)

// Energy conversions: the devices report kWh (Tasmota) and Wh (Shelly).
const (
	joulesPerWh  = 3600.0
	joulesPerKWh = 3.6e6
)

// errMalformed marks a payload on a recognised topic that does not parse.
var errMalformed = errors.New("malformed payload")

// field is one quantity a meter reports.
type field int

const (
	fieldPower       field = iota // active power, W
	fieldApparent                 // apparent power, VA
	fieldPowerFactor              // ratio
	fieldVoltage                  // V
	fieldCurrent                  // A
	fieldTemperature              // °C
	fieldEnergy                   // J, the device's own (resettable) total
	fieldHumidity                 // relative humidity, ratio 0–1
	numFields
)

// metric returns the canonical series a field is emitted as.
func (f field) metric() string {
	switch f {
	case fieldPower:
		return "greenloop_power_watts"
	case fieldApparent:
		return MetricApparentPower
	case fieldPowerFactor:
		return MetricPowerFactor
	case fieldVoltage:
		return "greenloop_voltage_volts"
	case fieldCurrent:
		return "greenloop_current_amperes"
	case fieldTemperature:
		return "greenloop_temperature_celsius"
	case fieldEnergy:
		return "greenloop_energy_joules_total"
	case fieldHumidity:
		return MetricHumidity
	}
	return ""
}

// update is what one payload says about one sensor. Values are in the unit
// of the field's canonical series (W, VA, ratio, V, A, °C, J): payloads are
// converted here, once. A payload may carry only some fields (a Shelly
// NotifyStatus sends what changed); the others keep their last value.
type update struct {
	sensor    string
	component string
	values    [numFields]float64
	has       [numFields]bool
}

func (u *update) set(f field, v float64) {
	u.values[f], u.has[f] = v, true
}

func (u *update) setPtr(f field, v *float64, scale float64) {
	if v != nil {
		u.set(f, *v*scale)
	}
}

func (u *update) empty() bool {
	for _, h := range u.has {
		if h {
			return false
		}
	}
	return true
}

// check rejects values no meter reports: non-finite numbers and negative
// energy totals.
func (u *update) check() error {
	for f := field(0); f < numFields; f++ {
		if !u.has[f] {
			continue
		}
		v := u.values[f]
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return fmt.Errorf("%w: %s of %s is not a finite number", errMalformed, f.metric(), u.sensor)
		}
		if f == fieldEnergy && v < 0 {
			return fmt.Errorf("%w: negative energy total %g J for %s", errMalformed, v, u.sensor)
		}
	}
	return nil
}

// parse dispatches on the format. It returns no updates and no error for a
// topic the format does not publish readings on.
func parse(format, topic string, payload []byte) ([]update, error) {
	var (
		us  []update
		err error
	)
	switch format {
	case FormatTasmota:
		us, err = parseTasmota(topic, payload)
	case FormatShelly:
		us, err = parseShelly(topic, payload)
	default:
		return nil, fmt.Errorf("unknown format %q", format)
	}
	if err != nil {
		return nil, err
	}
	for i := range us {
		if err := us[i].check(); err != nil {
			return nil, err
		}
	}
	return us, nil
}

// ---- Tasmota ----

// tasmotaNumbers is a Tasmota ENERGY value: a number, or an array of numbers
// on multi-channel devices (one per channel).
type tasmotaNumbers struct {
	v     []float64
	array bool
}

func (n *tasmotaNumbers) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case bytes.Equal(b, []byte("null")):
		return nil
	case len(b) > 0 && b[0] == '[':
		var vs []float64
		if err := json.Unmarshal(b, &vs); err != nil {
			return err
		}
		n.v, n.array = vs, true
		return nil
	}
	var v float64
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	n.v = []float64{v}
	return nil
}

// tasmotaEnergy is the ENERGY object of tele/<topic>/SENSOR (and of
// StatusSNS in a Status 10 reply). Total is kWh since TotalStartTime.
type tasmotaEnergy struct {
	Total         tasmotaNumbers
	Power         tasmotaNumbers
	ApparentPower tasmotaNumbers
	Factor        tasmotaNumbers
	Voltage       tasmotaNumbers
	Current       tasmotaNumbers
}

// tasmotaProbe is a temperature or humidity sensor's object in a SENSOR
// message ("DS18B20", "AM2301", "SHT3X", "ANALOG" ...), in TempUnit and %RH.
type tasmotaProbe struct {
	Temperature *float64
	Humidity    *float64
}

// tasmotaNotProbes are the keys of a SENSOR message that are not sensors,
// or whose temperature is the microcontroller's own.
var tasmotaNotProbes = map[string]bool{"Time": true, "TempUnit": true, "PressureUnit": true,
	"SpeedUnit": true, "ENERGY": true, "ESP32": true, "ESP8266": true, "StatusSNS": true}

// tasmotaProbes reads the temperature and humidity sensors among the
// objects of a SENSOR message (or StatusSNS). Objects whose values are not
// numbers, and humidities outside 0–100 %, are skipped: a failing probe must
// not hide the energy readings.
func tasmotaProbes(device string, top map[string]json.RawMessage) []update {
	fahrenheit := false
	if u, ok := top["TempUnit"]; ok {
		var unit string
		fahrenheit = json.Unmarshal(u, &unit) == nil && unit == "F"
	}
	keys := make([]string, 0, len(top))
	for k := range top {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var us []update
	for _, k := range keys {
		raw := bytes.TrimSpace(top[k])
		if tasmotaNotProbes[k] || len(k) > maxProbeName || len(raw) == 0 || raw[0] != '{' {
			continue
		}
		var p tasmotaProbe
		if json.Unmarshal(raw, &p) != nil {
			continue
		}
		u := update{sensor: device + "/" + k}
		if p.Temperature != nil {
			c := *p.Temperature
			if fahrenheit {
				c = (c - 32) * 5 / 9
			}
			u.set(fieldTemperature, c)
		}
		if p.Humidity != nil && *p.Humidity >= 0 && *p.Humidity <= 100 {
			u.set(fieldHumidity, *p.Humidity/100)
		}
		if !u.empty() {
			us = append(us, u)
		}
		if len(us) == maxProbes {
			break
		}
	}
	return us
}

// tasmotaDevice derives a device's name from its topic: the topic's levels
// without Tasmota's prefixes (tele, stat) and the message name (SENSOR,
// STATUS10, STATUS8), so that both the default FullTopic %prefix%/%topic%/
// and %topic%/%prefix%/ give the device's %topic%.
func tasmotaDevice(topic string) string {
	levels := strings.Split(topic, "/")
	keep := levels[:0]
	for _, l := range levels {
		switch l {
		case "tele", "stat", "SENSOR", "STATUS10", "STATUS8", "":
			continue
		}
		keep = append(keep, l)
	}
	return strings.Join(keep, "/")
}

// parseTasmota reads the energy monitor of a Tasmota device from a
// tele/<device>/SENSOR message (or a stat/<device>/STATUS10 reply).
//
// On a single-channel device every value is a number and the sensor is the
// device. On a multi-channel device (Shelly 2.5, Sonoff Dual R3 running
// Tasmota) the per-channel values are arrays and each channel is a sensor
// "<device>/ch<N>"; a value that stays a number there belongs to the device
// as a whole ("Total" is the sum of the channels unless SetOption129 is
// on), except Voltage, which is the same line for every channel and is
// given to each.
//
// Temperature and humidity sensors in the same message ("DS18B20",
// "AM2301", "ANALOG" on a Shelly 2.5 ...) are sensors "<device>/<name>"
// without a component; TempUnit "F" is converted to °C.
func parseTasmota(topic string, payload []byte) ([]update, error) {
	device := tasmotaDevice(topic)
	if device == "" {
		return nil, fmt.Errorf("%w: topic %q names no device", errMalformed, topic)
	}
	if len(device) > maxSensorName {
		return nil, fmt.Errorf("%w: device name from topic is %d bytes, over %d", errMalformed, len(device), maxSensorName)
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(payload, &top); err != nil {
		return nil, fmt.Errorf("%w: %w", errMalformed, err)
	}
	if sns, ok := top["StatusSNS"]; ok { // a Status 10 reply
		top = nil
		if err := json.Unmarshal(sns, &top); err != nil {
			return nil, fmt.Errorf("%w: StatusSNS: %w", errMalformed, err)
		}
	}
	probes := tasmotaProbes(device, top)
	raw, ok := top["ENERGY"]
	if !ok {
		return probes, nil // a sensor message without an energy monitor
	}
	e := &tasmotaEnergy{}
	if err := json.Unmarshal(raw, e); err != nil {
		return nil, fmt.Errorf("%w: ENERGY: %w", errMalformed, err)
	}
	fields := []struct {
		f     field
		n     *tasmotaNumbers
		scale float64
	}{
		{fieldPower, &e.Power, 1},
		{fieldApparent, &e.ApparentPower, 1},
		{fieldPowerFactor, &e.Factor, 1},
		{fieldVoltage, &e.Voltage, 1},
		{fieldCurrent, &e.Current, 1},
		{fieldEnergy, &e.Total, joulesPerKWh},
	}
	channels := 0
	for _, x := range fields {
		if x.n.array {
			channels = max(channels, len(x.n.v))
		}
	}
	if channels > maxChannels {
		return nil, fmt.Errorf("%w: %d channels, over %d", errMalformed, channels, maxChannels)
	}
	dev := update{sensor: device, component: ComponentOutlet}
	chs := make([]update, channels)
	for i := range chs {
		chs[i] = update{sensor: device + "/ch" + strconv.Itoa(i+1), component: ComponentOutlet}
	}
	for _, x := range fields {
		switch {
		case len(x.n.v) == 0:
		case x.n.array:
			for i, v := range x.n.v {
				chs[i].set(x.f, v*x.scale)
			}
		case channels > 0 && x.f == fieldVoltage:
			for i := range chs {
				chs[i].set(x.f, x.n.v[0])
			}
		default:
			dev.set(x.f, x.n.v[0]*x.scale)
		}
	}
	var us []update
	if !dev.empty() {
		us = append(us, dev)
	}
	for _, c := range chs {
		if !c.empty() {
			us = append(us, c)
		}
	}
	return append(us, probes...), nil
}

// ---- Shelly Gen2 ----

// shellyMeter is the status of a metered output: switch, cover and light
// (relays and dimmers with a meter) and pm1 (a power meter). aenergy.total
// is Wh; temperature is the device's own.
type shellyMeter struct {
	APower    *float64 `json:"apower"`
	AprtPower *float64 `json:"aprtpower"`
	Voltage   *float64 `json:"voltage"`
	Current   *float64 `json:"current"`
	PF        *float64 `json:"pf"`
	AEnergy   *struct {
		Total *float64 `json:"total"`
	} `json:"aenergy"`
	Temperature *struct {
		TC *float64 `json:"tC"`
	} `json:"temperature"`
}

// shellyRPC is a notification on <prefix>/events/rpc.
type shellyRPC struct {
	Method string                     `json:"method"`
	Params map[string]json.RawMessage `json:"params"`
}

// parseShelly reads a Shelly Gen2/Gen3 device's meters from
//   - <prefix>/status/<component>:<id>, the status of one component that the
//     device publishes when "generic status update over MQTT" is on; and
//   - <prefix>/events/rpc, NotifyStatus (what changed) and NotifyFullStatus
//     (everything) notifications, whose params hold "<component>:<id>"
//     objects.
//
// Components read: switch, cover, light and pm1 (apower, aprtpower,
// voltage, current, pf, aenergy.total in Wh, temperature.tC), em (phases a,
// b, c and the totals of a three-phase meter), emdata (their energy, Wh),
// em1 and em1data (one clamp), temperature (tC) and humidity (rh, %) of the
// device's own sensors and of add-on probes, which have no component label.
// The sensor is "<prefix>/<component>:<id>", and "<prefix>/em:<id>/<phase>"
// for a phase. Other topics and components are not readings and are
// ignored.
func parseShelly(topic string, payload []byte) ([]update, error) {
	if prefix, ok := strings.CutSuffix(topic, "/events/rpc"); ok {
		if err := checkPrefix(prefix); err != nil {
			return nil, err
		}
		var rpc shellyRPC
		if err := json.Unmarshal(payload, &rpc); err != nil {
			return nil, fmt.Errorf("%w: %w", errMalformed, err)
		}
		if rpc.Method != "NotifyStatus" && rpc.Method != "NotifyFullStatus" {
			return nil, nil // NotifyEvent and others carry no readings
		}
		var us []update
		for key, raw := range rpc.Params {
			u, err := shellyComponent(prefix, key, raw)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", key, err)
			}
			us = append(us, u...)
		}
		return us, nil
	}
	i := strings.LastIndex(topic, "/status/")
	if i < 0 {
		return nil, nil
	}
	prefix, key := topic[:i], topic[i+len("/status/"):]
	if strings.Contains(key, "/") {
		return nil, nil
	}
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	return shellyComponent(prefix, key, payload)
}

func checkPrefix(prefix string) error {
	switch {
	case prefix == "":
		return fmt.Errorf("%w: topic has no device prefix", errMalformed)
	case len(prefix) > maxSensorName:
		return fmt.Errorf("%w: device prefix is %d bytes, over %d", errMalformed, len(prefix), maxSensorName)
	}
	return nil
}

// shellyComponent parses the status of the component named key
// ("switch:0"); it returns nothing for a component that has no meter.
func shellyComponent(prefix, key string, raw []byte) ([]update, error) {
	name, id, ok := strings.Cut(key, ":")
	if !ok {
		return nil, nil
	}
	n, err := strconv.ParseUint(id, 10, 16)
	if err != nil {
		return nil, nil
	}
	id = strconv.FormatUint(n, 10) // "switch:00" is "switch:0"
	sensor := prefix + "/" + name + ":" + id
	switch name {
	case "switch", "cover", "light", "pm1":
		var m shellyMeter
		if err := json.Unmarshal(raw, &m); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", errMalformed, key, err)
		}
		u := update{sensor: sensor, component: ComponentOutlet}
		u.setPtr(fieldPower, m.APower, 1)
		u.setPtr(fieldApparent, m.AprtPower, 1)
		u.setPtr(fieldVoltage, m.Voltage, 1)
		u.setPtr(fieldCurrent, m.Current, 1)
		u.setPtr(fieldPowerFactor, m.PF, 1)
		if m.AEnergy != nil {
			u.setPtr(fieldEnergy, m.AEnergy.Total, joulesPerWh)
		}
		if m.Temperature != nil {
			u.setPtr(fieldTemperature, m.Temperature.TC, 1)
		}
		return nonEmpty(u), nil
	case "em", "emdata":
		vals, err := shellyNumbers(key, raw)
		if err != nil {
			return nil, err
		}
		sensor = prefix + "/em:" + id
		var us []update
		for _, ph := range []string{"a", "b", "c"} {
			u := update{sensor: sensor + "/" + ph, component: ComponentPhase}
			u.setPtr(fieldCurrent, vals[ph+"_current"], 1)
			u.setPtr(fieldVoltage, vals[ph+"_voltage"], 1)
			u.setPtr(fieldPower, vals[ph+"_act_power"], 1)
			u.setPtr(fieldApparent, vals[ph+"_aprt_power"], 1)
			u.setPtr(fieldPowerFactor, vals[ph+"_pf"], 1)
			u.setPtr(fieldEnergy, vals[ph+"_total_act_energy"], joulesPerWh)
			us = append(us, nonEmpty(u)...)
		}
		t := update{sensor: sensor, component: ComponentBranch}
		t.setPtr(fieldCurrent, vals["total_current"], 1)
		t.setPtr(fieldPower, vals["total_act_power"], 1)
		t.setPtr(fieldApparent, vals["total_aprt_power"], 1)
		t.setPtr(fieldEnergy, vals["total_act"], joulesPerWh)
		return append(us, nonEmpty(t)...), nil
	case "temperature", "humidity":
		// An add-on probe (id 100 and up) or the device's own sensor.
		var p struct {
			TC *float64 `json:"tC"`
			RH *float64 `json:"rh"`
		}
		if err := json.Unmarshal(raw, &p); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", errMalformed, key, err)
		}
		u := update{sensor: sensor}
		u.setPtr(fieldTemperature, p.TC, 1)
		if p.RH != nil {
			if *p.RH < 0 || *p.RH > 100 {
				return nil, fmt.Errorf("%w: %s: relative humidity %g%% outside 0–100", errMalformed, key, *p.RH)
			}
			u.set(fieldHumidity, *p.RH/100)
		}
		return nonEmpty(u), nil
	case "em1", "em1data":
		vals, err := shellyNumbers(key, raw)
		if err != nil {
			return nil, err
		}
		u := update{sensor: prefix + "/em1:" + id, component: ComponentBranch}
		u.setPtr(fieldCurrent, vals["current"], 1)
		u.setPtr(fieldVoltage, vals["voltage"], 1)
		u.setPtr(fieldPower, vals["act_power"], 1)
		u.setPtr(fieldApparent, vals["aprt_power"], 1)
		u.setPtr(fieldPowerFactor, vals["pf"], 1)
		u.setPtr(fieldEnergy, vals["total_act_energy"], joulesPerWh)
		return nonEmpty(u), nil
	}
	return nil, nil
}

// shellyEMKeys are the numeric properties of em, emdata, em1 and em1data
// statuses the collector reads; the others (errors, flags, calibration) are
// of other types and are left alone.
var shellyEMKeys = func() map[string]bool {
	m := map[string]bool{
		"total_current": true, "total_act_power": true, "total_aprt_power": true, "total_act": true,
		"current": true, "voltage": true, "act_power": true, "aprt_power": true, "pf": true, "total_act_energy": true,
	}
	for _, ph := range []string{"a", "b", "c"} {
		for _, s := range []string{"_current", "_voltage", "_act_power", "_aprt_power", "_pf", "_total_act_energy"} {
			m[ph+s] = true
		}
	}
	return m
}()

// shellyNumbers decodes the numeric properties of an energy meter's status;
// null (a phase that reports nothing) is absent.
func shellyNumbers(key string, raw []byte) (map[string]*float64, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", errMalformed, key, err)
	}
	vals := make(map[string]*float64, len(obj))
	for k, v := range obj {
		if !shellyEMKeys[k] {
			continue
		}
		var f *float64
		if err := json.Unmarshal(v, &f); err != nil {
			return nil, fmt.Errorf("%w: %s.%s: %w", errMalformed, key, k, err)
		}
		vals[k] = f
	}
	return vals, nil
}

func nonEmpty(u update) []update {
	if u.empty() {
		return nil
	}
	return []update{u}
}
