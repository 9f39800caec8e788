// Package storetest is the conformance suite every ingest.Store backend passes:
// appends and commits, rollbacks, selection by every matcher type, label
// names and values, late (out-of-order) samples within the window, concurrent
// writers, and durability across a reopen.
package storetest

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/ingest"
)

// Opener opens the backend under test on dir (a fresh directory per test, or
// the same one again to check durability). Backends without a directory
// (ClickHouse) use dir only as a namespace, e.g. to pick a database name.
type Opener func(t *testing.T, dir string) ingest.Store

// Run runs the whole suite.
func Run(t *testing.T, open Opener) {
	tests := []struct {
		name string
		fn   func(*testing.T, Opener)
	}{
		{"AppendCommitSelect", testAppendCommitSelect},
		{"Rollback", testRollback},
		{"Matchers", testMatchers},
		{"LabelNamesValues", testLabelNamesValues},
		{"OutOfOrderWithinWindow", testOutOfOrder},
		{"ConcurrentAppenders", testConcurrent},
		{"DurableAcrossReopen", testReopen},
		{"Stats", testStats},
		{"SpecialValues", testSpecialValues},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, open) })
	}
}

var base = time.Now().Add(-time.Hour).Truncate(time.Minute).UnixMilli()

func ls(kv ...string) labels.Labels { return labels.FromStrings(kv...) }

type point struct {
	T int64
	V float64
}

func appendAll(t *testing.T, s ingest.Store, series map[string][]point, lsets map[string]labels.Labels) {
	t.Helper()
	app := s.Appender(context.Background())
	for k, pts := range series {
		var ref storage.SeriesRef
		for _, p := range pts {
			var err error
			ref, err = app.Append(ref, lsets[k], p.T, p.V)
			if err != nil {
				t.Fatalf("append %s @%d: %v", k, p.T, err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatalf("commit: %v", err)
	}
}

// read returns every series matching ms as label-string -> points.
func read(t *testing.T, s ingest.Store, mint, maxt int64, ms ...*labels.Matcher) map[string][]point {
	t.Helper()
	q, err := s.Querier(mint, maxt)
	if err != nil {
		t.Fatalf("querier: %v", err)
	}
	defer q.Close()
	out := map[string][]point{}
	ss := q.Select(context.Background(), true, nil, ms...)
	for ss.Next() {
		series := ss.At()
		var pts []point
		it := series.Iterator(nil)
		for it.Next() == chunkenc.ValFloat {
			tt, v := it.At()
			pts = append(pts, point{tt, v})
		}
		if err := it.Err(); err != nil {
			t.Fatalf("iterate: %v", err)
		}
		out[series.Labels().String()] = pts
	}
	if err := ss.Err(); err != nil {
		t.Fatalf("select: %v", err)
	}
	return out
}

func eq(name string) *labels.Matcher {
	return labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, name)
}

func testAppendCommitSelect(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	defer s.Close()
	a := ls("__name__", "greenloop_power_watts", "site", "fra1", "node", "n1")
	b := ls("__name__", "greenloop_power_watts", "site", "par1", "node", "n1")
	appendAll(t, s, map[string][]point{
		"a": {{base, 100}, {base + 15000, 101.5}, {base + 30000, 99.25}},
		"b": {{base, 7}},
	}, map[string]labels.Labels{"a": a, "b": b})
	got := read(t, s, base, base+60000, eq("greenloop_power_watts"))
	want := map[string][]point{
		a.String(): {{base, 100}, {base + 15000, 101.5}, {base + 30000, 99.25}},
		b.String(): {{base, 7}},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %v\nwant %v", got, want)
	}
	// The time range bounds the samples returned.
	got = read(t, s, base+10000, base+20000, eq("greenloop_power_watts"))
	if pts := got[a.String()]; len(pts) != 1 || pts[0].V != 101.5 {
		t.Fatalf("range [10s,20s] of a: %v", pts)
	}
}

func testRollback(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	defer s.Close()
	app := s.Appender(context.Background())
	if _, err := app.Append(0, ls("__name__", "rolled_back", "site", "x"), base, 1); err != nil {
		t.Fatal(err)
	}
	if err := app.Rollback(); err != nil {
		t.Fatal(err)
	}
	if got := read(t, s, base-1, base+1, eq("rolled_back")); len(got) != 0 {
		t.Fatalf("rolled back samples are visible: %v", got)
	}
}

func testMatchers(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	defer s.Close()
	sets := map[string]labels.Labels{}
	data := map[string][]point{}
	for i, site := range []string{"fra1", "fra2", "par1", "waw1"} {
		k := site
		sets[k] = ls("__name__", "m", "site", site, "zone", site[:3])
		data[k] = []point{{base, float64(i)}}
	}
	appendAll(t, s, data, sets)
	cases := []struct {
		m    *labels.Matcher
		want []string
	}{
		{labels.MustNewMatcher(labels.MatchEqual, "site", "par1"), []string{"par1"}},
		{labels.MustNewMatcher(labels.MatchNotEqual, "site", "par1"), []string{"fra1", "fra2", "waw1"}},
		{labels.MustNewMatcher(labels.MatchRegexp, "site", "fra.*"), []string{"fra1", "fra2"}},
		{labels.MustNewMatcher(labels.MatchNotRegexp, "zone", "fra|par"), []string{"waw1"}},
		{labels.MustNewMatcher(labels.MatchEqual, "absent", ""), []string{"fra1", "fra2", "par1", "waw1"}},
	}
	for _, c := range cases {
		sites := selectLabel(t, s, "site", eq("m"), c.m)
		if !slices.Equal(sites, c.want) {
			t.Errorf("%s: got %v want %v", c.m, sites, c.want)
		}
	}
}

// selectLabel returns the sorted values of label name over the series matching ms.
func selectLabel(t *testing.T, s ingest.Store, name string, ms ...*labels.Matcher) []string {
	t.Helper()
	q, err := s.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	var out []string
	ss := q.Select(context.Background(), false, nil, ms...)
	for ss.Next() {
		out = append(out, ss.At().Labels().Get(name))
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func testLabelNamesValues(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	defer s.Close()
	appendAll(t, s, map[string][]point{"a": {{base, 1}}, "b": {{base, 2}}, "c": {{base, 3}}},
		map[string]labels.Labels{
			"a": ls("__name__", "x", "site", "b-site", "rack", "r1"),
			"b": ls("__name__", "x", "site", "a-site"),
			"c": ls("__name__", "y", "site", "c-site", "node", "n1"),
		})
	q, err := s.Querier(base-1, base+1)
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	ctx := context.Background()
	names, _, err := q.LabelNames(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"__name__", "node", "rack", "site"}; !slices.Equal(names, want) {
		t.Errorf("label names %v, want %v", names, want)
	}
	vals, _, err := q.LabelValues(ctx, "site", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a-site", "b-site", "c-site"}; !slices.Equal(vals, want) {
		t.Errorf("site values %v, want %v", vals, want)
	}
	vals, _, err = q.LabelValues(ctx, "site", nil, eq("x"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a-site", "b-site"}; !slices.Equal(vals, want) {
		t.Errorf("site values of x %v, want %v", vals, want)
	}
	names, _, err = q.LabelNames(ctx, nil, eq("y"))
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"__name__", "node", "site"}; !slices.Equal(names, want) {
		t.Errorf("label names of y %v, want %v", names, want)
	}
}

// testOutOfOrder checks that an agent's backlog, older than what the store
// already holds for the same series, is still accepted (hours late).
func testOutOfOrder(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	defer s.Close()
	now := time.Now().UnixMilli()
	l := ls("__name__", "late", "site", "x")
	appendAll(t, s, map[string][]point{"l": {{now, 10}}}, map[string]labels.Labels{"l": l})
	late := []point{{now - (48 * time.Hour).Milliseconds(), 1}, {now - (5 * time.Hour).Milliseconds(), 2}, {now - 60000, 3}}
	appendAll(t, s, map[string][]point{"l": late}, map[string]labels.Labels{"l": l})
	got := read(t, s, now-(49*time.Hour).Milliseconds(), now+1, eq("late"))[l.String()]
	want := append(slices.Clone(late), point{now, 10})
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("late samples: got %v want %v", got, want)
	}
}

func testConcurrent(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	defer s.Close()
	const writers, perWriter = 4, 500
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := ls("__name__", "conc", "site", "x", "writer", fmt.Sprint(w))
			var ref storage.SeriesRef
			for i := 0; i < perWriter; i += 50 {
				app := s.Appender(context.Background())
				for j := i; j < i+50; j++ {
					var err error
					if ref, err = app.Append(ref, l, base+int64(j)*1000, float64(j)); err != nil {
						errs <- err
						return
					}
				}
				if err := app.Commit(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	got := read(t, s, base, base+perWriter*1000, eq("conc"))
	if len(got) != writers {
		t.Fatalf("%d series, want %d", len(got), writers)
	}
	for k, pts := range got {
		if len(pts) != perWriter {
			t.Errorf("%s: %d samples, want %d", k, len(pts), perWriter)
		}
	}
}

func testReopen(t *testing.T, open Opener) {
	dir := t.TempDir()
	s := open(t, dir)
	l := ls("__name__", "durable", "site", "x")
	var pts []point
	for i := range 1000 {
		pts = append(pts, point{base + int64(i)*1000, float64(i) * 0.5})
	}
	appendAll(t, s, map[string][]point{"d": pts}, map[string]labels.Labels{"d": l})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir)
	defer s.Close()
	got := read(t, s, base, base+1000*1000, eq("durable"))[l.String()]
	if fmt.Sprint(got) != fmt.Sprint(pts) {
		t.Fatalf("after reopen: %d samples, want %d", len(got), len(pts))
	}
}

func testStats(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	defer s.Close()
	sets := map[string]labels.Labels{}
	data := map[string][]point{}
	for i := range 10 {
		k := fmt.Sprint(i)
		sets[k] = ls("__name__", "stat", "i", k)
		data[k] = []point{{base, 1}, {base + 1000, 2}}
	}
	appendAll(t, s, data, sets)
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Series != 10 || st.MinTime != base || st.MaxTime != base+1000 {
		t.Fatalf("stats %+v, want 10 series in [%d, %d]", st, base, base+1000)
	}
}

func testSpecialValues(t *testing.T, open Opener) {
	s := open(t, t.TempDir())
	defer s.Close()
	l := ls("__name__", "special", "site", "x")
	vals := []float64{math.Inf(1), math.Inf(-1), math.Copysign(0, -1), 1e-300, 1.7976931348623157e308}
	var pts []point
	for i, v := range vals {
		pts = append(pts, point{base + int64(i), v})
	}
	appendAll(t, s, map[string][]point{"s": pts}, map[string]labels.Labels{"s": l})
	got := read(t, s, base, base+10, eq("special"))[l.String()]
	if fmt.Sprint(got) != fmt.Sprint(pts) {
		t.Fatalf("got %v want %v", got, pts)
	}
}
