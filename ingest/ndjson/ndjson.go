// Package ndjson parses greenloop's reading format: one JSON object per line,
// as `greenloop collect --once --format json` prints it:
//
//	{"metric":"greenloop_power_watts","labels":{"site":"fra1","node":"bmc-12","source":"redfish","component":"psu","sensor":"PSU1"},"value":212.5,"timestamp_ms":1763800000000}
//
// A malformed line is reported with its line number and the rest of the body
// is still read. Naming and value rules are left to package validate.
package ndjson

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"github.com/greenloop/greenloop/ingest/internal/lines"
	"github.com/greenloop/greenloop/ingest/validate"
	"github.com/greenloop/greenloop/internal/sample"
)

// MaxLineBytes is the longest line Parse reads; a longer line is refused
// without being parsed. The limit excludes the line terminator.
const MaxLineBytes = 64 << 10

// Parse reads a body of readings, one JSON object per line (lines end in
// "\n", a trailing "\r" is dropped, blank lines are skipped). An object has
// exactly these keys, each at most once:
//
//   - "metric" (required): the metric name, a JSON string;
//   - "labels" (optional): an object whose values are JSON strings; it may
//     not contain "__name__" (the name goes in "metric");
//   - "value" (required): a JSON number. Strings such as "NaN" are refused:
//     JSON has no NaN or Inf, so this format cannot carry them;
//   - "timestamp_ms" (optional): milliseconds since the Unix epoch, an
//     integer (a number with a fraction or exponent is accepted when its
//     value is integral); when absent or null the sample gets defaultTs.
//
// Any other key refuses the line. Samples of the same series (same metric and
// labels, in any order; an empty label value counts as absent) are grouped
// into one sample.Series, in the order the series first appear, with points
// in input order. A series' labels are "__name__" first, then the labels in
// the order of the series' first line.
//
// Every non-blank line yields exactly one point or one sample.Rejection. A
// rejection has the 1-based Line, Index -1, Field ("line", "metric", "label",
// "value" or "timestamp"), a Reason (sample.ReasonMalformed,
// ReasonMissingMetricName, ReasonInvalidMetricName, ReasonInvalidLabelName,
// ReasonInvalidLabelValue, ReasonDuplicateLabel or ReasonInvalidValue) and a
// Detail quoting the offending text; Series is set when metric and labels
// could be read. A line that is not valid JSON is refused as a whole; a line
// with several problems is refused for the first one in key order.
func Parse(data []byte, defaultTs int64) ([]sample.Series, []sample.Rejection) {
	p := parser{defaultTs: defaultTs, index: map[string]int{}}
	lines.Each(data, p.parseLine)
	return p.series, p.rejs
}

type parser struct {
	defaultTs int64
	series    []sample.Series
	index     map[string]int
	rejs      []sample.Rejection
	key       []byte
	order     []int
}

// problem is why a line is refused.
type problem struct{ field, reason, detail string }

func (p *parser) reject(lineNo int, series string, pr problem) {
	p.rejs = append(p.rejs, sample.Rejection{Series: series, Line: lineNo, Index: -1,
		Field: pr.field, Reason: pr.reason, Detail: pr.detail})
}

func (p *parser) parseLine(lineNo int, line []byte) {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > MaxLineBytes {
		p.reject(lineNo, "", problem{"line", sample.ReasonMalformed,
			fmt.Sprintf("line is %d bytes, longer than the limit of %d; starts %s", len(line), MaxLineBytes, validate.Quote(string(line)))})
		return
	}
	line = bytes.Trim(line, " \t\r") // JSON's whitespace; a line holds no "\n"
	if len(line) == 0 {
		return
	}
	r, pr, syntaxOK := readObject(line)
	if !syntaxOK {
		p.reject(lineNo, "", pr)
		return
	}
	series := ""
	if r.metric != "" {
		series = sample.FormatLabels(r.labels)
	}
	if pr.reason == "" {
		switch {
		case r.metric == "":
			pr = problem{"metric", sample.ReasonMissingMetricName, `line has no "metric"`}
		case !r.haveValue:
			pr = problem{"value", sample.ReasonInvalidValue, `line has no "value"`}
		}
	}
	if pr.reason != "" {
		p.reject(lineNo, series, pr)
		return
	}
	ts := p.defaultTs
	if r.haveTs {
		ts = r.ts
	}
	p.add(lineNo, r.labels, sample.Point{T: ts, V: r.value})
}

type reading struct {
	metric    string
	labels    []sample.Label // "__name__" first
	value     float64
	haveValue bool
	ts        int64
	haveTs    bool
}

// readObject reads one JSON object. syntaxOK is false when the line is not a
// single valid JSON object (pr says why); otherwise pr holds the first
// problem found with a key or value, if any.
func readObject(line []byte) (r reading, pr problem, syntaxOK bool) {
	dec := json.NewDecoder(bytes.NewReader(line))
	syntax := func(err error) (reading, problem, bool) {
		return r, problem{"line", sample.ReasonMalformed,
			fmt.Sprintf("not a JSON object: %v in %s", err, validate.Quote(string(line)))}, false
	}
	note := func(q problem) {
		if pr.reason == "" {
			pr = q
		}
	}
	tok, err := dec.Token()
	if err != nil {
		return syntax(err)
	}
	if tok != json.Delim('{') {
		return syntax(fmt.Errorf("found %s", kindOf(line)))
	}
	r.labels = []sample.Label{{Name: validate.MetricNameLabel}}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return syntax(err)
		}
		key := tok.(string) // inside an object, Token returns keys as strings
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return syntax(err)
		}
		if seen[key] {
			note(problem{"line", sample.ReasonMalformed, fmt.Sprintf("key %s appears more than once", validate.Quote(key))})
			continue
		}
		seen[key] = true
		switch key {
		case "metric":
			switch {
			case raw[0] == '"':
				if err := json.Unmarshal(raw, &r.metric); err != nil {
					return syntax(err)
				}
				r.labels[0].Value = r.metric
			case string(raw) == "null":
			default:
				note(problem{"metric", sample.ReasonInvalidMetricName, fmt.Sprintf(`"metric" must be a JSON string, not %s`, kindOf(raw))})
			}
		case "labels":
			if q, err := readLabels(raw, &r); err != nil {
				return syntax(err)
			} else if q.reason != "" {
				note(q)
			}
		case "value":
			if raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9') {
				v, err := strconv.ParseFloat(string(raw), 64)
				if err != nil {
					note(problem{"value", sample.ReasonInvalidValue, fmt.Sprintf("value %s is out of the float64 range", validate.Quote(string(raw)))})
					continue
				}
				r.value, r.haveValue = v, true
				continue
			}
			note(problem{"value", sample.ReasonInvalidValue,
				fmt.Sprintf(`"value" must be a JSON number, not %s %s (NaN and Inf cannot be sent in this format)`, kindOf(raw), validate.Quote(string(raw)))})
		case "timestamp_ms":
			if string(raw) == "null" {
				continue
			}
			ts, ok := parseTimestamp(raw)
			if !ok {
				note(problem{"timestamp", sample.ReasonMalformed,
					fmt.Sprintf(`"timestamp_ms" must be an integer number of milliseconds since the epoch, not %s`, validate.Quote(string(raw)))})
				continue
			}
			r.ts, r.haveTs = ts, true
		default:
			note(problem{"line", sample.ReasonMalformed,
				fmt.Sprintf(`unknown key %s; a reading has only "metric", "labels", "value" and "timestamp_ms"`, validate.Quote(key))})
		}
	}
	if _, err := dec.Token(); err != nil { // the closing '}'
		return syntax(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err == nil {
			err = errors.New("text after the object")
		}
		return syntax(err)
	}
	return r, pr, true
}

// readLabels reads the "labels" object into r.labels. err is a JSON syntax
// error; the problem is the first label that breaks the format's rules.
func readLabels(raw json.RawMessage, r *reading) (pr problem, err error) {
	if string(raw) == "null" {
		return pr, nil
	}
	if raw[0] != '{' {
		return problem{"label", sample.ReasonMalformed, fmt.Sprintf(`"labels" must be a JSON object of strings, not %s`, kindOf(raw))}, nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if _, err := dec.Token(); err != nil {
		return pr, err
	}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return pr, err
		}
		name := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return pr, err
		}
		if pr.reason != "" {
			continue
		}
		if name == validate.MetricNameLabel {
			pr = problem{"label", sample.ReasonInvalidLabelName, `"labels" may not contain "__name__": the metric name goes in "metric"`}
			continue
		}
		if v[0] != '"' {
			pr = problem{"label", sample.ReasonInvalidLabelValue,
				fmt.Sprintf("value of label %s must be a JSON string, not %s %s", validate.Quote(name), kindOf(v), validate.Quote(string(v)))}
			continue
		}
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return pr, err
		}
		for _, l := range r.labels[1:] {
			if l.Name == name {
				pr = problem{"label", sample.ReasonDuplicateLabel, fmt.Sprintf("label %s appears more than once", validate.Quote(name))}
			}
		}
		if pr.reason == "" {
			r.labels = append(r.labels, sample.Label{Name: name, Value: s})
		}
	}
	return pr, nil
}

// parseTimestamp reads an integral JSON number of milliseconds.
func parseTimestamp(raw json.RawMessage) (int64, bool) {
	if raw[0] != '-' && (raw[0] < '0' || raw[0] > '9') {
		return 0, false
	}
	if ts, err := strconv.ParseInt(string(raw), 10, 64); err == nil {
		return ts, true
	}
	f, err := strconv.ParseFloat(string(raw), 64)
	// -2^63 is exact in float64; 2^63 is the first value past int64.
	if err != nil || f != math.Trunc(f) || f < math.MinInt64 || f >= math.MaxInt64 {
		return 0, false
	}
	return int64(f), true
}

// kindOf names the JSON type of a value, for error details.
func kindOf(raw []byte) string {
	switch {
	case len(raw) == 0:
		return "nothing"
	case raw[0] == '"':
		return "a string"
	case raw[0] == '{':
		return "an object"
	case raw[0] == '[':
		return "an array"
	case raw[0] == 't' || raw[0] == 'f':
		return "a boolean"
	case raw[0] == 'n':
		return "null"
	default:
		return "a number"
	}
}

// add appends the point to the series with these labels.
func (p *parser) add(lineNo int, ls []sample.Label, pt sample.Point) {
	p.order = p.order[:0]
	for i := range ls {
		if ls[i].Value == "" {
			continue
		}
		p.order = append(p.order, i)
		for j := len(p.order) - 1; j > 0 && strings.Compare(ls[p.order[j-1]].Name, ls[p.order[j]].Name) > 0; j-- {
			p.order[j-1], p.order[j] = p.order[j], p.order[j-1]
		}
	}
	p.key = p.key[:0]
	for _, i := range p.order {
		p.key = strconv.AppendInt(p.key, int64(len(ls[i].Name)), 10)
		p.key = append(p.key, ':')
		p.key = append(p.key, ls[i].Name...)
		p.key = strconv.AppendInt(p.key, int64(len(ls[i].Value)), 10)
		p.key = append(p.key, ':')
		p.key = append(p.key, ls[i].Value...)
	}
	if n, ok := p.index[string(p.key)]; ok {
		p.series[n].Points = append(p.series[n].Points, pt)
		p.series[n].Lines = append(p.series[n].Lines, lineNo)
		return
	}
	p.index[string(p.key)] = len(p.series)
	p.series = append(p.series, sample.Series{Labels: ls, Points: []sample.Point{pt}, Lines: []int{lineNo}})
}
