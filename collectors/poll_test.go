package collectors_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenloop/greenloop/collectors"
	"github.com/greenloop/greenloop/internal/sample"
)

// fakeClock is a clock tests move by hand. Advance fires the timers that come
// due, in order, and removes them before it returns, so that the number of
// pending timers tells when the pollers have re-armed theirs.
type fakeClock struct {
	mu     sync.Mutex
	now    time.Time
	timers map[int]*fakeTimer
	nextID int
}

type fakeTimer struct {
	at time.Time
	id int
	f  func()
}

var epoch = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

func newFakeClock() *fakeClock { return &fakeClock{now: epoch, timers: map[int]*fakeTimer{}} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.nextID++
	id := c.nextID
	c.timers[id] = &fakeTimer{at: c.now.Add(d), id: id, f: f}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, ok := c.timers[id]
		delete(c.timers, id)
		return ok
	}
}

// Advance moves the clock by d, firing every timer due on the way.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	end := c.now.Add(d)
	c.mu.Unlock()
	for c.fireNext(end) {
	}
	c.mu.Lock()
	c.now = end
	c.mu.Unlock()
}

// AdvanceToNext moves the clock to the earliest pending timer and fires
// every timer due then.
func (c *fakeClock) AdvanceToNext(t *testing.T) time.Time {
	t.Helper()
	c.mu.Lock()
	var next time.Time
	for _, tm := range c.timers {
		if next.IsZero() || tm.at.Before(next) {
			next = tm.at
		}
	}
	c.mu.Unlock()
	if next.IsZero() {
		t.Fatal("no pending timer")
	}
	c.Advance(next.Sub(c.Now()))
	return next
}

func (c *fakeClock) fireNext(end time.Time) bool {
	c.mu.Lock()
	var first *fakeTimer
	for _, tm := range c.timers {
		if !tm.at.After(end) && (first == nil || tm.at.Before(first.at) || tm.at.Equal(first.at) && tm.id < first.id) {
			first = tm
		}
	}
	if first == nil {
		c.mu.Unlock()
		return false
	}
	delete(c.timers, first.id)
	if first.at.After(c.now) {
		c.now = first.at
	}
	c.mu.Unlock()
	first.f()
	return true
}

func (c *fakeClock) pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// waitPending waits (in real time, briefly) until n timers are pending.
func (c *fakeClock) waitPending(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for c.pending() != n {
		if time.Now().After(deadline) {
			t.Fatalf("pending timers = %d, want %d", c.pending(), n)
		}
		time.Sleep(100 * time.Microsecond)
	}
}

// funcCollector is a Collector made of a function.
type funcCollector func(ctx context.Context, emit collectors.Emitter) error

func (f funcCollector) Collect(ctx context.Context, emit collectors.Emitter) error {
	return f(ctx, emit)
}

// batch is one call of the poller's emit.
type batch struct {
	target   string
	readings []collectors.Reading
}

// value returns the value of the first reading of metric, or fails.
func (b batch) value(t *testing.T, metric string) float64 {
	t.Helper()
	for _, r := range b.readings {
		if r.Metric == metric {
			return r.Value
		}
	}
	t.Fatalf("batch of %s has no %s: %v", b.target, metric, b.readings)
	return 0
}

// harness runs a poller on a fake clock and collects its batches.
type harness struct {
	t       *testing.T
	clock   *fakeClock
	poller  *collectors.Poller
	batches chan batch
	cancel  context.CancelFunc
	done    chan error
}

func startPoller(t *testing.T, targets []collectors.Target, opts collectors.PollerOptions) *harness {
	t.Helper()
	h := &harness{t: t, clock: newFakeClock(), batches: make(chan batch, 100), done: make(chan error, 1)}
	opts.Now, opts.AfterFunc = h.clock.Now, h.clock.AfterFunc
	if opts.Rand == nil {
		opts.Rand = func(int64) int64 { return 0 }
	}
	p, err := collectors.NewPoller(targets, opts)
	if err != nil {
		t.Fatal(err)
	}
	h.poller = p
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() {
		h.done <- p.Run(ctx, func(_ context.Context, rs []collectors.Reading) {
			h.batches <- batch{target: targetOf(rs), readings: rs}
		})
	}()
	t.Cleanup(h.stop)
	h.clock.waitPending(t, len(targets))
	return h
}

// stop cancels Run and waits (briefly) for it to return.
func (h *harness) stop() {
	h.t.Helper()
	h.cancel()
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run = %v", err)
		}
		h.done <- nil // for a second stop
	case <-time.After(5 * time.Second):
		h.t.Fatal("Run did not return after cancel")
	}
}

// next returns the next batch, failing after a while.
func (h *harness) next() batch {
	h.t.Helper()
	select {
	case b := <-h.batches:
		return b
	case <-time.After(5 * time.Second):
		h.t.Fatal("no batch")
		return batch{}
	}
}

// none checks that no batch is waiting.
func (h *harness) none() {
	h.t.Helper()
	select {
	case b := <-h.batches:
		h.t.Fatalf("unexpected batch of %s at %v", b.target, h.clock.Now())
	default:
	}
}

func targetOf(rs []collectors.Reading) string {
	for _, r := range rs {
		for _, l := range r.Labels {
			if l.Name == collectors.LabelTarget {
				return l.Value
			}
		}
	}
	return ""
}

// TestSlowTargetDoesNotDelayOthers: a fast target keeps its schedule while a
// hanging one times out (up 0, errors counted) and backs off.
func TestSlowTargetDoesNotDelayOthers(t *testing.T) {
	started := make(chan time.Time, 10)
	var clock *fakeClock
	fast := funcCollector(func(ctx context.Context, emit collectors.Emitter) error {
		emit.Emit(collectors.Reading{Metric: collectors.MetricPower, Labels: []sample.Label{{Name: "sensor", Value: "PSU1"}}, Value: 200})
		return nil
	})
	hang := funcCollector(func(ctx context.Context, emit collectors.Emitter) error {
		started <- clock.Now()
		<-ctx.Done()
		return ctx.Err()
	})
	site := []sample.Label{{Name: "site", Value: "fra1"}, {Name: "node", Value: "n1"}}
	offsets := map[int64]int64{}
	h := startPoller(t, []collectors.Target{
		{Name: "fast", Type: "test", Collector: fast, Interval: 10 * time.Second, Labels: site},
		{Name: "dead", Type: "test", Collector: hang, Interval: 10 * time.Second, Timeout: 2 * time.Second, Labels: site},
	}, collectors.PollerOptions{Rand: func(n int64) int64 { offsets[n]++; return int64(time.Second) }})
	clock = h.clock

	h.clock.Advance(time.Second) // both due
	b := h.next()
	if b.target != "fast" {
		t.Fatalf("first batch from %q, want fast", b.target)
	}
	if want := append(slices.Clone(site), sample.Label{Name: "sensor", Value: "PSU1"}); !slices.Equal(b.readings[0].Labels, want) {
		t.Errorf("labels %v, want %v", b.readings[0].Labels, want)
	}
	if !b.readings[0].Time.Equal(epoch.Add(time.Second)) {
		t.Errorf("reading time %v, want the poll's start", b.readings[0].Time)
	}
	if b.value(t, collectors.MetricCollectorUp) != 1 {
		t.Error("fast: up != 1")
	}
	<-started
	h.clock.waitPending(t, 3) // two schedules, one timeout
	h.none()

	h.clock.Advance(2 * time.Second) // 3s: dead times out
	b = h.next()
	if b.target != "dead" || b.value(t, collectors.MetricCollectorUp) != 0 || b.value(t, collectors.MetricCollectorErrors) != 1 {
		t.Fatalf("timed-out batch %v", b)
	}
	h.clock.waitPending(t, 2)

	// The fast target keeps polling every 10 s; the dead one comes back
	// after 2×, then 4× the interval (from when its poll was due).
	var deadPolls []time.Duration
	for h.clock.Now().Before(epoch.Add(63 * time.Second)) {
		at := h.clock.AdvanceToNext(t)
		switch s := at.Sub(epoch); s {
		case 21 * time.Second, 61 * time.Second: // both due
			select {
			case st := <-started:
				deadPolls = append(deadPolls, st.Sub(epoch))
			case <-time.After(5 * time.Second):
				t.Fatalf("at %v: dead target not polled", s)
			}
			if b := h.next(); b.target != "fast" || !b.readings[0].Time.Equal(at) {
				t.Fatalf("at %v: batch %v", s, b)
			}
			h.clock.waitPending(t, 3)
		case 23 * time.Second, 63 * time.Second: // dead times out
			if b := h.next(); b.target != "dead" || b.value(t, collectors.MetricCollectorUp) != 0 {
				t.Fatalf("at %v: batch %v", s, b)
			}
			h.clock.waitPending(t, 2)
		default:
			if b := h.next(); b.target != "fast" || (s-time.Second)%(10*time.Second) != 0 {
				t.Fatalf("at %v: batch %v", s, b)
			}
			h.clock.waitPending(t, 2)
		}
		h.none()
	}
	if want := []time.Duration{21 * time.Second, 61 * time.Second}; !slices.Equal(deadPolls, want) {
		t.Errorf("dead target polled at %v, want %v", deadPolls, want)
	}
	if offsets[int64(10*time.Second)] != 2 {
		t.Errorf("Rand calls %v, want two with the interval", offsets)
	}
	st := h.poller.Stats()
	if st[0].State != collectors.StateUp || st[0].Errors != 0 {
		t.Errorf("fast stats %+v", st[0])
	}
	if st[1].State != collectors.StateDown || st[1].Errors != 3 || st[1].ConsecutiveFailures != 3 || !errors.Is(st[1].LastError, context.DeadlineExceeded) {
		t.Errorf("dead stats %+v", st[1])
	}
}

// TestSkippedWhileRunning: a poll still running when the next is due makes
// that one skipped and counted, not queued.
func TestSkippedWhileRunning(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 10)
	slow := funcCollector(func(ctx context.Context, emit collectors.Emitter) error {
		started <- struct{}{}
		<-release // ignores ctx, the worst case
		emit.Emit(collectors.Reading{Metric: collectors.MetricPower, Value: 1})
		return nil
	})
	h := startPoller(t, []collectors.Target{{Name: "slow", Collector: slow, Interval: 10 * time.Second, Timeout: time.Second}}, collectors.PollerOptions{})
	h.clock.Advance(0)
	<-started
	h.clock.waitPending(t, 2) // schedule and timeout
	h.clock.Advance(time.Second)
	h.clock.waitPending(t, 1) // timed out, still running
	for i := 1; i <= 3; i++ {
		h.clock.Advance(9 * time.Second)
		h.clock.waitPending(t, 1)
		h.clock.Advance(time.Second)
		if got := h.poller.Stats()[0].Skipped; i == 3 && got != 3 {
			t.Errorf("skipped = %d after %d ticks", got, i)
		}
	}
	close(release)
	b := h.next()
	if b.value(t, collectors.MetricCollectorSkipped) != 3 || b.value(t, collectors.MetricCollectorUp) != 1 {
		t.Errorf("batch %v", b)
	}
	h.clock.waitPending(t, 1)
	h.clock.AdvanceToNext(t) // the next tick in phase: 40 s
	<-started
	if now := h.clock.Now(); !now.Equal(epoch.Add(40 * time.Second)) {
		t.Errorf("next poll at %v, want 40s", now.Sub(epoch))
	}
}

// TestBackoff: the wait after failures doubles up to 10× the interval and
// resets after a success.
func TestBackoff(t *testing.T) {
	for _, tc := range []struct {
		name       string
		maxBackoff time.Duration
		fails      int
		want       []time.Duration // waits between polls
	}{
		{"grows to 10x", 0, 6, []time.Duration{20, 40, 80, 100, 100, 100, 10, 10}},
		{"capped by option", 30 * time.Second, 3, []time.Duration{20, 30, 30, 10, 10}},
		{"disabled", time.Second, 3, []time.Duration{10, 10, 10, 10}},
		{"one failure", 0, 1, []time.Duration{20, 10, 10}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			calls := 0
			c := funcCollector(func(ctx context.Context, emit collectors.Emitter) error {
				mu.Lock()
				defer mu.Unlock()
				calls++
				if calls <= tc.fails {
					return errors.New("connection refused")
				}
				return nil
			})
			h := startPoller(t, []collectors.Target{{Name: "t", Collector: c, Interval: 10 * time.Second}},
				collectors.PollerOptions{MaxBackoff: tc.maxBackoff})
			var at []time.Time
			for range len(tc.want) + 1 {
				at = append(at, h.clock.AdvanceToNext(t))
				h.next()
				h.clock.waitPending(t, 1)
			}
			var got []time.Duration
			for i := 1; i < len(at); i++ {
				got = append(got, at[i].Sub(at[i-1])/time.Second)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("waits %v s, want %v s", got, tc.want)
			}
		})
	}
}

// TestJitter: first polls come at the offsets the rand source gives, within
// the interval.
func TestJitter(t *testing.T) {
	var targets []collectors.Target
	want := map[string]time.Duration{}
	offsets := []int64{}
	for i := range 5 {
		name := fmt.Sprintf("t%d", i)
		targets = append(targets, collectors.Target{Name: name, Collector: funcCollector(func(context.Context, collectors.Emitter) error { return nil }), Interval: 10 * time.Second})
		want[name] = time.Duration(7*i%5) * 2 * time.Second
		offsets = append(offsets, int64(want[name]))
	}
	h := startPoller(t, targets, collectors.PollerOptions{Rand: func(n int64) int64 {
		if n != int64(10*time.Second) {
			t.Errorf("Rand(%d), want the interval", n)
		}
		o := offsets[0]
		offsets = offsets[1:]
		return o
	}})
	// Offsets are drawn in the order of the targets.
	for range 5 {
		at := h.clock.AdvanceToNext(t)
		b := h.next()
		if got := at.Sub(epoch); got != want[b.target] {
			t.Errorf("%s first polled at %v, want %v", b.target, got, want[b.target])
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the poller's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSpace(s.b.String()), "\n")
}

// TestThrottledLogs: a target failing the same way every poll logs once per
// window, then once more with the count of lines held back.
func TestThrottledLogs(t *testing.T) {
	var logs syncBuffer
	partial := funcCollector(func(ctx context.Context, emit collectors.Emitter) error {
		emit.Emit(collectors.Reading{Metric: collectors.MetricPower, Value: 1})
		return errors.New("hwmon3/power2_input: read error")
	})
	h := startPoller(t, []collectors.Target{{Name: "hwmon", Type: "hwmon", Collector: partial, Interval: 10 * time.Second}},
		collectors.PollerOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil)), LogEvery: 5 * time.Minute})
	for i := range 31 { // 0 s .. 300 s
		h.clock.AdvanceToNext(t)
		b := h.next()
		if b.value(t, collectors.MetricCollectorUp) != 0 || b.value(t, collectors.MetricCollectorErrors) != float64(i+1) || len(b.readings) != 5 {
			t.Fatalf("poll %d: batch %v", i, b)
		}
		h.clock.waitPending(t, 1)
		if i == 0 {
			if l := logs.lines(); len(l) != 1 || !strings.Contains(l[0], `err="hwmon3/power2_input: read error"`) || strings.Contains(l[0], "suppressed") {
				t.Fatalf("after the first failure, logs %q", l)
			}
		}
	}
	l := logs.lines()
	if len(l) != 2 || !strings.Contains(l[1], "suppressed=29") || !strings.Contains(l[1], "target=hwmon") {
		t.Errorf("logs %q: want 2 lines, the second with suppressed=29", l)
	}
}

// TestPollOnceOutcomes: how each kind of Collect outcome is read.
func TestPollOnceOutcomes(t *testing.T) {
	reading := collectors.Reading{Metric: collectors.MetricPower, Value: 5}
	for _, tc := range []struct {
		name     string
		collect  funcCollector
		state    collectors.State
		up       float64
		errors   float64
		readings int
		log      string
	}{
		{"ok", func(_ context.Context, e collectors.Emitter) error { e.Emit(reading); return nil }, collectors.StateUp, 1, 0, 1, ""},
		{"no data", func(context.Context, collectors.Emitter) error {
			return fmt.Errorf("rapl: no powercap tree: %w", collectors.ErrNoData)
		}, collectors.StateNoData, 1, 0, 0, "nothing to read"},
		{"partial", func(_ context.Context, e collectors.Emitter) error {
			e.Emit(reading)
			return errors.New("zone 2 unreadable")
		},
			collectors.StatePartial, 0, 1, 1, "zone 2 unreadable"},
		{"down", func(context.Context, collectors.Emitter) error { return errors.New("no route to host") },
			collectors.StateDown, 0, 1, 0, "no route to host"},
		{"panic", func(context.Context, collectors.Emitter) error { panic("nil map") }, collectors.StateDown, 0, 1, 0, "collector panicked: nil map"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs syncBuffer
			p, err := collectors.NewPoller([]collectors.Target{{Name: "x", Type: "test", Collector: tc.collect}},
				collectors.PollerOptions{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			var bs []batch
			for range 2 {
				p.PollOnce(context.Background(), func(_ context.Context, rs []collectors.Reading) { bs = append(bs, batch{"x", rs}) })
			}
			st := p.Stats()[0]
			if st.State != tc.state || st.Readings != tc.readings {
				t.Errorf("stats %+v, want state %v", st, tc.state)
			}
			b := bs[0]
			if len(b.readings) != tc.readings+4 || b.value(t, collectors.MetricCollectorUp) != tc.up || b.value(t, collectors.MetricCollectorErrors) != tc.errors {
				t.Errorf("batch %v", b.readings)
			}
			l := logs.lines()
			switch {
			case tc.log == "" && l[0] != "":
				t.Errorf("logs %q, want none", l)
			case tc.log != "" && (len(l) != 1 || !strings.Contains(l[0], tc.log)):
				t.Errorf("logs %q, want one line with %q", l, tc.log)
			}
		})
	}
}

// TestNoDataIsNotAFailure: absent hardware keeps the normal schedule.
func TestNoDataIsNotAFailure(t *testing.T) {
	c := funcCollector(func(context.Context, collectors.Emitter) error { return collectors.ErrNoData })
	h := startPoller(t, []collectors.Target{{Name: "gpu", Collector: c, Interval: 10 * time.Second}}, collectors.PollerOptions{})
	var at []time.Time
	for range 3 {
		at = append(at, h.clock.AdvanceToNext(t))
		if b := h.next(); len(b.readings) != 4 || b.value(t, collectors.MetricCollectorUp) != 1 {
			t.Fatalf("batch %v", b.readings)
		}
		h.clock.waitPending(t, 1)
	}
	if at[2].Sub(at[0]) != 20*time.Second {
		t.Errorf("polls at %v: want every 10 s", at)
	}
}

// TestRunStopsWithPollsInFlight: cancel returns Run promptly, the polls in
// flight see the cancelled context, nothing more is emitted, and no
// goroutine is left behind.
func TestRunStopsWithPollsInFlight(t *testing.T) {
	before := runtime.NumGoroutine()
	started := make(chan struct{}, 20)
	hang := funcCollector(func(ctx context.Context, emit collectors.Emitter) error {
		started <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	})
	var targets []collectors.Target
	for i := range 8 {
		targets = append(targets, collectors.Target{Name: fmt.Sprint(i), Collector: hang, Interval: time.Minute})
	}
	// Only 4 run at once: the other 4 wait for a slot when Run stops.
	h := startPoller(t, targets, collectors.PollerOptions{MaxConcurrent: 4})
	h.clock.Advance(0)
	for range 4 {
		<-started
	}
	h.clock.waitPending(t, 8+4)
	t0 := time.Now()
	h.stop()
	if d := time.Since(t0); d > time.Second {
		t.Errorf("Run took %v to stop", d)
	}
	h.none()
	if n := len(started); n != 0 {
		t.Errorf("%d polls started after the stop", n)
	}
	if n := h.clock.pending(); n != 0 {
		t.Errorf("%d timers left pending", n)
	}
	deadline := time.Now().Add(2 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines %d > %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRealClock runs the defaults (time.AfterFunc, math/rand) briefly.
func TestRealClock(t *testing.T) {
	polls := make(chan struct{}, 100)
	c := funcCollector(func(context.Context, collectors.Emitter) error { polls <- struct{}{}; return nil })
	p, err := collectors.NewPoller([]collectors.Target{{Name: "a", Collector: c, Interval: 2 * time.Millisecond}}, collectors.PollerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx, func(context.Context, []collectors.Reading) {}) }()
	for range 3 {
		select {
		case <-polls:
		case <-time.After(5 * time.Second):
			t.Fatal("no poll")
		}
	}
	if err := p.Run(ctx, nil); !errors.Is(err, collectors.ErrRunning) {
		t.Errorf("second Run = %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}

func TestNewPollerChecks(t *testing.T) {
	c := funcCollector(func(context.Context, collectors.Emitter) error { return nil })
	_, err := collectors.NewPoller([]collectors.Target{
		{Name: "a", Collector: c}, {Name: "a", Collector: c}, {Collector: c}, {Name: "b"}, {Name: "c", Collector: c, Interval: -1},
	}, collectors.PollerOptions{})
	for _, want := range []string{`"a": name used twice`, "target 2: no name", `"b": no collector`, `"c": negative`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v, want it to say %s", err, want)
		}
	}
}

func TestMetricsCollector(t *testing.T) {
	c := funcCollector(func(context.Context, collectors.Emitter) error { return errors.New("boom") })
	p, err := collectors.NewPoller([]collectors.Target{
		{Name: "bmc-1", Type: "redfish", Collector: c}, {Name: "rapl-1", Type: "rapl", Collector: c},
	}, collectors.PollerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(p.Metrics())
	if mfs, err := reg.Gather(); err != nil || len(mfs) != 0 {
		t.Errorf("before any poll: %v, %v; want nothing", mfs, err)
	}
	p.PollOnce(context.Background(), func(context.Context, []collectors.Reading) {})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, l := range m.GetLabel() {
				ls = append(ls, l.GetName()+"="+l.GetValue())
			}
			v := m.GetGauge().GetValue() + m.GetCounter().GetValue()
			got[mf.GetName()+"{"+strings.Join(ls, ",")+"}"] = fmt.Sprint(v)
		}
	}
	want := map[string]string{
		"greenloop_collector_up{target=bmc-1,type=redfish}":            "0",
		"greenloop_collector_errors_total{target=bmc-1,type=redfish}":  "1",
		"greenloop_collector_skipped_total{target=bmc-1,type=redfish}": "0",
		"greenloop_collector_up{target=rapl-1,type=rapl}":              "0",
		"greenloop_collector_errors_total{target=rapl-1,type=rapl}":    "1",
		"greenloop_collector_skipped_total{target=rapl-1,type=rapl}":   "0",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q (all: %v)", k, got[k], v, got)
		}
	}
}

// ExamplePoller_PollOnce polls a RAPL-like target and one without hardware
// once, as `greenloop collect --once` does.
func ExamplePoller_PollOnce() {
	rapl := funcCollector(func(ctx context.Context, emit collectors.Emitter) error {
		emit.Emit(collectors.Reading{Metric: collectors.MetricPower, Value: 42.5,
			Labels: []sample.Label{{Name: collectors.LabelSource, Value: "rapl"}, {Name: collectors.LabelSensor, Value: "intel-rapl:0"}}})
		return nil
	})
	gpu := funcCollector(func(context.Context, collectors.Emitter) error {
		return fmt.Errorf("gpu: no NVML library: %w", collectors.ErrNoData)
	})
	site := []sample.Label{{Name: "site", Value: "fra1"}, {Name: "node", Value: "n1"}}
	p, err := collectors.NewPoller([]collectors.Target{
		{Name: "rapl", Type: "rapl", Collector: rapl, Labels: site},
		{Name: "gpu", Type: "gpu", Collector: gpu, Labels: site},
	}, collectors.PollerOptions{Now: func() time.Time { return epoch }})
	if err != nil {
		panic(err)
	}
	var mu sync.Mutex
	var lines []string
	stats := p.PollOnce(context.Background(), func(_ context.Context, rs []collectors.Reading) {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range rs {
			lines = append(lines, r.String())
		}
	})
	slices.Sort(lines)
	fmt.Println(strings.Join(lines, "\n"))
	for _, st := range stats {
		fmt.Println(st.Name, st.State)
	}
	// Output:
	// greenloop_collector_duration_seconds{site="fra1",node="n1",target="gpu",type="gpu"} 0
	// greenloop_collector_duration_seconds{site="fra1",node="n1",target="rapl",type="rapl"} 0
	// greenloop_collector_errors_total{site="fra1",node="n1",target="gpu",type="gpu"} 0
	// greenloop_collector_errors_total{site="fra1",node="n1",target="rapl",type="rapl"} 0
	// greenloop_collector_skipped_total{site="fra1",node="n1",target="gpu",type="gpu"} 0
	// greenloop_collector_skipped_total{site="fra1",node="n1",target="rapl",type="rapl"} 0
	// greenloop_collector_up{site="fra1",node="n1",target="gpu",type="gpu"} 1
	// greenloop_collector_up{site="fra1",node="n1",target="rapl",type="rapl"} 1
	// greenloop_power_watts{site="fra1",node="n1",source="rapl",sensor="intel-rapl:0"} 42.5
	// rapl up
	// gpu no_data
}
