package redfish

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"

	"github.com/greenloop/greenloop/collectors"
)

// kWhJoules is one kilowatt-hour in joules.
const kWhJoules = 3.6e6

// link is a Redfish navigation property.
type link struct {
	ID string `json:"@odata.id"`
}

type collection struct {
	Members []link `json:"Members"`
}

type serviceRoot struct {
	Chassis        link `json:"Chassis"`
	PowerEquipment link `json:"PowerEquipment"`
}

type chassis struct {
	Id                 string `json:"Id"`
	Power              link   `json:"Power"`
	Thermal            link   `json:"Thermal"`
	EnvironmentMetrics link   `json:"EnvironmentMetrics"`
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
	var v string
	if json.Unmarshal(b, &v) == nil {
		*s = str(v)
	} else {
		*s = ""
	}
	return nil
}

// sensorExcerpt is the embedded excerpt of a Sensor (PowerWatts, EnergykWh...).
type sensorExcerpt struct {
	Reading num `json:"Reading"`
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

// readings returns the PSUs' input power and, with control, the chassis'
// consumed power from PowerControl.
func (p power) readings(chassisID string, control bool) []reading {
	var rs []reading
	if control {
		for i, pc := range p.PowerControl {
			if pc.Status.off() {
				continue
			}
			rs = appendPower(rs, pc.PowerConsumedWatts, "chassis", chassisID+"/"+entryName(pc.MemberId, pc.Name, i))
		}
	}
	names := make([]string, len(p.PowerSupplies))
	for i, ps := range p.PowerSupplies {
		names[i] = entryName(ps.Name, ps.MemberId, i)
	}
	for i, ps := range p.PowerSupplies {
		if ps.Status.off() {
			continue
		}
		rs = appendPower(rs, ps.PowerInputWatts, "psu", unique(names, i, ps.MemberId))
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

func (t thermal) readings() []reading {
	var rs []reading
	names := make([]string, len(t.Temperatures))
	for i, te := range t.Temperatures {
		names[i] = entryName(te.Name, te.MemberId, i)
	}
	for i, te := range t.Temperatures {
		if te.Status.off() {
			continue
		}
		rs = appendTemp(rs, te.ReadingCelsius, contextComponent(string(te.PhysicalContext)), unique(names, i, te.MemberId))
	}
	return rs
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

type powerDistribution struct {
	Id       string `json:"Id"`
	Status   status `json:"Status"`
	Metrics  link   `json:"Metrics"`
	Branches link   `json:"Branches"`
	Outlets  link   `json:"Outlets"`
}

// circuit is a PDU's Metrics, a Branch or an Outlet.
type circuit struct {
	Id          string        `json:"Id"`
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
	if c.CurrentAmps.Reading.ok {
		rs = append(rs, reading{collectors.MetricCurrent, component, sensor, c.CurrentAmps.Reading.v})
	}
	if c.Voltage.Reading.ok {
		rs = append(rs, reading{collectors.MetricVoltage, component, sensor, c.Voltage.Reading.v})
	}
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
