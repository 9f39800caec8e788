package promsource

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/greenloop/greenloop/accounting/energy"
)

func TestScanTSDB(t *testing.T) {
	db, err := tsdb.Open(t.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	it := labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", "fra1", "component", "it")
	fac := labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", "fra1", "component", "facility")
	other := labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", "ams1", "component", "it")
	app := db.Appender(context.Background())
	// IT: 100 kW for two hours, every 15 s, with a device reset at 01:00:00
	// (the counter restarts from 0 and reads 1.5 MJ 15 s later).
	for d := -time.Minute; d <= 2*time.Hour+time.Minute; d += 15 * time.Second {
		ts := t0.Add(d).UnixMilli()
		v := 5e9 + 1e5*d.Seconds()
		if d >= time.Hour {
			v = 1e5 * (d - time.Hour).Seconds()
		}
		for _, x := range []struct {
			ls labels.Labels
			v  float64
		}{{it, v}, {fac, 1.3 * v}, {other, 7 * v}} {
			if _, err := app.Append(0, x.ls, ts, x.v); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := app.Commit(); err != nil {
		t.Fatal(err)
	}
	src := New(db)
	r, err := energy.Compute(context.Background(), src, energy.Query{
		Selectors: []string{`greenloop_energy_joules_total{site="fra1",component="it"}`},
		From:      t0, To: t0.Add(2 * time.Hour), Buckets: energy.Bucketing{Calendar: energy.Hour}, Interval: 15 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	// Hour 0: 100 kWh. Hour 1: 100 kWh less the 15 s interval across the reset,
	// which counts only its after-value (0 J): 1.5 MJ lost.
	want := []float64{100, 100}
	if r.Series != 1 || r.Resets != 1 || len(r.Buckets) != 2 {
		t.Fatalf("series %d resets %d buckets %d, want 1 1 2", r.Series, r.Resets, len(r.Buckets))
	}
	// The reset interval is [00:59:45, 01:00:00]: it belongs to hour 0.
	want[0] -= 1.5e6 / 3.6e6
	for i, w := range want {
		if got := r.Buckets[i].Energy.KWh(); math.Abs(got-w) > 1e-9 {
			t.Errorf("hour %d: %v kWh, want %v", i, got, w)
		}
		if c := r.Buckets[i].Completeness; c != 1 {
			t.Errorf("hour %d: completeness %v, want 1", i, c)
		}
	}

	if _, err := energy.Compute(context.Background(), src, energy.Query{Selectors: []string{`greenloop_energy_joules_total{site=`}, From: t0, To: t0.Add(time.Hour)}); err == nil || !strings.Contains(err.Error(), "parse selector") {
		t.Errorf("bad selector: err %v", err)
	}
}
