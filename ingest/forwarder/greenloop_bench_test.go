package forwarder_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/prometheus/promql"

	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/forwarder"
	"github.com/greenloop/greenloop/ingest/queue"
	"github.com/greenloop/greenloop/ingest/textimport"
	"github.com/greenloop/greenloop/ingest/tsdb"
	"github.com/greenloop/greenloop/internal/sample"
	"github.com/greenloop/greenloop/web"
)

// BenchmarkDrainIntoGreenloop measures the drain after an outage end to end:
// a backlog of 200 records × 2,000 samples from the disk queue, pushed over
// loopback HTTP into greenloop's own server (remote_write handler, write
// pipeline, embedded TSDB with its WAL), each iteration into a fresh store.
func BenchmarkDrainIntoGreenloop(b *testing.B) {
	const records, seriesPer, pointsPer = 200, 200, 10
	now := time.Now()
	recs := make([][]byte, records)
	for r := range recs {
		series := make([]sample.Series, seriesPer)
		for s := range series {
			series[s].Labels = []sample.Label{{Name: "__name__", Value: "greenloop_power_watts"}, {Name: "site", Value: "fra1"},
				{Name: "node", Value: "node-" + strconv.Itoa(s)}, {Name: "source", Value: "rapl"}, {Name: "component", Value: "package"}}
			for p := range pointsPer {
				// An hour-old backlog, in time order, 1 s apart.
				t := now.Add(-time.Hour).Add(time.Duration(r*pointsPer+p) * time.Second).UnixMilli()
				series[s].Points = append(series[s].Points, sample.Point{T: t, V: 200 + float64(p%37)*0.25})
			}
		}
		var err error
		if recs[r], err = forwarder.Encode(series); err != nil {
			b.Fatal(err)
		}
	}
	total := records * seriesPer * pointsPer
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		store, err := tsdb.Open(filepath.Join(dir, "data"), tsdb.Options{})
		if err != nil {
			b.Fatal(err)
		}
		w, err := ingest.NewWriter(store, ingest.WriterOptions{})
		if err != nil {
			b.Fatal(err)
		}
		srv, err := web.New(web.Deps{Store: store, Writer: w, Engine: promql.NewEngine(promql.EngineOpts{MaxSamples: 1e6, Timeout: time.Minute}),
			ParseText: textimport.Parse}, web.Options{Listen: "127.0.0.1:0"})
		if err != nil {
			b.Fatal(err)
		}
		hs := httptest.NewServer(srv.Handler())
		q, err := queue.Open(filepath.Join(dir, "queue"), queue.Options{MaxBytes: 1 << 30})
		if err != nil {
			b.Fatal(err)
		}
		for _, rec := range recs {
			if err := q.Append(rec); err != nil {
				b.Fatal(err)
			}
		}
		f, err := forwarder.New(q, forwarder.Options{URL: hs.URL})
		if err != nil {
			b.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		ran := make(chan error, 1)
		b.StartTimer()
		go func() { ran <- f.Run(ctx) }()
		for q.Stats().PendingRecords != 0 {
			time.Sleep(time.Millisecond)
		}
		b.StopTimer()
		cancel()
		if err := <-ran; err != nil {
			b.Fatal(err)
		}
		if st := f.Stats(); st.SentRecords != records || st.RefusedRecords != 0 {
			b.Fatalf("stats %+v", st)
		}
		q.Close()
		hs.Close()
		store.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(total)*float64(b.N)/b.Elapsed().Seconds(), "samples/s")
}
