// Package quantity holds the physical quantities of greenloop's accounting —
// energy, CO2-equivalent mass, carbon intensity, volume (water, fuel) and mass —
// as float64 types in one base unit each, in the style of time.Duration:
// multiply a number by a unit constant to make one (3*quantity.KilowattHour),
// read it back with an accessor in the unit you need (e.KWh()).
//
// Accounting sums fractions of samples, so these are floats rather than the
// integer types of collectors/units, which hold raw device readings.
package quantity

import (
	"math"
	"strconv"
	"time"
)

// Energy is an amount of energy in joules.
type Energy float64

// Common energies.
const (
	Joule        Energy = 1
	Kilojoule    Energy = 1e3
	Megajoule    Energy = 1e6
	WattHour     Energy = 3600
	KilowattHour Energy = 3.6e6
	MegawattHour Energy = 3.6e9
	GigawattHour Energy = 3.6e12
)

// Joules returns the energy in joules.
func (e Energy) Joules() float64 { return float64(e) }

// KWh returns the energy in kilowatt-hours.
func (e Energy) KWh() float64 { return float64(e) / float64(KilowattHour) }

// MWh returns the energy in megawatt-hours.
func (e Energy) MWh() float64 { return float64(e) / float64(MegawattHour) }

// String formats the energy in kWh, e.g. "12.5 kWh".
func (e Energy) String() string { return format(e.KWh(), " kWh") }

// Emissions returns the CO2e of this energy at intensity i.
func (e Energy) Emissions(i Intensity) CO2e { return CO2e(e.KWh() * float64(i)) }

// CO2e is a mass of CO2-equivalent greenhouse gases in grams.
type CO2e float64

// Common CO2e masses.
const (
	GramCO2e     CO2e = 1
	KilogramCO2e CO2e = 1e3
	TonneCO2e    CO2e = 1e6
)

// Grams returns the mass in grams.
func (m CO2e) Grams() float64 { return float64(m) }

// Kg returns the mass in kilograms.
func (m CO2e) Kg() float64 { return float64(m) / float64(KilogramCO2e) }

// Tonnes returns the mass in metric tonnes.
func (m CO2e) Tonnes() float64 { return float64(m) / float64(TonneCO2e) }

// Per returns the intensity of these emissions over energy e (0 for no energy).
func (m CO2e) Per(e Energy) Intensity {
	if e == 0 {
		return 0
	}
	return Intensity(float64(m) / e.KWh())
}

// String formats the mass in kilograms, e.g. "5327000 kgCO2e".
func (m CO2e) String() string { return format(m.Kg(), " kgCO2e") }

// Intensity is a carbon intensity in grams of CO2e per kWh (an emission factor).
type Intensity float64

// Common intensities.
const (
	GramPerKWh     Intensity = 1
	KilogramPerKWh Intensity = 1000
)

// GramsPerKWh returns the intensity in gCO2e/kWh.
func (i Intensity) GramsPerKWh() float64 { return float64(i) }

// KgPerKWh returns the intensity in kgCO2e/kWh (the unit of CUE).
func (i Intensity) KgPerKWh() float64 { return float64(i) / 1000 }

// String formats the intensity, e.g. "350 gCO2e/kWh".
func (i Intensity) String() string { return format(float64(i), " gCO2e/kWh") }

// Volume is a volume in litres: water drawn by a site, fuel burnt by a generator.
type Volume float64

// Water is the volume of water a site takes in.
type Water = Volume

// Common volumes.
const (
	Litre      Volume = 1
	CubicMetre Volume = 1000
)

// Litres returns the volume in litres.
func (v Volume) Litres() float64 { return float64(v) }

// CubicMetres returns the volume in m³.
func (v Volume) CubicMetres() float64 { return float64(v) / float64(CubicMetre) }

// String formats the volume in litres, e.g. "9600000 L".
func (v Volume) String() string { return format(float64(v), " L") }

// Mass is a mass in grams (e.g. refrigerant topped up), not yet weighted by a GWP.
type Mass float64

// Common masses.
const (
	Gram     Mass = 1
	Kilogram Mass = 1e3
	Tonne    Mass = 1e6
)

// Kg returns the mass in kilograms.
func (m Mass) Kg() float64 { return float64(m) / float64(Kilogram) }

// String formats the mass in kilograms, e.g. "10 kg".
func (m Mass) String() string { return format(m.Kg(), " kg") }

// Power is a power in watts.
type Power float64

// Common powers.
const (
	Watt     Power = 1
	Kilowatt Power = 1e3
	Megawatt Power = 1e6
)

// Watts returns the power in watts.
func (p Power) Watts() float64 { return float64(p) }

// KW returns the power in kilowatts.
func (p Power) KW() float64 { return float64(p) / float64(Kilowatt) }

// String formats the power in kilowatts, e.g. "1370 kW".
func (p Power) String() string { return format(p.KW(), " kW") }

// Over returns the mean power of energy e spent over d (0 for no time).
func (e Energy) Over(d time.Duration) Power {
	if d <= 0 {
		return 0
	}
	return Power(float64(e) / d.Seconds())
}

// Ratio returns a/b, or NaN when b is zero; the KPIs use it so that a missing
// denominator never reads as a perfect 0.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

func format(v float64, unit string) string {
	return strconv.FormatFloat(v, 'f', -1, 64) + unit
}
