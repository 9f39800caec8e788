package providers

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// BenchmarkParseCSV: a year of hourly values for one zone (8760 lines).
func BenchmarkParseCSV(b *testing.B) {
	var buf bytes.Buffer
	buf.WriteString("zone,timestamp,g_per_kwh\n")
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 8760 {
		fmt.Fprintf(&buf, "DE,%s,%d.5\n", t0.Add(time.Duration(i)*time.Hour).Format(time.RFC3339), 200+i%300)
	}
	in := buf.Bytes()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		if _, err := ParseCSV(bytes.NewReader(in)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkENTSOEWeek: a 7-day A75 answer (the default window) with 12
// production types at PT15M, parsed and turned into 168 hourly values.
func BenchmarkENTSOEWeek(b *testing.B) {
	var sb strings.Builder
	sb.WriteString(`<GL_MarketDocument xmlns="urn:iec62325.351:tc57wg16:451-6:generationloaddocument:3:0">`)
	for _, psr := range []string{"B01", "B02", "B04", "B05", "B06", "B10", "B11", "B12", "B14", "B16", "B18", "B19"} {
		sb.WriteString(`<TimeSeries><inBiddingZone_Domain.mRID>10Y1001A1001A82H</inBiddingZone_Domain.mRID>` +
			`<quantity_Measure_Unit.name>MAW</quantity_Measure_Unit.name><curveType>A01</curveType><MktPSRType><psrType>` + psr +
			`</psrType></MktPSRType><Period><timeInterval><start>2025-03-03T00:00Z</start><end>2025-03-10T00:00Z</end></timeInterval><resolution>PT15M</resolution>`)
		for pos := 1; pos <= 7*96; pos++ {
			fmt.Fprintf(&sb, `<Point><position>%d</position><quantity>%d</quantity></Point>`, pos, 1000+pos%400)
		}
		sb.WriteString(`</Period></TimeSeries>`)
	}
	sb.WriteString(`</GL_MarketDocument>`)
	in := []byte(sb.String())
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		gen := entsoeGeneration{}
		if err := parseENTSOE(in, gen); err != nil {
			b.Fatal(err)
		}
		if pts, _ := gen.hourly("DE-LU", DefaultEmissionFactors); len(pts) != 168 {
			b.Fatalf("%d hours", len(pts))
		}
	}
}
