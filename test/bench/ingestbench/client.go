package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/greenloop/greenloop/test/bench/loadgen"
)

// newClient returns an HTTP client keeping one connection per sender alive.
func newClient(senders int) *http.Client {
	tr := &http.Transport{
		MaxIdleConns:        senders * 2,
		MaxIdleConnsPerHost: senders * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &http.Client{Transport: tr, Timeout: 5 * time.Minute}
}

// writeError is a non-2xx answer to a remote_write request.
type writeError struct {
	status int
	body   string
}

func (e *writeError) Error() string {
	return fmt.Sprintf("remote_write answered %d: %s", e.status, e.body)
}

// postWrite sends one remote_write 1.0 request.
func postWrite(ctx context.Context, c *http.Client, url string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("User-Agent", "greenloop-ingestbench")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 2048))
		return &writeError{status: resp.StatusCode, body: string(bytes.TrimSpace(b))}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// sendResult counts what a load's senders got acknowledged.
type sendResult struct {
	Requests int64
	Samples  int64
	Elapsed  time.Duration
	// FirstStep is when every sender had its requests of the first time step
	// acknowledged (the requests that create the series), FirstStepSamples how
	// many samples those were.
	FirstStep        time.Duration
	FirstStepSamples int64
}

// sendEncoded sends pre-encoded requests, one goroutine per sender (reqs[s]
// in order), and times it. The first failure (transport error or non-2xx)
// stops every sender and is returned.
func sendEncoded(ctx context.Context, c *http.Client, url string, reqs [][]loadgen.Request) (sendResult, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var res sendResult
	var wg sync.WaitGroup
	var nreq, nsamp, first atomic.Int64
	firstDone := make([]time.Duration, len(reqs))
	start := time.Now()
	for s, rs := range reqs {
		wg.Go(func() {
			for i, r := range rs {
				if ctx.Err() != nil {
					return
				}
				if err := postWrite(ctx, c, url, r.Body); err != nil {
					cancel(err)
					return
				}
				nreq.Add(1)
				nsamp.Add(int64(r.Samples))
				if r.Step == 0 {
					first.Add(int64(r.Samples))
				}
				if r.Step == 0 && (i+1 == len(rs) || rs[i+1].Step != 0) {
					firstDone[s] = time.Since(start)
				}
			}
		})
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.FirstStep, res.FirstStepSamples = slices.Max(firstDone), first.Load()
	res.Requests, res.Samples = nreq.Load(), nsamp.Load()
	return res, context.Cause(ctx)
}

// sendStreaming encodes and sends a load as it goes, with n senders, for
// loads too large to hold encoded in memory. Senders wait for each other
// every window steps, so no sender gets more than window steps ahead: a
// TSDB refuses samples far older than its newest ones once its head has been
// compacted. Progress, when not nil, is called after each window.
func sendStreaming(ctx context.Context, c *http.Client, url string, l loadgen.Load, n, window int, progress func(done, total int)) (sendResult, error) {
	encs := l.NewEncoders(n)
	var res sendResult
	start := time.Now()
	for w := 0; w < l.Steps; w += window {
		ctx, cancel := context.WithCancelCause(ctx)
		var wg sync.WaitGroup
		var nreq, nsamp atomic.Int64
		for s := range n {
			cs := l.ChunksOf(s, n)
			wg.Go(func() {
				for k := w; k < min(w+window, l.Steps); k++ {
					for _, ch := range cs {
						if ctx.Err() != nil {
							return
						}
						r, err := encs[s].Encode(ch, k)
						if err == nil {
							err = postWrite(ctx, c, url, r.Body)
						}
						if err != nil {
							cancel(fmt.Errorf("step %d (t=%s): %w", k, time.UnixMilli(l.Start+int64(k)*l.Step).UTC().Format(time.RFC3339), err))
							return
						}
						nreq.Add(1)
						nsamp.Add(int64(r.Samples))
					}
				}
			})
		}
		wg.Wait()
		res.Requests += nreq.Load()
		res.Samples += nsamp.Load()
		err := context.Cause(ctx)
		cancel(nil)
		if err != nil {
			res.Elapsed = time.Since(start)
			return res, err
		}
		if progress != nil {
			progress(min(w+window, l.Steps), l.Steps)
		}
	}
	res.Elapsed = time.Since(start)
	return res, nil
}

// apiResponse is the Prometheus HTTP API envelope.
type apiResponse struct {
	Status    string          `json:"status"`
	ErrorType string          `json:"errorType"`
	Error     string          `json:"error"`
	Data      json.RawMessage `json:"data"`
}

type queryData struct {
	ResultType string          `json:"resultType"`
	Result     json.RawMessage `json:"result"`
}

type vectorSample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

type matrixSeries struct {
	Metric map[string]string `json:"metric"`
	Values [][2]any          `json:"values"`
}

// apiGet calls a query endpoint and returns its data, and the time from
// sending the request to having read the whole response.
func apiGet(ctx context.Context, c *http.Client, base, path string, params url.Values) (queryData, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+path+"?"+params.Encode(), nil)
	if err != nil {
		return queryData{}, 0, err
	}
	start := time.Now()
	resp, err := c.Do(req)
	if err != nil {
		return queryData{}, 0, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if err != nil {
		return queryData{}, took, err
	}
	var ar apiResponse
	if err := json.Unmarshal(body, &ar); err != nil {
		return queryData{}, took, fmt.Errorf("%s answered %d, not JSON: %.200s", path, resp.StatusCode, body)
	}
	if resp.StatusCode != http.StatusOK || ar.Status != "success" {
		return queryData{}, took, fmt.Errorf("%s answered %d: %s: %s", path, resp.StatusCode, ar.ErrorType, ar.Error)
	}
	var d queryData
	if err := json.Unmarshal(ar.Data, &d); err != nil {
		return d, took, err
	}
	return d, took, nil
}

// instantScalar evaluates a query that returns one sample and returns its value.
func instantScalar(ctx context.Context, c *http.Client, base, query string, at time.Time) (float64, error) {
	p := url.Values{"query": {query}, "time": {formatTime(at)}}
	d, _, err := apiGet(ctx, c, base, "/api/v1/query", p)
	if err != nil {
		return 0, err
	}
	if d.ResultType != "vector" {
		return 0, fmt.Errorf("result type %q, want vector", d.ResultType)
	}
	var vs []vectorSample
	if err := json.Unmarshal(d.Result, &vs); err != nil {
		return 0, err
	}
	if len(vs) != 1 {
		return 0, fmt.Errorf("%d samples in the result of %s, want 1", len(vs), query)
	}
	return parseValue(vs[0].Value[1])
}

// instantVector evaluates a query and returns its samples keyed by their labels.
func instantVector(ctx context.Context, c *http.Client, base, query string, at time.Time) (map[string]float64, error) {
	p := url.Values{"query": {query}, "time": {formatTime(at)}}
	d, _, err := apiGet(ctx, c, base, "/api/v1/query", p)
	if err != nil {
		return nil, err
	}
	if d.ResultType != "vector" {
		return nil, fmt.Errorf("result type %q, want vector", d.ResultType)
	}
	var vs []vectorSample
	if err := json.Unmarshal(d.Result, &vs); err != nil {
		return nil, err
	}
	out := make(map[string]float64, len(vs))
	for _, s := range vs {
		v, err := parseValue(s.Value[1])
		if err != nil {
			return nil, err
		}
		k, _ := json.Marshal(s.Metric)
		out[string(k)] = v
	}
	return out, nil
}

func parseValue(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	return strconv.ParseFloat(s, 64)
}

// formatTime formats t as the API's unix seconds with millisecond precision.
func formatTime(t time.Time) string {
	return strconv.FormatFloat(float64(t.UnixMilli())/1000, 'f', 3, 64)
}

// matrix is a range query's result: per series (keyed by its labels), values by timestamp (ms).
type matrix map[string]map[int64]float64

func parseMatrix(d queryData) (matrix, int, error) {
	if d.ResultType != "matrix" {
		return nil, 0, fmt.Errorf("result type %q, want matrix", d.ResultType)
	}
	var ms []matrixSeries
	if err := json.Unmarshal(d.Result, &ms); err != nil {
		return nil, 0, err
	}
	m := matrix{}
	points := 0
	for _, s := range ms {
		b, _ := json.Marshal(s.Metric) // map keys are sorted: a canonical key
		vals := map[int64]float64{}
		for _, p := range s.Values {
			ts, ok := p[0].(float64)
			if !ok {
				return nil, 0, errors.New("point timestamp is not a number")
			}
			v, err := parseValue(p[1])
			if err != nil {
				return nil, 0, err
			}
			vals[int64(ts*1000+0.5)] = v
			points++
		}
		m[string(b)] = vals
	}
	return m, points, nil
}

// matrixDiff compares two range-query answers.
type matrixDiff struct {
	Compared   int     `json:"compared_points"`    // points both answers have
	OnlyInOne  int     `json:"points_only_in_one"` // points one answer has and the other lacks
	Differing  int     `json:"differing_points"`   // compared points whose values differ by more than the tolerance
	MaxRelDiff float64 `json:"max_relative_difference"`
}

// compareMatrices compares a and b point by point, values within a relative tol counting as equal.
func compareMatrices(a, b matrix, tol float64) matrixDiff {
	var d matrixDiff
	for k, av := range a {
		bv := b[k]
		for ts, x := range av {
			y, ok := bv[ts]
			if !ok {
				d.OnlyInOne++
				continue
			}
			d.Compared++
			if !closeEnough(x, y, tol) {
				d.Differing++
			}
			if s := max(abs(x), abs(y)); s > 0 {
				d.MaxRelDiff = max(d.MaxRelDiff, abs(x-y)/s)
			}
		}
	}
	for k, bv := range b {
		for ts := range bv {
			if _, ok := a[k][ts]; !ok {
				d.OnlyInOne++
			}
		}
	}
	return d
}

func closeEnough(x, y, tol float64) bool {
	if x == y {
		return true
	}
	d := x - y
	if d < 0 {
		d = -d
	}
	s := max(abs(x), abs(y))
	return d <= tol*s
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}
