package service

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/greenloop/greenloop/accounting/energy"
)

// staticEnergy computes from in-memory series, counting its calls.
type staticEnergy struct {
	src   energy.StaticSource
	calls *int
}

func (s staticEnergy) Energy(ctx context.Context, _ string, q energy.Query) (*energy.Result, error) {
	*s.calls++
	return energy.Compute(ctx, s.src, q)
}

func TestEnergyMemoAnswersFromOneHourlyRead(t *testing.T) {
	from := time.Date(2025, 1, 30, 0, 0, 0, 0, time.UTC)
	to := from.Add(5 * 24 * time.Hour)
	sel := `greenloop_power_watts{site="fra1"}`
	var ts []int64
	var vs []float64
	for t := from.Add(-time.Hour); t.Before(to.Add(time.Hour)); t = t.Add(20 * time.Second) {
		if t.After(from.Add(50*time.Hour)) && t.Before(from.Add(53*time.Hour+10*time.Minute)) {
			continue // a gap
		}
		ts = append(ts, t.UnixMilli())
		vs = append(vs, 500+100*math.Sin(float64(t.Unix())/5000))
	}
	src := energy.StaticSource{sel: {{Labels: map[string]string{"__name__": "greenloop_power_watts", "site": "fra1"}, T: ts, V: vs}}}
	calls := 0
	es := staticEnergy{src: src, calls: &calls}
	ctx, memo := WithEnergyMemo(context.Background())
	cases := []struct {
		name     string
		buckets  energy.Bucketing
		from, to time.Time
		memo     bool
	}{
		{"hourly", energy.Bucketing{Calendar: energy.Hour}, from, to, true},
		{"monthly, across a month's end", energy.Bucketing{Calendar: energy.Month}, from, to, true},
		{"daily", energy.Bucketing{Calendar: energy.Day}, from, to, true},
		{"one bucket", energy.Bucketing{}, from, to, true},
		{"6 h steps", energy.Bucketing{Step: 6 * time.Hour}, from, to, true},
		{"90 min steps: not memoized", energy.Bucketing{Step: 90 * time.Minute}, from, to, false},
		{"a range from a half hour (its own read)", energy.Bucketing{Calendar: energy.Hour}, from.Add(30 * time.Minute), to, true},
		{"days in Kolkata (half-hour offset: its own read)", energy.Bucketing{Calendar: energy.Day}, from.In(time.FixedZone("IST", 5*3600+1800)), to, true},
	}
	for _, c := range cases {
		q := energy.Query{Selectors: []string{sel}, From: c.from, To: c.to, Buckets: c.buckets}
		want, err := energy.Compute(context.Background(), src, q)
		if err != nil {
			t.Fatal(err)
		}
		before := memo.Reads + memo.Hits
		got, err := memo.energy(ctx, es, "", q)
		if err != nil {
			t.Fatal(err)
		}
		if used := memo.Reads+memo.Hits > before; used != c.memo {
			t.Errorf("%s: memo used %v, want %v", c.name, used, c.memo)
		}
		assertSameEnergy(t, got, want)
		if len(got.Gaps) != 1 {
			t.Errorf("%s: gaps %v, want the one gap", c.name, got.Gaps)
		}
		// The answer is the caller's own.
		got.Buckets[0].Energy = -1
		got.Gaps[0].Series = "changed"
	}
	if memo.Reads != 3 || memo.Hits != 4 {
		t.Errorf("memo: %d reads, %d hits; want 3 reads (UTC hours, from a half hour, Kolkata hours), 4 hits", memo.Reads, memo.Hits)
	}
	if calls != 4 {
		t.Errorf("%d computations, want 4 (3 hourly, 90 min steps)", calls)
	}
	// Another tenant is another entry.
	if _, err := memo.energy(ctx, es, "other", energy.Query{Selectors: []string{sel}, From: from, To: to}); err != nil {
		t.Fatal(err)
	}
	if memo.Reads != 4 {
		t.Errorf("another tenant: %d reads, want 4", memo.Reads)
	}
}
