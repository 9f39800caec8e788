package quantity

import (
	"math"
	"testing"
	"time"
)

func TestConversions(t *testing.T) {
	f := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-12*math.Max(1, math.Abs(want)) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	f("1 kWh in J", KilowattHour.Joules(), 3.6e6)
	f("15.6 GWh in kWh", (15.6 * GigawattHour).KWh(), 15_600_000)
	f("12 000 MWh in MWh", (12_000 * MegawattHour).MWh(), 12_000)
	f("15 220 000 kWh at 350 g/kWh in t", (15_220_000 * KilowattHour).Emissions(350).Tonnes(), 5327)
	f("1932 t in kg", (1932 * TonneCO2e).Kg(), 1_932_000)
	f("CUE in kg/kWh", (5356.93 * TonneCO2e).Per(12_000*MegawattHour).KgPerKWh(), 0.44641083333333333)
	f("9 600 m³ in L", (9600 * CubicMetre).Litres(), 9.6e6)
	f("L in m³", (2500 * Litre).CubicMetres(), 2.5)
	f("10 kg", (10 * Kilogram).Kg(), 10)
	f("mean load", (12_000 * MegawattHour).Over(8760*time.Hour).KW(), 12_000_000.0/8760)
	f("1 MW in W", Megawatt.Watts(), 1e6)
	if CO2e(1).Per(0) != 0 || KilowattHour.Over(0) != 0 {
		t.Error("division by zero energy or time is not 0")
	}
	if !math.IsNaN(Ratio(1, 0)) || Ratio(3, 2) != 1.5 {
		t.Error("Ratio")
	}
}

func TestString(t *testing.T) {
	for _, tc := range []struct {
		got  interface{ String() string }
		want string
	}{
		{12.5 * KilowattHour, "12.5 kWh"},
		{350 * GramPerKWh, "350 gCO2e/kWh"},
		{1500 * GramCO2e, "1.5 kgCO2e"},
		{9600 * Litre, "9600 L"},
		{10 * Kilogram, "10 kg"},
		{1370 * Kilowatt, "1370 kW"},
	} {
		if s := tc.got.String(); s != tc.want {
			t.Errorf("String() = %q, want %q", s, tc.want)
		}
	}
}
