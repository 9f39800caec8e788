package providers

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
	"github.com/greenloop/greenloop/internal/sample"
)

func TestParseCSV(t *testing.T) {
	in := "zone,timestamp,g_per_kwh\n" +
		"DE,2025-03-10T12:00:00Z,358.7\n" +
		"FR,2025-03-10T13:00:00+01:00,48\n"
	pts, err := ParseCSV(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Point{
		{Zone: "DE", Time: mustTime("2025-03-10T12:00:00Z"), Intensity: 358.7, Kind: Actual, Signal: Average},
		{Zone: "FR", Time: mustTime("2025-03-10T12:00:00Z"), Intensity: 48, Kind: Actual, Signal: Average},
	}
	if len(pts) != 2 || pts[0] != want[0] || pts[1] != want[1] {
		t.Errorf("got %+v, want %+v", pts, want)
	}

	// Optional columns, any order, BOM, case.
	pts, err = ParseCSV(strings.NewReader("\ufeffKind,G_per_kWh,Zone,Signal,Timestamp\nforecast,12.5,GB,marginal,2025-03-10T12:30:00Z\n,1,GB,,2025-03-10T12:30:00Z\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 2 || pts[0].Kind != Forecast || pts[0].Signal != Marginal || pts[0].Intensity != 12.5 || pts[1].Kind != Actual || pts[1].Signal != Average {
		t.Errorf("got %+v", pts)
	}
}

func TestParseCSVErrors(t *testing.T) {
	// Header problems are one error for line 1.
	hf := func(in, column, msg string) {
		t.Helper()
		_, err := ParseCSV(strings.NewReader(in))
		var pe *carbon.ParseError
		if !errors.As(err, &pe) || pe.Line != 1 || pe.Column != column || !strings.Contains(err.Error(), msg) {
			t.Errorf("%q: got %v, want line 1 column %q containing %q", in, err, column, msg)
		}
	}
	hf("", "", "empty input")
	hf("zone,timestamp\n", "g_per_kwh", "missing column")
	hf("zone,timestamp,g_per_kwh,site\n", "site", "unknown column")
	hf("zone,timestamp,g_per_kwh,Zone\n", "Zone", "duplicate column")

	// Every bad line is reported; good lines still come back.
	in := "zone,timestamp,g_per_kwh\n" +
		"DE,2025-03-10T12:00:00Z,358.7\n" + // 2 ok
		"DE,2025-03-10 13:00,300\n" + // 3 timestamp
		"DE,2025-03-10T14:00:00Z,abc\n" + // 4 value
		",2025-03-10T15:00:00Z,1\n" + // 5 zone
		"DE,2025-03-10T16:00:00Z,-4\n" + // 6 negative
		"DE,2025-03-10T17:00:00Z\n" + // 7 fields
		"DE,2025-03-10T12:00:00Z,359\n" + // 8 duplicate of 2
		"DE,2025-03-10T18:00:00Z,NaN\n" + // 9 NaN
		"DE,2025-03-10T19:00:00Z,250\n" // 10 ok
	pts, err := ParseCSV(strings.NewReader(in))
	var ce *CSVErrors
	if !errors.As(err, &ce) {
		t.Fatalf("got %v, want *CSVErrors", err)
	}
	if len(pts) != 2 || pts[0].Intensity != 358.7 || pts[1].Intensity != 250 {
		t.Errorf("good points %+v", pts)
	}
	want := []struct {
		line   int
		column string
		msg    string
	}{
		{3, "timestamp", "RFC 3339"},
		{4, "g_per_kwh", "invalid number"},
		{5, "zone", "empty zone"},
		{6, "g_per_kwh", "out of range"},
		{7, "", "2 fields, want 3"},
		{8, "timestamp", "duplicate of line 2"},
		{9, "g_per_kwh", "out of range"},
	}
	if len(ce.Lines) != len(want) {
		t.Fatalf("got %d errors: %v", len(ce.Lines), err)
	}
	for i, w := range want {
		l := ce.Lines[i]
		if l.Line != w.line || l.Column != w.column || !strings.Contains(l.Error(), w.msg) {
			t.Errorf("error %d: %v (line %d, column %q); want line %d, column %q, %q", i, l, l.Line, l.Column, w.line, w.column, w.msg)
		}
	}
	if !strings.Contains(err.Error(), "7 bad CSV line(s)") || !strings.Contains(err.Error(), "and 2 more") {
		t.Errorf("summary %q", err)
	}

	// Bounded.
	var b strings.Builder
	b.WriteString("zone,timestamp,g_per_kwh\n")
	for range MaxCSVErrors + 10 {
		b.WriteString("DE,x,1\n")
	}
	_, err = ParseCSV(strings.NewReader(b.String()))
	if !errors.As(err, &ce) || len(ce.Lines) != MaxCSVErrors || !ce.Truncated {
		t.Errorf("got %d errors, truncated %v", len(ce.Lines), ce.Truncated)
	}
}

func TestReadCSVFormats(t *testing.T) {
	// The Electricity Maps dataset format, as exported.
	pts, err := ReadCSVFile("testdata/em_dataset_excerpt.csv", "", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(pts) != 24 || pts[0].Zone != "DE" || pts[0].Intensity != 212.91 || pts[0].Duration != time.Hour ||
		!pts[0].Time.Equal(mustTime("2022-01-01T00:00:00Z")) || pts[0].Kind != Actual {
		t.Errorf("got %d points, first %+v", len(pts), pts[0])
	}
	direct, err := ReadCSVFile("testdata/em_dataset_excerpt.csv", "DE", true)
	if err != nil || direct[0].Intensity != 162.59 {
		t.Errorf("direct: %v %+v", err, direct[0])
	}
	if _, err := ReadCSVFile("testdata/em_dataset_excerpt.csv", "FR", false); err == nil || !strings.Contains(err.Error(), `zone "DE"`) {
		t.Errorf("zone mismatch: %v", err)
	}
	// The plain format; a configured zone must match.
	if _, err := ReadCSV(strings.NewReader("zone,timestamp,g_per_kwh\nFR,2025-01-01T00:00:00Z,50\n"), "DE", false); err == nil {
		t.Error("zone mismatch in plain format accepted")
	}
	pts, err = ReadCSV(strings.NewReader("zone,timestamp,g_per_kwh\nFR,2025-01-01T00:00:00Z,50\n"), "FR", false)
	if err != nil || len(pts) != 1 || pts[0].Intensity != 50 {
		t.Errorf("plain: %v %v", pts, err)
	}
	// The estimated flag of the dataset.
	pts, err = ReadCSV(strings.NewReader("Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA),Data Estimated\n"+
		"2022-07-01 13:00:00,FR,48.78,77.92,true\n"), "", false)
	if err != nil || pts[0].Kind != Estimate || pts[0].Zone != "FR" {
		t.Errorf("estimated: %v %+v", err, pts)
	}
}

func TestMemory(t *testing.T) {
	clk := newFakeClock(mustTime("2025-03-10T12:30:00Z"))
	h := func(s string) time.Time { return mustTime("2025-03-10T" + s + ":00:00Z") }
	m := NewMemory("csv", clk, []Point{
		{Zone: "DE", Time: h("10"), Intensity: 1, Kind: Actual, Signal: Average},
		{Zone: "DE", Time: h("11"), Intensity: 2, Kind: Actual, Signal: Average},
		{Zone: "DE", Time: h("12"), Intensity: 3, Kind: Estimate, Signal: Average},
		{Zone: "DE", Time: h("13"), Intensity: 4, Kind: Forecast, Signal: Average},
		{Zone: "DE", Time: h("11"), Intensity: 9, Kind: Actual, Signal: Marginal},
	})
	ctx := context.Background()
	pts, err := m.Intensity(ctx, "DE", h("11"), h("14"), Average)
	if err != nil || len(pts) != 2 || pts[0].Intensity != 2 || pts[1].Intensity != 3 {
		t.Errorf("intensity %v %v", pts, err)
	}
	fc, err := m.Forecast(ctx, "DE", h("00"), h("23"), Average)
	if err != nil || len(fc) != 1 || fc[0].Intensity != 4 {
		t.Errorf("forecast %v %v", fc, err)
	}
	p, err := m.Latest(ctx, "DE", Average)
	if err != nil || p.Intensity != 3 {
		t.Errorf("latest %v %v", p, err)
	}
	if p, err := m.Latest(ctx, "DE", Marginal); err != nil || p.Intensity != 9 {
		t.Errorf("latest marginal %v %v", p, err)
	}
	// A later import replaces the value of the same hour.
	m.Add([]Point{{Zone: "DE", Time: h("11"), Intensity: 20, Kind: Actual, Signal: Average}})
	if pts, _ := m.Intensity(ctx, "DE", h("11"), h("12"), Average); len(pts) != 1 || pts[0].Intensity != 20 {
		t.Errorf("after replace %v", pts)
	}
	if _, err := m.Latest(ctx, "XX", Average); !errors.Is(err, ErrUnknownZone) {
		t.Errorf("unknown zone: %v", err)
	}
	clk.Advance(-5 * time.Hour)
	if _, err := m.Latest(ctx, "DE", Average); !errors.Is(err, ErrNoData) {
		t.Errorf("before the first point: %v", err)
	}
	if z := m.Zones(); len(z) != 1 || z[0] != "DE" {
		t.Errorf("zones %v", z)
	}
}

func TestStatic(t *testing.T) {
	fs, err := BuiltinAnnualFactors()
	if err != nil {
		t.Fatal(err)
	}
	// The published 2022 means of the Electricity Maps data (testdata README).
	want := map[string]float64{"PL": 819, "DE": 474, "NL": 371, "ES": 204, "FR": 89}
	if len(fs) != len(want) {
		t.Fatalf("got %v", fs)
	}
	for _, f := range fs {
		if math.Abs(f.Intensity.GramsPerKWh()-want[f.Zone]) > 1 || f.Year != 2022 || f.Source == "" {
			t.Errorf("%+v, want %v±1 in 2022", f, want[f.Zone])
		}
		if r := math.Round(f.Intensity.GramsPerKWh()*10) / 10; r != f.Intensity.GramsPerKWh() {
			t.Errorf("%s not rounded to 0.1: %v", f.Zone, f.Intensity)
		}
	}
	de, _ := carbon.Embedded2022("DE")
	if _, lca := de.Mean(); math.Abs(float64(lca)-474.0) > 1 {
		t.Fatal("embedded data changed")
	}

	clk := newFakeClock(mustTime("2026-06-01T10:20:00Z"))
	s, err := NewStatic(clk, AnnualFactor{Zone: "DE", Year: 2024, Intensity: 380, Source: "operator"},
		AnnualFactor{Zone: "SE", Year: 2023, Intensity: 30, Source: "operator"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// Hours of 2022 and 2023 use 2022's DE figure, 2024 and later the operator's.
	pts, err := s.Intensity(ctx, "DE", mustTime("2023-12-31T22:30:00Z"), mustTime("2024-01-01T02:00:00Z"), Average)
	if err != nil {
		t.Fatal(err)
	}
	deF, _ := s.Factor("DE", mustTime("2022-05-01T00:00:00Z"))
	if len(pts) != 3 || !pts[0].Time.Equal(mustTime("2023-12-31T23:00:00Z")) || pts[0].Intensity != deF.Intensity ||
		pts[1].Intensity != 380 || pts[2].Intensity != 380 || pts[0].Kind != Estimate {
		t.Errorf("got %+v", pts)
	}
	// Before the earliest year: the earliest figure.
	if f, _ := s.Factor("SE", mustTime("2020-01-01T00:00:00Z")); f.Intensity != 30 {
		t.Errorf("SE 2020: %+v", f)
	}
	p, err := s.Latest(ctx, "DE", Average)
	if err != nil || p.Intensity != 380 || !p.Time.Equal(mustTime("2026-06-01T10:00:00Z")) {
		t.Errorf("latest %+v %v", p, err)
	}
	if _, err := s.Latest(ctx, "XX", Average); !errors.Is(err, ErrUnknownZone) {
		t.Errorf("XX: %v", err)
	}
	if _, err := s.Forecast(ctx, "DE", time.Time{}, time.Now(), Average); !errors.Is(err, ErrUnsupported) {
		t.Errorf("forecast: %v", err)
	}
	if _, err := NewStatic(nil, AnnualFactor{Zone: "DE", Year: 2024, Intensity: 380}); err == nil {
		t.Error("factor without a source accepted")
	}
	if n := len(s.Factors()); n != 7 {
		t.Errorf("%d factors, want 7", n)
	}
}

func TestSeries(t *testing.T) {
	h := func(s string) time.Time { return mustTime("2025-03-10T" + s + ":00:00Z") }
	ss := Series("entsoe", []Point{
		{Zone: "DE", Time: h("11"), Intensity: 2, Kind: Actual, Signal: Average},
		{Zone: "DE", Time: h("10"), Intensity: 1, Kind: Actual, Signal: Average},
		{Zone: "DE", Time: h("12"), Intensity: 3, Kind: Forecast, Signal: Average},
		{Zone: "AT", Time: h("10"), Intensity: 5, Kind: Actual, Signal: Average},
		{Zone: "DE", Time: h("11"), Intensity: 7, Kind: Actual, Signal: Average},
	}, sample.Label{Name: "tenant", Value: "t1"})
	want := []string{
		`greenloop_grid_carbon_intensity_grams_per_kwh{zone="AT",provider="entsoe",signal="average",kind="actual",tenant="t1"}`,
		`greenloop_grid_carbon_intensity_grams_per_kwh{zone="DE",provider="entsoe",signal="average",kind="actual",tenant="t1"}`,
		`greenloop_grid_carbon_intensity_grams_per_kwh{zone="DE",provider="entsoe",signal="average",kind="forecast",tenant="t1"}`,
	}
	if len(ss) != len(want) {
		t.Fatalf("got %d series", len(ss))
	}
	for i, w := range want {
		if ss[i].String() != w {
			t.Errorf("series %d: %s, want %s", i, ss[i].String(), w)
		}
	}
	de := ss[1].Points
	if len(de) != 2 || de[0] != (sample.Point{T: h("10").UnixMilli(), V: 1}) || de[1] != (sample.Point{T: h("11").UnixMilli(), V: 7}) {
		t.Errorf("DE actual points %v", de)
	}
}
