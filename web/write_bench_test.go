package web

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/internal/sample"
)

// rwBatches builds remote_write bodies as Prometheus sends them: each request
// carries one sample for each of perReq series; the series cycle through
// `series` distinct ones; each full cycle is one second later.
type rwBatches struct {
	series, perReq int
	next           int
	wr             prompb.WriteRequest
}

func (g *rwBatches) body(tb testing.TB, startMs int64) []byte {
	g.wr.Timeseries = g.wr.Timeseries[:0]
	for i := 0; i < g.perReq; i++ {
		n := g.next % g.series
		round := int64(g.next / g.series)
		g.next++
		g.wr.Timeseries = append(g.wr.Timeseries, prompb.TimeSeries{
			Labels: []prompb.Label{
				{Name: "__name__", Value: "node_rapl_package_joules_total"},
				{Name: "instance", Value: "host-" + strconv.Itoa(n/4) + ":9100"},
				{Name: "job", Value: "node"},
				{Name: "index", Value: strconv.Itoa(n % 4)},
				{Name: "zone", Value: "package-" + strconv.Itoa(n%4)},
				{Name: "site", Value: "fra1"},
			},
			Samples: []prompb.Sample{{Timestamp: startMs + round*1000, Value: float64(round) * 12.5}},
		})
	}
	pb, err := g.wr.Marshal()
	if err != nil {
		tb.Fatal(err)
	}
	return snappy.Encode(nil, pb)
}

func benchRemoteWrite(b *testing.B, s *Server, perReq int) {
	g := &rwBatches{series: 10_000, perReq: perReq}
	start := nowMs - (71 * time.Hour).Milliseconds()
	const chunk = 64
	bodies := make([][]byte, 0, chunk)
	h := s.Handler()
	var cpu time.Duration // process CPU time while timed: robust on a busy machine
	mark := processCPU()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if i%chunk == 0 {
			b.StopTimer()
			cpu += processCPU() - mark
			bodies = bodies[:0]
			for j := 0; j < chunk; j++ {
				bodies = append(bodies, g.body(b, start))
			}
			mark = processCPU()
			b.StartTimer()
		}
		r := httptest.NewRequest(http.MethodPost, "/api/v1/write", bytes.NewReader(bodies[i%chunk]))
		r.Header.Set("Content-Encoding", "snappy")
		r.Header.Set("Content-Type", "application/x-protobuf")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, r)
		if rec.Code != http.StatusNoContent {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.StopTimer()
	cpu += processCPU() - mark
	b.ReportMetric(float64(b.N*perReq)/b.Elapsed().Seconds(), "samples/s")
	b.ReportMetric(float64(b.N*perReq)/cpu.Seconds(), "samples/cpu-s")
}

// processCPU is the user+system CPU time this process has used.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRemoteWrite measures the whole path: HTTP handler, snappy, the
// Writer and the embedded TSDB (WAL included), 2000 samples per request as
// Prometheus sends by default.
func BenchmarkRemoteWrite(b *testing.B) {
	benchRemoteWrite(b, newEnv(b).srv, 2000)
}

// BenchmarkRemoteWriteHandler measures the web layer alone (a Writer that
// only counts), to show what the handler adds to the store's cost.
func BenchmarkRemoteWriteHandler(b *testing.B) {
	s := newEnv(b).srv
	s.deps.Writer = countingWriter{}
	benchRemoteWrite(b, s, 2000)
}

type countingWriter struct{}

func (countingWriter) WriteSeries(_ context.Context, _ ingest.WriteOptions, s []sample.Series) (ingest.Result, error) {
	return ingest.Result{Accepted: len(s)}, nil
}

func (countingWriter) WriteRemote(_ context.Context, _ ingest.WriteOptions, pb []byte) (ingest.Result, error) {
	return ingest.Result{Accepted: len(pb)}, nil
}
