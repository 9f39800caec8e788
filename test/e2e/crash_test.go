package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
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
	crashStepMs           = 10 // ms between a series' samples, so query windows fall between them
	crashMetric           = "e2e_crash_samples"
)

// errCrashTimestamps stops a writer whose next samples would be newer than a
// minute ago: the server took samples faster than the test's time window allows for.
var errCrashTimestamps = errors.New("out of sample timestamps: raise the time span of the crash test")

// crashWriter sends remote_write requests one after another for its own series.
// Sample k of each series has timestamp base+10k ms and value k, so every
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
			ts.Samples = append(ts.Samples, prompb.Sample{Timestamp: w.base + crashStepMs*int64(k), Value: float64(k)})
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
		if last := w.base + crashStepMs*int64((i+1)*crashSamplesPerSeries); last > time.Now().Add(-time.Minute).UnixMilli() {
			w.failErr = fmt.Errorf("request %d: %w", i, errCrashTimestamps)
			return
		}
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

	base := time.Now().Add(-time.Hour).UnixMilli()
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
		case errors.Is(w.failErr, context.DeadlineExceeded), errors.Is(w.failErr, errCrashTimestamps):
			t.Errorf("writer %d: stopped at request %d before the kill: %v", w.id, w.acked, w.failErr)
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

	// Counts are taken with PromQL rather than by fetching every sample: per
	// writer, count_over_time and sum_over_time over exactly the window of its
	// acknowledged samples (timestamps base+10k ms, values k, k < acked), and
	// count_over_time over everything it sent.
	evalAt := time.Now()
	perSeries := func(q string, at time.Time) map[string]float64 {
		t.Helper()
		out := map[string]float64{}
		for _, s := range gl2.queryVectorAt(t, "", q, at) {
			out[s.Metric["writer"]+"/"+s.Metric["series"]] = s.Value.V
		}
		return out
	}
	totals := func() map[string]float64 {
		t.Helper()
		return perSeries("count_over_time("+crashMetric+"[2h])", evalAt)
	}
	total := totals()
	if len(total) != crashWriters*crashSeriesPerWriter {
		t.Errorf("after restart: %d series of %s, want %d", len(total), crashMetric, crashWriters*crashSeriesPerWriter)
	}
	lost, extra := 0, 0
	for _, w := range writers {
		n := w.acked * crashSamplesPerSeries // acknowledged samples per series
		// The window (base-5ms, base+10(n-1)+5ms] holds samples 0..n-1 and no other.
		at := time.UnixMilli(w.base + crashStepMs*int64(n-1) + crashStepMs/2)
		sel := fmt.Sprintf(`%s{writer="%d"}[%dms]`, crashMetric, w.id, crashStepMs*int64(n))
		counts := perSeries("count_over_time("+sel+")", at)
		sums := perSeries("sum_over_time("+sel+")", at)
		wantSum := float64(n) * float64(n-1) / 2
		for s := 0; s < crashSeriesPerWriter; s++ {
			key := fmt.Sprintf("%d/%s", w.id, w.seriesLabel(s))
			present := int(counts[key])
			inFlight := int(total[key]) - present
			if present != n {
				t.Errorf("series %s: %d of %d acknowledged samples survived the kill (%d lost)", key, present, n, n-present)
			} else if sums[key] != wantSum {
				t.Errorf("series %s: the %d acknowledged samples are there but their values sum to %v, want %v", key, n, sums[key], wantSum)
			}
			// Beyond the acknowledged samples there can only be (part of) the
			// one request that was in flight at the kill.
			if inFlight < 0 || inFlight > crashSamplesPerSeries {
				t.Errorf("series %s: %d samples stored in all, %d acknowledged: %d beyond them, want 0..%d (the request in flight)",
					key, int(total[key]), n, inFlight, crashSamplesPerSeries)
			}
			if s == 0 || present != n {
				t.Logf("series %s: acknowledged %d, stored %d (acknowledged and present %d, from the unacknowledged in-flight request %d)",
					key, n, int(total[key]), present, inFlight)
			}
			lost += n - present
			extra += max(inFlight, 0)
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
	total = totals()
	for _, w := range writers {
		want := (w.acked + 1) * crashSamplesPerSeries
		for s := 0; s < crashSeriesPerWriter; s++ {
			key := fmt.Sprintf("%d/%s", w.id, w.seriesLabel(s))
			if int(total[key]) != want {
				t.Errorf("series %s after the retry: count_over_time = %d, want exactly %d", key, int(total[key]), want)
			}
		}
	}
}
