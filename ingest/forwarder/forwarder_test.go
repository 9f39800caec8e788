package forwarder

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/golang/snappy"
	"github.com/prometheus/prometheus/prompb"

	"github.com/greenloop/greenloop/ingest/queue"
	"github.com/greenloop/greenloop/internal/sample"
)

func openQueue(t testing.TB, dir string) *queue.Queue {
	t.Helper()
	q, err := queue.Open(dir, queue.Options{MaxBytes: 256 << 20, Sync: queue.SyncPolicy{Mode: queue.SyncNever}})
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// batch returns the readings of record n: a few series labelled rec=n.
func batch(n, points int) []sample.Series {
	out := make([]sample.Series, 0, 2)
	for s := range 2 {
		ser := sample.Series{Labels: []sample.Label{
			{Name: "__name__", Value: "greenloop_power_watts"},
			{Name: "rec", Value: strconv.Itoa(n)},
			{Name: "zone", Value: fmt.Sprintf("package-%d", s)},
		}}
		for p := range points {
			ser.Points = append(ser.Points, sample.Point{T: 1_700_000_000_000 + int64(n*1000+p), V: float64(n) + float64(p)/10})
		}
		out = append(out, ser)
	}
	return out
}

func fill(t testing.TB, q *queue.Queue, from, to int) {
	t.Helper()
	for n := from; n < to; n++ {
		rec, err := Encode(batch(n, 3))
		if err != nil {
			t.Fatal(err)
		}
		if err := q.Append(rec); err != nil {
			t.Fatal(err)
		}
	}
}

// decode turns a request body back into series.
func decode(body []byte) ([]sample.Series, error) {
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, err
	}
	var req prompb.WriteRequest
	if err := req.Unmarshal(raw); err != nil {
		return nil, err
	}
	var out []sample.Series
	for _, ts := range req.Timeseries {
		s := sample.Series{}
		for _, l := range ts.Labels {
			s.Labels = append(s.Labels, sample.Label{Name: l.Name, Value: l.Value})
		}
		for _, p := range ts.Samples {
			s.Points = append(s.Points, sample.Point{T: p.Timestamp, V: p.Value})
		}
		out = append(out, s)
	}
	return out, nil
}

// reply is a scripted answer.
type reply struct {
	status int
	header map[string]string
	body   string
}

// server records the record numbers it accepted, in order. The first
// answers follow script; the rest are 204.
type server struct {
	t        testing.TB
	mu       sync.Mutex
	script   []reply
	requests int
	accepted []int
	bodies   [][]sample.Series
	headers  []http.Header
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	series, err := decode(body)
	if err != nil {
		s.t.Errorf("bad body: %v", err)
		http.Error(w, err.Error(), 400)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests++
	s.headers = append(s.headers, r.Header.Clone())
	if len(s.script) > 0 {
		rp := s.script[0]
		s.script = s.script[1:]
		for k, v := range rp.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(rp.status)
		io.WriteString(w, rp.body)
		return
	}
	n, _ := strconv.Atoi(series[0].Get("rec"))
	s.accepted = append(s.accepted, n)
	s.bodies = append(s.bodies, series)
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) got() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.accepted...)
}

// sleeper records the delays asked for without waiting.
type sleeper struct {
	mu   sync.Mutex
	ds   []time.Duration
	hook func(n int)
}

func (s *sleeper) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.ds = append(s.ds, d)
	n := len(s.ds)
	hook := s.hook
	s.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	time.Sleep(time.Millisecond) // yield, keep loops from spinning hard
	return ctx.Err()
}

func (s *sleeper) delays() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.ds...)
}

// run runs f until cond holds, then stops it and checks that Run returned nil.
func run(t *testing.T, f *Forwarder, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			cancel()
			<-done
			t.Fatalf("condition not reached; stats %+v", f.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop after cancel")
	}
}

func seq(from, to int) []int {
	var out []int
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

func TestDeliverInOrder(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	fill(t, q, 0, 10)
	srv := &server{t: t}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	sl := &sleeper{}
	f, err := New(q, Options{URL: hs.URL + "/", Token: "s3cret", MaxRecords: 3, Sleep: sl.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	f.Notify()
	run(t, f, func() bool { return len(srv.got()) == 10 && q.Stats().PendingRecords == 0 })

	if got := srv.got(); !reflect.DeepEqual(got, seq(0, 10)) {
		t.Fatalf("delivered %v", got)
	}
	for i, b := range srv.bodies {
		if want := batch(i, 3); !reflect.DeepEqual(b, want) {
			t.Errorf("record %d decoded to %+v, want %+v", i, b, want)
		}
	}
	h := srv.headers[0]
	for k, v := range map[string]string{
		"Content-Encoding":                  "snappy",
		"Content-Type":                      "application/x-protobuf",
		"X-Prometheus-Remote-Write-Version": "0.1.0",
		"User-Agent":                        "greenloop-agent",
		"Authorization":                     "Bearer s3cret",
	} {
		if h.Get(k) != v {
			t.Errorf("header %s = %q, want %q", k, h.Get(k), v)
		}
	}
	if st := q.Stats(); st.PendingRecords != 0 {
		t.Errorf("queue still holds %d records", st.PendingRecords)
	}
	st := f.Stats()
	if st.SentRecords != 10 || st.Retries != 0 || st.RefusedRecords != 0 || st.SentBytes == 0 || st.LastSuccess.IsZero() {
		t.Errorf("stats %+v", st)
	}
	if len(sl.delays()) != 0 {
		t.Errorf("slept %v", sl.delays())
	}
}

func TestNoTokenNoAuthorization(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	fill(t, q, 0, 1)
	srv := &server{t: t}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	f, err := New(q, Options{URL: hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	run(t, f, func() bool { return len(srv.got()) == 1 })
	if a := srv.headers[0].Get("Authorization"); a != "" {
		t.Errorf("Authorization %q without a token", a)
	}
}

func TestServerDownThenUp(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // connection refused from now on

	q := openQueue(t, t.TempDir())
	defer q.Close()
	fill(t, q, 0, 5)
	srv := &server{t: t}
	hs := httptest.NewUnstartedServer(srv)
	defer hs.Close()
	var startMu sync.Mutex
	var startErr error
	failed := func() error {
		startMu.Lock()
		defer startMu.Unlock()
		return startErr
	}
	sl := &sleeper{hook: func(n int) {
		if n == 3 {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				startMu.Lock()
				startErr = err
				startMu.Unlock()
				return
			}
			hs.Listener = l
			hs.Start()
		}
	}}
	f, err := New(q, Options{URL: "http://" + addr, Sleep: sl.Sleep, MinBackoff: time.Millisecond, MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	run(t, f, func() bool { return (len(srv.got()) == 5 && q.Stats().PendingRecords == 0) || failed() != nil })
	if err := failed(); err != nil {
		t.Skipf("cannot rebind %s: %v", addr, err)
	}
	if got := srv.got(); !reflect.DeepEqual(got, seq(0, 5)) {
		t.Fatalf("delivered %v, want each record once in order", got)
	}
	st := f.Stats()
	if st.Retries < 3 || st.SentRecords != 5 || st.LastError == "" {
		t.Errorf("stats %+v", st)
	}
	ds := sl.delays()
	for i, d := range ds {
		if d < time.Millisecond || d > time.Second {
			t.Errorf("delay %d = %v outside [1ms, 1s]", i, d)
		}
	}
	if q.Stats().PendingRecords != 0 {
		t.Error("queue not empty")
	}
}

func TestAnswers(t *testing.T) {
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	cases := []struct {
		name        string
		script      []reply
		want        []int // records accepted, in order
		refused     uint64
		retries     uint64
		delays      []time.Duration // exact delays; nil: check count and bounds only
		sleeps      int
		errContains string
	}{
		{name: "503 Retry-After seconds", script: []reply{{status: 503, header: map[string]string{"Retry-After": "2"}}},
			want: seq(0, 4), retries: 1, delays: []time.Duration{2 * time.Second}},
		{name: "429 Retry-After date", script: []reply{{status: 429, header: map[string]string{"Retry-After": now.Add(5 * time.Second).Format(http.TimeFormat)}}},
			want: seq(0, 4), retries: 1, delays: []time.Duration{5 * time.Second}},
		{name: "429 Retry-After capped", script: []reply{{status: 429, header: map[string]string{"Retry-After": "3600"}}},
			want: seq(0, 4), retries: 1, delays: []time.Duration{time.Minute}},
		{name: "503 without Retry-After", script: []reply{{status: 503}, {status: 503}},
			want: seq(0, 4), retries: 2, sleeps: 2},
		{name: "400 dropped", script: []reply{{status: 400, body: `{"error":"sample out of order"}`}},
			want: seq(1, 4), refused: 1, errContains: "sample out of order"},
		{name: "413 dropped", script: []reply{{status: 413}}, want: seq(1, 4), refused: 1},
		{name: "415 dropped", script: []reply{{status: 415}}, want: seq(1, 4), refused: 1},
		{name: "401 retried", script: []reply{{status: 401}, {status: 401}, {status: 401}},
			want: seq(0, 4), retries: 3, sleeps: 3},
		{name: "403 retried", script: []reply{{status: 403}}, want: seq(0, 4), retries: 1, sleeps: 1},
		{name: "500 retried", script: []reply{{status: 500}, {status: 502}}, want: seq(0, 4), retries: 2, sleeps: 2},
		{name: "404 retried", script: []reply{{status: 404}}, want: seq(0, 4), retries: 1, sleeps: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := openQueue(t, t.TempDir())
			defer q.Close()
			fill(t, q, 0, 4)
			srv := &server{t: t, script: tc.script}
			hs := httptest.NewServer(srv)
			defer hs.Close()
			sl := &sleeper{}
			f, err := New(q, Options{URL: hs.URL, Sleep: sl.Sleep, Now: func() time.Time { return now },
				MinBackoff: 10 * time.Millisecond, MaxBackoff: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			run(t, f, func() bool { return q.Stats().PendingRecords == 0 })
			if got := srv.got(); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("accepted %v, want %v", got, tc.want)
			}
			st := f.Stats()
			if st.RefusedRecords != tc.refused || st.Retries != tc.retries || st.SentRecords != uint64(len(tc.want)) {
				t.Errorf("stats %+v", st)
			}
			ds := sl.delays()
			if tc.delays != nil {
				if !reflect.DeepEqual(ds, tc.delays) {
					t.Errorf("slept %v, want %v", ds, tc.delays)
				}
			} else if len(ds) != tc.sleeps {
				t.Errorf("slept %v, want %d sleeps", ds, tc.sleeps)
			}
			for _, d := range ds {
				if d < 10*time.Millisecond || d > time.Minute {
					t.Errorf("delay %v out of bounds", d)
				}
			}
			if tc.errContains != "" && !contains(st.LastError, tc.errContains) {
				t.Errorf("LastError %q lacks %q", st.LastError, tc.errContains)
			}
		})
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestRestartSendsOnlyUnacked(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(t, dir)
	fill(t, q, 0, 6)

	// The first server takes three records, then fails everything.
	var mu sync.Mutex
	var first []int
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		series, err := decode(body)
		if err != nil {
			t.Error(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(first) == 3 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		n, _ := strconv.Atoi(series[0].Get("rec"))
		first = append(first, n)
		w.WriteHeader(http.StatusNoContent)
	}))
	sl := &sleeper{}
	f, err := New(q, Options{URL: hs.URL, Sleep: sl.Sleep, MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, f, func() bool { return f.Stats().Retries >= 2 })
	hs.Close()
	if err := q.Close(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(first, seq(0, 3)) {
		t.Fatalf("first server got %v", first)
	}

	q = openQueue(t, dir)
	defer q.Close()
	fill(t, q, 6, 8)
	srv := &server{t: t}
	hs2 := httptest.NewServer(srv)
	defer hs2.Close()
	f2, err := New(q, Options{URL: hs2.URL, Sleep: sl.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	run(t, f2, func() bool { return q.Stats().PendingRecords == 0 })
	if got := srv.got(); !reflect.DeepEqual(got, seq(3, 8)) {
		t.Fatalf("after restart got %v, want %v", got, seq(3, 8))
	}
}

func TestCancelWhileRequestHangs(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	fill(t, q, 0, 2)
	arrived := make(chan struct{}, 1)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	defer hs.Close()
	sl := &sleeper{}
	f, err := New(q, Options{URL: hs.URL, Sleep: sl.Sleep})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no request arrived")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop while a request hung")
	}
	if n := q.Stats().PendingRecords; n != 2 {
		t.Errorf("%d records pending, want 2 (nothing answered)", n)
	}
	if st := f.Stats(); st.SentRecords != 0 || st.Retries != 0 || st.RefusedRecords != 0 {
		t.Errorf("stats %+v", st)
	}
}

func TestIdleThenNotify(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	srv := &server{t: t}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	f, err := New(q, Options{URL: hs.URL})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(50 * time.Millisecond)
		fill(t, q, 0, 3)
		f.Notify()
	}()
	run(t, f, func() bool { return len(srv.got()) == 3 && q.Stats().PendingRecords == 0 })
	if got := srv.got(); !reflect.DeepEqual(got, seq(0, 3)) {
		t.Fatalf("got %v", got)
	}
}

func TestNewValidates(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	cases := []struct {
		name string
		q    *queue.Queue
		o    Options
		ok   bool
	}{
		{"ok", q, Options{URL: "http://localhost:8080"}, true},
		{"https", q, Options{URL: "https://greenloop.example/"}, true},
		{"nil queue", nil, Options{URL: "http://localhost:8080"}, false},
		{"no URL", q, Options{}, false},
		{"bad scheme", q, Options{URL: "ftp://x"}, false},
		{"no host", q, Options{URL: "http://"}, false},
		{"negative", q, Options{URL: "http://x", MaxRecords: -1}, false},
		{"min above max", q, Options{URL: "http://x", MinBackoff: time.Minute, MaxBackoff: time.Second}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.q, tc.o)
			if (err == nil) != tc.ok {
				t.Errorf("New: err %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	f, err := New(q, Options{URL: "http://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	time.Sleep(20 * time.Millisecond)
	if err := f.Run(ctx); err == nil {
		t.Error("second Run succeeded")
	}
	cancel()
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	cases := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2", 2 * time.Second, true},
		{" 0 ", 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Minute).Format(http.TimeFormat), -time.Minute, true},
	}
	for _, tc := range cases {
		got, ok := retryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("retryAfter(%q) = %v, %v; want %v, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	q := openQueue(t, t.TempDir())
	defer q.Close()
	f, err := New(q, Options{URL: "http://x", MinBackoff: 100 * time.Millisecond, MaxBackoff: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 40 {
		d := f.backoff()
		ceil := min(100*time.Millisecond<<min(i, 10), 3*time.Second)
		if d < 100*time.Millisecond || d > ceil {
			t.Fatalf("attempt %d: %v outside [100ms, %v]", i, d, ceil)
		}
	}
	f.attempt = 0
	if d := f.backoff(); d != 100*time.Millisecond {
		t.Errorf("first backoff after reset %v", d)
	}
}

func TestEncodeEmpty(t *testing.T) {
	rec, err := Encode(nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decode(rec)
	if err != nil || len(got) != 0 {
		t.Errorf("decode(Encode(nil)) = %v, %v", got, err)
	}
}
