// Package textimport parses the Prometheus text exposition format the way
// VictoriaMetrics' /api/v1/import/prometheus accepts it: one sample per line,
// with an optional timestamp in milliseconds. A malformed line is reported
// with its line number and the rest of the body is still imported.
//
// The parser only lexes: it does not apply Prometheus' naming rules or
// greenloop's value rules (package validate does), except that a label name
// must be lexable as [a-zA-Z_][a-zA-Z0-9_]* for the line to parse at all.
package textimport

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strconv"

	"github.com/greenloop/greenloop/ingest/internal/lines"
	"github.com/greenloop/greenloop/ingest/validate"
	"github.com/greenloop/greenloop/internal/sample"
)

// MaxLineBytes is the longest line Parse reads; a longer line is refused
// without being parsed. The limit excludes the line terminator.
const MaxLineBytes = 64 << 10

// Parse reads a body in the text exposition format:
//
//	metric_name{label="value",...} value [timestamp_ms]
//
// Lines are separated by "\n" (a trailing "\r" is dropped). Blank lines and
// lines starting with "#" (comments, # HELP, # TYPE) are skipped. Spaces and
// tabs may surround tokens; a trailing comma in the label set is allowed.
// Label values are double-quoted with the escapes \\, \" and \n; any other
// backslash sequence is kept as written. The value is a decimal float, NaN,
// +Inf or -Inf (as strconv.ParseFloat reads them, without '_' separators).
// The timestamp, when present, is an integer in milliseconds since the Unix
// epoch; a sample without one gets defaultTs (the caller passes its clock).
//
// Samples of the same series (the same labels in any order; an empty label
// value counts as absent) are grouped into one sample.Series, in the order
// the series first appear, each with its points in input order. The metric
// name is the series' first label, "__name__", followed by the labels in the
// order of the series' first line.
//
// Every line that is neither blank nor a comment yields exactly one point or
// one sample.Rejection. A rejection has the 1-based Line, Index -1, Field
// "line", "metric", "label", "value" or "timestamp", Reason
// sample.ReasonMalformed, ReasonMissingMetricName or ReasonInvalidValue, and
// a Detail quoting (at most 64 bytes of) the offending text; Series is set
// when the labels could be read.
func Parse(data []byte, defaultTs int64) ([]sample.Series, []sample.Rejection) {
	p := parser{defaultTs: defaultTs, index: map[string]int{}}
	lines.Each(data, p.parseLine)
	return p.series, p.rejs
}

type rawLabel struct{ name, value []byte }

type parser struct {
	defaultTs int64
	series    []sample.Series
	index     map[string]int // series key -> position in series
	rejs      []sample.Rejection

	// Scratch space reused from line to line.
	labels []rawLabel
	unesc  []byte
	order  []int
	key    []byte
}

var nameLabel = []byte(validate.MetricNameLabel)

func isSpace(c byte) bool { return c == ' ' || c == '\t' }

func skipSpace(s []byte, i int) int {
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	return i
}

// token returns the end of the run of non-space bytes starting at i.
func token(s []byte, i int) int {
	for i < len(s) && !isSpace(s[i]) {
		i++
	}
	return i
}

func (p *parser) reject(lineNo int, field, reason, detail string) {
	p.rejs = append(p.rejs, sample.Rejection{Line: lineNo, Index: -1, Field: field, Reason: reason, Detail: detail})
}

func near(s []byte, i int) string { return validate.Quote(string(s[i:])) }

func (p *parser) parseLine(lineNo int, line []byte) {
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > MaxLineBytes {
		p.reject(lineNo, "line", sample.ReasonMalformed,
			fmt.Sprintf("line is %d bytes, longer than the limit of %d; starts %s", len(line), MaxLineBytes, near(line, 0)))
		return
	}
	i := skipSpace(line, 0)
	if i == len(line) || line[i] == '#' {
		return
	}
	p.labels = p.labels[:0]
	p.unesc = p.unesc[:0]

	// Metric name: everything up to a space or '{'; validate judges it.
	start := i
	for i < len(line) && !isSpace(line[i]) && line[i] != '{' {
		i++
	}
	if i == start {
		p.reject(lineNo, "metric", sample.ReasonMissingMetricName, "line has no metric name before "+near(line, i))
		return
	}
	p.labels = append(p.labels, rawLabel{name: nameLabel, value: line[start:i]})

	if i < len(line) && line[i] == '{' {
		var ok bool
		if i, ok = p.parseLabels(lineNo, line, i+1); !ok {
			return
		}
	}

	i = skipSpace(line, i)
	if i == len(line) {
		p.rejectSample(lineNo, "value", sample.ReasonInvalidValue, "line has no value after the series")
		return
	}
	end := token(line, i)
	v, err := parseValue(line[i:end])
	if err != nil {
		p.rejectSample(lineNo, "value", sample.ReasonInvalidValue,
			fmt.Sprintf("cannot parse value %s: want a number, NaN, +Inf or -Inf", validate.Quote(string(line[i:end]))))
		return
	}
	ts := p.defaultTs
	i = skipSpace(line, end)
	if i < len(line) {
		end = token(line, i)
		ts, err = strconv.ParseInt(string(line[i:end]), 10, 64)
		if err != nil {
			p.rejectSample(lineNo, "timestamp", sample.ReasonMalformed,
				fmt.Sprintf("cannot parse timestamp %s: want an integer number of milliseconds since the epoch", validate.Quote(string(line[i:end]))))
			return
		}
		if i = skipSpace(line, end); i < len(line) {
			p.rejectSample(lineNo, "line", sample.ReasonMalformed, "unexpected text after the timestamp: "+near(line, i))
			return
		}
	}
	p.add(lineNo, sample.Point{T: ts, V: v})
}

// parseLabels reads `name="value", ...}` starting just after '{' and returns
// the position after '}'.
func (p *parser) parseLabels(lineNo int, line []byte, i int) (int, bool) {
	for {
		i = skipSpace(line, i)
		if i == len(line) {
			p.reject(lineNo, "label", sample.ReasonMalformed, "label set is not closed with '}'")
			return 0, false
		}
		if line[i] == '}' {
			return i + 1, true
		}
		start := i
		if c := line[i]; c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') {
			i++
			for i < len(line) {
				c := line[i]
				if c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') {
					i++
					continue
				}
				break
			}
		}
		if i == start {
			p.reject(lineNo, "label", sample.ReasonMalformed, "cannot read a label name at "+near(line, i))
			return 0, false
		}
		name := line[start:i]
		i = skipSpace(line, i)
		if i == len(line) || line[i] != '=' {
			p.reject(lineNo, "label", sample.ReasonMalformed,
				fmt.Sprintf("want '=' after label name %s, found %s", validate.Quote(string(name)), near(line, i)))
			return 0, false
		}
		i = skipSpace(line, i+1)
		if i == len(line) || line[i] != '"' {
			p.reject(lineNo, "label", sample.ReasonMalformed,
				fmt.Sprintf("want a double-quoted value for label %s, found %s", validate.Quote(string(name)), near(line, i)))
			return 0, false
		}
		var val []byte
		var ok bool
		if val, i, ok = p.labelValue(line, i+1); !ok {
			p.reject(lineNo, "label", sample.ReasonMalformed,
				fmt.Sprintf("value of label %s has no closing quote", validate.Quote(string(name))))
			return 0, false
		}
		p.labels = append(p.labels, rawLabel{name: name, value: val})
		i = skipSpace(line, i)
		switch {
		case i < len(line) && line[i] == ',':
			i++
		case i < len(line) && line[i] == '}':
			return i + 1, true
		default:
			p.reject(lineNo, "label", sample.ReasonMalformed, "want ',' or '}' after a label, found "+near(line, i))
			return 0, false
		}
	}
}

// labelValue reads a quoted value starting just after the opening quote and
// returns it unescaped and the position after the closing quote. Without
// escapes the value aliases line.
func (p *parser) labelValue(line []byte, i int) ([]byte, int, bool) {
	start := i
	for i < len(line) && line[i] != '"' && line[i] != '\\' {
		i++
	}
	if i == len(line) {
		return nil, 0, false
	}
	if line[i] == '"' {
		return line[start:i], i + 1, true
	}
	from := len(p.unesc)
	p.unesc = append(p.unesc, line[start:i]...)
	for i < len(line) {
		switch c := line[i]; c {
		case '"':
			return p.unesc[from:], i + 1, true
		case '\\':
			if i+1 == len(line) {
				return nil, 0, false
			}
			switch e := line[i+1]; e {
			case '\\', '"':
				p.unesc = append(p.unesc, e)
			case 'n':
				p.unesc = append(p.unesc, '\n')
			default:
				p.unesc = append(p.unesc, '\\', e)
			}
			i += 2
		default:
			p.unesc = append(p.unesc, c)
			i++
		}
	}
	return nil, 0, false
}

// parseValue reads a sample value. strconv.ParseFloat also accepts Go's '_'
// digit separators, which the exposition format does not have.
func parseValue(b []byte) (float64, error) {
	if bytes.IndexByte(b, '_') >= 0 {
		return 0, strconv.ErrSyntax
	}
	return strconv.ParseFloat(string(b), 64)
}

// rejectSample refuses a line whose labels were read.
func (p *parser) rejectSample(lineNo int, field, reason, detail string) {
	p.reject(lineNo, field, reason, detail)
	p.rejs[len(p.rejs)-1].Series = sample.FormatLabels(p.stringLabels())
}

func (p *parser) stringLabels() []sample.Label {
	out := make([]sample.Label, len(p.labels))
	for i, l := range p.labels {
		out[i] = sample.Label{Name: string(l.name), Value: string(l.value)}
	}
	return out
}

// add appends the point to the series of the current line's labels.
func (p *parser) add(lineNo int, pt sample.Point) {
	// The key lists the non-empty labels sorted by name, each length-prefixed.
	p.order = p.order[:0]
	for i := range p.labels {
		if len(p.labels[i].value) == 0 {
			continue
		}
		p.order = append(p.order, i)
		for j := len(p.order) - 1; j > 0 && bytes.Compare(p.labels[p.order[j-1]].name, p.labels[p.order[j]].name) > 0; j-- {
			p.order[j-1], p.order[j] = p.order[j], p.order[j-1]
		}
	}
	p.key = p.key[:0]
	for _, i := range p.order {
		l := p.labels[i]
		p.key = binary.AppendUvarint(p.key, uint64(len(l.name)))
		p.key = append(p.key, l.name...)
		p.key = binary.AppendUvarint(p.key, uint64(len(l.value)))
		p.key = append(p.key, l.value...)
	}
	if n, ok := p.index[string(p.key)]; ok {
		p.series[n].Points = append(p.series[n].Points, pt)
		p.series[n].Lines = append(p.series[n].Lines, lineNo)
		return
	}
	p.index[string(p.key)] = len(p.series)
	p.series = append(p.series, sample.Series{Labels: p.stringLabels(), Points: []sample.Point{pt}, Lines: []int{lineNo}})
}
