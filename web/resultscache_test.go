package web

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/sample"
)

func writeCounters(t *testing.T, e *testEnv, from, to time.Time, every time.Duration, bump float64) {
	t.Helper()
	var series []sample.Series
	for i := range 24 {
		s := sample.Series{Labels: []sample.Label{{Name: "__name__", Value: "greenloop_energy_joules_total"},
			{Name: "site", Value: fmt.Sprintf("s%d", i%4)}, {Name: "node", Value: fmt.Sprintf("n%d", i)}}}
		for ts := from; !ts.After(to); ts = ts.Add(every) {
			v := float64(ts.Unix()-from.Unix())*float64(i%5+1) + bump
			s.Points = append(s.Points, sample.Point{T: ts.UnixMilli(), V: v})
		}
		series = append(series, s)
	}
	if _, err := e.writer.WriteSeries(context.Background(), ingest.WriteOptions{}, series); err != nil {
		t.Fatal(err)
	}
}

// engineRange is the reference: one unsplit, uncached engine query.
func engineRange(t *testing.T, e *testEnv, qs string, from, to time.Time, step time.Duration) string {
	t.Helper()
	qry, err := e.srv.deps.Engine.NewRangeQuery(context.Background(), e.srv.deps.Store, nil, qs, from, to, step)
	if err != nil {
		t.Fatal(err)
	}
	defer qry.Close()
	res := qry.Exec(context.Background())
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	return res.Value.String()
}

func cachedAnswer(t *testing.T, e *testEnv, qs string, from, to time.Time, step time.Duration) (string, bool) {
	t.Helper()
	got, ok, err := e.srv.cachedRange(context.Background(), "", e.srv.deps.Store, promql.QueryOpts(nil), qs, from, to, step)
	if err != nil || got.err != nil {
		t.Fatalf("%s: %v %v", qs, err, got.err)
	}
	return got.m.String(), ok
}

// Answers from the cache equal the engine's, cold and warm, for windows that
// slide by a step and start at odd offsets; late samples invalidate what they touch.
func TestResultsCacheMatchesEngine(t *testing.T) {
	e := newEnv(t, withResultsCache())
	start := testNow.Add(-30 * time.Hour)
	writeCounters(t, e, start, testNow, 30*time.Second, 0)
	c := e.srv.cache
	queries := []string{
		`sum by (site) (rate(greenloop_energy_joules_total[5m]))`,
		`greenloop_energy_joules_total{node="n5"}`,
		`max_over_time(greenloop_energy_joules_total{site="s1"}[1h])`,
		`count(greenloop_energy_joules_total offset 2h)`,
		`time()`,
	}
	for _, qs := range queries {
		for k, w := range []struct {
			from, to time.Time
			step     time.Duration
		}{
			{testNow.Add(-24 * time.Hour), testNow, time.Minute},
			{testNow.Add(-24*time.Hour + time.Minute), testNow.Add(time.Minute), time.Minute},       // slid by one step
			{testNow.Add(-24*time.Hour + 17*time.Second), testNow.Add(-3 * time.Hour), time.Minute}, // another phase
			{testNow.Add(-20 * time.Hour), testNow, 15 * time.Second},
			{testNow.Add(-26 * time.Hour), testNow.Add(-25 * time.Hour), 5 * time.Minute},
		} {
			want := engineRange(t, e, qs, w.from, w.to, w.step)
			for round := range 2 {
				got, ok := cachedAnswer(t, e, qs, w.from, w.to, w.step)
				if !ok {
					t.Fatalf("%s: not cacheable", qs)
				}
				if got != want {
					t.Fatalf("%s window %d round %d: cached answer differs:\n got %.300s\nwant %.300s", qs, k, round, got, want)
				}
			}
		}
	}
	if h := testutil.ToFloat64(c.hits); h < 20 {
		t.Errorf("%v cache hits, want the second rounds answered from the cache", h)
	}

	// A late sample in settled time changes the answer over its range, and
	// the cache must notice.
	qs := `max by (site) (max_over_time(greenloop_energy_joules_total[2m]))`
	from, to := testNow.Add(-24*time.Hour), testNow
	before, _ := cachedAnswer(t, e, qs, from, to, time.Minute)
	if again, _ := cachedAnswer(t, e, qs, from, to, time.Minute); again != before {
		t.Fatal("cache unstable")
	}
	staleBefore := testutil.ToFloat64(c.stale)
	late := testNow.Add(-10 * time.Hour).Add(15 * time.Second) // between two existing samples
	writeCounters(t, e, late, late, time.Minute, 1e6)
	after, _ := cachedAnswer(t, e, qs, from, to, time.Minute)
	want := engineRange(t, e, qs, from, to, time.Minute)
	if after != want {
		t.Fatalf("after a late write the cached answer differs from the engine's:\n got %.300s\nwant %.300s", after, want)
	}
	if after == before {
		t.Fatal("the late write changed nothing: the test does not test invalidation")
	}
	if testutil.ToFloat64(c.stale) <= staleBefore {
		t.Error("no cached block was dropped as stale")
	}
}

// Blocks over unsettled time are evaluated on every query: new samples show at once.
func TestResultsCacheRecentDataNotCached(t *testing.T) {
	e := newEnv(t, withResultsCache())
	writeCounters(t, e, testNow.Add(-3*time.Hour), testNow.Add(-2*time.Minute), time.Minute, 0)
	qs := `sum(greenloop_energy_joules_total)`
	from, to := testNow.Add(-2*time.Hour), testNow
	first, _ := cachedAnswer(t, e, qs, from, to, time.Minute)
	writeCounters(t, e, testNow.Add(-time.Minute), testNow.Add(-time.Minute), time.Minute, 5e5)
	second, _ := cachedAnswer(t, e, qs, from, to, time.Minute)
	if want := engineRange(t, e, qs, from, to, time.Minute); second != want || second == first {
		t.Fatalf("recent sample not seen: got %.200s want %.200s", second, want)
	}
}

// Queries whose answer depends on their own bounds or the future bypass the cache.
func TestResultsCacheBypass(t *testing.T) {
	e := newEnv(t, withResultsCache())
	for _, qs := range []string{
		`rate(x[5m] @ end())`, `x @ 1700000000`, `x offset -5m`, `sum_over_time(x[10m:1m] @ start())`,
	} {
		if _, ok := cachedAnswer(t, e, qs, testNow.Add(-2*time.Hour), testNow, time.Minute); ok {
			t.Errorf("%s: answered through the cache", qs)
		}
	}
	if _, ok := cachedAnswer(t, e, `rate(x[5m] offset 5m)`, testNow.Add(-2*time.Hour), testNow, time.Minute); !ok {
		t.Error("a positive offset should be cacheable")
	}
}

func TestLateWrites(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	l := ingest.NewLateWrites(5*time.Minute, time.Hour, func() time.Time { return now })
	seq := l.Seq()
	h := func(n int) int64 { return now.Add(time.Duration(n) * time.Hour).UnixMilli() }
	if l.Changed(h(-10), h(-1), seq) {
		t.Fatal("changed without writes")
	}
	l.Record(h(-5), h(-5)+1)
	for _, tc := range []struct {
		mint, maxt int64
		want       bool
	}{
		{h(-10), h(-1), true}, {h(-5), h(-5), true}, {h(-4), h(-1), false}, {h(-10), h(-6), false},
		{h(-6) + 1, h(-5) - 1, false}, // bucket edges: [h-6, h-5) is the bucket before
	} {
		if got := l.Changed(tc.mint, tc.maxt, seq); got != tc.want {
			t.Errorf("Changed(%d..%d) = %v, want %v", (tc.mint-now.UnixMilli())/3.6e6, (tc.maxt-now.UnixMilli())/3.6e6, got, tc.want)
		}
	}
	if l.Changed(h(-10), h(-1), l.Seq()) {
		t.Error("a result taken after the write is not stale")
	}
}
