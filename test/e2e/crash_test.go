package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"
)

const (
	crashWriters          = 4  // concurrent remote_write clients
	crashSeriesPerWriter  = 5  // series each writer owns
	crashSamplesPerSeries = 10 // samples per series in one request
	crashMetric           = "e2e_crash_samples"
)

// crashWriter sends remote_write requests one after another for its own series.
// Sample k of each series has timestamp base+k ms and value k, so every
// request i holds samples [i*crashSamplesPerSeries, (i+1)*crashSamplesPerSeries).
type crashWriter struct {
	id   int
	base int64 // ms

	acked int // requests answered 2xx; all of them precede the first failure
	// After the writer stops: the request that got no 2xx (index acked) and why.
	failErr    error // transport error (no answer): that request may or may not be stored
	failStatus int   // an HTTP answer other than 2xx
	failBody   string
}

func (w *crashWriter) seriesLabel(s int) string { return strconv.Itoa(s) }

func (w *crashWriter) request(i int) []byte {
	req := &prompb.WriteRequest{}
	for s := 0; s < crashSeriesPerWriter; s++ {
		ts := prompb.TimeSeries{Labels: []prompb.Label{ // sorted by name, as remote_write requires
			{Name: "__name__", Value: crashMetric},
			{Name: "series", Value: w.seriesLabel(s)},
			{Name: "writer", Value: strconv.Itoa(w.id)},
		}}
		for j := 0; j < crashSamplesPerSeries; j++ {
			k := i*crashSamplesPerSeries + j
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: w.base + int64(k), Value: float64(k)})
		}
		req.Timeseries = append(req.Timeseries, ts)
	}
	b, err := req.Marshal()
	if err != nil {
		panic(err) // a WriteRequest of plain values always marshals
	}
	return snappy.Encode(nil, b)
}

// post sends request i and returns the status, or an error when no answer came.
func (w *crashWriter) post(ctx context.Context, client *http.Client, url string, i int) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(w.request(i)))
	if err != nil {
		return 0, "", err
	}
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	if err != nil && resp.StatusCode/100 == 2 {
		// The status line said 2xx: the server acknowledged it.
		err = nil
	}
	return resp.StatusCode, string(body), err
}

// run writes until the first request that is not acknowledged.
func (w *crashWriter) run(ctx context.Context, client *http.Client, url string) {
	for i := 0; ; i++ {
		code, body, err := w.post(ctx, client, url, i)
		switch {
		case err != nil:
			w.failErr = err
			return
		case code/100 != 2:
			w.failStatus, w.failBody = code, body
			return
		}
		w.acked = i + 1
	}
}

// TestCrashKeepsAcknowledgedWrites kills the server with SIGKILL while several
// clients write, restarts it on the same data directory, and checks that every
// sample it acknowledged is there.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	dataDir := t.TempDir()
	gl := startServer(t, "greenloop-1", dataDir)
	writeURL := gl.url + "/api/v1/write"

	base := time.Now().Add(-10 * time.Minute).UnixMilli()
	writers := make([]*crashWriter, crashWriters)
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	client := &http.Client{Timeout: 30 * time.Second}
	var wg sync.WaitGroup
	for i := range writers {
		w := &crashWriter{id: i, base: base}
		writers[i] = w
		wg.Go(func() { w.run(ctx, client, writeURL) })
	}

	// Let the writers run for a few seconds, then kill the server mid-flight.
	time.Sleep(3 * time.Second)
	gl.kill(t)
	killedAt := time.Now()
	t.Logf("killed greenloop-1 (SIGKILL) after 3s of writing")
	wg.Wait()

	ackedTotal := 0
	for _, w := range writers {
		ackedTotal += w.acked
		switch {
		case w.failStatus != 0:
			t.Errorf("writer %d: request %d answered HTTP %d before the kill, want 2xx: %s", w.id, w.acked, w.failStatus, w.failBody)
		case w.failErr == nil:
			t.Errorf("writer %d stopped without an error", w.id)
		case errors.Is(w.failErr, context.DeadlineExceeded):
			t.Errorf("writer %d: request %d timed out: %v", w.id, w.acked, w.failErr)
		}
		if w.acked == 0 {
			t.Errorf("writer %d: no request acknowledged in 3s (first error: %v)", w.id, w.failErr)
		}
	}
	t.Logf("acknowledged before the kill: %d requests, %d samples over %d series",
		ackedTotal, ackedTotal*crashSeriesPerWriter*crashSamplesPerSeries, crashWriters*crashSeriesPerWriter)
	if t.Failed() {
		t.FailNow()
	}

	gl2 := startServer(t, "greenloop-2", dataDir)
	t.Logf("greenloop-2 ready on the same data dir %s after the kill", time.Since(killedAt).Round(time.Millisecond))

	// stored returns each series' samples (timestamp ms → value) and the
	// count_over_time of each, keyed by "writer/series".
	evalAt := time.Now()
	stored := func() (map[string]map[int64]float64, map[string]int) {
		t.Helper()
		samples := map[string]map[int64]float64{}
		for _, s := range gl2.queryMatrix(t, "", crashMetric+"[15m]", evalAt) {
			key := s.Metric["writer"] + "/" + s.Metric["series"]
			m := map[int64]float64{}
			for _, p := range s.Values {
				m[int64(math.Round(p.T*1000))] = p.V
			}
			samples[key] = m
		}
		counts := map[string]int{}
		for _, s := range gl2.queryVectorAt(t, "", "count_over_time("+crashMetric+"[15m])", evalAt) {
			counts[s.Metric["writer"]+"/"+s.Metric["series"]] = int(s.Value.V)
		}
		return samples, counts
	}

	samples, counts := stored()
	if len(samples) != crashWriters*crashSeriesPerWriter {
		t.Errorf("after restart: %d series of %s, want %d", len(samples), crashMetric, crashWriters*crashSeriesPerWriter)
	}
	lost, extra := 0, 0
	for _, w := range writers {
		ackedSamples := w.acked * crashSamplesPerSeries
		for s := 0; s < crashSeriesPerWriter; s++ {
			key := fmt.Sprintf("%d/%s", w.id, w.seriesLabel(s))
			got := samples[key]
			present := 0
			for k := 0; k < ackedSamples; k++ {
				v, ok := got[w.base+int64(k)]
				if ok && v == float64(k) {
					present++
				} else if ok {
					t.Errorf("series %s: sample %d = %v, want %d", key, k, v, k)
				}
			}
			// Samples beyond the acknowledged ones can only come from the one
			// request in flight at the kill, and only as written.
			inFlight := 0
			for ts, v := range got {
				k := ts - w.base
				if k < int64(ackedSamples) {
					continue
				}
				if k < int64(ackedSamples+crashSamplesPerSeries) && v == float64(k) {
					inFlight++
				} else {
					t.Errorf("series %s: unexpected sample at %d ms = %v (never written)", key, ts, v)
				}
			}
			if present != ackedSamples {
				t.Errorf("series %s: %d of %d acknowledged samples survived the kill (%d lost)", key, present, ackedSamples, ackedSamples-present)
			}
			if counts[key] != len(got) {
				t.Errorf("series %s: count_over_time = %d, but the range query returned %d samples", key, counts[key], len(got))
			}
			if s == 0 || present != ackedSamples {
				t.Logf("series %s: acknowledged %d, stored %d (acknowledged present %d, from the in-flight request %d), count_over_time %d",
					key, ackedSamples, len(got), present, inFlight, counts[key])
			}
			lost += ackedSamples - present
			extra += inFlight
		}
	}
	t.Logf("after restart: acknowledged samples %d, lost %d; unacknowledged in-flight samples that were stored anyway: %d",
		ackedTotal*crashSeriesPerWriter*crashSamplesPerSeries, lost, extra)

	// A client retries what got no answer; the retry is idempotent, so every
	// series then holds exactly the samples of acked+1 requests.
	for _, w := range writers {
		code, body, err := w.post(ctx, client, gl2.url+"/api/v1/write", w.acked)
		if err != nil || code/100 != 2 {
			t.Errorf("writer %d: retry of request %d after restart: HTTP %d, err %v, want 2xx (retries must be idempotent): %s", w.id, w.acked, code, err, body)
		}
	}
	_, counts = stored()
	for _, w := range writers {
		want := (w.acked + 1) * crashSamplesPerSeries
		for s := 0; s < crashSeriesPerWriter; s++ {
			key := fmt.Sprintf("%d/%s", w.id, w.seriesLabel(s))
			if counts[key] != want {
				t.Errorf("series %s after the retry: count_over_time = %d, want exactly %d", key, counts[key], want)
			}
		}
	}
}
