package validate

import (
	"math"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/greenloop/greenloop/internal/sample"
	"github.com/prometheus/prometheus/model/value"
)

var (
	metricNameRE = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelNameRE  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

func TestValidMetricName(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{"up", true},
		{"greenloop_power_watts", true},
		{"_x", true},
		{":recording:rule", true},
		{"a1", true},
		{"A_Z:09", true},
		{"", false},
		{"1abc", false},
		{"a-b", false},
		{"a.b", false},
		{"a b", false},
		{"temp°", false},
		{"ünicode", false},
		{"a\x00", false},
	}
	for _, c := range cases {
		if got := ValidMetricName(c.in); got != c.want {
			t.Errorf("ValidMetricName(%q) = %v, want %v", c.in, got, c.want)
		}
		if re := metricNameRE.MatchString(c.in); re != c.want {
			t.Errorf("test table disagrees with the regexp for %q", c.in)
		}
	}
}

func TestValidLabelName(t *testing.T) {
	cases := []struct {
		in   string
		want bool
	}{
		{"site", true},
		{"_", true},
		{"__name__", true}, // lexically valid; Labels handles reserved names
		{"a9", true},
		{"Zone_1", true},
		{"", false},
		{"9a", false},
		{"a:b", false}, // colons are for metric names only
		{"a-b", false},
		{"a b", false},
		{"é", false},
	}
	for _, c := range cases {
		if got := ValidLabelName(c.in); got != c.want {
			t.Errorf("ValidLabelName(%q) = %v, want %v", c.in, got, c.want)
		}
		if re := labelNameRE.MatchString(c.in); re != c.want {
			t.Errorf("test table disagrees with the regexp for %q", c.in)
		}
	}
}

func ls(kv ...string) []sample.Label {
	out := make([]sample.Label, 0, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, sample.Label{Name: kv[i], Value: kv[i+1]})
	}
	return out
}

func TestLabels(t *testing.T) {
	cases := []struct {
		name      string
		in        []sample.Label
		max       int
		want      []sample.Label // when accepted
		field     string         // when refused
		reason    string
		inDetail  string
		wantSeris string
	}{
		{name: "ok", in: ls("__name__", "up", "job", "node"), max: 3,
			want: ls("__name__", "up", "job", "node")},
		{name: "ok at limit", in: ls("__name__", "m", "a", "1", "b", "2"), max: 3,
			want: ls("__name__", "m", "a", "1", "b", "2")},
		{name: "no limit", in: ls("__name__", "m", "a", "1", "b", "2", "c", "3"), max: 0,
			want: ls("__name__", "m", "a", "1", "b", "2", "c", "3")},
		{name: "empty values dropped and not counted", in: ls("a", "", "__name__", "m", "b", "2", "c", ""), max: 2,
			want: ls("__name__", "m", "b", "2")},
		{name: "too many", in: ls("__name__", "m", "a", "1", "b", "2", "c", "3"), max: 3,
			field: "label", reason: sample.ReasonTooManyLabels, inDetail: "4 labels, more than the limit of 3",
			wantSeris: `m{a="1",b="2",c="3"}`},
		{name: "no name", in: ls("job", "x"), field: "metric", reason: sample.ReasonMissingMetricName},
		{name: "empty name", in: ls("__name__", "", "job", "x"), field: "metric", reason: sample.ReasonMissingMetricName},
		{name: "no labels at all", in: nil, field: "metric", reason: sample.ReasonMissingMetricName},
		{name: "bad metric name", in: ls("__name__", "power.watts"), field: "metric", reason: sample.ReasonInvalidMetricName,
			inDetail: `"power.watts"`},
		{name: "metric starts with digit", in: ls("__name__", "1up"), field: "metric", reason: sample.ReasonInvalidMetricName},
		{name: "bad label name", in: ls("__name__", "m", "a-b", "1"), field: "label", reason: sample.ReasonInvalidLabelName,
			inDetail: `"a-b"`},
		{name: "colon in label name", in: ls("__name__", "m", "a:b", "1"), field: "label", reason: sample.ReasonInvalidLabelName},
		{name: "empty label name", in: ls("__name__", "m", "", "1"), field: "label", reason: sample.ReasonInvalidLabelName},
		{name: "reserved label", in: ls("__name__", "m", "__meta_x", "1"), field: "label", reason: sample.ReasonInvalidLabelName,
			inDetail: "reserved"},
		{name: "reserved even when empty", in: ls("__name__", "m", "__x", ""), field: "label", reason: sample.ReasonInvalidLabelName},
		{name: "duplicate", in: ls("__name__", "m", "a", "1", "b", "2", "a", "3"), field: "label", reason: sample.ReasonDuplicateLabel,
			inDetail: `"a"`},
		{name: "duplicate name label", in: ls("__name__", "m", "__name__", "n"), field: "label", reason: sample.ReasonDuplicateLabel},
		{name: "duplicate with one empty", in: ls("__name__", "m", "a", "", "a", "1"), field: "label", reason: sample.ReasonDuplicateLabel},
		{name: "invalid utf8 value", in: ls("__name__", "m", "a", "ok\xffno"), field: "label", reason: sample.ReasonInvalidLabelValue,
			inDetail: `"a"`},
		{name: "utf8 value ok", in: ls("__name__", "m", "room", "Büro ☃"), want: ls("__name__", "m", "room", "Büro ☃")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in := append([]sample.Label(nil), c.in...)
			got, rej := Labels(in, c.max)
			if !reflect.DeepEqual(in, c.in) {
				t.Fatalf("input modified: %v", in)
			}
			if c.reason == "" {
				if rej != nil {
					t.Fatalf("refused: %+v", *rej)
				}
				if !reflect.DeepEqual(got, c.want) {
					t.Fatalf("got %v, want %v", got, c.want)
				}
				return
			}
			if rej == nil {
				t.Fatalf("accepted %v, want %s", got, c.reason)
			}
			if got != nil {
				t.Errorf("labels returned with a rejection: %v", got)
			}
			if rej.Reason != c.reason || rej.Field != c.field {
				t.Errorf("got reason %q field %q, want %q %q (%s)", rej.Reason, rej.Field, c.reason, c.field, rej.Detail)
			}
			if c.inDetail != "" && !strings.Contains(rej.Detail, c.inDetail) {
				t.Errorf("detail %q lacks %q", rej.Detail, c.inDetail)
			}
			if c.wantSeris != "" && rej.Series != c.wantSeris {
				t.Errorf("series %q, want %q", rej.Series, c.wantSeris)
			}
			if rej.Index != -1 {
				t.Errorf("index %d, want -1", rej.Index)
			}
		})
	}
}

func TestLabelsManyDuplicates(t *testing.T) {
	// Over 32 labels the duplicate check switches to a map; check both paths.
	for _, n := range []int{10, 40} {
		in := ls("__name__", "m")
		for i := 0; i < n; i++ {
			in = append(in, sample.Label{Name: "l" + strings.Repeat("x", i), Value: "v"})
		}
		if _, rej := Labels(in, 0); rej != nil {
			t.Fatalf("n=%d: refused %+v", n, *rej)
		}
		in = append(in, sample.Label{Name: "lxxx", Value: "w"})
		_, rej := Labels(in, 0)
		if rej == nil || rej.Reason != sample.ReasonDuplicateLabel || !strings.Contains(rej.Detail, `"lxxx"`) {
			t.Fatalf("n=%d: got %+v, want duplicate lxxx", n, rej)
		}
	}
}

func TestLabelsNoAllocation(t *testing.T) {
	in := ls("__name__", "greenloop_power_watts", "site", "fra1", "node", "bmc-12", "source", "redfish",
		"component", "psu", "sensor", "PSU1")
	allocs := testing.AllocsPerRun(100, func() {
		if _, rej := Labels(in, 32); rej != nil {
			t.Fatal(rej)
		}
	})
	if allocs != 0 {
		t.Fatalf("Labels allocated %v times for valid labels", allocs)
	}
}

var now = time.UnixMilli(1_763_800_000_000)

func TestPoint(t *testing.T) {
	lim := Limits{MaxFutureSkew: 10 * time.Minute, MaxAge: 24 * time.Hour}
	nowMs := now.UnixMilli()
	stale := math.Float64frombits(value.StaleNaN)
	cases := []struct {
		name   string
		metric string
		p      sample.Point
		lim    Limits
		reason string // "" = accepted
	}{
		{"now", "greenloop_power_watts", sample.Point{T: nowMs, V: 212.5}, lim, ""},
		{"at future bound", "up", sample.Point{T: nowMs + 600_000, V: 1}, lim, ""},
		{"1ms past future bound", "up", sample.Point{T: nowMs + 600_001, V: 1}, lim, sample.ReasonTooFarInFuture},
		{"far future", "up", sample.Point{T: math.MaxInt64, V: 1}, lim, sample.ReasonTooFarInFuture},
		{"at age bound", "up", sample.Point{T: nowMs - 86_400_000, V: 1}, lim, ""},
		{"1ms past age bound", "up", sample.Point{T: nowMs - 86_400_001, V: 1}, lim, sample.ReasonTooOld},
		{"min int64", "up", sample.Point{T: math.MinInt64, V: 1}, lim, sample.ReasonTooOld},
		{"no limits", "up", sample.Point{T: math.MinInt64, V: 1}, Limits{}, ""},
		{"no limits future", "up", sample.Point{T: math.MaxInt64, V: 1}, Limits{}, ""},
		{"negative limits disable", "up", sample.Point{T: 0, V: 1}, Limits{MaxAge: -1, MaxFutureSkew: -1}, ""},
		{"stale still too old", "greenloop_power_watts", sample.Point{T: 0, V: stale}, lim, sample.ReasonTooOld},

		{"foreign NaN", "node_hwmon_temp_celsius", sample.Point{T: nowMs, V: math.NaN()}, lim, ""},
		{"foreign +Inf", "up", sample.Point{T: nowMs, V: math.Inf(1)}, lim, ""},
		{"foreign negative counter", "node_rapl_package_joules_total", sample.Point{T: nowMs, V: -1}, lim, ""},
		{"canonical NaN", "greenloop_temperature_celsius", sample.Point{T: nowMs, V: math.NaN()}, lim, sample.ReasonInvalidValue},
		{"canonical +Inf", "greenloop_power_watts", sample.Point{T: nowMs, V: math.Inf(1)}, lim, sample.ReasonInvalidValue},
		{"canonical -Inf", "greenloop_power_watts", sample.Point{T: nowMs, V: math.Inf(-1)}, lim, sample.ReasonInvalidValue},
		{"canonical stale", "greenloop_power_watts", sample.Point{T: nowMs, V: stale}, lim, ""},
		{"canonical counter stale", "greenloop_energy_joules_total", sample.Point{T: nowMs, V: stale}, lim, ""},
		{"canonical gauge negative", "greenloop_temperature_celsius", sample.Point{T: nowMs, V: -40}, lim, ""},
		{"canonical counter negative", "greenloop_energy_joules_total", sample.Point{T: nowMs, V: -0.001}, lim, sample.ReasonInvalidValue},
		{"canonical counter zero", "greenloop_energy_joules_total", sample.Point{T: nowMs, V: 0}, lim, ""},
		{"canonical counter negative zero", "greenloop_energy_joules_total", sample.Point{T: nowMs, V: math.Copysign(0, -1)}, lim, ""},
		{"canonical counter large", "greenloop_water_cubic_meters_total", sample.Point{T: nowMs, V: 1e300}, lim, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			reason, detail, ok := Point(c.metric, c.p, now, c.lim)
			if c.reason == "" {
				if !ok || reason != "" || detail != "" {
					t.Fatalf("refused: %s: %s", reason, detail)
				}
				return
			}
			if ok {
				t.Fatalf("accepted, want %s", c.reason)
			}
			if reason != c.reason {
				t.Fatalf("reason %q, want %q (%s)", reason, c.reason, detail)
			}
			if detail == "" {
				t.Fatal("empty detail")
			}
		})
	}
}

func TestPointDetails(t *testing.T) {
	lim := Limits{MaxFutureSkew: time.Minute, MaxAge: time.Hour}
	nowMs := now.UnixMilli()
	_, d, _ := Point("up", sample.Point{T: nowMs + 90_000}, now, lim)
	if !strings.Contains(d, "1m30s ahead") || !strings.Contains(d, "allowed 1m0s") {
		t.Errorf("future detail: %s", d)
	}
	_, d, _ = Point("up", sample.Point{T: nowMs - 2*3_600_000}, now, lim)
	if !strings.Contains(d, "2h0m0s behind") || !strings.Contains(d, "allowed 1h0m0s") {
		t.Errorf("age detail: %s", d)
	}
	_, d, _ = Point("up", sample.Point{T: math.MinInt64}, now, lim)
	if !strings.Contains(d, "ms behind") {
		t.Errorf("huge age detail: %s", d)
	}
	_, d, _ = Point("greenloop_energy_joules_total", sample.Point{T: nowMs, V: -5}, now, lim)
	if !strings.Contains(d, "negative value -5") {
		t.Errorf("counter detail: %s", d)
	}
}

func TestPointNoAllocation(t *testing.T) {
	lim := DefaultLimits()
	nowMs := now.UnixMilli()
	points := []struct {
		metric string
		p      sample.Point
	}{
		{"greenloop_power_watts", sample.Point{T: nowMs, V: 212.5}},
		{"greenloop_energy_joules_total", sample.Point{T: nowMs - 1000, V: 1e9}},
		{"greenloop_power_watts", sample.Point{T: nowMs, V: math.Float64frombits(value.StaleNaN)}},
		{"node_hwmon_temp_celsius", sample.Point{T: nowMs, V: math.NaN()}},
	}
	allocs := testing.AllocsPerRun(200, func() {
		for _, x := range points {
			if _, _, ok := Point(x.metric, x.p, now, lim); !ok {
				t.Fatal("refused")
			}
		}
	})
	if allocs != 0 {
		t.Fatalf("Point allocated %v times for accepted samples", allocs)
	}
}

func TestDefaultLimits(t *testing.T) {
	l := DefaultLimits()
	if l.MaxLabels != 32 || l.MaxFutureSkew != 10*time.Minute || l.MaxAge != 168*time.Hour {
		t.Fatalf("DefaultLimits() = %+v", l)
	}
}

func TestQuote(t *testing.T) {
	cases := []struct{ in, want string }{
		{"abc", `"abc"`},
		{"a\"b\n", `"a\"b\n"`},
		{strings.Repeat("x", 64), `"` + strings.Repeat("x", 64) + `"`},
		{strings.Repeat("x", 65), `"` + strings.Repeat("x", 64) + `"...`},
		// a 3-byte rune straddling byte 64 is not split
		{strings.Repeat("x", 63) + "☃" + "yy", `"` + strings.Repeat("x", 63) + `"...`},
	}
	for _, c := range cases {
		if got := Quote(c.in); got != c.want {
			t.Errorf("Quote(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}

func TestKindOf(t *testing.T) {
	for metric, want := range map[string]Kind{
		"greenloop_power_watts":          Canonical,
		"greenloop_energy_joules_total":  CanonicalCounter,
		"node_rapl_package_joules_total": Foreign,
		"up":                             Foreign,
	} {
		if got := KindOf(metric); got != want {
			t.Errorf("KindOf(%s) = %d, want %d", metric, got, want)
		}
	}
}
