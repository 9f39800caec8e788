package providers

import (
	"bytes"
	"errors"
	"testing"

	"github.com/greenloop/greenloop/accounting/carbon"
)

// checkPoints fails on a point a parser must never return.
func checkPoints(t *testing.T, pts []Point) {
	t.Helper()
	for _, p := range pts {
		if v := p.Intensity.GramsPerKWh(); !(v >= 0 && v <= 10000) {
			t.Fatalf("intensity %v out of range: %+v", v, p)
		}
		if p.Time.IsZero() || p.Time.Location() != nil && p.Time.Location().String() != "UTC" {
			t.Fatalf("time not UTC: %+v", p)
		}
		if p.Kind == "" || p.Signal == "" {
			t.Fatalf("kind or signal unset: %+v", p)
		}
	}
}

func FuzzParseCSV(f *testing.F) {
	f.Add([]byte("zone,timestamp,g_per_kwh\nDE,2025-03-10T12:00:00Z,358.7\n"))
	f.Add([]byte("kind,g_per_kwh,zone,signal,timestamp\nforecast,1,GB,marginal,2025-03-10T12:30:00+01:00\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		pts, err := ParseCSV(bytes.NewReader(in))
		var ce *CSVErrors
		var pe *carbon.ParseError
		switch {
		case err == nil:
		case errors.As(err, &ce):
			if len(ce.Lines) == 0 || len(ce.Lines) > MaxCSVErrors {
				t.Fatalf("%d line errors", len(ce.Lines))
			}
			for _, l := range ce.Lines {
				if l.Line < 2 {
					t.Fatalf("data error on line %d", l.Line)
				}
			}
		case errors.As(err, &pe):
			if pts != nil {
				t.Fatalf("points with a header error")
			}
		default:
			t.Fatalf("untyped error %v", err)
		}
		checkPoints(t, pts)
		for _, p := range pts {
			if p.Zone == "" {
				t.Fatalf("empty zone %+v", p)
			}
		}
	})
}

func FuzzParseElectricityMapsJSON(f *testing.F) {
	for _, name := range []string{"latest", "history", "forecast"} {
		f.Add(fixture(f, "electricitymaps/"+name+".json"))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, key := range []string{"history", "data", "forecast"} {
			pts, err := parseEMList(in, key, "DE", key == "forecast")
			if err != nil {
				var fe *fieldError
				if !errors.As(err, &fe) {
					t.Fatalf("untyped error %v", err)
				}
				continue
			}
			checkPoints(t, pts)
		}
		if p, err := parseEMLatest(in, "DE"); err == nil && p != nil {
			checkPoints(t, []Point{*p})
		}
	})
}

func FuzzParseUKGrid(f *testing.F) {
	for _, name := range []string{"intensity", "range", "fw48h"} {
		f.Add(fixture(f, "ukgrid/"+name+".json"))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ps, err := parseUKGrid(in)
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		for _, p := range ps {
			if !p.to.After(p.from) {
				t.Fatalf("period %v..%v", p.from, p.to)
			}
			if pt, ok := p.best("GB"); ok {
				checkPoints(t, []Point{pt})
			}
		}
	})
}

func FuzzParseENTSOE(f *testing.F) {
	f.Add(fixture(f, "entsoe/a75_two_types_pt15m.xml"))
	f.Add(fixture(f, "entsoe/acknowledgement_no_data.xml"))
	f.Fuzz(func(t *testing.T, in []byte) {
		gen := entsoeGeneration{}
		if err := parseENTSOE(in, gen); err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		pts, _ := gen.hourly("DE-LU", DefaultEmissionFactors)
		checkPoints(t, pts)
		for _, p := range pts {
			// A weighted mean lies within the factors: 11..820 g/kWh.
			if v := p.Intensity.GramsPerKWh(); v < 11-1e-9 || v > 820+1e-9 {
				t.Fatalf("intensity %v outside the factors' range", v)
			}
		}
	})
}

func FuzzParseWattTime(f *testing.F) {
	for _, name := range []string{"historical", "forecast", "signal-index"} {
		f.Add(fixture(f, "watttime/"+name+".json"))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		pts, err := parseWattTime(in, "R", Marginal, Actual)
		if err != nil {
			var fe *fieldError
			if !errors.As(err, &fe) {
				t.Fatalf("untyped error %v", err)
			}
		}
		checkPoints(t, pts)
		if ix, err := parseWattTimeIndex(in); err == nil && (ix.Percent < 0 || ix.Percent > 100) {
			t.Fatalf("index %v", ix)
		}
	})
}
