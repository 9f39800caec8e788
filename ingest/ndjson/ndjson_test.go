package ndjson

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

const designExample = `{"metric":"greenloop_power_watts","labels":{"site":"fra1","node":"bmc-12","source":"redfish","component":"psu","sensor":"PSU1"},"value":212.5,"timestamp_ms":1763800000000}`

func TestParseBody(t *testing.T) {
	body := designExample + "\r\n" +
		"\n" +
		`  {"timestamp_ms":1763800010000,"value":213,"labels":{"sensor":"PSU1","component":"psu","source":"redfish","node":"bmc-12","site":"fra1"},"metric":"greenloop_power_watts"}  ` + "\n" +
		`{"metric":"greenloop_temperature_celsius","labels":{"site":"fra1","sensor":"Inlet"},"value":-4.5e0}` + "\n" +
		`{"metric":"greenloop_power_watts","labels":{"site":"fra1","node":"bmc-12","source":"redfish","component":"psu","sensor":"PSU2"},"value":0,"timestamp_ms":1763800000000}`
	got, rejs := Parse([]byte(body), now)
	if len(rejs) != 0 {
		t.Fatalf("rejections: %+v", rejs)
	}
	sameSeries(t, got, []sample.Series{
		{Labels: lbl("__name__", "greenloop_power_watts", "site", "fra1", "node", "bmc-12", "source", "redfish", "component", "psu", "sensor", "PSU1"),
			Points: []sample.Point{{T: 1763800000000, V: 212.5}, {T: 1763800010000, V: 213}}},
		{Labels: lbl("__name__", "greenloop_temperature_celsius", "site", "fra1", "sensor", "Inlet"),
			Points: []sample.Point{{T: now, V: -4.5}}},
		{Labels: lbl("__name__", "greenloop_power_watts", "site", "fra1", "node", "bmc-12", "source", "redfish", "component", "psu", "sensor", "PSU2"),
			Points: []sample.Point{{T: 1763800000000, V: 0}}},
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
		detail string
		series string
	}{
		{name: "minimal", line: `{"metric":"up","value":1}`, labels: lbl("__name__", "up"), pt: sample.Point{T: now, V: 1}},
		{name: "spaces", line: ` { "metric" : "up" , "value" : 1 , "timestamp_ms" : 5 } `, labels: lbl("__name__", "up"), pt: sample.Point{T: 5, V: 1}},
		{name: "null timestamp", line: `{"metric":"up","value":1,"timestamp_ms":null}`, labels: lbl("__name__", "up"), pt: sample.Point{T: now, V: 1}},
		{name: "null labels", line: `{"metric":"up","labels":null,"value":1}`, labels: lbl("__name__", "up"), pt: sample.Point{T: now, V: 1}},
		{name: "empty labels", line: `{"metric":"up","labels":{},"value":1}`, labels: lbl("__name__", "up"), pt: sample.Point{T: now, V: 1}},
		{name: "negative timestamp", line: `{"metric":"up","value":1,"timestamp_ms":-1}`, labels: lbl("__name__", "up"), pt: sample.Point{T: -1, V: 1}},
		{name: "exponent timestamp", line: `{"metric":"up","value":1,"timestamp_ms":1.7638e12}`, labels: lbl("__name__", "up"), pt: sample.Point{T: 1763800000000, V: 1}},
		{name: "integral float timestamp", line: `{"metric":"up","value":1,"timestamp_ms":1000.0}`, labels: lbl("__name__", "up"), pt: sample.Point{T: 1000, V: 1}},
		{name: "escaped strings", line: `{"metric":"m","labels":{"a":"x\"y\\z\n\u00fc"},"value":2}`, labels: lbl("__name__", "m", "a", "x\"y\\z\nü"), pt: sample.Point{T: now, V: 2}},
		{name: "empty label value kept", line: `{"metric":"m","labels":{"a":""},"value":2}`, labels: lbl("__name__", "m", "a", ""), pt: sample.Point{T: now, V: 2}},
		{name: "negative zero", line: `{"metric":"m","value":-0}`, labels: lbl("__name__", "m"), pt: sample.Point{T: now, V: math.Copysign(0, -1)}},
		{name: "big value", line: `{"metric":"m","value":1.5e308}`, labels: lbl("__name__", "m"), pt: sample.Point{T: now, V: 1.5e308}},
		{name: "invalid name left to validate", line: `{"metric":"1.x","labels":{"a-b":"c","__x":"y"},"value":1}`,
			labels: lbl("__name__", "1.x", "a-b", "c", "__x", "y"), pt: sample.Point{T: now, V: 1}},

		{name: "no metric", line: `{"labels":{"a":"b"},"value":1}`, field: "metric", reason: sample.ReasonMissingMetricName},
		{name: "empty metric", line: `{"metric":"","value":1}`, field: "metric", reason: sample.ReasonMissingMetricName},
		{name: "null metric", line: `{"metric":null,"value":1}`, field: "metric", reason: sample.ReasonMissingMetricName},
		{name: "numeric metric", line: `{"metric":5,"value":1}`, field: "metric", reason: sample.ReasonInvalidMetricName, detail: "not a number"},
		{name: "no value", line: `{"metric":"up","labels":{"a":"b"}}`, field: "value", reason: sample.ReasonInvalidValue, detail: `no "value"`, series: `up{a="b"}`},
		{name: "null value", line: `{"metric":"up","value":null}`, field: "value", reason: sample.ReasonInvalidValue, detail: "not null", series: "up{}"},
		{name: "string value", line: `{"metric":"up","value":"212.5"}`, field: "value", reason: sample.ReasonInvalidValue, detail: `not a string "\"212.5\""`, series: "up{}"},
		{name: "NaN string", line: `{"metric":"up","value":"NaN"}`, field: "value", reason: sample.ReasonInvalidValue, detail: "NaN and Inf cannot be sent"},
		{name: "bool value", line: `{"metric":"up","value":true}`, field: "value", reason: sample.ReasonInvalidValue, detail: "not a boolean"},
		{name: "object value", line: `{"metric":"up","value":{"v":1}}`, field: "value", reason: sample.ReasonInvalidValue, detail: "not an object"},
		{name: "out of range value", line: `{"metric":"up","value":1e400}`, field: "value", reason: sample.ReasonInvalidValue, detail: "out of the float64 range"},
		{name: "fractional timestamp", line: `{"metric":"up","value":1,"timestamp_ms":1.5}`, field: "timestamp", reason: sample.ReasonMalformed, detail: `"1.5"`, series: "up{}"},
		{name: "string timestamp", line: `{"metric":"up","value":1,"timestamp_ms":"1763800000000"}`, field: "timestamp", reason: sample.ReasonMalformed},
		{name: "timestamp overflow", line: `{"metric":"up","value":1,"timestamp_ms":9223372036854775808}`, field: "timestamp", reason: sample.ReasonMalformed},
		{name: "timestamp float overflow", line: `{"metric":"up","value":1,"timestamp_ms":9.3e18}`, field: "timestamp", reason: sample.ReasonMalformed},
		{name: "unknown key", line: `{"metric":"up","value":1,"unit":"W"}`, field: "line", reason: sample.ReasonMalformed, detail: `unknown key "unit"`, series: "up{}"},
		{name: "unknown key before metric", line: `{"Metric":"up","value":1}`, field: "line", reason: sample.ReasonMalformed, detail: `unknown key "Metric"`},
		{name: "duplicate key", line: `{"metric":"up","value":1,"value":2}`, field: "line", reason: sample.ReasonMalformed, detail: `key "value" appears more than once`},
		{name: "numeric label", line: `{"metric":"up","labels":{"site":"fra1","gpu":0},"value":1}`, field: "label", reason: sample.ReasonInvalidLabelValue,
			detail: `label "gpu" must be a JSON string, not a number "0"`, series: `up{site="fra1"}`},
		{name: "null label", line: `{"metric":"up","labels":{"gpu":null},"value":1}`, field: "label", reason: sample.ReasonInvalidLabelValue, detail: `"gpu"`},
		{name: "nested label", line: `{"metric":"up","labels":{"gpu":{"a":"b"}},"value":1}`, field: "label", reason: sample.ReasonInvalidLabelValue, detail: "not an object"},
		{name: "labels array", line: `{"metric":"up","labels":["a","b"],"value":1}`, field: "label", reason: sample.ReasonMalformed, detail: "not an array"},
		{name: "labels string", line: `{"metric":"up","labels":"a=b","value":1}`, field: "label", reason: sample.ReasonMalformed},
		{name: "__name__ label", line: `{"metric":"up","labels":{"__name__":"down"},"value":1}`, field: "label", reason: sample.ReasonInvalidLabelName, detail: "__name__"},
		{name: "duplicate label", line: `{"metric":"up","labels":{"a":"1","a":"2"},"value":1}`, field: "label", reason: sample.ReasonDuplicateLabel, detail: `"a"`},
		{name: "first problem wins", line: `{"value":"x","metric":3}`, field: "value", reason: sample.ReasonInvalidValue},
		{name: "not json", line: `up 1`, field: "line", reason: sample.ReasonMalformed, detail: `value in "up 1"`},
		{name: "array", line: `[1,2]`, field: "line", reason: sample.ReasonMalformed, detail: "an array"},
		{name: "bare number", line: `1`, field: "line", reason: sample.ReasonMalformed},
		{name: "truncated", line: `{"metric":"up","value":1`, field: "line", reason: sample.ReasonMalformed},
		{name: "trailing comma", line: `{"metric":"up","value":1,}`, field: "line", reason: sample.ReasonMalformed},
		{name: "two objects", line: `{"metric":"up","value":1}{"metric":"up","value":2}`, field: "line", reason: sample.ReasonMalformed},
		{name: "trailing garbage", line: `{"metric":"up","value":1} x`, field: "line", reason: sample.ReasonMalformed},
		{name: "syntax error beats field problem", line: `{"metric":5,"value":}`, field: "line", reason: sample.ReasonMalformed},
		{name: "single quotes", line: `{'metric':'up','value':1}`, field: "line", reason: sample.ReasonMalformed},
		{name: "NaN literal", line: `{"metric":"up","value":NaN}`, field: "line", reason: sample.ReasonMalformed},
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
			if c.series != "" && r.Series != c.series {
				t.Errorf("series %q, want %q", r.Series, c.series)
			}
		})
	}
}

func TestParseLineNumbersAndGrouping(t *testing.T) {
	body := strings.Join([]string{
		`{"metric":"m","labels":{"b":"2","a":"1"},"value":1,"timestamp_ms":1}`, // 1
		`{"metric":"m","labels":{"a":"1","b":"2"},"value":"2"}`,                // 2 bad
		``, // 3
		`{"metric":"m","labels":{"a":"1","b":"2","c":""},"value":3,"timestamp_ms":3}`, // 4
		`not json`, // 5 bad
		`{"metric":"n","labels":{"a":"1","b":"2"},"value":4,"timestamp_ms":4}`, // 6
		`{"metric":"m","labels":{"a":"12"},"value":5,"timestamp_ms":5}`,        // 7
		`{"metric":"m","labels":{"a":"1","b":"2"},"value":6,"timestamp_ms":6}`, // 8
		`{"metric":"m","labels":{"a":"1","b":"2"},"value":7,"extra":1}`,        // 9 bad
	}, "\n") + "\n"
	series, rejs := Parse([]byte(body), now)
	sameSeries(t, series, []sample.Series{
		{Labels: lbl("__name__", "m", "b", "2", "a", "1"), Points: []sample.Point{{T: 1, V: 1}, {T: 3, V: 3}, {T: 6, V: 6}}},
		{Labels: lbl("__name__", "n", "a", "1", "b", "2"), Points: []sample.Point{{T: 4, V: 4}}},
		{Labels: lbl("__name__", "m", "a", "12"), Points: []sample.Point{{T: 5, V: 5}}},
	})
	var lines []int
	for _, r := range rejs {
		lines = append(lines, r.Line)
	}
	if fmt.Sprint(lines) != "[2 5 9]" {
		t.Fatalf("rejected lines %v, want [2 5 9]: %+v", lines, rejs)
	}
}

func TestParseLongLine(t *testing.T) {
	mk := func(n int) string {
		prefix, suffix := `{"metric":"m","labels":{"a":"`, `"},"value":1}`
		return prefix + strings.Repeat("v", n-len(prefix)-len(suffix)) + suffix
	}
	body := mk(MaxLineBytes) + "\r\n" + mk(MaxLineBytes+1) + "\n"
	series, rejs := Parse([]byte(body), now)
	if len(series) != 1 || len(series[0].Labels[1].Value) != MaxLineBytes-42 {
		t.Fatalf("got %d series", len(series))
	}
	if len(rejs) != 1 || rejs[0].Line != 2 || rejs[0].Field != "line" || !strings.Contains(rejs[0].Detail, "65537 bytes") || len(rejs[0].Detail) > 200 {
		t.Fatalf("rejections %+v", rejs)
	}
}

func TestParseEmpty(t *testing.T) {
	for _, body := range []string{"", "\n", "\r\n \t\n", "   "} {
		series, rejs := Parse([]byte(body), now)
		if len(series) != 0 || len(rejs) != 0 {
			t.Errorf("Parse(%q) = %v, %v", body, series, rejs)
		}
	}
}
