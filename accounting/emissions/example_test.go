package emissions_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/accounting/emissions"
	"github.com/greenloop/greenloop/accounting/energy"
)

// Hourly facility energy from a power meter, times the zone's hourly intensity.
func ExampleLocation() {
	t0 := time.Date(2022, 1, 1, 0, 0, 0, 0, time.UTC)
	sel := `greenloop_power_watts{site="fra1",component="facility"}`
	s := energy.StaticSeries{Labels: map[string]string{"__name__": "greenloop_power_watts", "site": "fra1", "component": "facility"}}
	for m := -1; m <= 121; m++ { // 500 kW, one sample a minute
		s.T = append(s.T, t0.Add(time.Duration(m)*time.Minute).UnixMilli())
		s.V = append(s.V, 500e3)
	}
	e, err := energy.Compute(context.Background(), energy.StaticSource{sel: {s}}, energy.Query{
		Selectors: []string{sel}, From: t0, To: t0.Add(2 * time.Hour),
		Buckets: energy.Bucketing{Calendar: energy.Hour}, Interval: time.Minute})
	if err != nil {
		fmt.Println(err)
		return
	}
	zone := &carbon.Series{Zone: "DE", Points: []carbon.Point{{Time: t0, LCA: 212.91}}} // 01:00 is missing
	r, err := emissions.Location(emissions.LocationInput{Site: "fra1", Zone: "DE", Energy: e, Intensity: zone})
	if err != nil {
		fmt.Println(err)
		return
	}
	j, _ := json.Marshal(r)
	fmt.Println(string(j))
	// Output:
	// {"site":"fra1","from":"2022-01-01T00:00:00Z","to":"2022-01-01T02:00:00Z","method":"location","energy_kwh":1000,"emissions_kg":106.455,"completeness":0.5,"series":[{"t":"2022-01-01T00:00:00Z","energy_kwh":500,"intensity_g_per_kwh":212.91,"emissions_kg":106.455},{"t":"2022-01-01T01:00:00Z","energy_kwh":500,"intensity_g_per_kwh":null,"emissions_kg":0}],"missing_intensity":["2022-01-01T01:00:00Z"],"warnings":["1 buckets without hourly intensity for zone \"DE\"; their emissions are not counted"]}
}
