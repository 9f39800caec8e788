package energy

import (
	"context"
	"strconv"
	"testing"
	"time"
)

// BenchmarkYear15s100Series computes hourly energy for a year of 15 s samples
// of 100 series (2.1 million samples each, 210 million in all), as counters
// and as power. The series share one sample array, so the benchmark measures
// the accounting, not memory bandwidth of 3 GB of samples.
func BenchmarkYear15s100Series(b *testing.B) {
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(1, 0, 0)
	n := int(to.Sub(from)/(15*time.Second)) + 1
	ts := make([]int64, n)
	counter := make([]float64, n)
	power := make([]float64, n)
	c := 0.0
	for i := range n {
		ts[i] = from.Add(time.Duration(i) * 15 * time.Second).UnixMilli()
		p := 400 + float64(i%5760)/5760*200
		power[i] = p
		counter[i] = c
		c += p * 15
	}
	for _, kind := range []struct {
		name, metric string
		v            []float64
	}{{"counter", "greenloop_energy_joules_total", counter}, {"power", "greenloop_power_watts", power}} {
		b.Run(kind.name, func(b *testing.B) {
			src := StaticSource{}
			for s := range 100 {
				src["sel"] = append(src["sel"], StaticSeries{
					Labels: map[string]string{"__name__": kind.metric, "site": "fra1", "node": "n" + strconv.Itoa(s)},
					T:      ts, V: kind.v})
			}
			q := Query{Selectors: []string{"sel"}, From: from, To: to, Buckets: Bucketing{Calendar: Hour}, Interval: 15 * time.Second}
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if _, err := Compute(context.Background(), src, q); err != nil {
					b.Fatal(err)
				}
			}
			samples := float64(100 * n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/samples, "ns/sample")
		})
	}
}

// BenchmarkSeriesYear15s is one series of the year benchmark, for a quick per-sample figure.
func BenchmarkSeriesYear15s(b *testing.B) {
	from := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	to := from.AddDate(1, 0, 0)
	n := int(to.Sub(from)/(15*time.Second)) + 1
	s := StaticSeries{Labels: map[string]string{"__name__": "greenloop_energy_joules_total"}, T: make([]int64, n), V: make([]float64, n)}
	for i := range n {
		s.T[i] = from.Add(time.Duration(i) * 15 * time.Second).UnixMilli()
		s.V[i] = float64(i) * 7500
	}
	src := StaticSource{"sel": {s}}
	q := Query{Selectors: []string{"sel"}, From: from, To: to, Buckets: Bucketing{Calendar: Hour}, Interval: 15 * time.Second}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compute(context.Background(), src, q); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/sample")
}
