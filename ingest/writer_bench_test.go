package ingest_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/prompb"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/tsdb"
)

// BenchmarkWriteRemote measures the whole write path (decode, validate, map,
// tenant stamping, TSDB append and commit) on 2,000-sample requests over
// 100,000 series, as a Prometheus remote_write sender produces them.
func BenchmarkWriteRemote(b *testing.B) {
	s, err := tsdb.Open(b.TempDir(), tsdb.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	clock := time.Now()
	w, err := ingest.NewWriter(s, ingest.WriterOptions{Clock: func() time.Time { return clock }, Mapping: true})
	if err != nil {
		b.Fatal(err)
	}
	const nSeries, perReq = 100_000, 2_000
	base := clock.Add(-time.Hour).UnixMilli()
	build := func(round int) [][]byte {
		bodies := make([][]byte, nSeries/perReq)
		for r := range bodies {
			var series []ts
			for i := r * perReq; i < (r+1)*perReq; i++ {
				series = append(series, ts{
					labels: []string{"__name__", "greenloop_power_watts", "component", "package", "node", fmt.Sprintf("node-%05d", i/4),
						"rack", fmt.Sprintf("r%03d", i/200), "sensor", fmt.Sprintf("intel-rapl:%d", i%4), "site", fmt.Sprintf("site%02d", i/10000), "source", "rapl"},
					points: []prompb.Sample{{Value: float64(i + round), Timestamp: base + int64(round)*1000}},
				})
			}
			bodies[r] = encode(b, series...)
		}
		return bodies
	}
	ctx := context.Background()
	o := ingest.WriteOptions{Tenant: "bench"}
	// Warm: create every series once, as a long-running server has.
	for _, body := range build(0) {
		if _, err := w.WriteRemote(ctx, o, body); err != nil {
			b.Fatal(err)
		}
	}
	var bodies [][]byte
	round := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if i%(nSeries/perReq) == 0 {
			// The next scrape of every series: encoded with the timer stopped.
			b.StopTimer()
			round++
			bodies = build(round)
			b.StartTimer()
		}
		res, err := w.WriteRemote(ctx, o, bodies[i%len(bodies)])
		if err != nil || res.RejectedCount != 0 {
			b.Fatalf("%v %+v", err, res.Rejected)
		}
	}
	b.ReportMetric(float64(b.N*perReq)/b.Elapsed().Seconds(), "samples/s")
}

// discard is a store that accepts every sample and keeps none: it isolates
// the writer's own cost (decode, series cache, validation) from a store's.
type discard struct{ storage.Queryable }

func (discard) Appender(context.Context) storage.Appender   { return discardAppender{} }
func (discard) Stats(context.Context) (ingest.Stats, error) { return ingest.Stats{}, nil }
func (discard) Close() error                                { return nil }

type discardAppender struct{ storage.Appender }

func (discardAppender) Append(ref storage.SeriesRef, _ labels.Labels, _ int64, _ float64) (storage.SeriesRef, error) {
	return max(ref, 1), nil
}
func (discardAppender) Commit() error   { return nil }
func (discardAppender) Rollback() error { return nil }

// BenchmarkWriteRemoteDecode measures the writer alone, on what a Prometheus
// remote-write shard sends when its queue is behind: 2,000 samples per
// request, 10 consecutive scrapes of its 200 series, one TimeSeries entry
// per sample.
func BenchmarkWriteRemoteDecode(b *testing.B) {
	clock := time.Now()
	w, err := ingest.NewWriter(discard{}, ingest.WriterOptions{Clock: func() time.Time { return clock }})
	if err != nil {
		b.Fatal(err)
	}
	const nSeries, steps = 200, 10
	base := clock.Add(-time.Hour).UnixMilli()
	var series []ts
	for step := range steps {
		for i := range nSeries {
			series = append(series, ts{
				labels: []string{"__name__", "greenloop_power_watts", "component", "psu", "instance", fmt.Sprintf("pdu-%03d:161", i/8),
					"job", "pdu", "outlet", fmt.Sprintf("%d", i%8), "rack", fmt.Sprintf("r%02d", i/40), "site", "fra1"},
				points: []prompb.Sample{{Value: 100 + float64(i), Timestamp: base + int64(step)*15_000}},
			})
		}
	}
	body := encode(b, series...)
	ctx := context.Background()
	o := ingest.WriteOptions{Tenant: "bench"}
	b.ReportAllocs()
	for b.Loop() {
		res, err := w.WriteRemote(ctx, o, body)
		if err != nil || res.Accepted != nSeries*steps {
			b.Fatalf("%v %+v", err, res)
		}
	}
	b.ReportMetric(float64(b.N*nSeries*steps)/b.Elapsed().Seconds(), "samples/s")
}
