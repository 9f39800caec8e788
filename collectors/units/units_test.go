package units

import "testing"

func TestConversions(t *testing.T) {
	f := func(got float64, s string, want float64, wantS string) {
		t.Helper()
		if got != want || s != wantS {
			t.Errorf("got %v %q, want %v %q", got, s, want, wantS)
		}
	}
	e := Energy(240422366267)
	f(e.Joules(), e.String(), 240422.366267, "240422.366267J")
	f(Kilojoule.Joules(), Kilojoule.String(), 1000, "1000J")
	f(Energy(0).Joules(), Energy(0).String(), 0, "0J")
	p := Power(45000000)
	f(p.Watts(), p.String(), 45, "45W")
	f(Milliwatt.Watts(), Milliwatt.String(), 0.001, "0.001W")
	tc := Temperature(-5500)
	f(tc.Celsius(), tc.String(), -5.5, "-5.5°C")
	v := 12000 * Millivolt
	f(v.Volts(), v.String(), 12, "12V")
	c := 500 * Milliampere
	f(c.Amperes(), c.String(), 0.5, "0.5A")
}
