package textimport

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/greenloop/greenloop/internal/sample"
)

const now = int64(1_763_800_000_000)

func lbl(kv ...string) []sample.Label {
	out := make([]sample.Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, sample.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

// sameSeries compares series exactly, values by their bits (so NaN == NaN).
func sameSeries(t *testing.T, got, want []sample.Series) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("got %d series, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range got {
		g, w := got[i], want[i]
		if fmt.Sprint(g.Labels) != fmt.Sprint(w.Labels) {
			t.Errorf("series %d labels %v, want %v", i, g.Labels, w.Labels)
		}
		if len(g.Points) != len(w.Points) {
			t.Errorf("series %d has %d points, want %d: %v", i, len(g.Points), len(w.Points), g.Points)
			continue
		}
		for j := range g.Points {
			if g.Points[j].T != w.Points[j].T || math.Float64bits(g.Points[j].V) != math.Float64bits(w.Points[j].V) {
				t.Errorf("series %d point %d = %+v, want %+v", i, j, g.Points[j], w.Points[j])
			}
		}
	}
}

func TestParseBody(t *testing.T) {
	body := "# HELP node_rapl_package_joules_total Current RAPL package value in joules\r\n" +
		"# TYPE node_rapl_package_joules_total counter\r\n" +
		"node_rapl_package_joules_total{index=\"0\",path=\"/sys/class/powercap/intel-rapl:0\"} 38354.045387 1763800000000\r\n" +
		"\r\n" +
		"   \t\n" +
		"up 1\n" +
		"# a comment between samples\n" +
		"node_rapl_package_joules_total{path=\"/sys/class/powercap/intel-rapl:0\",index=\"0\"} 38364.5 1763800010000\n" +
		"greenloop_power_watts{site=\"fra1\", node=\"bmc-12\" , sensor=\"PSU1\",} 212.5 1763800000000\n" +
		"up 0 1763800005000" // no final newline
	got, rejs := Parse([]byte(body), now)
	if len(rejs) != 0 {
		t.Fatalf("rejections: %+v", rejs)
	}
	sameSeries(t, got, []sample.Series{
		{Labels: lbl("__name__", "node_rapl_package_joules_total", "index", "0", "path", "/sys/class/powercap/intel-rapl:0"),
			Points: []sample.Point{{T: 1763800000000, V: 38354.045387}, {T: 1763800010000, V: 38364.5}}},
		{Labels: lbl("__name__", "up"), Points: []sample.Point{{T: now, V: 1}, {T: 1763800005000, V: 0}}},
		{Labels: lbl("__name__", "greenloop_power_watts", "site", "fra1", "node", "bmc-12", "sensor", "PSU1"),
			Points: []sample.Point{{T: 1763800000000, V: 212.5}}},
	})
}

func TestParseLine(t *testing.T) {
	cases := []struct {
		name   string
		line   string
		labels []sample.Label // when accepted
		pt     sample.Point
		field  string // when refused
		reason string
		detail string // substring of Detail
		series string // Rejection.Series
	}{
		{name: "bare", line: "up 1", labels: lbl("__name__", "up"), pt: sample.Point{T: now, V: 1}},
		{name: "tabs", line: "\tup\t1\t1000\t", labels: lbl("__name__", "up"), pt: sample.Point{T: 1000, V: 1}},
		{name: "empty braces", line: "up{} 2", labels: lbl("__name__", "up"), pt: sample.Point{T: now, V: 2}},
		{name: "no space after brace", line: `up{a="b"}3`, labels: lbl("__name__", "up", "a", "b"), pt: sample.Point{T: now, V: 3}},
		{name: "spaces in label set", line: `m{ a = "1" , b="2" } 4`, labels: lbl("__name__", "m", "a", "1", "b", "2"), pt: sample.Point{T: now, V: 4}},
		{name: "escapes", line: `m{a="q\"b\\s\nn"} 1`, labels: lbl("__name__", "m", "a", "q\"b\\s\nn"), pt: sample.Point{T: now, V: 1}},
		{name: "unknown escape kept", line: `m{a="x\ty\\"} 1`, labels: lbl("__name__", "m", "a", `x\ty\`), pt: sample.Point{T: now, V: 1}},
		{name: "braces and commas in value", line: `m{a="}{,= #"} 1`, labels: lbl("__name__", "m", "a", "}{,= #"), pt: sample.Point{T: now, V: 1}},
		{name: "utf8 value", line: `m{room="Büro ☃"} 1`, labels: lbl("__name__", "m", "room", "Büro ☃"), pt: sample.Point{T: now, V: 1}},
		{name: "empty value kept", line: `m{a=""} 1`, labels: lbl("__name__", "m", "a", ""), pt: sample.Point{T: now, V: 1}},
		{name: "exponent", line: "m 1e3", labels: lbl("__name__", "m"), pt: sample.Point{T: now, V: 1000}},
		{name: "negative exponent", line: "m -2.5E-3", labels: lbl("__name__", "m"), pt: sample.Point{T: now, V: -0.0025}},
		{name: "NaN", line: "m NaN", labels: lbl("__name__", "m"), pt: sample.Point{T: now, V: math.NaN()}},
		{name: "+Inf", line: "m +Inf", labels: lbl("__name__", "m"), pt: sample.Point{T: now, V: math.Inf(1)}},
		{name: "-Inf", line: "m -Inf 5", labels: lbl("__name__", "m"), pt: sample.Point{T: 5, V: math.Inf(-1)}},
		{name: "negative timestamp", line: "m 1 -1000", labels: lbl("__name__", "m"), pt: sample.Point{T: -1000, V: 1}},
		{name: "invalid name passes to validate", line: "1m.x{a=\"b\"} 1", labels: lbl("__name__", "1m.x", "a", "b"), pt: sample.Point{T: now, V: 1}},
		{name: "reserved label passes to validate", line: `m{__x="b"} 1`, labels: lbl("__name__", "m", "__x", "b"), pt: sample.Point{T: now, V: 1}},
		{name: "duplicate label passes to validate", line: `m{a="1",a="2"} 1`, labels: lbl("__name__", "m", "a", "1", "a", "2"), pt: sample.Point{T: now, V: 1}},

		{name: "no name", line: `{a="b"} 1`, field: "metric", reason: sample.ReasonMissingMetricName, detail: `before "{a=\"b\"} 1"`},
		{name: "no value", line: "up", field: "value", reason: sample.ReasonInvalidValue, detail: "no value", series: "up{}"},
		{name: "no value after labels", line: `up{a="b"}   `, field: "value", reason: sample.ReasonInvalidValue, series: `up{a="b"}`},
		{name: "bad value", line: `up{a="b"} abc 1`, field: "value", reason: sample.ReasonInvalidValue, detail: `"abc"`, series: `up{a="b"}`},
		{name: "underscore value", line: "up 1_000", field: "value", reason: sample.ReasonInvalidValue, detail: `"1_000"`, series: "up{}"},
		{name: "out of range value", line: "up 1e400", field: "value", reason: sample.ReasonInvalidValue, series: "up{}"},
		{name: "comma value", line: "up 1,5", field: "value", reason: sample.ReasonInvalidValue, series: "up{}"},
		{name: "float timestamp", line: "up 1 1763800000.5", field: "timestamp", reason: sample.ReasonMalformed, detail: `"1763800000.5"`, series: "up{}"},
		{name: "timestamp overflow", line: "up 1 99999999999999999999", field: "timestamp", reason: sample.ReasonMalformed, series: "up{}"},
		{name: "trailing text", line: "up 1 1000 extra", field: "line", reason: sample.ReasonMalformed, detail: `"extra"`, series: "up{}"},
		{name: "exemplar not supported", line: `up 1 1000 # {trace_id="x"} 1`, field: "line", reason: sample.ReasonMalformed, series: "up{}"},
		{name: "unclosed label set", line: `up{a="b" 1`, field: "label", reason: sample.ReasonMalformed, detail: `"1"`},
		{name: "unclosed label set at end", line: `up{a="b",`, field: "label", reason: sample.ReasonMalformed, detail: "not closed"},
		{name: "unterminated value", line: `up{a="b} 1`, field: "label", reason: sample.ReasonMalformed, detail: "no closing quote"},
		{name: "backslash at end", line: `up{a="b\`, field: "label", reason: sample.ReasonMalformed, detail: "no closing quote"},
		{name: "escaped quote unterminated", line: `up{a="b\"} 1`, field: "label", reason: sample.ReasonMalformed},
		{name: "unquoted value", line: `up{a=b} 1`, field: "label", reason: sample.ReasonMalformed, detail: `label "a"`},
		{name: "single quotes", line: `up{a='b'} 1`, field: "label", reason: sample.ReasonMalformed},
		{name: "missing equals", line: `up{a "b"} 1`, field: "label", reason: sample.ReasonMalformed, detail: "want '='"},
		{name: "label name with dash", line: `up{a-b="c"} 1`, field: "label", reason: sample.ReasonMalformed, detail: "want '='"},
		{name: "label name digit first", line: `up{1a="c"} 1`, field: "label", reason: sample.ReasonMalformed, detail: "label name"},
		{name: "quoted label name", line: `up{"a.b"="c"} 1`, field: "label", reason: sample.ReasonMalformed},
		{name: "double comma", line: `up{a="b",,c="d"} 1`, field: "label", reason: sample.ReasonMalformed},
		{name: "missing comma", line: `up{a="b" c="d"} 1`, field: "label", reason: sample.ReasonMalformed, detail: "want ',' or '}'"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			series, rejs := Parse([]byte(c.line), now)
			if c.reason == "" {
				if len(rejs) != 0 {
					t.Fatalf("refused: %+v", rejs)
				}
				sameSeries(t, series, []sample.Series{{Labels: c.labels, Points: []sample.Point{c.pt}}})
				return
			}
			if len(series) != 0 {
				t.Fatalf("got series %v, want a rejection", series)
			}
			if len(rejs) != 1 {
				t.Fatalf("got %d rejections, want 1: %+v", len(rejs), rejs)
			}
			r := rejs[0]
			if r.Line != 1 || r.Index != -1 || r.Field != c.field || r.Reason != c.reason || r.TimestampMs != 0 {
				t.Errorf("got %+v, want line 1 field %q reason %q", r, c.field, c.reason)
			}
			if !strings.Contains(r.Detail, c.detail) {
				t.Errorf("detail %q lacks %q", r.Detail, c.detail)
			}
			if r.Series != c.series {
				t.Errorf("series %q, want %q", r.Series, c.series)
			}
		})
	}
}

func TestParseLineNumbersAndRecovery(t *testing.T) {
	body := strings.Join([]string{
		"# TYPE a gauge", // 1
		"a 1 1000",       // 2
		"a{ 2",           // 3 bad
		"",               // 4
		"b x",            // 5 bad
		"a 3 3000",       // 6
		`{x="y"} 1`,      // 7 bad
		"b 4 4000",       // 8
	}, "\n") + "\n"
	series, rejs := Parse([]byte(body), now)
	sameSeries(t, series, []sample.Series{
		{Labels: lbl("__name__", "a"), Points: []sample.Point{{T: 1000, V: 1}, {T: 3000, V: 3}}},
		{Labels: lbl("__name__", "b"), Points: []sample.Point{{T: 4000, V: 4}}},
	})
	var lines []int
	for _, r := range rejs {
		lines = append(lines, r.Line)
	}
	if fmt.Sprint(lines) != "[3 5 7]" {
		t.Fatalf("rejected lines %v, want [3 5 7]: %+v", lines, rejs)
	}
}

func TestParseGrouping(t *testing.T) {
	body := `m{b="2",a="1"} 1 1
m{a="1",b="2"} 2 2
m{a="1",b="2",c=""} 3 3
m{a="1"} 4 4
n{a="1",b="2"} 5 5
m{a="1", b="2"} 6 6
m{a="12"} 7 7
m{a="1",b="2",c="x"} 8 8
`
	series, rejs := Parse([]byte(body), now)
	if len(rejs) != 0 {
		t.Fatalf("rejections: %+v", rejs)
	}
	sameSeries(t, series, []sample.Series{
		{Labels: lbl("__name__", "m", "b", "2", "a", "1"), Points: []sample.Point{{T: 1, V: 1}, {T: 2, V: 2}, {T: 3, V: 3}, {T: 6, V: 6}}},
		{Labels: lbl("__name__", "m", "a", "1"), Points: []sample.Point{{T: 4, V: 4}}},
		{Labels: lbl("__name__", "n", "a", "1", "b", "2"), Points: []sample.Point{{T: 5, V: 5}}},
		{Labels: lbl("__name__", "m", "a", "12"), Points: []sample.Point{{T: 7, V: 7}}},
		{Labels: lbl("__name__", "m", "a", "1", "b", "2", "c", "x"), Points: []sample.Point{{T: 8, V: 8}}},
	})
}

func TestParseLabelValuesDoNotAliasInput(t *testing.T) {
	body := []byte(`m{a="xyz",b="e\"s"} 1`)
	series, _ := Parse(body, now)
	for i := range body {
		body[i] = '#'
	}
	sameSeries(t, series, []sample.Series{{Labels: lbl("__name__", "m", "a", "xyz", "b", `e"s`), Points: []sample.Point{{T: now, V: 1}}}})
}

func TestParseLongLines(t *testing.T) {
	mk := func(n int) string { // a valid line of exactly n bytes
		prefix, suffix := `m{a="`, `"} 1`
		return prefix + strings.Repeat("v", n-len(prefix)-len(suffix)) + suffix
	}
	ok := mk(MaxLineBytes)
	if len(ok) != MaxLineBytes {
		t.Fatal("bad test line")
	}
	body := ok + "\r\n" + mk(MaxLineBytes+1) + "\n" + "up 1\n"
	series, rejs := Parse([]byte(body), now)
	if len(series) != 2 || len(series[0].Labels[1].Value) != MaxLineBytes-9 {
		t.Fatalf("got %d series", len(series))
	}
	if len(rejs) != 1 || rejs[0].Line != 2 || rejs[0].Field != "line" || rejs[0].Reason != sample.ReasonMalformed ||
		!strings.Contains(rejs[0].Detail, "65537 bytes") || len(rejs[0].Detail) > 200 {
		t.Fatalf("rejections %+v", rejs)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, body := range []string{"", "\n", "\n\n\r\n", "# only a comment", "   "} {
		series, rejs := Parse([]byte(body), now)
		if len(series) != 0 || len(rejs) != 0 {
			t.Errorf("Parse(%q) = %v, %v", body, series, rejs)
		}
	}
}
