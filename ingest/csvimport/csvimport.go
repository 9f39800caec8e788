// Package csvimport parses meter readings exported as CSV by building
// management systems and spreadsheets: one row per time, one column per
// meter, the meter named in the header as a Prometheus series with an
// optional unit (quoted as CSV quotes a field with commas and quotes), e.g.
//
//	timestamp,"greenloop_energy_joules_total{site=""fra1"",component=""facility""} [kWh]","greenloop_energy_joules_total{site=""fra1"",component=""it""} [kWh]"
//	2025-01-01T00:00:00Z,1200345.5,923001.25
//	2025-01-01T00:15:00Z,1200470.0,923098.00
//
// Values are converted once into the unit the metric's name states (J for
// *_joules*, W for *_watts, m³ for *_cubic_meters*, °C for *_celsius); a unit
// that does not fit the metric is refused for the whole column. Timestamps
// are RFC 3339, or Unix seconds (or milliseconds, when larger than 1e11). An
// empty cell is no sample. Every refused cell or row is reported with its
// line and column; the rest of the file is still read.
package csvimport

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/greenloop/greenloop/internal/sample"
)

// unit is a column's unit: factor converts it into the metric's own unit.
type unit struct {
	suffix string // the metric-name part it belongs to
	factor float64
	offset float64
}

// units maps a header's [unit] to its conversion, per metric family.
var units = map[string]unit{
	"J": {"_joules", 1, 0}, "kJ": {"_joules", 1e3, 0}, "MJ": {"_joules", 1e6, 0}, "GJ": {"_joules", 1e9, 0},
	"Wh": {"_joules", 3600, 0}, "kWh": {"_joules", 3.6e6, 0}, "MWh": {"_joules", 3.6e9, 0}, "GWh": {"_joules", 3.6e12, 0},
	"W": {"_watts", 1, 0}, "kW": {"_watts", 1e3, 0}, "MW": {"_watts", 1e6, 0},
	"m3": {"_cubic_meters", 1, 0}, "m³": {"_cubic_meters", 1, 0}, "L": {"_cubic_meters", 1e-3, 0}, "l": {"_cubic_meters", 1e-3, 0},
	"degC": {"_celsius", 1, 0}, "°C": {"_celsius", 1, 0}, "C": {"_celsius", 1, 0}, "K": {"_celsius", 1, -273.15},
	"V": {"_volts", 1, 0}, "A": {"_amperes", 1, 0},
}

// MaxColumns bounds the meters of one file.
const MaxColumns = 10_000

type column struct {
	labels []sample.Label
	name   string
	unit   unit
	bad    bool
	points []sample.Point
}

// Parse reads a CSV body. defaultTs is unused (every row has its time) and
// present so that Parse fits the server's import signature.
func Parse(data []byte, _ int64) ([]sample.Series, []sample.Rejection) {
	var rej []sample.Rejection
	r := csv.NewReader(bytes.NewReader(data))
	r.FieldsPerRecord = -1
	r.ReuseRecord = true
	// Headers hold label values in double quotes; a header without commas
	// may leave them unquoted (x{site="fra1"}), which strict CSV refuses.
	r.LazyQuotes = true
	header, err := r.Read()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, []sample.Rejection{{Line: 1, Index: -1, Field: "header", Reason: sample.ReasonMalformed, Detail: "empty file: want a header row (timestamp, then one series per column)"}}
		}
		return nil, []sample.Rejection{{Line: 1, Index: -1, Field: "header", Reason: sample.ReasonMalformed, Detail: err.Error()}}
	}
	if len(header) < 2 || !strings.EqualFold(strings.TrimSpace(strings.TrimPrefix(header[0], "\ufeff")), "timestamp") {
		return nil, []sample.Rejection{{Line: 1, Index: -1, Field: "header", Reason: sample.ReasonMalformed,
			Detail: "the header must start with a \"timestamp\" column followed by at least one series column"}}
	}
	if len(header)-1 > MaxColumns {
		return nil, []sample.Rejection{{Line: 1, Index: -1, Field: "header", Reason: sample.ReasonMalformed,
			Detail: fmt.Sprintf("%d series columns, more than the %d one file may have", len(header)-1, MaxColumns)}}
	}
	cols := make([]*column, len(header)-1)
	seen := map[string]int{}
	for i, h := range header[1:] {
		c, err := parseHeader(h)
		if err != nil {
			rej = append(rej, sample.Rejection{Line: 1, Index: -1, Field: fmt.Sprintf("column %d", i+2), Reason: sample.ReasonMalformed, Detail: err.Error()})
			c = &column{bad: true}
		} else if j, dup := seen[c.name]; dup {
			rej = append(rej, sample.Rejection{Series: c.name, Line: 1, Index: -1, Field: fmt.Sprintf("column %d", i+2), Reason: sample.ReasonMalformed,
				Detail: fmt.Sprintf("same series as column %d", j+2)})
			c.bad = true
		} else {
			seen[c.name] = i
		}
		cols[i] = c
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		line, _ := r.FieldPos(0)
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				line = pe.Line
			}
			rej = append(rej, sample.Rejection{Line: line, Index: -1, Field: "line", Reason: sample.ReasonMalformed, Detail: err.Error()})
			if pe == nil {
				break // not a syntax error: the reader cannot go on
			}
			continue
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue
		}
		ts, err := parseTime(rec[0])
		if err != nil {
			rej = append(rej, sample.Rejection{Line: line, Index: -1, Field: "timestamp", Reason: sample.ReasonMalformed, Detail: err.Error()})
			continue
		}
		if len(rec) > len(header) {
			rej = append(rej, sample.Rejection{Line: line, Index: -1, TimestampMs: ts, Field: "line", Reason: sample.ReasonMalformed,
				Detail: fmt.Sprintf("%d fields, the header has %d", len(rec), len(header))})
			continue
		}
		for i, cell := range rec[1:] {
			c := cols[i]
			cell = strings.TrimSpace(cell)
			if c.bad || cell == "" {
				continue
			}
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
				rej = append(rej, sample.Rejection{Series: c.name, Line: line, Index: -1, TimestampMs: ts, Field: fmt.Sprintf("column %d", i+2),
					Reason: sample.ReasonInvalidValue, Detail: fmt.Sprintf("%q is not a finite number", cell)})
				continue
			}
			c.points = append(c.points, sample.Point{T: ts, V: v*c.unit.factor + c.unit.offset})
		}
	}
	var out []sample.Series
	for _, c := range cols {
		if !c.bad && len(c.points) > 0 {
			out = append(out, sample.Series{Labels: c.labels, Points: c.points})
		}
	}
	return out, rej
}

// parseHeader reads `series_selector [unit]`.
func parseHeader(h string) (*column, error) {
	h = strings.TrimSpace(h)
	var u string
	if i := strings.LastIndexByte(h, '['); i >= 0 && strings.HasSuffix(h, "]") {
		u = strings.TrimSpace(h[i+1 : len(h)-1])
		h = strings.TrimSpace(h[:i])
	}
	if h == "" {
		return nil, errors.New("empty series name")
	}
	ls, err := metricParser.ParseMetric(h)
	if err != nil {
		return nil, fmt.Errorf("%q is not a series (want e.g. greenloop_energy_joules_total{site=\"fra1\"}): %v", h, err)
	}
	name := ls.Get("__name__")
	if name == "" {
		return nil, fmt.Errorf("%q has no metric name", h)
	}
	c := &column{name: ls.String(), unit: unit{factor: 1}}
	c.labels = append(c.labels, sample.Label{Name: "__name__", Value: name})
	ls.Range(func(l labels.Label) {
		if l.Name != "__name__" {
			c.labels = append(c.labels, sample.Label{Name: l.Name, Value: l.Value})
		}
	})
	if u != "" {
		cu, ok := units[u]
		if !ok {
			return nil, fmt.Errorf("unknown unit [%s] (known: J kJ MJ GJ Wh kWh MWh GWh W kW MW m3 L degC K V A)", u)
		}
		if !strings.Contains(name, cu.suffix) {
			return nil, fmt.Errorf("unit [%s] does not fit metric %s (it converts to a %s metric)", u, name, strings.TrimPrefix(cu.suffix, "_"))
		}
		c.unit = cu
	}
	return c, nil
}

// parseTime reads RFC 3339, or Unix seconds or milliseconds.
func parseTime(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, errors.New("empty timestamp")
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t.UnixMilli(), nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 {
		return 0, fmt.Errorf("%q is neither RFC 3339 (2025-01-01T00:00:00Z) nor Unix seconds or milliseconds", s)
	}
	if f > 1e11 {
		if f > 1e15 {
			return 0, fmt.Errorf("timestamp %q is out of range", s)
		}
		return int64(f), nil
	}
	return int64(math.Round(f * 1000)), nil
}

var metricParser = parser.NewParser(parser.Options{})
