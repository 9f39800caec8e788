// Package units holds the physical quantities collectors read, as integer types
// in the unit the hardware reports (µJ, µW, m°C, mV, mA), in the style of
// time.Duration: convert once, with Joules(), Watts(), Celsius() and so on,
// where a reading leaves the collector.
package units

import "strconv"

// Energy is an amount of energy in microjoules, the unit of RAPL energy_uj and
// hwmon energy*_input. It holds up to about 1.8e13 J.
type Energy uint64

// Common energies.
const (
	Microjoule Energy = 1
	Millijoule        = 1000 * Microjoule
	Joule             = 1000 * Millijoule
	Kilojoule         = 1000 * Joule
)

// Joules returns the energy in joules.
func (e Energy) Joules() float64 { return float64(e) / float64(Joule) }

// String formats the energy in joules, e.g. "240422.366267J".
func (e Energy) String() string { return format(e.Joules(), "J") }

// Power is a power in microwatts, the unit of hwmon power*_input.
type Power uint64

// Common powers.
const (
	Microwatt Power = 1
	Milliwatt       = 1000 * Microwatt
	Watt            = 1000 * Milliwatt
	Kilowatt        = 1000 * Watt
)

// Watts returns the power in watts.
func (p Power) Watts() float64 { return float64(p) / float64(Watt) }

// String formats the power in watts, e.g. "45W".
func (p Power) String() string { return format(p.Watts(), "W") }

// Temperature is a temperature in millidegrees Celsius, the unit of hwmon
// temp*_input. It may be negative.
type Temperature int64

// MilliCelsius is one thousandth of a degree Celsius.
const MilliCelsius Temperature = 1

// Celsius returns the temperature in degrees Celsius.
func (t Temperature) Celsius() float64 { return float64(t) / 1000 }

// String formats the temperature in degrees Celsius, e.g. "55°C".
func (t Temperature) String() string { return format(t.Celsius(), "°C") }

// Voltage is a voltage in millivolts, the unit of hwmon in*_input.
type Voltage int64

// Millivolt is one thousandth of a volt.
const Millivolt Voltage = 1

// Volts returns the voltage in volts.
func (v Voltage) Volts() float64 { return float64(v) / 1000 }

// String formats the voltage in volts, e.g. "12V".
func (v Voltage) String() string { return format(v.Volts(), "V") }

// Current is an electric current in milliamperes, the unit of hwmon
// curr*_input. It may be negative (a battery charging, a shunt mounted backwards).
type Current int64

// Milliampere is one thousandth of an ampere.
const Milliampere Current = 1

// Amperes returns the current in amperes.
func (c Current) Amperes() float64 { return float64(c) / 1000 }

// String formats the current in amperes, e.g. "0.5A".
func (c Current) String() string { return format(c.Amperes(), "A") }

func format(v float64, unit string) string {
	return strconv.FormatFloat(v, 'f', -1, 64) + unit
}
