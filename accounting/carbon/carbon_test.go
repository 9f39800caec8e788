package carbon

import (
	"bytes"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func parseFile(t *testing.T, path string) *Series {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	s, err := ParseElectricityMaps(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return s
}

func hour(s string) time.Time {
	t, err := time.Parse(time.DateTime, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestParseOriginalExport reads the unchanged Electricity Maps export.
func TestParseOriginalExport(t *testing.T) {
	s := parseFile(t, "testdata/DE_2022_hourly.csv")
	if s.Zone != "DE" {
		t.Errorf("zone %q, want DE", s.Zone)
	}
	if len(s.Points) != 8760 {
		t.Fatalf("%d points, want 8760", len(s.Points))
	}
	if got, want := s.Points[0].Time, hour("2022-01-01 00:00:00"); !got.Equal(want) || got.Location() != time.UTC {
		t.Errorf("first hour %v, want %v UTC", got, want)
	}
	for i := 1; i < len(s.Points); i++ {
		if d := s.Points[i].Time.Sub(s.Points[i-1].Time); d != time.Hour {
			t.Fatalf("gap of %v before %v", d, s.Points[i].Time)
		}
	}
	// Exact values read from the file.
	f := func(at string, direct, lca Intensity) {
		t.Helper()
		p, ok := s.At(hour(at).Add(37 * time.Minute))
		if !ok || !p.Time.Equal(hour(at)) || p.Direct != direct || p.LCA != lca {
			t.Errorf("At(%s+37m) = %+v, %v; want direct %v, LCA %v", at, p, ok, direct, lca)
		}
	}
	f("2022-01-01 00:00:00", 162.59, 212.91)
	f("2022-02-28 05:00:00", 502.95, 576.21)
	f("2022-03-10 12:00:00", 298.94, 358.7)
	f("2022-07-01 13:00:00", 376.32, 439.62)
	f("2022-12-31 23:00:00", 156.47, 207.33)
	if _, lca := s.Mean(); math.Abs(float64(lca)-474) > 1 {
		t.Errorf("mean LCA %v, want 474±1", lca)
	}
}

func TestEstimatedFlag(t *testing.T) {
	in := "Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA),Data Estimated\n" +
		"2022-07-01 13:00:00,FR,48.78,77.92,true\n2022-07-01 14:00:00,FR,50,80,false\n"
	s, err := ParseElectricityMaps(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if !s.Points[0].Estimated || s.Points[1].Estimated || s.Zone != "FR" {
		t.Errorf("got %+v", s)
	}
}

// TestEmbedded checks the compact embedded copies: every zone complete, the
// published 2022 means, and DE identical to the original export.
func TestEmbedded(t *testing.T) {
	zones := Embedded2022Zones()
	if strings.Join(zones, ",") != "DE,ES,FR,NL,PL" {
		t.Fatalf("zones %v", zones)
	}
	wantMean := map[string]float64{"PL": 819, "DE": 474, "NL": 371, "ES": 204, "FR": 89}
	for _, z := range zones {
		s, err := Embedded2022(z)
		if err != nil {
			t.Fatal(err)
		}
		if s.Zone != z || len(s.Points) != 8760 {
			t.Errorf("%s: zone %q, %d points", z, s.Zone, len(s.Points))
		}
		if _, lca := s.Mean(); math.Abs(float64(lca)-wantMean[z]) > 1 {
			t.Errorf("%s: mean LCA %.2f, want %v±1", z, lca, wantMean[z])
		}
	}
	if s2, _ := Embedded2022("DE"); s2 == nil {
		t.Fatal("cache")
	}
	if _, err := Embedded2022("XX"); err == nil || !strings.Contains(err.Error(), "DE, ES, FR, NL, PL") {
		t.Errorf("unknown zone: %v", err)
	}

	orig := parseFile(t, "testdata/DE_2022_hourly.csv")
	emb, _ := Embedded2022("DE")
	for i, p := range orig.Points {
		q := emb.Points[i]
		if !p.Time.Equal(q.Time) || p.Direct != q.Direct || p.LCA != q.LCA {
			t.Fatalf("row %d: original %+v, embedded %+v", i, p, q)
		}
	}
	var buf bytes.Buffer
	if err := WriteCompactCSV(&buf, orig); err != nil {
		t.Fatal(err)
	}
	file, err := embedded.ReadFile("data/DE_2022_hourly.csv")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(buf.Bytes(), file) {
		t.Error("data/DE_2022_hourly.csv is not WriteCompactCSV of the original export; regenerate it with internal/gendata")
	}
	if _, err := embedded.ReadFile("data/NOTICE"); err != nil {
		t.Error("NOTICE not embedded")
	}
}

func TestAt(t *testing.T) {
	s := &Series{Zone: "X", Points: []Point{
		{Time: hour("2022-01-01 00:00:00"), LCA: 1},
		{Time: hour("2022-01-01 01:00:00"), LCA: 2},
		{Time: hour("2022-01-01 03:00:00"), LCA: 4}, // 02:00 missing
	}}
	f := func(at string, want Intensity, wantOK bool) {
		t.Helper()
		p, ok := s.At(hour(at))
		if ok != wantOK || p.LCA != want {
			t.Errorf("At(%s) = %v, %v; want %v, %v", at, p.LCA, ok, want, wantOK)
		}
	}
	f("2021-12-31 23:59:59", 0, false)
	f("2022-01-01 00:00:00", 1, true)
	f("2022-01-01 00:59:59", 1, true)
	f("2022-01-01 01:00:00", 2, true)
	f("2022-01-01 02:30:00", 0, false)
	f("2022-01-01 03:59:00", 4, true)
	f("2022-01-01 04:00:00", 0, false)
	if _, ok := (&Series{}).At(time.Now()); ok {
		t.Error("empty series")
	}
}

func TestReplay(t *testing.T) {
	s, err := Embedded2022("DE")
	if err != nil {
		t.Fatal(err)
	}
	f := func(at time.Time, want string) {
		t.Helper()
		p, ok := s.Replay(at)
		if !ok || !p.Time.Equal(hour(want)) {
			t.Errorf("Replay(%v) = %v, %v; want the hour %s", at, p.Time, ok, want)
		}
	}
	f(time.Date(2025, 3, 10, 12, 30, 0, 0, time.UTC), "2022-03-10 12:00:00")
	f(time.Date(2024, 2, 29, 5, 10, 0, 0, time.UTC), "2022-02-28 05:00:00")
	f(time.Date(2030, 12, 31, 23, 59, 59, 0, time.UTC), "2022-12-31 23:00:00")
	f(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), "2022-01-01 00:00:00")
	// A time in another zone is placed by its UTC hour.
	f(time.Date(2026, 7, 1, 15, 0, 0, 0, time.FixedZone("CEST", 2*3600)), "2022-07-01 13:00:00")
	p, _ := s.Replay(time.Date(2025, 3, 10, 12, 30, 0, 0, time.UTC))
	if p.LCA != 358.7 {
		t.Errorf("LCA %v, want 358.7", p.LCA)
	}
}

func TestParseErrors(t *testing.T) {
	const hdr = "Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA)\n"
	f := func(in string, line int, column, msg string) {
		t.Helper()
		_, err := ParseElectricityMaps(strings.NewReader(in))
		var pe *ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("error %v, want a *ParseError", err)
		}
		if pe.Line != line || pe.Column != column || !strings.Contains(err.Error(), msg) {
			t.Errorf("got %q (line %d, column %q); want line %d, column %q, containing %q", err, pe.Line, pe.Column, line, column, msg)
		}
	}
	f("", 1, "", "empty input")
	f("Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (direct)\n", 1, ColumnLCA, "missing column")
	f(hdr+"2022-01-01 00:00:00,DE,1,2\n2022-01-01 01:00:00,DE,1,abc\n", 3, ColumnLCA, `invalid number (value "abc")`)
	f(hdr+"2022-01-01 00:00:00,DE,,2\n", 2, ColumnDirect, "empty value")
	f(hdr+"2022-01-01 00:00:00,DE,-5,2\n", 2, ColumnDirect, "negative")
	f(hdr+"01/01/2022 00:00,DE,1,2\n", 2, ColumnDatetime, "invalid datetime")
	f(hdr+"2022-01-01 01:00:00,DE,1,2\n2022-01-01 01:00:00,DE,1,2\n", 3, ColumnDatetime, "not after")
	f(hdr+"2022-01-01 00:00:00,DE,1,2\n2022-01-01 01:00:00,FR,1,2\n", 3, ColumnZoneID, `differs from the first row's "DE"`)
	f(hdr+"2022-01-01 00:00:00,DE,1,2\n2022-01-01 01:00:00,DE,1\n", 3, "", "wrong number of fields")

	_, err := ParseElectricityMaps(strings.NewReader("Datetime (UTC),x\n"))
	if !errors.Is(err, ErrMissingColumn) {
		t.Errorf("errors.Is(%v, ErrMissingColumn) = false", err)
	}
}

// TestParseTolerantHeader: ASCII "CO2", other case, a BOM, RFC 3339 times and columns in another order.
func TestParseTolerantHeader(t *testing.T) {
	in := "\ufeffcarbon intensity gco2eq/kwh (lca), Datetime (UTC) ,Carbon Intensity gCO2eq/kWh (direct)\n" +
		"300.5,2022-06-01T10:00:00.000Z,250\n"
	s, err := ParseElectricityMaps(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if p := s.Points[0]; p.LCA != 300.5 || p.Direct != 250 || !p.Time.Equal(hour("2022-06-01 10:00:00")) {
		t.Errorf("got %+v", p)
	}
}
