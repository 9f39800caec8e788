package web

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/sample"
)

// A range query split into shards run in parallel must give exactly what one
// engine query gives, point for point.
func TestRangeShardsMatchOneQuery(t *testing.T) {
	old := runtime.GOMAXPROCS(3) // three shards even on a smaller machine
	defer runtime.GOMAXPROCS(old)
	e := newEnv(t)
	start := testNow.Add(-12 * time.Hour)
	var series []sample.Series
	for i := range 60 {
		s := sample.Series{Labels: []sample.Label{{Name: "__name__", Value: "greenloop_energy_joules_total"},
			{Name: "site", Value: fmt.Sprintf("s%d", i%7)}, {Name: "node", Value: fmt.Sprintf("n%d", i)}}}
		v := 0.0
		for ts := start; ts.Before(testNow); ts = ts.Add(30 * time.Second) {
			if i == 5 && ts.After(start.Add(5*time.Hour)) && ts.Before(start.Add(7*time.Hour)) {
				continue // a gap: a series absent from one shard
			}
			v += float64(i%5+1) * 30 * (1 + 0.1*float64(ts.Unix()%7))
			s.Points = append(s.Points, sample.Point{T: ts.UnixMilli(), V: v})
		}
		series = append(series, s)
	}
	if _, err := e.writer.WriteSeries(context.Background(), ingest.WriteOptions{}, series); err != nil {
		t.Fatal(err)
	}
	for _, qs := range []string{
		`sum by (site) (rate(greenloop_energy_joules_total[5m]))`,
		`greenloop_energy_joules_total{node="n5"}`,
		`max_over_time(greenloop_energy_joules_total{site="s1"}[1h])`,
		`count(greenloop_energy_joules_total)`,
		`time()`,
	} {
		from, to, step := start.Add(10*time.Minute), testNow, time.Minute
		if n := shardCount(qs, int64(to.Sub(from)/step)+1); n != 3 {
			t.Fatalf("%s: %d shards, want 3", qs, n)
		}
		got, err := e.srv.execRange(context.Background(), e.store, promql.QueryOpts(nil), qs, from, to, step)
		if err != nil || got.err != nil {
			t.Fatalf("%s: %v %v", qs, err, got.err)
		}
		qry, err := e.srv.deps.Engine.NewRangeQuery(context.Background(), e.store, nil, qs, from, to, step)
		if err != nil {
			t.Fatal(err)
		}
		want := qry.Exec(context.Background())
		if want.Err != nil {
			t.Fatal(want.Err)
		}
		if g, w := got.m.String(), want.Value.String(); g != w {
			t.Errorf("%s: sharded result differs:\n got %.400s\nwant %.400s", qs, g, w)
		}
		qry.Close()
	}
	// Queries naming their own bounds are never split.
	if n := shardCount(`rate(x[5m] @ end())`, 10_000); n != 1 {
		t.Errorf("@ end() query split in %d", n)
	}
}

func TestFastShards(t *testing.T) {
	for _, tc := range []struct {
		steps int64
		n     int
		want  [][2]int64
	}{
		{1440, 2, [][2]int64{{0, 1008}, {1008, 1440}}},
		{1440, 1, [][2]int64{{0, 1440}}},
		{1000, 3, [][2]int64{{0, 400}, {400, 800}, {800, 1000}}},
		{1, 2, [][2]int64{{0, 1}}},
		{2, 2, [][2]int64{{0, 1}, {1, 2}}},
		{7, 4, [][2]int64{{0, 2}, {2, 4}, {4, 6}, {6, 7}}},
	} {
		got := fastShards(tc.steps, tc.n)
		if fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("fastShards(%d, %d) = %v, want %v", tc.steps, tc.n, got, tc.want)
		}
		// Whatever the split, every step exactly once, in order.
		next := int64(0)
		for _, r := range got {
			if r[0] != next || r[1] <= r[0] {
				t.Errorf("fastShards(%d, %d): range %v after %d", tc.steps, tc.n, r, next)
			}
			next = r[1]
		}
		if next != tc.steps || len(got) > max(tc.n, 1) {
			t.Errorf("fastShards(%d, %d) covers %d steps in %d shards", tc.steps, tc.n, next, len(got))
		}
	}
}
