package report

import "strconv"

// KWh is an amount of energy in kilowatt-hours, the unit of the Delegated
// Regulation's energy fields. (collectors/units.Energy in µJ overflows at
// about 5 GWh, well below a large site's year.)
type KWh float64

// MWh returns the energy in megawatt-hours.
func (e KWh) MWh() float64 { return float64(e) / 1000 }

// String formats the energy, e.g. "15600000kWh".
func (e KWh) String() string { return strconv.FormatFloat(float64(e), 'f', -1, 64) + "kWh" }

// CubicMetres is a volume of water in m³.
type CubicMetres float64

// Litres returns the volume in litres.
func (v CubicMetres) Litres() float64 { return float64(v) * 1000 }

// String formats the volume, e.g. "9600m³".
func (v CubicMetres) String() string { return strconv.FormatFloat(float64(v), 'f', -1, 64) + "m³" }

// Celsius is a temperature in degrees Celsius.
type Celsius float64

// String formats the temperature, e.g. "27°C".
func (c Celsius) String() string { return strconv.FormatFloat(float64(c), 'f', -1, 64) + "°C" }

// KgCO2e is a mass of greenhouse gases in kilograms of CO2 equivalent.
type KgCO2e float64

// Tonnes returns the mass in tonnes CO2e (tCO2e), the unit of ESRS E1-6.
func (m KgCO2e) Tonnes() float64 { return float64(m) / 1000 }

// String formats the mass, e.g. "5327000kgCO2e".
func (m KgCO2e) String() string { return strconv.FormatFloat(float64(m), 'f', -1, 64) + "kgCO2e" }

// KgCO2ePerKWh is an emission factor.
type KgCO2ePerKWh float64

// Times returns the emissions of an amount of energy.
func (f KgCO2ePerKWh) Times(e KWh) KgCO2e { return KgCO2e(float64(f) * float64(e)) }
