package web

import (
	"math"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/internal/sample"
)

// seed writes a few series straight into the store.
func seed(e *testEnv) {
	e.appendDirect(labels.FromStrings("__name__", "greenloop_power_watts", "site", "fra1", "node", "a"),
		sample.Point{T: nowMs - 60_000, V: 1.5}, sample.Point{T: nowMs - 30_000, V: 2}, sample.Point{T: nowMs, V: 1e-7})
	e.appendDirect(labels.FromStrings("__name__", "greenloop_power_watts", "site", "ams2", "node", "b"),
		sample.Point{T: nowMs - 60_000, V: math.Inf(1)}, sample.Point{T: nowMs - 30_000, V: math.NaN()}, sample.Point{T: nowMs, V: -3})
	e.appendDirect(labels.FromStrings("__name__", "greenloop_temperature_celsius", "site", "fra1", "sensor", `in"let<1>`),
		sample.Point{T: nowMs - 500, V: 21.25})
}

func TestQueryJSON(t *testing.T) {
	e := newEnv(t)
	seed(e)
	tests := []struct {
		name   string
		method string
		target string
		form   url.Values
		want   string
	}{
		{
			name:   "range matrix",
			target: "/api/v1/query_range?query=greenloop_power_watts&start=1699999940&end=1700000000&step=30",
			want: `{"status":"success","data":{"resultType":"matrix","result":[` +
				`{"metric":{"__name__":"greenloop_power_watts","node":"a","site":"fra1"},"values":[[1699999940,"1.5"],[1699999970,"2"],[1700000000,"1e-07"]]},` +
				`{"metric":{"__name__":"greenloop_power_watts","node":"b","site":"ams2"},"values":[[1699999940,"+Inf"],[1699999970,"NaN"],[1700000000,"-3"]]}]}}`,
		},
		{
			name:   "range as POST form with RFC 3339 and a duration step",
			method: http.MethodPost,
			target: "/api/v1/query_range",
			form:   url.Values{"query": {`sum(greenloop_power_watts{site="fra1"})`}, "start": {"2023-11-14T22:12:20Z"}, "end": {"2023-11-14T22:13:20Z"}, "step": {"1m"}},
			want:   `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1699999940,"1.5"],[1700000000,"1e-07"]]}]}}`,
		},
		{
			name:   "range with millisecond timestamps",
			target: "/api/v1/query_range?query=vector(1)&start=1700000000.001&end=1700000000.5&step=0.25",
			want:   `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[1700000000.001,"1"],[1700000000.251,"1"]]}]}}`,
		},
		{
			name:   "instant vector with escaping",
			target: "/api/v1/query?query=greenloop_temperature_celsius&time=1700000000",
			want:   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"greenloop_temperature_celsius","sensor":"in\"let\u003c1\u003e","site":"fra1"},"value":[1700000000,"21.25"]}]}}`,
		},
		{
			name:   "instant scalar",
			target: "/api/v1/query?query=1e-7&time=1700000000.123",
			want:   `{"status":"success","data":{"resultType":"scalar","result":[1700000000.123,"0.0000001"]}}`,
		},
		{
			name:   "scalar time as encoding/json writes it",
			target: "/api/v1/query?query=time()&time=1700000000.010",
			want:   `{"status":"success","data":{"resultType":"scalar","result":[1700000000.01,"1700000000.01"]}}`,
		},
		{
			name:   "vector time as Prometheus writes it",
			target: "/api/v1/query?query=vector(time())&time=1700000000.010",
			want:   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000.010,"1700000000.01"]}]}}`,
		},
		{
			name:   "instant string",
			target: "/api/v1/query?query=%22hi%22&time=1700000000",
			want:   `{"status":"success","data":{"resultType":"string","result":[1700000000,"hi"]}}`,
		},
		{
			name:   "instant POST form, default time is the clock",
			method: http.MethodPost,
			target: "/api/v1/query",
			form:   url.Values{"query": {`count(greenloop_power_watts)`}},
			want:   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{},"value":[1700000000,"2"]}]}}`,
		},
		{
			name:   "empty matrix",
			target: "/api/v1/query_range?query=nothing_here&start=1699999940&end=1700000000&step=30",
			want:   `{"status":"success","data":{"resultType":"matrix","result":[]}}`,
		},
		{
			name:   "limit truncates with a warning",
			target: "/api/v1/query?query=greenloop_power_watts&time=1700000000&limit=1",
			want:   `{"status":"success","data":{"resultType":"vector","result":[{"metric":{"__name__":"greenloop_power_watts","node":"a","site":"fra1"},"value":[1700000000,"1e-07"]}]},"warnings":["results truncated due to limit"]}`,
		},
		{
			name:   "series",
			target: "/api/v1/series?match[]=greenloop_power_watts&match[]=greenloop_temperature_celsius",
			want:   `{"status":"success","data":[{"__name__":"greenloop_power_watts","node":"a","site":"fra1"},{"__name__":"greenloop_power_watts","node":"b","site":"ams2"},{"__name__":"greenloop_temperature_celsius","sensor":"in\"let\u003c1\u003e","site":"fra1"}]}`,
		},
		{
			name:   "series with limit",
			target: "/api/v1/series?match[]=%7Bsite%3D%22fra1%22%7D&limit=1",
			want:   `{"status":"success","data":[{"__name__":"greenloop_power_watts","node":"a","site":"fra1"}],"warnings":["results truncated due to limit"]}`,
		},
		{
			name:   "series in a time range without data",
			target: "/api/v1/series?match[]=greenloop_power_watts&start=1500000000&end=1500000100",
			want:   `{"status":"success","data":[]}`,
		},
		{
			name:   "labels",
			target: "/api/v1/labels",
			want:   `{"status":"success","data":["__name__","node","sensor","site"]}`,
		},
		{
			name:   "labels with match",
			method: http.MethodPost,
			target: "/api/v1/labels",
			form:   url.Values{"match[]": {"greenloop_temperature_celsius"}},
			want:   `{"status":"success","data":["__name__","sensor","site"]}`,
		},
		{
			name:   "label values",
			target: "/api/v1/label/site/values",
			want:   `{"status":"success","data":["ams2","fra1"]}`,
		},
		{
			name:   "label values with two matchers",
			target: "/api/v1/label/__name__/values?match[]=%7Bnode%3D%22a%22%7D&match[]=%7Bsensor%21%3D%22%22%7D",
			want:   `{"status":"success","data":["greenloop_power_watts","greenloop_temperature_celsius"]}`,
		},
		{
			name:   "label values of an unknown label",
			target: "/api/v1/label/nope/values",
			want:   `{"status":"success","data":[]}`,
		},
		{name: "exemplars", target: "/api/v1/query_exemplars?query=up", want: `{"status":"success","data":[]}`},
		{name: "metadata", target: "/api/v1/metadata", want: `{"status":"success","data":{}}`},
		{name: "rules", target: "/api/v1/rules", want: `{"status":"success","data":{"groups":[]}}`},
		{name: "alerts", target: "/api/v1/alerts", want: `{"status":"success","data":{"alerts":[]}}`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := req{method: tc.method, target: tc.target}
			if tc.form != nil {
				r.body = []byte(tc.form.Encode())
				r.header = map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
			}
			rec := e.do(r)
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d; body %s", rec.Code, rec.Body)
			}
			if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
			if got := rec.Body.String(); got != tc.want {
				t.Errorf("\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

func TestQueryErrors(t *testing.T) {
	e := newEnv(t)
	seed(e)
	tests := []struct {
		name, target string
		code         int
		errType      string
		msg          string
	}{
		{"no query", "/api/v1/query", 400, "bad_data", `invalid parameter "query"`},
		{"parse error", "/api/v1/query?query=sum(", 400, "bad_data", `invalid parameter "query"`},
		{"bad time", "/api/v1/query?query=up&time=noon", 400, "bad_data", `invalid parameter "time"`},
		{"bad timeout", "/api/v1/query?query=up&timeout=soon", 400, "bad_data", `invalid parameter "timeout"`},
		{"negative timeout", "/api/v1/query?query=up&timeout=-1", 400, "bad_data", "timeout must be positive"},
		{"bad limit", "/api/v1/query?query=up&limit=-1", 400, "bad_data", `invalid parameter "limit"`},
		{"range without start", "/api/v1/query_range?query=up&end=1700000000&step=15", 400, "bad_data", `invalid parameter "start"`},
		{"range end before start", "/api/v1/query_range?query=up&start=1700000000&end=1699999000&step=15", 400, "bad_data", "end timestamp must not be before start time"},
		{"range bad step", "/api/v1/query_range?query=up&start=1699999000&end=1700000000&step=fast", 400, "bad_data", `invalid parameter "step"`},
		{"range zero step", "/api/v1/query_range?query=up&start=1699999000&end=1700000000&step=0", 400, "bad_data", "zero or negative query resolution step"},
		{"range too many points", "/api/v1/query_range?query=up&start=1600000000&end=1700000000&step=15s", 400, "bad_data", "exceeded maximum resolution of 11,000 points"},
		{"range at 11000 points", "/api/v1/query_range?query=up&start=1699835000&end=1700000000&step=15s", 200, "", ""},
		{"range at 11001 points", "/api/v1/query_range?query=up&start=1699834985&end=1700000000&step=15s", 400, "bad_data", "11,000"},
		{"exec error", "/api/v1/query?query=greenloop_power_watts+%2B+on()+group_left+greenloop_power_watts&time=1700000000", 422, "execution", "duplicate series"},
		{"series without match", "/api/v1/series", 400, "bad_data", "no match[] parameter provided"},
		{"series with empty matcher", "/api/v1/series?match[]=%7Bsite%3D%22%22%7D", 400, "bad_data", "at least one non-empty matcher"},
		{"series bad selector", "/api/v1/series?match[]=%7B", 400, "bad_data", `invalid parameter "match[]"`},
		{"series bad start", "/api/v1/series?match[]=up&start=x", 400, "bad_data", `invalid parameter "start"`},
		{"labels bad selector", "/api/v1/labels?match[]=%7B", 400, "bad_data", ""},
		{"bad label name", "/api/v1/label/a%FFb/values", 400, "bad_data", "invalid label name"},
		{"exemplars bad query", "/api/v1/query_exemplars?query=sum(", 400, "bad_data", ""},
		{"wrong method", "/api/v1/query?query=up", 405, "method_not_allowed", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			method := http.MethodGet
			if tc.name == "wrong method" {
				method = http.MethodDelete
			}
			rec := e.do(req{method: method, target: tc.target})
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d; body %s", rec.Code, tc.code, rec.Body)
			}
			if tc.code == 200 {
				return
			}
			r := decode[queryResp](t, rec.Body.Bytes())
			if r.Status != "error" || r.ErrorType != tc.errType || !strings.Contains(r.Error, tc.msg) {
				t.Errorf("got %s; want errorType %q and an error mentioning %q", rec.Body, tc.errType, tc.msg)
			}
		})
	}
}

func TestQueryLimitsOfTheEngine(t *testing.T) {
	e := newEnv(t, withEngine(promql.NewEngine(promql.EngineOpts{MaxSamples: 2, Timeout: time.Minute, LookbackDelta: 5 * time.Minute})))
	seed(e)
	rec := e.do(req{target: "/api/v1/query_range?query=greenloop_power_watts&start=1699999940&end=1700000000&step=30"})
	if rec.Code != http.StatusUnprocessableEntity {
		t.Fatalf("status %d, want 422; body %s", rec.Code, rec.Body)
	}
	if r := decode[queryResp](t, rec.Body.Bytes()); r.ErrorType != "execution" || !strings.Contains(r.Error, "too many samples") {
		t.Errorf("body %s", rec.Body)
	}
}

func TestBuildInfo(t *testing.T) {
	e := newEnv(t)
	b := e.get("/api/v1/status/buildinfo", "", 200)
	r := decode[struct {
		Status string
		Data   BuildInfo
	}](t, b)
	if r.Status != "success" || !strings.HasPrefix(r.Data.Version, "3.") || !strings.HasPrefix(r.Data.GoVersion, "go") {
		t.Errorf("buildinfo %s", b)
	}
}
