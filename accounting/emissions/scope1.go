package emissions

import (
	"errors"
	"fmt"
	"math"

	"github.com/greenloop/greenloop/accounting/quantity"
)

// FuelUse is fuel burnt on site (back-up generators, boilers, CHP).
type FuelUse struct {
	Fuel   string
	Volume quantity.Volume
	// PerLitre is the emission factor of the fuel, CO2e per litre (e.g. about
	// 2.66 kg for diesel); the operator configures it with its source.
	PerLitre quantity.CO2e
	Source   string
}

// RefrigerantLeak is refrigerant topped up (lost) in the period.
type RefrigerantLeak struct {
	// Gas is its common name or designation, e.g. "R-134a".
	Gas  string
	Mass quantity.Mass
	// GWP100 is its 100-year global warming potential from the IPCC report
	// the operator follows (e.g. AR6); configured, never built in.
	GWP100 float64
	Source string
}

// Scope1 is the direct emissions of a site.
type Scope1 struct {
	Fuel, Refrigerant, Total quantity.CO2e
}

// ComputeScope1 sums fuel and refrigerant emissions.
func ComputeScope1(fuels []FuelUse, leaks []RefrigerantLeak) (Scope1, error) {
	var s Scope1
	var errs []error
	for i, f := range fuels {
		if f.Volume < 0 || f.PerLitre < 0 || math.IsNaN(float64(f.Volume)) || math.IsNaN(float64(f.PerLitre)) {
			errs = append(errs, fmt.Errorf("fuels[%d] (%s): negative or invalid volume or factor", i, f.Fuel))
			continue
		}
		s.Fuel += f.PerLitre * quantity.CO2e(f.Volume.Litres())
	}
	for i, l := range leaks {
		if l.Mass < 0 || !(l.GWP100 >= 0) {
			errs = append(errs, fmt.Errorf("refrigerants[%d] (%s): negative or invalid mass or GWP100", i, l.Gas))
			continue
		}
		s.Refrigerant += quantity.CO2e(float64(l.Mass) * l.GWP100) // grams of gas × GWP = grams CO2e
	}
	s.Total = s.Fuel + s.Refrigerant
	return s, errors.Join(errs...)
}
