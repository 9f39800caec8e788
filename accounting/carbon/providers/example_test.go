package providers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon/providers"
)

// A CSV body as PUT /api/v1/carbon-intensity receives it: parse, refuse the
// whole body when a line is bad, otherwise serve and store the points.
func ExampleParseCSV() {
	body := "zone,timestamp,g_per_kwh\n" +
		"DE,2025-03-10T12:00:00Z,358.7\n" +
		"DE,2025-03-10T13:00:00Z,340\n"
	pts, err := providers.ParseCSV(strings.NewReader(body))
	var bad *providers.CSVErrors
	if errors.As(err, &bad) {
		fmt.Println(bad)
		return
	}
	m := providers.NewMemory("csv", nil, pts)
	got, _ := m.Intensity(context.Background(), "DE",
		time.Date(2025, 3, 10, 13, 0, 0, 0, time.UTC), time.Date(2025, 3, 10, 14, 0, 0, 0, time.UTC), providers.Average)
	fmt.Println(got[0].Intensity)
	for _, s := range providers.Series(m.Name(), pts) {
		fmt.Println(s.String(), len(s.Points))
	}

	_, err = providers.ParseCSV(strings.NewReader("zone,timestamp,g_per_kwh\nDE,yesterday,1\nDE,2025-03-10T12:00:00Z,-1\n"))
	fmt.Println(err)
	// Output:
	// 340 gCO2e/kWh
	// greenloop_grid_carbon_intensity_grams_per_kwh{zone="DE",provider="csv",signal="average",kind="actual"} 2
	// 2 bad CSV line(s); line 2, column "timestamp": invalid timestamp, want RFC 3339 such as 2025-03-10T12:00:00Z (value "yesterday"); line 3, column "g_per_kwh": out of range [0, 10000] gCO2e/kWh (value "-1")
}
