package accountingapi

import (
	"bytes"
	"testing"

	"github.com/greenloop/greenloop/accounting/carbon/providers"
)

// FuzzDataLines checks that the line numbers given to a CSV body's points
// line up with the points ParseCSV returns, whatever the body: a refusal must
// name the line the point came from.
func FuzzDataLines(f *testing.F) {
	for _, s := range []string{
		"zone,timestamp,g_per_kwh\nDE,2025-06-10T00:00:00Z,300\n",
		"zone,timestamp,g_per_kwh\n\nDE,2025-06-10T00:00:00Z,300\n\n\nFR,2025-06-10T01:00:00Z,40\n",
		"timestamp,zone,g_per_kwh,kind\r\n2025-06-10T00:00:00Z,DE,1,estimate\r\n",
		"zone,timestamp,g_per_kwh\n\"D\nE\",2025-06-10T00:00:00Z,3\nDE,2025-06-10T02:00:00Z,4\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		pts, err := providers.ParseCSV(bytes.NewReader(body))
		if err != nil {
			return
		}
		lines := dataLines(body)
		if len(lines) != len(pts) {
			t.Fatalf("%d points but %d data lines for %q", len(pts), len(lines), body)
		}
		for i := 1; i < len(lines); i++ {
			if lines[i] <= lines[i-1] || lines[0] < 2 {
				t.Fatalf("lines not increasing past the header: %v", lines)
			}
		}
	})
}
