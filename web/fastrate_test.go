package web

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/greenloop/greenloop/ingest"
)

// rangeURL is a query_range request for qs over the last three hours of the test clock.
func rangeURL(qs string) string {
	p := url.Values{"query": {qs}, "start": {fmt.Sprint(testNow.Add(-3 * time.Hour).Unix())},
		"end": {fmt.Sprint(testNow.Unix())}, "step": {"60"}}
	return "/api/v1/query_range?" + p.Encode()
}

// The one-pass evaluation answers over HTTP exactly what the engine answers
// with it turned off, and the metric says which path ran.
func TestFastRateSameAnswerAsEngine(t *testing.T) {
	fast := newEnv(t)
	off := false
	slow := newEnv(t, func(c *envConfig) { c.opts.Query.FastRate = &off })
	var body strings.Builder
	for i := range 30 {
		v := 0.0
		for ts := testNow.Add(-4 * time.Hour); !ts.After(testNow); ts = ts.Add(20 * time.Second) {
			v += float64(i+1) * 7.5
			if i == 3 && ts.Minute() == 17 {
				v = 0 // a reset
			}
			fmt.Fprintf(&body, "greenloop_energy_joules_total{site=\"s%d\",node=\"n%d\"} %g %d\n", i%4, i, v, ts.UnixMilli())
		}
	}
	for _, e := range []*testEnv{fast, slow} {
		rec := e.do(req{method: "POST", target: "/api/v1/import/prometheus", body: []byte(body.String())})
		if rec.Code != 204 && rec.Code != 200 {
			t.Fatalf("import: %d %s", rec.Code, rec.Body)
		}
	}
	for _, qs := range []string{
		`sum by (site) (rate(greenloop_energy_joules_total[5m]))`,
		`sum(increase(greenloop_energy_joules_total{site!="s0"}[1h]))`,
		`rate(greenloop_energy_joules_total{node="n3"}[2m])`,
	} {
		got := fast.get(rangeURL(qs), "", 200)
		want := slow.get(rangeURL(qs), "", 200)
		if string(got) != string(want) {
			t.Errorf("%s:\nfast   %.300s\nengine %.300s", qs, got, want)
		}
		if !strings.Contains(string(got), `"values":[[`) {
			t.Errorf("%s: no points: %.200s", qs, got)
		}
	}
	if n := testutil.ToFloat64(fast.srv.fastQueries.WithLabelValues("fast")); n != 3 {
		t.Errorf("fast path ran %v times, want 3", n)
	}
	if n := testutil.ToFloat64(slow.srv.fastQueries.WithLabelValues("fast")); n != 0 {
		t.Errorf("fast path ran %v times with query.fast_rate off", n)
	}
}

// Each tenant's sum covers its own series only, on the fast path as on the engine's.
func TestFastRateTenants(t *testing.T) {
	e := newEnv(t, withTokens(tokenLine("tok-a", "a", "operator", "A"), tokenLine("tok-b", "b", "operator", "B")))
	for tok, per := range map[string]float64{"tok-a": 60, "tok-b": 6000} {
		var body strings.Builder
		v := 0.0
		for ts := testNow.Add(-2 * time.Hour); !ts.After(testNow); ts = ts.Add(time.Minute) {
			v += per
			fmt.Fprintf(&body, "greenloop_energy_joules_total{site=\"x\",node=\"n1\"} %g %d\n", v, ts.UnixMilli())
		}
		if rec := e.do(req{method: "POST", target: "/api/v1/import/prometheus", body: []byte(body.String()), token: tok}); rec.Code >= 300 {
			t.Fatalf("import %s: %d %s", tok, rec.Code, rec.Body)
		}
	}
	for tok, want := range map[string]string{"tok-a": `"1"`, "tok-b": `"100"`} {
		b := string(e.get(rangeURL(`sum by (site) (rate(greenloop_energy_joules_total[5m]))`), tok, 200))
		if !strings.Contains(b, want) || strings.Contains(b, map[string]string{"tok-a": `"100"`, "tok-b": `"1"`}[tok]) {
			t.Errorf("%s: %.300s, want rates of %s only", tok, b, want)
		}
	}
	// The tenant label never shows, even where the grouping would keep it.
	b := string(e.get(rangeURL(`sum without (node) (rate(greenloop_energy_joules_total[5m]))`), "tok-a", 200))
	if !strings.Contains(b, `"metric":{"site":"x"}`) || strings.Contains(b, ingest.TenantLabel) {
		t.Errorf("without (node): %.300s", b)
	}
	if n := testutil.ToFloat64(e.srv.fastQueries.WithLabelValues("fast")); n != 3 {
		t.Errorf("fast path ran %v times, want 3", n)
	}
}

// A native histogram among the selected series sends the query to the engine.
func TestFastRateHistogramFallsBack(t *testing.T) {
	e := newEnv(t)
	app := e.store.Appender(context.Background())
	ls := labels.FromStrings("__name__", "req_count", "site", "a")
	for i := range 60 {
		h := &histogram.Histogram{Count: uint64(10 * i), Sum: float64(i), ZeroThreshold: 0.001,
			PositiveSpans: []histogram.Span{{Offset: 0, Length: 1}}, PositiveBuckets: []int64{int64(10 * i)}}
		if _, err := app.AppendHistogram(0, ls, testNow.Add(time.Duration(i-60)*time.Minute).UnixMilli(), h, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	b := string(e.get(rangeURL(`sum by (site) (rate(req_count[5m]))`), "", 200))
	if !strings.Contains(b, `"histograms":[[`) {
		t.Errorf("want the engine's histogram answer, got %.300s", b)
	}
	if n := testutil.ToFloat64(e.srv.fastQueries.WithLabelValues("engine_fallback")); n != 1 {
		t.Errorf("engine_fallback = %v, want 1", n)
	}
}
