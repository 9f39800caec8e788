package providers

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/greenloop/greenloop/accounting/carbon"
)

// Columns of the plain CSV format: a header line naming them (any order,
// case ignored), then one value per line. "signal" (average|marginal,
// default average) and "kind" (actual|forecast|estimate, default actual) are
// optional.
//
//	zone,timestamp,g_per_kwh
//	DE,2025-03-10T12:00:00Z,358.7
const (
	CSVColumnZone      = "zone"
	CSVColumnTimestamp = "timestamp"
	CSVColumnValue     = "g_per_kwh"
	CSVColumnSignal    = "signal"
	CSVColumnKind      = "kind"
)

// MaxCSVErrors is how many bad lines ParseCSV reports before it stops reading.
const MaxCSVErrors = 1000

// CSVErrors lists every bad line of a CSV input (up to MaxCSVErrors).
type CSVErrors struct {
	Lines []*carbon.ParseError
	// Truncated is true when reading stopped at MaxCSVErrors.
	Truncated bool
}

func (e *CSVErrors) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bad CSV line(s)", len(e.Lines))
	if e.Truncated {
		b.WriteString(" (stopped reading)")
	}
	for i, l := range e.Lines {
		if i == 5 {
			fmt.Fprintf(&b, "; and %d more", len(e.Lines)-5)
			break
		}
		b.WriteString("; ")
		b.WriteString(l.Error())
	}
	return b.String()
}

// ParseCSV reads the plain "zone,timestamp,g_per_kwh" format (timestamps in
// RFC 3339, header required). It returns the good points in input order and,
// when any line is bad, a *CSVErrors naming each bad line and column; a
// caller that must change nothing on bad input (PUT /api/v1/carbon-intensity)
// stores the points only when the error is nil. An unusable header is a
// single *carbon.ParseError for line 1.
func ParseCSV(r io.Reader) ([]Point, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if err == io.EOF {
		return nil, &carbon.ParseError{Line: 1, Err: errors.New("empty input, want the header zone,timestamp,g_per_kwh")}
	}
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return nil, &carbon.ParseError{Line: 1, Err: pe.Err}
		}
		return nil, fmt.Errorf("read csv: %w", err)
	}
	header = slices.Clone(header) // the reader reuses its record
	col := map[string]int{CSVColumnSignal: -1, CSVColumnKind: -1}
	seen := map[string]bool{}
	for i, h := range header {
		n := strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		switch n {
		case CSVColumnZone, CSVColumnTimestamp, CSVColumnValue, CSVColumnSignal, CSVColumnKind:
		default:
			return nil, &carbon.ParseError{Line: 1, Column: h, Err: fmt.Errorf("unknown column, want %s,%s,%s and optionally %s,%s",
				CSVColumnZone, CSVColumnTimestamp, CSVColumnValue, CSVColumnSignal, CSVColumnKind)}
		}
		if seen[n] {
			return nil, &carbon.ParseError{Line: 1, Column: h, Err: errors.New("duplicate column")}
		}
		seen[n] = true
		col[n] = i
	}
	for _, n := range []string{CSVColumnZone, CSVColumnTimestamp, CSVColumnValue} {
		if !seen[n] {
			return nil, &carbon.ParseError{Line: 1, Column: n, Err: fmt.Errorf("%w in header %q", carbon.ErrMissingColumn, strings.Join(header, ","))}
		}
	}

	type key struct {
		zone   string
		t      int64
		signal Signal
		kind   Kind
	}
	first := map[key]int{}
	var pts []Point
	errs := &CSVErrors{}
	add := func(e *carbon.ParseError) bool {
		errs.Lines = append(errs.Lines, e)
		if len(errs.Lines) >= MaxCSVErrors {
			errs.Truncated = true
			return false
		}
		return true
	}
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return nil, fmt.Errorf("read csv: %w", err)
			}
			if !add(&carbon.ParseError{Line: pe.StartLine, Err: pe.Err}) {
				break
			}
			continue
		}
		line, _ := cr.FieldPos(0)
		if len(rec) != len(header) {
			if !add(&carbon.ParseError{Line: line, Err: fmt.Errorf("%d fields, want %d as in the header", len(rec), len(header))}) {
				break
			}
			continue
		}
		p, perr := csvPoint(rec, col, header, line)
		if perr == nil {
			k := key{p.Zone, p.Time.UnixNano(), p.Signal, p.Kind}
			if l, dup := first[k]; dup {
				perr = &carbon.ParseError{Line: line, Column: header[col[CSVColumnTimestamp]], Value: rec[col[CSVColumnTimestamp]],
					Err: fmt.Errorf("duplicate of line %d (same zone, timestamp, signal and kind)", l)}
			} else {
				first[k] = line
			}
		}
		if perr != nil {
			if !add(perr) {
				break
			}
			continue
		}
		pts = append(pts, p)
	}
	if len(errs.Lines) > 0 {
		return pts, errs
	}
	return pts, nil
}

func csvPoint(rec []string, col map[string]int, header []string, line int) (Point, *carbon.ParseError) {
	bad := func(name string, err error) *carbon.ParseError {
		i := col[name]
		return &carbon.ParseError{Line: line, Column: header[i], Value: rec[i], Err: err}
	}
	p := Point{Signal: Average, Kind: Actual}
	p.Zone = strings.TrimSpace(rec[col[CSVColumnZone]])
	if p.Zone == "" {
		return p, bad(CSVColumnZone, errors.New("empty zone"))
	}
	if len(p.Zone) > 64 || strings.ContainsFunc(p.Zone, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return p, bad(CSVColumnZone, errors.New("zone longer than 64 bytes or with control characters"))
	}
	t, err := time.Parse(time.RFC3339Nano, strings.TrimSpace(rec[col[CSVColumnTimestamp]]))
	if err != nil {
		return p, bad(CSVColumnTimestamp, errors.New("invalid timestamp, want RFC 3339 such as 2025-03-10T12:00:00Z"))
	}
	p.Time = t.UTC()
	v, err := strconv.ParseFloat(strings.TrimSpace(rec[col[CSVColumnValue]]), 64)
	if err != nil {
		return p, bad(CSVColumnValue, errors.New("invalid number"))
	}
	if p.Intensity, err = intensityValue("", v); err != nil {
		return p, bad(CSVColumnValue, errors.New("out of range [0, 10000] gCO2e/kWh"))
	}
	if i := col[CSVColumnSignal]; i >= 0 && strings.TrimSpace(rec[i]) != "" {
		if p.Signal, err = ParseSignal(strings.TrimSpace(rec[i])); err != nil {
			return p, bad(CSVColumnSignal, err)
		}
	}
	if i := col[CSVColumnKind]; i >= 0 && strings.TrimSpace(rec[i]) != "" {
		if p.Kind, err = ParseKind(strings.TrimSpace(rec[i])); err != nil {
			return p, bad(CSVColumnKind, err)
		}
	}
	return p, nil
}

// FromSeries converts an Electricity Maps dataset series (carbon.Series) to
// hourly points of zone: the life-cycle figure, or the direct one when direct
// is true; hours the dataset marks as estimated are Kind Estimate.
func FromSeries(s *carbon.Series, zone string, direct bool) []Point {
	out := make([]Point, 0, len(s.Points))
	for _, sp := range s.Points {
		p := Point{Zone: zone, Time: sp.Time, Duration: time.Hour, Intensity: sp.LCA, Kind: Actual, Signal: Average}
		if direct {
			p.Intensity = sp.Direct
		}
		if sp.Estimated {
			p.Kind = Estimate
		}
		out = append(out, p)
	}
	return out
}

// ReadCSV reads either CSV format, told apart by the header: the Electricity
// Maps dataset export (carbon.ParseElectricityMaps; its points get zone, or
// the file's "Zone Id" when zone is empty, and the two must agree) or the
// plain zone,timestamp,g_per_kwh format (zone, when set, must match every row).
func ReadCSV(r io.Reader, zone string, direct bool) ([]Point, error) {
	br := bufio.NewReader(r)
	head, err := br.Peek(512)
	if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
		return nil, fmt.Errorf("read csv: %w", err)
	}
	firstLine, _, _ := bytes.Cut(head, []byte("\n"))
	if bytes.Contains(bytes.ToLower(firstLine), []byte("datetime (utc)")) {
		s, err := carbon.ParseElectricityMaps(br)
		if err != nil {
			return nil, err
		}
		switch {
		case zone == "" && s.Zone == "":
			return nil, errors.New("the file has no Zone Id column: set the zone")
		case zone == "":
			zone = s.Zone
		case s.Zone != "" && s.Zone != zone:
			return nil, fmt.Errorf("the file is for zone %q, configured zone is %q", s.Zone, zone)
		}
		return FromSeries(s, zone, direct), nil
	}
	pts, err := ParseCSV(br)
	if err != nil {
		return nil, err
	}
	if zone != "" {
		for i, p := range pts {
			if p.Zone != zone {
				return nil, fmt.Errorf("data row %d: zone %q, configured zone is %q", i+1, p.Zone, zone)
			}
		}
	}
	return pts, nil
}

// ReadCSVFile is ReadCSV on the file at path.
func ReadCSVFile(path, zone string, direct bool) ([]Point, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("carbon csv: %w", err)
	}
	defer f.Close()
	pts, err := ReadCSV(f, zone, direct)
	if err != nil {
		return nil, fmt.Errorf("carbon csv %s: %w", path, err)
	}
	return pts, nil
}
