package promsource

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/greenloop/greenloop/accounting/energy"
)

// BenchmarkTSDB14Days reads 20 counters of 14 days at 15 s (80 640 samples
// each) from the embedded TSDB's head into hourly energy: the cost per sample
// of the whole path, chunk decoding included. The samples are compacted into
// blocks first: the head is meant for the last hours only.
func BenchmarkTSDB14Days(b *testing.B) {
	db, err := tsdb.Open(b.TempDir(), nil, nil, tsdb.DefaultOptions(), nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.DisableCompactions()
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(0, 0, 14)
	const nSeries = 20
	n := int(to.Sub(from) / (15 * time.Second))
	ls := make([]labels.Labels, nSeries)
	for s := range ls {
		ls[s] = labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", "fra1", "node", "n"+strconv.Itoa(s))
	}
	for i := 0; i < n; {
		app := db.Appender(context.Background())
		for end := min(i+5000, n); i < end; i++ {
			ts := from.Add(time.Duration(i) * 15 * time.Second).UnixMilli()
			for s := range ls {
				if _, err := app.Append(0, ls[s], ts, float64(i)*7500+float64(s)); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			b.Fatal(err)
		}
	}
	// Compact the head into blocks, as a store holding 14 days would be.
	db.EnableCompactions()
	if err := db.Compact(context.Background()); err != nil {
		b.Fatal(err)
	}
	src := New(db)
	q := energy.Query{Selectors: []string{`greenloop_energy_joules_total{site="fra1"}`}, From: from, To: to,
		Buckets: energy.Bucketing{Calendar: energy.Hour}, Interval: 15 * time.Second}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r, err := energy.Compute(context.Background(), src, q)
		if err != nil || r.Series != nSeries {
			b.Fatal(err, r.Series)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n*nSeries), "ns/sample")
}
