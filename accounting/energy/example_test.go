package energy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/greenloop/greenloop/accounting/energy"
)

// A counter read every 15 minutes, with a device reset, in hourly buckets.
func ExampleCompute() {
	t0 := time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)
	s := energy.StaticSeries{Labels: map[string]string{"__name__": "greenloop_energy_joules_total", "site": "fra1", "component": "it"}}
	for i, v := range []float64{0, 9e5, 18e5, 27e5, 36e5, 9e5 /* reset */, 18e5, 27e5, 36e5} {
		s.T = append(s.T, t0.Add(time.Duration(i)*15*time.Minute).UnixMilli())
		s.V = append(s.V, v)
	}
	sel := `greenloop_energy_joules_total{site="fra1",component="it"}`
	r, err := energy.Compute(context.Background(), energy.StaticSource{sel: {s}}, energy.Query{
		Selectors: []string{sel}, From: t0, To: t0.Add(2 * time.Hour),
		Buckets: energy.Bucketing{Calendar: energy.Hour}, Interval: 15 * time.Minute,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	for _, b := range r.Buckets {
		fmt.Printf("%s %v (complete %.0f%%)\n", b.Start.Format("15:04"), b.Energy, 100*b.Completeness)
	}
	fmt.Println("resets:", r.Resets)
	j, _ := json.Marshal(r.Buckets[0])
	fmt.Println(string(j))
	// Output:
	// 00:00 1 kWh (complete 100%)
	// 01:00 1 kWh (complete 100%)
	// resets: 1
	// {"start":"2025-01-06T00:00:00Z","end":"2025-01-06T01:00:00Z","energy_kwh":1,"estimated_kwh":0,"completeness":1}
}
