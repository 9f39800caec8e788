package ipmi

import (
	"fmt"
	"strings"
)

// sdrSpec describes one Full Sensor Record (IPMI 2.0 table 43-1). The same
// bytes feed go-ipmi's parser in the unit tests and ipmi_sim's main_sdr_add
// in the integration test.
type sdrSpec struct {
	num            uint8
	name           string
	stype, evtype  uint8 // sensor type (01h temperature ...), event/reading type (01h threshold, 6Fh sensor-specific)
	entity, inst   uint8
	unit1          uint8 // byte 21: analog format <<6 | rate <<3 | modifier <<1 | percentage
	base           uint8 // base unit: 1 °C, 2 °F, 3 K, 4 V, 5 A, 6 W, 18 RPM
	modUnit        uint8
	lin            uint8 // linearization: 0 linear, 70h non-linear
	m, b           int16 // 10-bit signed
	rexp, bexp     int8  // 4-bit signed
	owner          uint8 // 0 means the BMC, 20h
	ownerLUN       uint8
	scanDisabled   bool   // ipmi_sim: no sensor_set_event_support, so scanning stays off
	notInSim       bool   // ipmi_sim: an SDR with no sensor behind it
	file           string // ipmi_sim: raw value polled from this file (relative to the sim dir)
	raw            uint8  // ipmi_sim: initial raw reading
	wantLabel      string // expected sensor label; "" means the sensor is not emitted
	wantComponent  string
	wantMetric     string // "" means the collector does not even ask for the sensor
	wantValue      float64
	ipmitoolAbsent bool // ipmitool shows no number for it either
}

// record returns the SDR's bytes, header included.
func (s sdrSpec) record(recordID uint16) []byte {
	owner := s.owner
	if owner == 0 {
		owner = 0x20
	}
	name := []byte(s.name)
	m, b := uint16(s.m)&0x3ff, uint16(s.b)&0x3ff
	r := []byte{
		byte(recordID), byte(recordID >> 8), 0x51, 0x01, byte(43 + len(name)),
		owner, s.ownerLUN & 0x03, s.num, s.entity, s.inst,
		0x7f, 0x40, s.stype, s.evtype,
		0, 0, 0, 0, 0, 0, // assertion, deassertion, reading masks
		s.unit1, s.base, s.modUnit, s.lin,
		byte(m), byte(m>>8) << 6, // M, tolerance
		byte(b), byte(b>>8) << 6, // B, accuracy
		0x00,
		byte(s.rexp&0x0f)<<4 | byte(s.bexp&0x0f),
		0x00, 0, 0, 0, 0xff, 0x00, // flags, nominal, normal max/min, sensor max/min
		0, 0, 0, 0, 0, 0, // thresholds
		0, 0, // hysteresis
		0, 0, 0, // reserved, OEM
		0xc0 | byte(len(name)),
	}
	return append(r, name...)
}

// emuLine is the ipmi_sim command adding the record.
func (s sdrSpec) emuLine(recordID uint16) string {
	var sb strings.Builder
	sb.WriteString("main_sdr_add 0x20")
	for _, x := range s.record(recordID) {
		fmt.Fprintf(&sb, " 0x%02x", x)
	}
	return sb.String()
}
