package carbon

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"
)

// Column names of an Electricity Maps hourly CSV export (Data Portal). Columns
// are found by these names, not by position; matching ignores case, spaces
// around the name, and accepts "CO2" for "CO₂".
const (
	ColumnDatetime  = "Datetime (UTC)"
	ColumnZoneID    = "Zone Id"
	ColumnDirect    = "Carbon Intensity gCO₂eq/kWh (direct)"
	ColumnLCA       = "Carbon Intensity gCO₂eq/kWh (LCA)"
	ColumnEstimated = "Data Estimated"
)

// ErrMissingColumn is wrapped by the error for an input whose header lacks a required column.
var ErrMissingColumn = errors.New("missing column")

// ParseError locates a problem in a CSV input.
type ParseError struct {
	// Line is the 1-based line of the input (the header is line 1).
	Line int
	// Column is the header name of the offending column, empty when the whole row is at fault.
	Column string
	// Value is the offending cell, if any.
	Value string
	Err   error
}

func (e *ParseError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "line %d", e.Line)
	if e.Column != "" {
		fmt.Fprintf(&b, ", column %q", e.Column)
	}
	b.WriteString(": ")
	b.WriteString(e.Err.Error())
	if e.Value != "" {
		fmt.Fprintf(&b, " (value %q)", e.Value)
	}
	return b.String()
}

func (e *ParseError) Unwrap() error { return e.Err }

// datetimeLayouts are the timestamp forms accepted in the datetime column, all read as UTC.
var datetimeLayouts = []string{"2006-01-02 15:04:05", time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04"}

func normColumn(s string) string {
	s = strings.TrimPrefix(s, "\ufeff")
	s = strings.ReplaceAll(strings.TrimSpace(s), "₂", "2")
	return strings.ToLower(s)
}

// ParseElectricityMaps reads an Electricity Maps hourly CSV export. The
// datetime, direct and LCA columns are required; "Zone Id" and "Data
// Estimated" are read when present (the zone must be the same on every row).
// Rows must be in strictly increasing time order. Every error names the line
// and the column it is about.
func ParseElectricityMaps(r io.Reader) (*Series, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, &ParseError{Line: 1, Err: errors.New("empty input, want a header line")}
	}
	if err != nil {
		return nil, csvError(err)
	}
	col := map[string]int{}
	for i, h := range header {
		col[normColumn(h)] = i
	}
	find := func(name string, required bool) (int, error) {
		if i, ok := col[normColumn(name)]; ok {
			return i, nil
		}
		if required {
			return -1, &ParseError{Line: 1, Column: name, Err: fmt.Errorf("%w in header %q", ErrMissingColumn, strings.Join(header, ","))}
		}
		return -1, nil
	}
	var iTime, iDirect, iLCA, iZone, iEst int
	for _, c := range []struct {
		dst      *int
		name     string
		required bool
	}{{&iTime, ColumnDatetime, true}, {&iDirect, ColumnDirect, true}, {&iLCA, ColumnLCA, true},
		{&iZone, ColumnZoneID, false}, {&iEst, ColumnEstimated, false}} {
		if *c.dst, err = find(c.name, c.required); err != nil {
			return nil, err
		}
	}

	s := &Series{Points: make([]Point, 0, 8784)}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, csvError(err)
		}
		line, _ := cr.FieldPos(0)
		perr := func(i int, name string, err error) error {
			return &ParseError{Line: line, Column: name, Value: rec[i], Err: err}
		}
		var p Point
		if p.Time, err = parseDatetime(rec[iTime]); err != nil {
			return nil, perr(iTime, ColumnDatetime, err)
		}
		if n := len(s.Points); n > 0 && !p.Time.After(s.Points[n-1].Time) {
			return nil, perr(iTime, ColumnDatetime, fmt.Errorf("not after the previous row's %s", s.Points[n-1].Time.Format(time.DateTime)))
		}
		if p.Direct, err = parseIntensity(rec[iDirect]); err != nil {
			return nil, perr(iDirect, ColumnDirect, err)
		}
		if p.LCA, err = parseIntensity(rec[iLCA]); err != nil {
			return nil, perr(iLCA, ColumnLCA, err)
		}
		if iEst >= 0 {
			switch v := strings.TrimSpace(rec[iEst]); strings.ToLower(v) {
			case "true":
				p.Estimated = true
			case "false", "":
			default:
				return nil, perr(iEst, ColumnEstimated, errors.New("want true or false"))
			}
		}
		if iZone >= 0 {
			z := strings.TrimSpace(rec[iZone])
			if s.Zone == "" && len(s.Points) == 0 {
				s.Zone = z
			} else if z != s.Zone {
				return nil, perr(iZone, ColumnZoneID, fmt.Errorf("zone differs from the first row's %q", s.Zone))
			}
		}
		s.Points = append(s.Points, p)
	}
	return s, nil
}

func csvError(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return &ParseError{Line: pe.StartLine, Err: pe.Err}
	}
	return fmt.Errorf("read csv: %w", err)
}

func parseDatetime(v string) (time.Time, error) {
	v = strings.TrimSpace(v)
	for _, layout := range datetimeLayouts {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, errors.New(`invalid datetime, want "YYYY-MM-DD hh:mm:ss" (UTC) or RFC 3339`)
}

func parseIntensity(v string) (Intensity, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, errors.New("empty value, want gCO2e/kWh")
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) {
		return 0, errors.New("invalid number")
	}
	if f < 0 {
		return 0, errors.New("negative intensity")
	}
	return Intensity(f), nil
}

// WriteCompactCSV writes the series with only the datetime, direct and LCA
// columns, under the Electricity Maps header names, so ParseElectricityMaps
// reads it back unchanged (apart from the zone and the estimated flag, which
// it leaves out). Values are written in their shortest exact form.
func WriteCompactCSV(w io.Writer, s *Series) error {
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{ColumnDatetime, ColumnDirect, ColumnLCA}); err != nil {
		return err
	}
	for _, p := range s.Points {
		rec := []string{
			p.Time.UTC().Format(time.DateTime),
			strconv.FormatFloat(float64(p.Direct), 'f', -1, 64),
			strconv.FormatFloat(float64(p.LCA), 'f', -1, 64),
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}
