package forwarder

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/golang/snappy"

	"github.com/greenloop/greenloop/ingest/queue"
	"github.com/greenloop/greenloop/internal/sample"
)

// BenchmarkDrain measures how fast a backlog left by an outage goes from
// disk to the server: 200 records of 2,000 samples each, into a loopback
// server that decodes the snappy body and answers 204. The queue uses its
// default fsync policy, so every Ack (one per round) is fsynced.
func BenchmarkDrain(b *testing.B) {
	const (
		records    = 200
		perRecord  = 2000
		seriesPer  = 20
		pointsPer  = perRecord / seriesPer
		totalCount = records * perRecord
	)
	recs := make([][]byte, records)
	for r := range recs {
		series := make([]sample.Series, seriesPer)
		for s := range series {
			series[s].Labels = []sample.Label{
				{Name: "__name__", Value: "greenloop_power_watts"},
				{Name: "site", Value: "fra1"},
				{Name: "host", Value: "node-" + strconv.Itoa(s)},
				{Name: "zone", Value: "package-0"},
			}
			for p := range pointsPer {
				t := int64(1_700_000_000_000 + (r*pointsPer+p)*1000)
				series[s].Points = append(series[s].Points, sample.Point{T: t, V: 200 + float64(p%37)*0.25})
			}
		}
		var err error
		if recs[r], err = Encode(series); err != nil {
			b.Fatal(err)
		}
	}

	var got atomic.Int64
	done := make(chan struct{}, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err == nil {
			_, err = snappy.Decode(nil, body)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusNoContent)
		if got.Add(1) == records {
			done <- struct{}{}
		}
	}))
	defer hs.Close()

	b.ResetTimer()
	for b.Loop() {
		b.StopTimer()
		q, err := queue.Open(b.TempDir(), queue.Options{MaxBytes: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		for _, rec := range recs {
			if err := q.Append(rec); err != nil {
				b.Fatal(err)
			}
		}
		got.Store(0)
		f, err := New(q, Options{URL: hs.URL})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		b.StartTimer()
		go func() { ran <- f.Run(ctx) }()
		<-done
		// The last round's Ack follows the last answer; wait for it.
		for q.Stats().PendingRecords != 0 {
			runtime.Gosched()
		}
		b.StopTimer()
		cancel()
		if err := <-ran; err != nil {
			b.Fatal(err)
		}
		q.Close()
		b.StartTimer()
	}
	b.StopTimer()
	b.ReportMetric(float64(totalCount)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}
