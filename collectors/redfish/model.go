package redfish

import (
	"bytes"
	"encoding/json"
	"math"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/greenloop/greenloop/collectors"
)

// Unit factors, applied once, where a value leaves the Redfish model.
const (
	kWhJoules = 3.6e6 // one kilowatt-hour in joules
	whJoules  = 3600  // one watt-hour in joules
)

// link is a Redfish navigation property.
type link struct {
	ID string `json:"@odata.id"`
}

// UnmarshalJSON tolerates a link that is not an object (null, a string).
func (l *link) UnmarshalJSON(b []byte) error {
	var raw struct {
		ID str `json:"@odata.id"`
	}
	*l = link{}
	if json.Unmarshal(b, &raw) == nil {
		l.ID = string(raw.ID)
	}
	return nil
}

// head is what every resource read as a collection member carries: its
// URI, its type and its Id. A bare link has only the URI.
type head struct {
	ODataID   str `json:"@odata.id"`
	ODataType str `json:"@odata.type"`
	Id        str `json:"Id"`
}

func (h *head) hd() *head { return h }

// bare reports whether the member is only a link (the service did not
// expand it).
func (h *head) bare() bool { return h.Id == "" && h.ODataType == "" }

// headed is a member type: *T with an embedded head.
type headed[T any] interface {
	*T
	hd() *head
}

type serviceRoot struct {
	Chassis        link `json:"Chassis"`
	PowerEquipment link `json:"PowerEquipment"`
	Links          struct {
		Sessions link `json:"Sessions"`
	} `json:"Links"`
	ProtocolFeaturesSupported struct {
		ExpandQuery struct {
			ExpandAll boolean `json:"ExpandAll"`
			Levels    boolean `json:"Levels"`
		} `json:"ExpandQuery"`
	} `json:"ProtocolFeaturesSupported"`
}

// canExpand reports whether the service says it understands
// $expand=.($levels=1).
func (s serviceRoot) canExpand() bool {
	e := s.ProtocolFeaturesSupported.ExpandQuery
	return bool(e.Levels) || bool(e.ExpandAll)
}

type chassis struct {
	head
	Power              link `json:"Power"`
	Thermal            link `json:"Thermal"`
	EnvironmentMetrics link `json:"EnvironmentMetrics"`
	PowerSubsystem     link `json:"PowerSubsystem"`
	ThermalSubsystem   link `json:"ThermalSubsystem"`
	Sensors            link `json:"Sensors"`
}

// num is a Redfish number. Null, a missing property, or anything that is
// not a finite JSON number (some BMCs send "N/A" or "") leaves it unset:
// a value the service does not report is absent, never 0.
type num struct {
	v  float64
	ok bool
}

func (n *num) UnmarshalJSON(b []byte) error {
	*n = num{}
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] == 'n' || b[0] == '"' || b[0] == '{' || b[0] == '[' || b[0] == 't' || b[0] == 'f' {
		return nil
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	*n = num{v: v, ok: true}
	return nil
}

// boolean is a JSON boolean; anything else is false.
type boolean bool

func (v *boolean) UnmarshalJSON(b []byte) error {
	*v = boolean(bytes.Equal(bytes.TrimSpace(b), []byte("true")))
	return nil
}

// status is the common Status object. Unmarshalled leniently: a non-object
// Status leaves it empty.
type status struct {
	State string
}

func (s *status) UnmarshalJSON(b []byte) error {
	var raw struct {
		State json.RawMessage `json:"State"`
	}
	*s = status{}
	if json.Unmarshal(b, &raw) != nil {
		return nil
	}
	var st string
	if json.Unmarshal(raw.State, &st) == nil {
		s.State = st
	}
	return nil
}

// off reports whether the entry is Absent or Disabled and so has no reading.
func (s status) off() bool {
	return strings.EqualFold(s.State, "Absent") || strings.EqualFold(s.State, "Disabled")
}

// str is a string property that tolerates null and non-strings.
type str string

func (s *str) UnmarshalJSON(b []byte) error {
	// Fast path: a plain valid UTF-8 string without escapes, the usual case
	// (the decoder has already checked the document's syntax).
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' {
		in := b[1 : len(b)-1]
		if bytes.IndexByte(in, '\\') < 0 && bytes.IndexByte(in, '"') < 0 && utf8.Valid(in) {
			*s = str(in)
			return nil
		}
	}
	var v string
	if json.Unmarshal(b, &v) == nil {
		*s = str(v)
	} else {
		*s = ""
	}
	return nil
}

// sensorExcerpt is the embedded excerpt of a Sensor (PowerWatts, EnergykWh...).
// DataSourceUri names the Sensor it comes from, so that the Sensors
// collection does not count the same value again.
type sensorExcerpt struct {
	Reading       num `json:"Reading"`
	DataSourceUri str `json:"DataSourceUri"`
}

// UnmarshalJSON leaves the excerpt empty when it is not an object, so that
// one odd property does not fail a whole collection of members.
func (e *sensorExcerpt) UnmarshalJSON(b []byte) error {
	type plain sensorExcerpt
	var p plain
	if json.Unmarshal(b, &p) != nil {
		p = plain{}
	}
	*e = sensorExcerpt(p)
	return nil
}

type environmentMetrics struct {
	PowerWatts         sensorExcerpt `json:"PowerWatts"`
	EnergykWh          sensorExcerpt `json:"EnergykWh"`
	TemperatureCelsius sensorExcerpt `json:"TemperatureCelsius"`
}

// readings returns the chassis-level power, energy and temperature.
func (em environmentMetrics) readings(chassisID string) []reading {
	var rs []reading
	rs = appendPower(rs, em.PowerWatts.Reading, "chassis", chassisID)
	rs = appendEnergy(rs, em.EnergykWh.Reading, "chassis", chassisID)
	rs = appendTemp(rs, em.TemperatureCelsius.Reading, "", chassisID)
	return rs
}

type power struct {
	PowerControl []struct {
		MemberId           str    `json:"MemberId"`
		Name               str    `json:"Name"`
		PowerConsumedWatts num    `json:"PowerConsumedWatts"`
		Status             status `json:"Status"`
	} `json:"PowerControl"`
	PowerSupplies []struct {
		MemberId        str    `json:"MemberId"`
		Name            str    `json:"Name"`
		PowerInputWatts num    `json:"PowerInputWatts"`
		Status          status `json:"Status"`
	} `json:"PowerSupplies"`
}

// readings returns, with control, the chassis' consumed power from
// PowerControl (sensor <chassis>/<MemberId or Name>) and, with psus, the
// PSUs' input power (sensor <chassis>/<Name or MemberId>).
func (p power) readings(chassisID string, control, psus bool) []reading {
	var rs []reading
	if control {
		for i, pc := range p.PowerControl {
			if pc.Status.off() {
				continue
			}
			rs = appendPower(rs, pc.PowerConsumedWatts, "chassis", chassisID+"/"+entryName(pc.MemberId, pc.Name, i))
		}
	}
	if !psus {
		return rs
	}
	names := make([]string, len(p.PowerSupplies))
	for i, ps := range p.PowerSupplies {
		names[i] = entryName(ps.Name, ps.MemberId, i)
	}
	for i, ps := range p.PowerSupplies {
		if ps.Status.off() {
			continue
		}
		rs = appendPower(rs, ps.PowerInputWatts, "psu", chassisID+"/"+unique(names, i, ps.MemberId))
	}
	return rs
}

type thermal struct {
	Temperatures []struct {
		MemberId        str    `json:"MemberId"`
		Name            str    `json:"Name"`
		ReadingCelsius  num    `json:"ReadingCelsius"`
		PhysicalContext str    `json:"PhysicalContext"`
		Status          status `json:"Status"`
	} `json:"Temperatures"`
}

func (t thermal) readings(chassisID string) []reading {
	var rs []reading
	names := make([]string, len(t.Temperatures))
	for i, te := range t.Temperatures {
		names[i] = entryName(te.Name, te.MemberId, i)
	}
	for i, te := range t.Temperatures {
		if te.Status.off() {
			continue
		}
		rs = appendTemp(rs, te.ReadingCelsius, contextComponent(string(te.PhysicalContext)), chassisID+"/"+unique(names, i, te.MemberId))
	}
	return rs
}

// powerSupply is one member of PowerSubsystem/PowerSupplies.
type powerSupply struct {
	head
	Name    str    `json:"Name"`
	Status  status `json:"Status"`
	Metrics link   `json:"Metrics"`
}

// powerSupplyMetrics is a PowerSupplyMetrics resource. OutputPowerWatts is
// not read: the PSU's input is what the site pays for, and emitting both
// under component "psu" would count the PSU twice.
type powerSupplyMetrics struct {
	Status             status        `json:"Status"`
	InputPowerWatts    sensorExcerpt `json:"InputPowerWatts"`
	EnergykWh          sensorExcerpt `json:"EnergykWh"`
	InputVoltage       sensorExcerpt `json:"InputVoltage"`
	InputCurrentAmps   sensorExcerpt `json:"InputCurrentAmps"`
	TemperatureCelsius sensorExcerpt `json:"TemperatureCelsius"`
}

func (m powerSupplyMetrics) readings(sensor string) []reading {
	if m.Status.off() {
		return nil
	}
	var rs []reading
	rs = appendPower(rs, m.InputPowerWatts.Reading, "psu", sensor)
	rs = appendEnergy(rs, m.EnergykWh.Reading, "psu", sensor)
	rs = appendVoltage(rs, m.InputVoltage.Reading, "psu", sensor)
	rs = appendCurrent(rs, m.InputCurrentAmps.Reading, "psu", sensor)
	rs = appendTemp(rs, m.TemperatureCelsius.Reading, "psu", sensor)
	return rs
}

// thermalMetrics is ThermalSubsystem/ThermalMetrics.
type thermalMetrics struct {
	TemperatureReadingsCelsius []struct {
		DeviceName      str `json:"DeviceName"`
		PhysicalContext str `json:"PhysicalContext"`
		Reading         num `json:"Reading"`
		DataSourceUri   str `json:"DataSourceUri"`
	} `json:"TemperatureReadingsCelsius"`
}

// sensor is a member of a chassis' Sensors collection.
type sensor struct {
	head
	Name            str    `json:"Name"`
	Reading         num    `json:"Reading"`
	ReadingType     str    `json:"ReadingType"`
	ReadingUnits    str    `json:"ReadingUnits"`
	PhysicalContext str    `json:"PhysicalContext"`
	Status          status `json:"Status"`
	ref             string // the URI it was read from
}

// normalise turns a Sensor's reading into a canonical metric and value.
// ReadingUnits is honoured; an empty one means the unit ReadingType implies;
// an empty ReadingType is taken from the unit. Quirks tolerated: "C" for
// "Cel", "kW" or "kWh" for "kW.h" and "W" or "Wh" for "W.h" on energy
// sensors (energy cannot be in W). ok is false for a type greenloop has no
// series for (Frequency, Percent, Humidity...) or a unit it does not know.
func normalise(readingType, readingUnits string, v float64) (metric string, value float64, ok bool) {
	u := strings.TrimSpace(readingUnits)
	t := strings.TrimSpace(readingType)
	if t == "" {
		switch u {
		case "Cel", "C", "°C", "K":
			t = "Temperature"
		case "W", "kW", "mW":
			t = "Power"
		case "kW.h", "kWh":
			t = "EnergykWh"
		case "W.h", "Wh":
			t = "EnergyWh"
		case "J", "kJ":
			t = "EnergyJoules"
		case "A", "mA":
			t = "Current"
		case "V", "mV":
			t = "Voltage"
		default:
			return "", 0, false
		}
	}
	scale := func(factors map[string]float64, def float64) (float64, bool) {
		if u == "" {
			return v * def, true
		}
		f, ok := factors[u]
		return v * f, ok
	}
	energy := map[string]float64{"kW.h": kWhJoules, "kWh": kWhJoules, "kW": kWhJoules,
		"W.h": whJoules, "Wh": whJoules, "W": whJoules, "J": 1, "kJ": 1e3, "MJ": 1e6}
	switch t {
	case "Power":
		value, ok = scale(map[string]float64{"W": 1, "kW": 1e3, "mW": 1e-3}, 1)
		metric = collectors.MetricPower
	case "EnergykWh":
		value, ok = scale(energy, kWhJoules)
		metric = collectors.MetricEnergy
	case "EnergyWh":
		value, ok = scale(energy, whJoules)
		metric = collectors.MetricEnergy
	case "EnergyJoules":
		value, ok = scale(energy, 1)
		metric = collectors.MetricEnergy
	case "Temperature":
		metric = collectors.MetricTemperature
		switch u {
		case "", "Cel", "C", "°C":
			value, ok = v, true
		case "K":
			value, ok = v-273.15, true
		}
	case "Current":
		value, ok = scale(map[string]float64{"A": 1, "mA": 1e-3}, 1)
		metric = collectors.MetricCurrent
	case "Voltage":
		value, ok = scale(map[string]float64{"V": 1, "mV": 1e-3}, 1)
		metric = collectors.MetricVoltage
	}
	if !ok || math.IsNaN(value) || math.IsInf(value, 0) {
		return "", 0, false
	}
	if (metric == collectors.MetricPower || metric == collectors.MetricEnergy) && value < 0 {
		return "", 0, false
	}
	return metric, value, true
}

// sensorComponent maps a Sensor's PhysicalContext onto a component label.
// Chassis is left to chassisData.readings, which decides whether the sensor
// is the chassis' own total.
func sensorComponent(pc string) string {
	switch strings.ToLower(pc) {
	case "powersupply":
		return "psu"
	case "cpu":
		return "package"
	case "memory":
		return "dram"
	case "gpu":
		return "gpu"
	}
	return contextComponent(pc)
}

// contextComponent maps a Redfish PhysicalContext onto a component label.
func contextComponent(pc string) string {
	switch strings.ToLower(pc) {
	case "intake":
		return "inlet"
	case "exhaust":
		return "outlet"
	case "room", "ambient":
		return "ambient"
	}
	return ""
}

// psuData is one PSU of a PowerSubsystem with its metrics.
type psuData struct {
	id      string // Id, or the last segment of its URI
	status  status
	metrics *powerSupplyMetrics
}

// chassisData is everything read for one chassis. Its readings are a pure
// function of it, so the precedence rules are tested without a server.
type chassisData struct {
	id             string
	env            *environmentMetrics
	power          *power
	thermal        *thermal
	psus           []psuData
	thermalMetrics *thermalMetrics
	sensors        []sensor
}

// readings applies the precedence between the models so that each quantity
// is counted once:
//
//  1. EnvironmentMetrics gives the chassis' power, energy and temperature.
//  2. PowerSubsystem PSUs' Metrics give each PSU's input power, energy,
//     voltage, current and temperature (sensor <chassis>/<PSU Id>).
//  3. ThermalMetrics' TemperatureReadingsCelsius give temperatures (sensor
//     <chassis>/<DeviceName>).
//  4. Sensors give everything else: a Sensor whose URI one of the excerpts
//     above names as its DataSourceUri is skipped, being the same value. A
//     Chassis-context power (energy) sensor is the chassis total (component
//     "chassis") only when it is the only one and step 1 gave none; other
//     Chassis-context sensors carry no component, and so do PSU sensors
//     named "output" (a PSU's output is part of its input).
//  5. Legacy Power: PowerControl only when steps 1 and 4 gave no chassis
//     power; PowerSupplies only when steps 2 and 4 gave no PSU power.
//  6. Legacy Thermal only when steps 3 and 4 gave no temperature (the
//     chassis' own temperature from step 1 does not count).
//
// The collector reads the legacy resources only after the newer ones, and
// only when they can still give something, which saves two requests per
// chassis on a BMC that implements both models.
func (d chassisData) readings() []reading {
	rs, need, _ := d.newModel()
	if d.power != nil {
		rs = append(rs, d.power.readings(d.id, need.chassisPower, need.psuPower)...)
	}
	if d.thermal != nil && need.temps {
		rs = append(rs, d.thermal.readings(d.id)...)
	}
	return rs
}

// legacyNeeds says what the newer model left for the legacy one to give.
type legacyNeeds struct {
	chassisPower, psuPower, temps bool
}

// power reports whether the legacy Power resource can give anything.
func (n legacyNeeds) power() bool { return n.chassisPower || n.psuPower }

// newModel returns the readings of steps 1 to 4 of readings, what they left
// to the legacy model, and the Sensor URIs the excerpts covered.
func (d chassisData) newModel() ([]reading, legacyNeeds, map[string]bool) {
	var rs []reading
	covered := map[string]bool{}
	cover := func(e sensorExcerpt) {
		if e.Reading.ok && e.DataSourceUri != "" {
			covered[uriPath(string(e.DataSourceUri))] = true
		}
	}
	chassisPower, chassisEnergy, psuPower, temps := false, false, false, false
	if d.env != nil {
		for _, x := range d.env.readings(d.id) {
			chassisPower = chassisPower || x.metric == collectors.MetricPower
			chassisEnergy = chassisEnergy || x.metric == collectors.MetricEnergy
			rs = append(rs, x)
		}
		cover(d.env.PowerWatts)
		cover(d.env.EnergykWh)
		cover(d.env.TemperatureCelsius)
	}
	for _, p := range d.psus {
		if p.status.off() || p.metrics == nil {
			continue
		}
		for _, x := range p.metrics.readings(d.id + "/" + p.id) {
			psuPower = psuPower || x.metric == collectors.MetricPower
			rs = append(rs, x)
		}
		m := p.metrics
		for _, e := range []sensorExcerpt{m.InputPowerWatts, m.EnergykWh, m.InputVoltage, m.InputCurrentAmps, m.TemperatureCelsius} {
			cover(e)
		}
	}
	if tm := d.thermalMetrics; tm != nil {
		names := make([]string, len(tm.TemperatureReadingsCelsius))
		for i, te := range tm.TemperatureReadingsCelsius {
			names[i] = entryName(te.DeviceName, "", i)
		}
		for i, te := range tm.TemperatureReadingsCelsius {
			comp := contextComponent(string(te.PhysicalContext))
			if te.PhysicalContext == "" {
				comp = contextComponent(names[i])
			}
			n := len(rs)
			rs = appendTemp(rs, te.Reading, comp, d.id+"/"+unique(names, i, ""))
			temps = temps || len(rs) > n
			cover(sensorExcerpt{Reading: te.Reading, DataSourceUri: te.DataSourceUri})
		}
	}
	// Sensors: classify first, to know how many chassis totals there are.
	type classified struct {
		metric, component, name string
		value                   float64
		chassis                 bool
	}
	// A Sensor is the same as an excerpt's when the URI it was read from or
	// the one its body claims is the excerpt's DataSourceUri (the DMTF
	// power-shelf mockup serves PS1OutputPower with PS1InputPower's Id and
	// @odata.id).
	var cs []classified
	chassisN := map[string]int{}
	names := make([]string, len(d.sensors))
	for i, s := range d.sensors {
		names[i] = entryName(s.Id, str(lastSegment(s.ref)), i)
	}
	for i, s := range d.sensors {
		if s.Status.off() || !s.Reading.ok || covered[uriPath(s.ref)] || (s.ODataID != "" && covered[uriPath(string(s.ODataID))]) {
			continue
		}
		metric, v, ok := normalise(string(s.ReadingType), string(s.ReadingUnits), s.Reading.v)
		if !ok {
			continue
		}
		name := unique(names, i, str(lastSegment(s.ref)))
		x := classified{metric: metric, name: d.id + "/" + name, value: v}
		pc := string(s.PhysicalContext)
		switch {
		case strings.EqualFold(pc, "Chassis"):
			x.chassis = true
			chassisN[metric]++
		default:
			x.component = sensorComponent(pc)
			if x.component == "psu" && (metric == collectors.MetricPower || metric == collectors.MetricEnergy) &&
				(strings.Contains(strings.ToLower(name), "output") || strings.Contains(strings.ToLower(string(s.Name)), "output")) {
				x.component = ""
			}
		}
		cs = append(cs, x)
	}
	for _, x := range cs {
		if x.chassis && chassisN[x.metric] == 1 &&
			((x.metric == collectors.MetricPower && !chassisPower) || (x.metric == collectors.MetricEnergy && !chassisEnergy)) {
			x.component = "chassis"
		}
		switch {
		case x.metric == collectors.MetricPower && x.component == "chassis":
			chassisPower = true
		case x.metric == collectors.MetricPower && x.component == "psu":
			psuPower = true
		case x.metric == collectors.MetricTemperature:
			temps = true
		}
		rs = append(rs, reading{x.metric, x.component, x.name, x.value})
	}
	return rs, legacyNeeds{chassisPower: !chassisPower, psuPower: !psuPower, temps: !temps}, covered
}

// idleSensors returns the URIs of the sensors that gave nothing and need
// not be read one by one again for a while: those an excerpt covers, Absent
// ones, and those of a type greenloop has no series for (fans, frequency,
// state of health). A sensor that merely had no reading this time is not
// idle.
func (d chassisData) idleSensors(covered map[string]bool) []string {
	var idle []string
	for _, s := range d.sensors {
		_, _, usable := normalise(string(s.ReadingType), string(s.ReadingUnits), 1)
		if covered[uriPath(s.ref)] || (s.ODataID != "" && covered[uriPath(string(s.ODataID))]) ||
			strings.EqualFold(s.Status.State, "Absent") || !usable {
			idle = append(idle, uriPath(s.ref))
		}
	}
	return idle
}

// uriPath is the path of a Redfish URI without a trailing slash, to compare
// DataSourceUri with the URI a Sensor was read from.
func uriPath(ref string) string {
	if u, err := url.Parse(ref); err == nil {
		ref = u.Path
	}
	return strings.TrimRight(ref, "/")
}

type powerDistribution struct {
	head
	Status   status `json:"Status"`
	Metrics  link   `json:"Metrics"`
	Mains    link   `json:"Mains"`
	Branches link   `json:"Branches"`
	Feeders  link   `json:"Feeders"`
	Outlets  link   `json:"Outlets"`
}

// circuit is a PDU's Metrics, a Branch or an Outlet.
type circuit struct {
	head
	Status      status        `json:"Status"`
	PowerWatts  sensorExcerpt `json:"PowerWatts"`
	EnergykWh   sensorExcerpt `json:"EnergykWh"`
	CurrentAmps sensorExcerpt `json:"CurrentAmps"`
	Voltage     sensorExcerpt `json:"Voltage"`
}

func (c circuit) readings(component, sensor string) []reading {
	if c.Status.off() {
		return nil
	}
	var rs []reading
	rs = appendPower(rs, c.PowerWatts.Reading, component, sensor)
	rs = appendEnergy(rs, c.EnergykWh.Reading, component, sensor)
	rs = appendCurrent(rs, c.CurrentAmps.Reading, component, sensor)
	rs = appendVoltage(rs, c.Voltage.Reading, component, sensor)
	return rs
}

// entryName is the first usable of name and alt ("nil" and "null" are not
// names), or the entry's index.
func entryName(name, alt str, i int) string {
	for _, s := range []str{name, alt} {
		v := strings.TrimSpace(string(s))
		if v != "" && !strings.EqualFold(v, "nil") && !strings.EqualFold(v, "null") {
			return v
		}
	}
	return strconv.Itoa(i)
}

// unique returns names[i], made unique within names by appending the
// entry's MemberId (or index) when another entry has the same name (HPE
// names every PSU "HpeServerPowerSupply").
func unique(names []string, i int, memberID str) string {
	for j, n := range names {
		if j != i && n == names[i] {
			id := strings.TrimSpace(string(memberID))
			if id == "" || id == names[i] {
				id = strconv.Itoa(i)
			}
			return names[i] + "/" + id
		}
	}
	return names[i]
}

func appendPower(rs []reading, n num, component, sensor string) []reading {
	if !n.ok || n.v < 0 {
		return rs
	}
	return append(rs, reading{collectors.MetricPower, component, sensor, n.v})
}

func appendEnergy(rs []reading, n num, component, sensor string) []reading {
	if !n.ok || n.v < 0 || math.IsInf(n.v*kWhJoules, 0) {
		return rs
	}
	return append(rs, reading{collectors.MetricEnergy, component, sensor, n.v * kWhJoules})
}

func appendTemp(rs []reading, n num, component, sensor string) []reading {
	if !n.ok {
		return rs
	}
	return append(rs, reading{collectors.MetricTemperature, component, sensor, n.v})
}

func appendVoltage(rs []reading, n num, component, sensor string) []reading {
	if !n.ok {
		return rs
	}
	return append(rs, reading{collectors.MetricVoltage, component, sensor, n.v})
}

func appendCurrent(rs []reading, n num, component, sensor string) []reading {
	if !n.ok {
		return rs
	}
	return append(rs, reading{collectors.MetricCurrent, component, sensor, n.v})
}
