package web

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/sample"
	"github.com/greenloop/greenloop/web/fastrate"
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

// TestShareBalance: from the measured times of a reader that reads for R
// and evaluates its fraction of e, and of workers that evaluate the rest,
// the share converges to where both end together, whatever it starts at.
func TestShareBalance(t *testing.T) {
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	for _, tc := range []struct {
		name     string
		n        int
		read, e  float64 // ms
		start    float64
		want     float64 // the balancing share of an equal share
		wantLast [][2]int64
	}{
		{"reading costs most of an evaluation", 2, 600, 640, 0.6, 40.0 / 640, [][2]int64{{0, 1395}, {1395, 1440}}},
		{"reading costs more than evaluating", 2, 900, 500, 0.6, 0, [][2]int64{{0, 1439}, {1439, 1440}}},
		{"reading is free", 2, 0, 500, 0.2, 1, [][2]int64{{0, 721}, {721, 1440}}}, // the share nears 1 from below
		{"three shards", 3, 100, 900, 0.6, (900.0 - 200) / 900, [][2]int64{{0, 534}, {534, 1067}, {1067, 1440}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := &shareBalance{r: tc.start}
			for range 30 {
				r := b.share()
				f := r / float64(tc.n)
				b.observe(tc.n, r, fastrate.ShardTimes{Reader: ms(tc.read + f*tc.e), Workers: ms((1 - f) * tc.e / float64(tc.n-1))})
			}
			if got := b.share(); math.Abs(got-tc.want) > 1e-3 {
				t.Errorf("share %v, want %v", got, tc.want)
			}
			if got := fastShards(1440, tc.n, b.share()); fmt.Sprint(got) != fmt.Sprint(tc.wantLast) {
				t.Errorf("shards %v, want %v", got, tc.wantLast)
			}
			// Too little work to learn from: no change.
			before := b.share()
			b.observe(tc.n, before, fastrate.ShardTimes{Reader: ms(5), Workers: ms(1)})
			if b.share() != before {
				t.Errorf("a 6 ms query moved the share from %v to %v", before, b.share())
			}
		})
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
		got := fastShards(tc.steps, tc.n, 0.6)
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
