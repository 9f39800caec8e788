package ipmi

import (
	"fmt"
	"math"
	"strings"
	"time"
	"unicode"

	"github.com/bougou/go-ipmi/pkg/types"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/collectors/units"
	"github.com/greenloop/greenloop/internal/sample"
)

// Metric names this collector emits besides the canonical ones.
const (
	// MetricFanSpeed is a fan's speed in revolutions per minute. DESIGN.md
	// has no canonical fan series; this one follows its naming rules.
	MetricFanSpeed = "greenloop_fan_rpm"
	// MetricDCMIPowerMin, MetricDCMIPowerMax and MetricDCMIPowerAverage are
	// the BMC's own statistics over its DCMI sampling period
	// (MetricDCMISamplingPeriod). They are separate gauges, not
	// greenloop_power_watts with a label, so that sums of
	// greenloop_power_watts stay sums of power.
	MetricDCMIPowerMin     = "greenloop_ipmi_dcmi_power_min_watts"
	MetricDCMIPowerMax     = "greenloop_ipmi_dcmi_power_max_watts"
	MetricDCMIPowerAverage = "greenloop_ipmi_dcmi_power_average_watts"
	// MetricDCMISamplingPeriod is the window, in seconds, the BMC computed
	// the DCMI minimum, maximum and average over.
	MetricDCMISamplingPeriod = "greenloop_ipmi_dcmi_sampling_period_seconds"
)

// Label values this collector sets.
const (
	componentChassis = "chassis"
	componentPSU     = "psu"
	componentInlet   = "inlet"
	componentOutlet  = "outlet"
	componentAmbient = "ambient"
	// sensorDCMI is the sensor label of the DCMI power reading.
	sensorDCMI = "dcmi"
)

// kind is the quantity a sensor measures, which decides its metric.
type kind uint8

const (
	kindNone kind = iota
	kindTemperature
	kindVoltage
	kindCurrent
	kindPower
	kindFan
)

// IPMI entity IDs (IPMI 2.0 table 43-13) the labels depend on.
const (
	entityPowerSupply types.EntityID = 0x0a
	entityAirInlet    types.EntityID = 0x37
	entityAirInletDCM types.EntityID = 0x40 // DCMI 1.0's code for 37h
)

// sensorDef is one SDR sensor the collector reads: where to ask for its
// reading and how to turn the raw byte into a canonical value. It is built
// once per SDR repository version and reused across polls.
type sensorDef struct {
	// label is the sensor label: the SDR's ID string, made unique.
	label     string
	component string
	kind      kind
	// base is the SDR's base unit (degrees F and K are converted to °C).
	base   types.SensorUnitType
	number uint8
	owner  uint8 // IPMB slave address of the sensor's owner
	// entity and instance say what the sensor measures (IPMI 2.0 §39).
	entity   uint8
	instance uint8
	lun      uint8
	// Conversion data from the Full Sensor Record (IPMI 2.0 §36.3).
	format    types.SensorAnalogUnitFormat
	factors   types.ReadingFactors
	linear    types.LinearizationFunc
	nonLinear bool // factors must be read per reading (Get Sensor Reading Factors)
	// skipUntil is set when the BMC did not answer for the sensor while
	// answering for others; the sensor is not read before then.
	skipUntil time.Time
}

// sensorDefs picks, from an SDR repository, the sensors with a numeric
// reading in a unit greenloop stores, and labels them. It is pure: no I/O.
//
// Kept: Full Sensor Records (only they carry conversion factors) with an
// analog data format, whose base unit is °C/°F/K, V, A, W or RPM, with no
// percentage, rate or modifier unit (a "% of rated current" sensor is not
// amperes), owned by a controller rather than system software. The metric
// follows the unit, not the sensor type: BMCs report total power as a
// "Current" type sensor in Watts, and some (HP, Dell) put a Watts reading on
// a discrete Power Supply sensor; both are power.
func sensorDefs(sdrs []*types.SDR) []sensorDef {
	var defs []sensorDef
	for _, sdr := range sdrs {
		d, ok := defFromSDR(sdr)
		if ok {
			defs = append(defs, d)
		}
	}
	uniqueLabels(defs)
	return defs
}

func defFromSDR(sdr *types.SDR) (sensorDef, bool) {
	if sdr == nil || sdr.RecordHeader == nil || sdr.RecordHeader.RecordType != types.SDRRecordTypeFullSensor || sdr.Full == nil {
		return sensorDef{}, false
	}
	f := sdr.Full
	u := f.SensorUnit
	if !u.IsAnalog() || u.Percentage || u.RateUnit != 0 || u.ModifierRelation != types.SensorModifierRelation_None {
		return sensorDef{}, false
	}
	k := kindOf(u.BaseUnit)
	if k == kindNone || f.GeneratorID.OwnerIsSystemSoftware() {
		return sensorDef{}, false
	}
	name := cleanName(f.IDStringBytes)
	if name == "" {
		name = fmt.Sprintf("sensor 0x%02x", uint8(f.SensorNumber))
	}
	return sensorDef{
		label:     name,
		component: componentOf(k, f.SensorEntityID, name),
		kind:      k,
		base:      u.BaseUnit,
		number:    uint8(f.SensorNumber),
		owner:     f.GeneratorID.OwnerID(),
		entity:    uint8(f.SensorEntityID),
		instance:  uint8(f.SensorEntityInstance),
		lun:       f.GeneratorID.LUN(),
		format:    u.AnalogDataFormat,
		factors:   f.ReadingFactors,
		linear:    f.LinearizationFunc,
		nonLinear: f.LinearizationFunc.IsNonLinear(),
	}, true
}

func kindOf(u types.SensorUnitType) kind {
	switch u {
	case types.SensorUnitType_DegreesC, types.SensorUnitType_DegreesF, types.SensorUnitType_DegreesK:
		return kindTemperature
	case types.SensorUnitType_Volts:
		return kindVoltage
	case types.SensorUnitType_Amps:
		return kindCurrent
	case types.SensorUnitType_Watts:
		return kindPower
	case types.SensorUnitType_RPM:
		return kindFan
	}
	return kindNone
}

// componentOf is the component label: "psu" for power, current and voltage
// measured on a power supply entity; "inlet", "outlet" or "ambient" for
// temperatures whose entity (air inlet) or name says so; none otherwise.
func componentOf(k kind, e types.EntityID, name string) string {
	switch k {
	case kindPower, kindCurrent, kindVoltage:
		if e == entityPowerSupply {
			return componentPSU
		}
	case kindTemperature:
		if e == entityAirInlet || e == entityAirInletDCM {
			return componentInlet
		}
		n := strings.ToLower(name)
		switch {
		case strings.Contains(n, "inlet") || strings.Contains(n, "intake"):
			return componentInlet
		case strings.Contains(n, "exhaust") || strings.Contains(n, "outlet"):
			return componentOutlet
		case strings.Contains(n, "ambient"):
			return componentAmbient
		}
	}
	return ""
}

// cleanName turns an SDR ID string (up to 16 bytes, often NUL- or
// space-padded, sometimes with stray control bytes) into a label value.
func cleanName(b []byte) string {
	var sb strings.Builder
	for _, r := range string(b) {
		switch {
		case r == 0:
			// Padding; some BMCs pad in the middle of the field too.
		case r == unicode.ReplacementChar || !unicode.IsPrint(r):
			sb.WriteByte('?')
		default:
			sb.WriteRune(r)
		}
	}
	return strings.Join(strings.Fields(sb.String()), " ")
}

// uniqueLabels makes sensor labels unique within each metric. Real BMCs
// repeat names (Dell's several "Temp" sensors, one per CPU): a repeated name
// gets its entity's ID and instance ("Temp/3.1"); sensors identical in that
// too get their sensor number ("Temp/3.1#0x0e"), and then their owner's
// address. Every suffix is computed from the SDR alone, so a series keeps
// its label across restarts.
func uniqueLabels(defs []sensorDef) {
	steps := []func(d sensorDef) string{
		func(d sensorDef) string { return fmt.Sprintf("%s/%d.%d", d.label, d.entity, d.instance) },
		func(d sensorDef) string { return fmt.Sprintf("%s#0x%02x", d.label, d.number) },
		func(d sensorDef) string { return fmt.Sprintf("%s@0x%02x", d.label, d.owner) },
	}
	type key struct {
		k     kind
		label string
	}
	for _, rename := range steps {
		count := map[key]int{}
		for _, d := range defs {
			count[key{d.kind, d.label}]++
		}
		done := true
		for i := range defs {
			if count[key{defs[i].kind, defs[i].label}] > 1 {
				defs[i].label = rename(defs[i])
				done = false
			}
		}
		if done {
			return
		}
	}
}

// maxReading bounds the magnitude of a converted value: beyond it (1 GW,
// 1 GV, 10⁹ °C) the SDR's factors are wrong, and the typed units would
// overflow.
const maxReading = 1e9

// convert turns a raw reading into the sensor's canonical value, with the
// factors of the SDR or, for a non-linear sensor, those the BMC returned for
// this reading. ok is false when the result is not a finite number (a
// linearization of 0 or a negative number), is beyond maxReading, or is a
// negative power.
func (d sensorDef) convert(raw uint8, factors types.ReadingFactors) (v float64, ok bool) {
	v = types.ConvertReading(raw, d.format, factors, d.linear)
	if d.kind == kindTemperature {
		switch d.base {
		case types.SensorUnitType_DegreesF:
			v = (v - 32) * 5 / 9
		case types.SensorUnitType_DegreesK:
			v -= 273.15
		}
	}
	if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > maxReading {
		return 0, false
	}
	if d.kind == kindPower && v < 0 {
		return 0, false
	}
	return v, true
}

// reading builds the collector reading of value v (in the canonical unit of
// d's metric), through the typed units where one exists.
func (d sensorDef) reading(v float64, t time.Time) collectors.Reading {
	ls := labels(d.component, d.label)
	switch d.kind {
	case kindTemperature:
		return collectors.TemperatureReading(units.Temperature(math.Round(v*1000))*units.MilliCelsius, t, ls...)
	case kindVoltage:
		return collectors.VoltageReading(units.Voltage(math.Round(v*1000))*units.Millivolt, t, ls...)
	case kindCurrent:
		return collectors.CurrentReading(units.Current(math.Round(v*1000))*units.Milliampere, t, ls...)
	case kindPower:
		return collectors.PowerReading(units.Power(math.Round(v*1e6))*units.Microwatt, t, ls...)
	default: // kindFan: no typed unit for speeds
		return collectors.Reading{Metric: MetricFanSpeed, Labels: ls, Value: v, Time: t}
	}
}

// labels returns a fresh label slice in the order the other collectors use.
func labels(component, sensor string) []sample.Label {
	ls := make([]sample.Label, 0, 3)
	ls = append(ls, sample.Label{Name: collectors.LabelSource, Value: Type})
	if component != "" {
		ls = append(ls, sample.Label{Name: collectors.LabelComponent, Value: component})
	}
	return append(ls, sample.Label{Name: collectors.LabelSensor, Value: sensor})
}

// dcmiReadings turns a DCMI power reading into readings: the current power
// as greenloop_power_watts{component="chassis",sensor="dcmi"} (the BMC's
// whole-platform input power, the same component Redfish's PowerControl
// uses), and the BMC's statistics as their own gauges. An inactive reading
// (the BMC does not measure power now) gives none.
func dcmiReadings(current, minimum, maximum, average uint16, period time.Duration, active bool, t time.Time) []collectors.Reading {
	if !active {
		return nil
	}
	w := func(v uint16) units.Power { return units.Power(v) * units.Watt }
	rs := []collectors.Reading{
		collectors.PowerReading(w(current), t, labels(componentChassis, sensorDCMI)...),
		{Metric: MetricDCMIPowerMin, Labels: labels(componentChassis, sensorDCMI), Value: w(minimum).Watts(), Time: t},
		{Metric: MetricDCMIPowerMax, Labels: labels(componentChassis, sensorDCMI), Value: w(maximum).Watts(), Time: t},
		{Metric: MetricDCMIPowerAverage, Labels: labels(componentChassis, sensorDCMI), Value: w(average).Watts(), Time: t},
	}
	if period > 0 {
		rs = append(rs, collectors.Reading{Metric: MetricDCMISamplingPeriod, Labels: labels(componentChassis, sensorDCMI),
			Value: period.Seconds(), Time: t})
	}
	return rs
}
