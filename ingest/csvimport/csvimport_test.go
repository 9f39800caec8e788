package csvimport

import (
	"strings"
	"testing"

	"github.com/greenloop/greenloop/internal/sample"
)

func TestParse(t *testing.T) {
	// Headers with commas are quoted, as CSV writers do (quotes doubled inside).
	body := "\ufefftimestamp,\"greenloop_energy_joules_total{site=\"\"fra1\"\",component=\"\"facility\"\"} [kWh]\",\"greenloop_power_watts{site=\"\"fra1\"\",component=\"\"it\"\"} [kW]\",greenloop_water_cubic_meters_total{site=\"fra1\"} [L]\n" +
		"2025-01-01T00:00:00Z,1200345.5,410.5,1000\n" +
		"1735690500,1200470,,1500\n" + // Unix seconds; an empty cell is no sample
		"1735690800000,1200600.25,420,abc\n" + // Unix ms; a bad cell
		"yesterday,1,2,3\n" +
		"\n"
	series, rej := Parse([]byte(body), 0)
	if len(series) != 3 {
		t.Fatalf("%d series, want 3", len(series))
	}
	e := series[0]
	if got := sample.FormatLabels(e.Labels); got != `greenloop_energy_joules_total{component="facility", site="fra1"}` && got != `greenloop_energy_joules_total{component="facility",site="fra1"}` {
		t.Errorf("labels %s", got)
	}
	want := []sample.Point{{T: 1735689600000, V: 1200345.5 * 3.6e6}, {T: 1735690500000, V: 1200470 * 3.6e6}, {T: 1735690800000, V: 1200600.25 * 3.6e6}}
	if len(e.Points) != 3 {
		t.Fatalf("energy points %v", e.Points)
	}
	for i, p := range want {
		if e.Points[i] != p {
			t.Errorf("energy point %d = %v, want %v", i, e.Points[i], p)
		}
	}
	if p := series[1].Points; len(p) != 2 || p[0].V != 410500 || p[1].V != 420000 {
		t.Errorf("power points %v, want 410500 W and 420000 W", p)
	}
	if p := series[2].Points; len(p) != 2 || p[0].V != 1 || p[1].V != 1.5 {
		t.Errorf("water points %v, want 1 and 1.5 m³", p)
	}
	if len(rej) != 2 {
		t.Fatalf("rejections %+v, want 2", rej)
	}
	if r := rej[0]; r.Line != 4 || r.Field != "column 4" || r.Reason != sample.ReasonInvalidValue {
		t.Errorf("first rejection %+v", r)
	}
	if r := rej[1]; r.Line != 5 || r.Field != "timestamp" || !strings.Contains(r.Detail, "yesterday") {
		t.Errorf("second rejection %+v", r)
	}
}

func TestParseHeaderErrors(t *testing.T) {
	for _, tc := range []struct{ body, field, detail string }{
		{"", "header", "empty file"},
		{"time,x\n", "header", "must start with a \"timestamp\""},
		{"timestamp\n", "header", "at least one series"},
		{"timestamp,greenloop_power_watts{site=\"a\"} [kWh]\n1,2\n", "column 2", "does not fit metric greenloop_power_watts"},
		{"timestamp,greenloop_energy_joules_total [BTU]\n1,2\n", "column 2", "unknown unit [BTU]"},
		{"timestamp,{site=\"a\"}\n1,2\n", "column 2", "no metric name"},
		{"timestamp,not a series\n1,2\n", "column 2", "is not a series"},
		{"timestamp,x{a=\"1\"},x{a=\"1\"}\n1,2,3\n", "column 3", "same series as column 2"},
	} {
		_, rej := Parse([]byte(tc.body), 0)
		if len(rej) == 0 || rej[0].Field != tc.field || !strings.Contains(rej[0].Detail, tc.detail) {
			t.Errorf("%q: rejections %+v, want field %s with %q", tc.body, rej, tc.field, tc.detail)
		}
	}
	// A broken column does not lose the others.
	series, _ := Parse([]byte("timestamp,x [BTU],y_watts [kW]\n1,2,3\n"), 0)
	if len(series) != 1 || series[0].Labels[0].Value != "y_watts" || series[0].Points[0].V != 3000 {
		t.Errorf("good column lost: %+v", series)
	}
}

func TestParseRowErrors(t *testing.T) {
	_, rej := Parse([]byte("timestamp,x\n1,2,3\n2,\"bad\"quote\n3,4\n"), 0)
	if len(rej) != 2 || rej[0].Line != 2 || rej[1].Line != 3 {
		t.Fatalf("rejections %+v", rej)
	}
}
