// Package forwarder delivers the agent's queued remote_write batches to the
// greenloop server: it reads records from the disk queue in order, POSTs
// each one to the server's remote_write endpoint and acknowledges a record
// only once the server has answered for it.
//
// Answers are handled as follows:
//
//   - 2xx: delivered, acknowledged.
//   - 400, 413, 415: the server will never accept the record (for 400 the
//     valid samples in it were stored). It is logged as a warning with the
//     server's error text, counted in Stats.RefusedRecords and acknowledged
//     so that the queue does not stall.
//   - 401, 403: kept and retried with backoff until the operator fixes the
//     token (logged, throttled).
//   - 429, 503: retried after the Retry-After delay when the server sends
//     one (capped by MaxBackoff), else with backoff.
//   - other answers, network errors and timeouts: retried with exponential
//     backoff and full jitter between MinBackoff and MaxBackoff.
package forwarder

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/greenloop/greenloop/ingest/queue"
	"github.com/greenloop/greenloop/internal/sample"
)

// WritePath is the server's remote_write endpoint, relative to Options.URL.
const WritePath = "/api/v1/write"

const (
	defaultMaxRecords = 64
	defaultMaxBytes   = 8 << 20
	defaultMinBackoff = 500 * time.Millisecond
	defaultMaxBackoff = 2 * time.Minute
	defaultTimeout    = 30 * time.Second
	// idlePoll is how often an empty queue is looked at again when no
	// Notify comes.
	idlePoll = 200 * time.Millisecond
	// warnEvery throttles the warnings about a server that cannot be
	// reached or refuses the credentials.
	warnEvery = time.Minute
	// maxErrBody bounds how much of an error response is read, and
	// maxErrText how much of it is logged.
	maxErrBody = 4 << 10
	maxErrText = 512
)

// Encode turns readings into one queue record: a snappy-compressed
// remote_write 1.0 WriteRequest, ready to POST.
func Encode(series []sample.Series) ([]byte, error) {
	req := prompb.WriteRequest{Timeseries: make([]prompb.TimeSeries, len(series))}
	for i, s := range series {
		ts := &req.Timeseries[i]
		ts.Labels = make([]prompb.Label, len(s.Labels))
		for j, l := range s.Labels {
			ts.Labels[j] = prompb.Label{Name: l.Name, Value: l.Value}
		}
		ts.Samples = make([]prompb.Sample, len(s.Points))
		for j, p := range s.Points {
			ts.Samples[j] = prompb.Sample{Timestamp: p.T, Value: p.V}
		}
	}
	raw, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("forwarder: encoding write request: %w", err)
	}
	return snappy.Encode(nil, raw), nil
}

// Options configures New.
type Options struct {
	// URL is the server's base URL, e.g. https://greenloop:8080; the
	// forwarder POSTs to URL + "/api/v1/write".
	URL string
	// Token is the bearer token; empty means no Authorization header.
	Token string
	// Client sends the requests; nil means a client with a 30 s timeout.
	Client *http.Client
	// MaxRecords and MaxBytes bound one send round (one read from the
	// queue, one Ack); zero means 64 records and 8 MiB.
	MaxRecords int
	MaxBytes   int
	// MinBackoff and MaxBackoff bound the delay between retries; zero
	// means 500 ms and 2 min.
	MinBackoff, MaxBackoff time.Duration
	// Logger receives delivery warnings; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Sleep waits between retries; it must return early with ctx's error
	// when ctx is done. nil means a real timer.
	Sleep func(ctx context.Context, d time.Duration) error
}

// Stats describes what a Forwarder has done since New.
type Stats struct {
	SentRecords    uint64 // records the server accepted
	SentBytes      uint64 // their compressed size
	Retries        uint64 // failed attempts that will be (or were) retried
	RefusedRecords uint64 // records the server refused for good (400, 413, 415), dropped
	LastError      string // the last delivery error, "" if none yet
	LastSuccess    time.Time
}

// Forwarder sends the records of a queue to the server; see the package
// comment.
type Forwarder struct {
	q        *queue.Queue
	o        Options
	endpoint string
	log      *slog.Logger
	notify   chan struct{}
	running  atomic.Bool

	mu    sync.Mutex
	stats Stats

	// Used by Run's goroutine only.
	attempt int       // consecutive failures
	warnAt  time.Time // last throttled warning
	quiet   int       // failures not logged since warnAt
}

// New returns a Forwarder for q. It does not start sending; call Run.
func New(q *queue.Queue, o Options) (*Forwarder, error) {
	if q == nil {
		return nil, errors.New("forwarder: nil queue")
	}
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("forwarder: bad server URL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("forwarder: server URL %q must be http(s)://host[:port]", u.Redacted())
	}
	if o.MaxRecords < 0 || o.MaxBytes < 0 || o.MinBackoff < 0 || o.MaxBackoff < 0 {
		return nil, errors.New("forwarder: negative MaxRecords, MaxBytes or backoff")
	}
	if o.MaxRecords == 0 {
		o.MaxRecords = defaultMaxRecords
	}
	if o.MaxBytes == 0 {
		o.MaxBytes = defaultMaxBytes
	}
	if o.MinBackoff == 0 {
		o.MinBackoff = defaultMinBackoff
	}
	if o.MaxBackoff == 0 {
		o.MaxBackoff = defaultMaxBackoff
	}
	if o.MinBackoff > o.MaxBackoff {
		return nil, fmt.Errorf("forwarder: MinBackoff %v above MaxBackoff %v", o.MinBackoff, o.MaxBackoff)
	}
	if o.Client == nil {
		o.Client = &http.Client{Timeout: defaultTimeout}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	return &Forwarder{
		q:        q,
		o:        o,
		endpoint: strings.TrimRight(o.URL, "/") + WritePath,
		log:      o.Logger,
		notify:   make(chan struct{}, 1),
	}, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Notify tells the Forwarder that records were appended, so that it does
// not wait for its next poll of an empty queue. It never blocks.
func (f *Forwarder) Notify() {
	select {
	case f.notify <- struct{}{}:
	default:
	}
}

// Stats returns a snapshot of the counters.
func (f *Forwarder) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.stats
}

// Run sends records until ctx is done, and then returns nil. The request in
// flight is cancelled with ctx; a record is acknowledged only when the
// server answered for it. Run returns an error only if it is already
// running or the queue was closed.
func (f *Forwarder) Run(ctx context.Context) error {
	if !f.running.CompareAndSwap(false, true) {
		return errors.New("forwarder: Run called twice")
	}
	defer f.running.Store(false)
	for ctx.Err() == nil {
		recs, err := f.q.Next(f.o.MaxRecords, f.o.MaxBytes)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, queue.ErrClosed) {
				return err
			}
			f.fail(err.Error())
			f.log.Error("forwarder: reading the queue", "err", err)
			if f.o.Sleep(ctx, f.backoff()) != nil {
				return nil
			}
			continue
		}
		if len(recs) == 0 {
			f.idle(ctx)
			continue
		}
		if err := f.round(ctx, recs); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, queue.ErrClosed) {
				return err
			}
			f.log.Error("forwarder: acknowledging records", "err", err)
			if f.o.Sleep(ctx, f.backoff()) != nil {
				return nil
			}
		}
	}
	return nil
}

// idle waits for a Notify, the next poll or ctx.
func (f *Forwarder) idle(ctx context.Context) {
	t := time.NewTimer(idlePoll)
	defer t.Stop()
	select {
	case <-f.notify:
	case <-t.C:
	case <-ctx.Done():
	}
}

// round delivers recs in order and acknowledges those the server answered
// for. It returns early (after acknowledging what was answered) when ctx is
// done.
func (f *Forwarder) round(ctx context.Context, recs []queue.Record) error {
	var done *queue.ID // last record the server answered for, not yet acked
	ack := func() error {
		if done == nil {
			return nil
		}
		err := f.q.Ack(*done)
		done = nil
		return err
	}
	for i := range recs {
		r := &recs[i]
		for {
			delay, ok := f.send(ctx, r)
			if ok {
				done = &r.ID
				break
			}
			if ctx.Err() != nil {
				return ack()
			}
			// Persist progress before waiting: a restart during a long
			// outage must not resend what was delivered.
			if err := ack(); err != nil {
				return err
			}
			if f.o.Sleep(ctx, delay) != nil {
				return nil
			}
		}
	}
	return ack()
}

// send makes one attempt at delivering r. ok means the server answered for
// the record for good (accepted or refused); otherwise delay is how long to
// wait before the next attempt.
func (f *Forwarder) send(ctx context.Context, r *queue.Record) (delay time.Duration, ok bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.endpoint, bytes.NewReader(r.Data))
	if err != nil {
		f.fail(err.Error())
		f.log.Error("forwarder: building request", "err", err)
		return f.backoff(), false
	}
	req.Header.Set("Content-Encoding", "snappy")
	req.Header.Set("Content-Type", "application/x-protobuf")
	req.Header.Set("X-Prometheus-Remote-Write-Version", "0.1.0")
	req.Header.Set("User-Agent", "greenloop-agent")
	if f.o.Token != "" {
		req.Header.Set("Authorization", "Bearer "+f.o.Token)
	}
	resp, err := f.o.Client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return 0, false
		}
		msg := "sending: " + err.Error()
		f.fail(msg)
		f.warnThrottled("forwarder: server unreachable, will retry", "err", err)
		return f.backoff(), false
	}
	defer resp.Body.Close()
	code := resp.StatusCode
	switch {
	case code >= 200 && code < 300:
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrBody))
		f.succeed(r)
		return 0, true
	case code == http.StatusBadRequest || code == http.StatusRequestEntityTooLarge || code == http.StatusUnsupportedMediaType:
		text := errorText(resp.Body)
		f.mu.Lock()
		f.stats.RefusedRecords++
		f.stats.LastError = fmt.Sprintf("server refused record %v: %s: %s", r.ID, resp.Status, text)
		f.mu.Unlock()
		f.attempt = 0 // the server is up and answering
		f.log.Warn("forwarder: server refused a record, dropping it",
			"record", r.ID.String(), "status", code, "bytes", len(r.Data), "appended", r.Appended, "error", text)
		return 0, true
	}
	text := errorText(resp.Body)
	f.fail(fmt.Sprintf("server answered %s: %s", resp.Status, text))
	delay = f.backoff()
	switch code {
	case http.StatusUnauthorized, http.StatusForbidden:
		f.warnThrottled("forwarder: server refuses the credentials; fix the agent's token, records are kept and retried",
			"status", code, "error", text)
	case http.StatusTooManyRequests, http.StatusServiceUnavailable:
		if d, ok := retryAfter(resp.Header.Get("Retry-After"), f.o.Now()); ok {
			delay = min(max(d, f.o.MinBackoff), f.o.MaxBackoff)
		}
		f.warnThrottled("forwarder: server busy, will retry", "status", code, "retry_in", delay, "error", text)
	default:
		f.warnThrottled("forwarder: server error, will retry", "status", code, "retry_in", delay, "error", text)
	}
	return delay, false
}

// succeed records a delivered record.
func (f *Forwarder) succeed(r *queue.Record) {
	f.mu.Lock()
	f.stats.SentRecords++
	f.stats.SentBytes += uint64(len(r.Data))
	f.stats.LastSuccess = f.o.Now()
	f.mu.Unlock()
	if f.attempt > 0 && !f.warnAt.IsZero() {
		f.log.Info("forwarder: delivering again", "failed_attempts", f.attempt)
	}
	f.attempt = 0
	f.warnAt = time.Time{}
	f.quiet = 0
}

// fail records a failed attempt that will be retried.
func (f *Forwarder) fail(msg string) {
	f.mu.Lock()
	f.stats.Retries++
	f.stats.LastError = msg
	f.mu.Unlock()
}

// backoff returns the delay before the next attempt: full jitter between
// MinBackoff and an exponentially growing cap, at most MaxBackoff.
func (f *Forwarder) backoff() time.Duration {
	lo, hi := f.o.MinBackoff, f.o.MaxBackoff
	ceil := lo
	for i := 0; i < f.attempt && ceil < hi; i++ {
		ceil *= 2
	}
	ceil = min(ceil, hi)
	f.attempt++
	if ceil <= lo {
		return lo
	}
	return lo + rand.N(ceil-lo+1)
}

// warnThrottled logs a retryable failure at most once per warnEvery.
func (f *Forwarder) warnThrottled(msg string, args ...any) {
	now := f.o.Now()
	if !f.warnAt.IsZero() && now.Sub(f.warnAt) < warnEvery {
		f.quiet++
		return
	}
	if f.quiet > 0 {
		args = append(args, "unlogged_failures", f.quiet)
	}
	f.warnAt, f.quiet = now, 0
	f.log.Warn(msg, args...)
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n < 0 {
			return 0, false
		}
		if n > int64(24*time.Hour/time.Second) {
			n = int64(24 * time.Hour / time.Second)
		}
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return t.Sub(now), true
	}
	return 0, false
}

// errorText reads the start of an error response as one line of text.
func errorText(body io.Reader) string {
	b, _ := io.ReadAll(io.LimitReader(body, maxErrBody))
	_, _ = io.Copy(io.Discard, io.LimitReader(body, maxErrBody))
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > maxErrText {
		s = strings.ToValidUTF8(s[:maxErrText], "") + "…"
	}
	return s
}
