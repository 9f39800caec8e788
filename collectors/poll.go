package collectors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenloop/greenloop/internal/sample"
)

// Self-metrics the poller keeps for every target, with labels target and type.
const (
	// MetricCollectorUp is 1 when the target's last poll succeeded or found
	// no hardware (ErrNoData), 0 when it failed, timed out or was partial.
	MetricCollectorUp = "greenloop_collector_up"
	// MetricCollectorDuration is how long the target's last poll took.
	MetricCollectorDuration = "greenloop_collector_duration_seconds"
	// MetricCollectorErrors counts the target's failed polls.
	MetricCollectorErrors = "greenloop_collector_errors_total"
	// MetricCollectorSkipped counts the polls not started because the
	// target's previous poll was still running when they were due.
	MetricCollectorSkipped = "greenloop_collector_skipped_total"
)

// Labels of the self-metrics.
const (
	LabelTarget = "target"
	LabelType   = "type"
)

// Defaults of Target and PollerOptions fields left zero.
const (
	DefaultInterval      = 10 * time.Second
	DefaultMaxConcurrent = 16
	DefaultMaxBackoff    = 5 * time.Minute
	DefaultLogEvery      = 5 * time.Minute
)

// Target is one collector the poller runs on its own schedule.
type Target struct {
	// Name is unique among the poller's targets; it is the target label.
	Name string
	// Type is the collector type ("rapl", ...); it is the type label.
	Type string
	// Collector reads the target.
	Collector Collector
	// Interval between polls; zero means DefaultInterval.
	Interval time.Duration
	// Timeout of one poll; zero means 80 % of Interval. A Timeout over the
	// Interval makes slow polls skip the ticks they overrun.
	Timeout time.Duration
	// Labels are added, in front, to every reading of the target and to its
	// self-metric readings: site, node and any extra labels configured.
	Labels []sample.Label
}

// PollerOptions tune a Poller. The zero value is usable.
type PollerOptions struct {
	// MaxConcurrent bounds the polls running at once, over all targets;
	// zero means DefaultMaxConcurrent.
	MaxConcurrent int
	// MaxBackoff caps the wait after failed polls; the wait doubles with
	// every failure in a row, from 2×Interval, up to the smaller of
	// 10×Interval and MaxBackoff, but never under Interval (so a MaxBackoff
	// up to the Interval turns backoff off). Zero means DefaultMaxBackoff.
	MaxBackoff time.Duration
	// LogEvery is the window of the error log throttle: one line per target
	// and error message per window, with the count of lines held back. Zero
	// means DefaultLogEvery.
	LogEvery time.Duration
	// Logger receives the poller's logs; nil discards them.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AfterFunc calls f after d, in its own goroutine, unless stop is called
	// first (stop reports whether it prevented the call); nil means
	// time.AfterFunc. Tests pass a fake clock.
	AfterFunc func(d time.Duration, f func()) (stop func() bool)
	// Rand returns a number in [0, n), for the offset of every target's
	// first poll, drawn in the order of the targets when Run starts; nil
	// means math/rand/v2.Int64N.
	Rand func(n int64) int64
}

// State is where a target stands after its last poll.
type State int

// States of a target.
const (
	StatePending State = iota // not polled yet
	StateUp                   // the last poll read everything
	StateNoData               // the last poll found nothing to read (ErrNoData): up, no readings
	StatePartial              // the last poll emitted readings and returned an error
	StateDown                 // the last poll failed or timed out without a reading
)

var stateNames = [...]string{"pending", "up", "no_data", "partial", "down"}

func (s State) String() string {
	if s < 0 || int(s) >= len(stateNames) {
		return fmt.Sprintf("State(%d)", int(s))
	}
	return stateNames[s]
}

// up is the value of greenloop_collector_up for the state.
func (s State) up() float64 {
	if s == StateUp || s == StateNoData {
		return 1
	}
	return 0
}

// TargetStats is a snapshot of one target's self-metrics.
type TargetStats struct {
	Name, Type string
	State      State
	// LastError is the last poll's error (nil when it succeeded); with
	// StateNoData it wraps ErrNoData.
	LastError error
	// LastPoll is when the last poll started; Duration how long it ran.
	LastPoll time.Time
	Duration time.Duration
	// Readings is how many readings the last poll emitted (self-metrics not counted).
	Readings int
	// Errors counts failed polls (partial ones included), Skipped the polls
	// skipped because the previous one was still running, and
	// ConsecutiveFailures the polls in a row that failed without a reading
	// (the backoff exponent).
	Errors, Skipped     uint64
	ConsecutiveFailures int
}

// Poller runs every target on its own schedule. Build it with NewPoller.
type Poller struct {
	targets   []*target
	sem       chan struct{}
	log       *slog.Logger
	now       func() time.Time
	afterFunc func(time.Duration, func()) func() bool
	rand      func(int64) int64
	throttle  *logThrottle

	runMu   sync.Mutex
	running bool

	descUp, descDuration, descErrors, descSkipped *prometheus.Desc
}

// target is a Target with its defaults filled in and its statistics.
type target struct {
	Target
	maxBackoff time.Duration

	mu    sync.Mutex
	stats TargetStats
}

// NewPoller checks the targets (a name, unique, a collector, no negative
// durations; every problem is reported) and returns a poller for them.
func NewPoller(targets []Target, opts PollerOptions) (*Poller, error) {
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	if opts.LogEvery <= 0 {
		opts.LogEvery = DefaultLogEvery
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.AfterFunc == nil {
		opts.AfterFunc = func(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }
	}
	if opts.Rand == nil {
		opts.Rand = rand.Int64N
	}
	p := &Poller{
		sem:       make(chan struct{}, opts.MaxConcurrent),
		log:       opts.Logger,
		now:       opts.Now,
		afterFunc: opts.AfterFunc,
		rand:      opts.Rand,
		throttle:  newLogThrottle(opts.LogEvery, opts.Now),
	}
	var errs []error
	seen := map[string]bool{}
	for i, t := range targets {
		switch {
		case t.Name == "":
			errs = append(errs, fmt.Errorf("target %d: no name", i))
		case seen[t.Name]:
			errs = append(errs, fmt.Errorf("target %q: name used twice", t.Name))
		}
		seen[t.Name] = true
		if t.Collector == nil {
			errs = append(errs, fmt.Errorf("target %q: no collector", t.Name))
		}
		if t.Interval < 0 || t.Timeout < 0 {
			errs = append(errs, fmt.Errorf("target %q: negative interval or timeout", t.Name))
		}
		if t.Interval == 0 {
			t.Interval = DefaultInterval
		}
		if t.Timeout == 0 {
			t.Timeout = t.Interval - t.Interval/5
		}
		t.Labels = slices.Clone(t.Labels)
		tg := &target{Target: t, maxBackoff: max(t.Interval, min(10*t.Interval, opts.MaxBackoff))}
		tg.stats = TargetStats{Name: t.Name, Type: t.Type}
		p.targets = append(p.targets, tg)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("collectors: poller: %w", err)
	}
	labels := []string{LabelTarget, LabelType}
	p.descUp = prometheus.NewDesc(MetricCollectorUp, "1 if the target's last poll succeeded or found no hardware, 0 if it failed.", labels, nil)
	p.descDuration = prometheus.NewDesc(MetricCollectorDuration, "How long the target's last poll took.", labels, nil)
	p.descErrors = prometheus.NewDesc(MetricCollectorErrors, "Failed polls of the target.", labels, nil)
	p.descSkipped = prometheus.NewDesc(MetricCollectorSkipped, "Polls of the target skipped because the previous one was still running.", labels, nil)
	return p, nil
}

// EmitFunc receives the readings of one poll of one target: the collector's,
// with the target's labels in front, then the target's self-metrics. It is
// called from several goroutines at once, must be safe for that, and may keep
// the slice. ctx is Run's context.
type EmitFunc func(ctx context.Context, readings []Reading)

// ErrRunning is returned by Run when the poller is already running.
var ErrRunning = errors.New("collectors: poller already running")

// Run polls every target on its schedule until ctx is cancelled, hands each
// poll's batch to emit, and returns nil once every poll in flight has
// returned (they get the cancelled context). A poll cut short by the
// cancellation is dropped: neither emitted nor counted.
//
// Schedule: a target's first poll comes at a random offset in [0, Interval),
// then every Interval. A poll still running (or still waiting for one of
// the MaxConcurrent slots; its Timeout starts with the slot) when the next
// one is due makes that one skipped (and counted), never queued; the next
// poll after it keeps the phase of the schedule. After a poll that failed
// without a reading, the next waits 2×Interval, doubling with every failure
// in a row up to the backoff cap; the first success resets it. ErrNoData is
// not a failure: up is 1 and the batch holds only the self-metrics. A
// collector that returned an error but emitted readings (a partial poll) has
// its readings passed on, up 0 and the error counted, and is not backed off.
//
// emit is called on the target's own goroutine: while it blocks, that target
// waits and the others go on. A Collect that ignores its context holds up
// the return of Run, as Collect's contract asks it to honour ctx.
func (p *Poller) Run(ctx context.Context, emit EmitFunc) error {
	p.runMu.Lock()
	if p.running {
		p.runMu.Unlock()
		return ErrRunning
	}
	p.running = true
	p.runMu.Unlock()
	defer func() {
		p.runMu.Lock()
		p.running = false
		p.runMu.Unlock()
	}()

	var wg sync.WaitGroup
	for _, t := range p.targets {
		offset := time.Duration(p.rand(int64(t.Interval))) // here: Rand need not be safe for concurrent use
		wg.Go(func() { p.runTarget(ctx, t, offset, emit) })
	}
	wg.Wait()
	return nil
}

// PollOnce polls every target once, at once (within MaxConcurrent), hands
// each batch to emit, and returns every target's statistics when all polls
// have returned. It is for `greenloop collect --once`; do not call it while
// Run runs.
func (p *Poller) PollOnce(ctx context.Context, emit EmitFunc) []TargetStats {
	var wg sync.WaitGroup
	for _, t := range p.targets {
		wg.Go(func() {
			if r := p.poll(ctx, t); r.batch != nil {
				emit(ctx, r.batch)
			}
		})
	}
	wg.Wait()
	return p.Stats()
}

// Stats returns a snapshot of every target's statistics, in the order the
// targets were given.
func (p *Poller) Stats() []TargetStats {
	out := make([]TargetStats, len(p.targets))
	for i, t := range p.targets {
		t.mu.Lock()
		out[i] = t.stats
		t.mu.Unlock()
	}
	return out
}

// runTarget is one target's scheduler. It owns at most one poll goroutine
// and one pending timer at a time, calls emit itself (so a slow emit delays
// this target only), and returns when ctx is done and its poll has returned.
func (p *Poller) runTarget(ctx context.Context, t *target, offset time.Duration, emit EmitFunc) {
	tick := make(chan struct{}, 1)
	stop := func() bool { return false }
	// arm replaces the pending timer by one that ticks at the time at, or,
	// if at has passed, at the next time in phase with it.
	arm := func(at time.Time) time.Time {
		now := p.now()
		if at.Before(now) {
			at = at.Add((now.Sub(at)/t.Interval + 1) * t.Interval)
		}
		stop()
		for len(tick) > 0 {
			<-tick // a tick of the timer replaced, already sent
		}
		stop = p.afterFunc(at.Sub(now), func() {
			select {
			case tick <- struct{}{}:
			default:
			}
		})
		return at
	}
	defer func() { stop() }()

	var (
		done    chan pollResult // non-nil while a poll runs
		pollDue time.Time       // when the running or last poll was due
	)
	due := arm(p.now().Add(offset))
	for {
		select {
		case <-ctx.Done():
			if done != nil {
				<-done
			}
			return
		case <-tick:
			if done != nil {
				t.mu.Lock()
				t.stats.Skipped++
				t.mu.Unlock()
				due = arm(due.Add(t.Interval))
				continue
			}
			pollDue = due
			due = arm(due.Add(t.Interval)) // armed first: it also marks skipped polls
			done = make(chan pollResult, 1)
			go func(done chan<- pollResult) { done <- p.poll(ctx, t) }(done)
		case r := <-done:
			done = nil
			if r.batch == nil {
				continue // shutting down
			}
			if r.failures > 0 {
				wait := t.Interval
				for range r.failures {
					if wait >= t.maxBackoff {
						break
					}
					wait *= 2
				}
				due = arm(pollDue.Add(min(wait, t.maxBackoff)))
			}
			emit(ctx, r.batch)
		}
	}
}

// pollResult is a finished poll: its batch (nil when it was cut short by
// the end of Run) and, for the backoff, its target's failed polls in a row.
type pollResult struct {
	batch    []Reading
	failures int
}

// poll runs one poll of t and records and logs its outcome.
func (p *Poller) poll(ctx context.Context, t *target) pollResult {
	select {
	case p.sem <- struct{}{}:
	case <-ctx.Done():
		return pollResult{}
	}
	if ctx.Err() != nil { // select picks at random when both are ready
		<-p.sem
		return pollResult{}
	}
	start := p.now()
	readings, err := p.collect(ctx, t, start)
	dur := p.now().Sub(start)
	<-p.sem
	if ctx.Err() != nil {
		return pollResult{} // shutting down: not the target's fault
	}

	state := StateUp
	switch {
	case err == nil:
	case errors.Is(err, ErrNoData):
		state = StateNoData
	case len(readings) > 0:
		state = StatePartial
	default:
		state = StateDown
	}

	t.mu.Lock()
	prev := t.stats.State
	st := &t.stats
	st.State, st.LastError, st.LastPoll, st.Duration, st.Readings = state, err, start, dur, len(readings)
	if state == StatePartial || state == StateDown {
		st.Errors++
	}
	if state == StateDown {
		st.ConsecutiveFailures++
	} else {
		st.ConsecutiveFailures = 0
	}
	stats := *st
	t.mu.Unlock()

	p.logOutcome(t, prev, stats)
	return pollResult{batch: append(readings, p.selfReadings(t, stats, p.now())...), failures: stats.ConsecutiveFailures}
}

// collect calls the collector under the target's timeout and returns its
// readings, labelled, and its error. A panic is an error, not a crash.
func (p *Poller) collect(ctx context.Context, t *target, start time.Time) (readings []Reading, err error) {
	// The deadline is in the context for collectors that pass it on (socket
	// deadlines); the timer on the poller's clock is what tests drive.
	base, cancelBase := context.WithCancelCause(ctx)
	defer cancelBase(nil)
	pctx, cancel := context.WithTimeout(base, t.Timeout)
	defer cancel()
	stop := p.afterFunc(t.Timeout, func() { cancelBase(context.DeadlineExceeded) })
	defer stop()

	defer func() {
		if v := recover(); v != nil {
			err = fmt.Errorf("collector panicked: %v", v)
		}
		if err != nil && pctx.Err() != nil && ctx.Err() == nil {
			// A stable message, so that the log throttle groups repeats.
			err = fmt.Errorf("poll timed out after %s: %w", t.Timeout, context.DeadlineExceeded)
		}
	}()
	err = t.Collector.Collect(pctx, EmitterFunc(func(r Reading) {
		ls := make([]sample.Label, 0, len(t.Labels)+len(r.Labels))
		r.Labels = append(append(ls, t.Labels...), r.Labels...)
		if r.Time.IsZero() {
			r.Time = start
		}
		readings = append(readings, r)
	}))
	return readings, err
}

// logOutcome logs failures through the throttle, and the changes of state
// worth a line: into no data, and back up after failures.
func (p *Poller) logOutcome(t *target, prev State, st TargetStats) {
	switch st.State {
	case StatePartial, StateDown:
		msg := st.LastError.Error()
		ok, suppressed := p.throttle.allow(t.Name, msg)
		if !ok {
			return
		}
		args := []any{"target", t.Name, "type", t.Type, "state", st.State.String(), "err", msg,
			"failures_in_a_row", st.ConsecutiveFailures}
		if suppressed > 0 {
			args = append(args, "suppressed", suppressed)
		}
		p.log.Warn("collector poll failed", args...)
	case StateNoData:
		if prev != StateNoData {
			p.log.Info("collector has nothing to read here", "target", t.Name, "type", t.Type, "reason", st.LastError.Error())
		}
	case StateUp:
		if prev == StatePartial || prev == StateDown {
			p.log.Info("collector recovered", "target", t.Name, "type", t.Type, "errors_total", st.Errors)
		}
	}
}

// selfReadings are the target's self-metrics as readings, for the batch.
func (p *Poller) selfReadings(t *target, st TargetStats, now time.Time) []Reading {
	r := func(metric string, v float64) Reading {
		ls := make([]sample.Label, 0, len(t.Labels)+2)
		ls = append(append(ls, t.Labels...), sample.Label{Name: LabelTarget, Value: t.Name}, sample.Label{Name: LabelType, Value: t.Type})
		return Reading{Metric: metric, Labels: ls, Value: v, Time: now}
	}
	return []Reading{
		r(MetricCollectorUp, st.State.up()),
		r(MetricCollectorDuration, st.Duration.Seconds()),
		r(MetricCollectorErrors, float64(st.Errors)),
		r(MetricCollectorSkipped, float64(st.Skipped)),
	}
}

// Metrics returns the self-metrics of every target polled at least once as a
// prometheus.Collector, for the agent's /metrics registry. They carry the
// labels target and type only: the site and node of an agent's own /metrics
// are the scraper's to add. (The same series, with the target's labels, are
// in every poll's batch, so they reach the server too.)
func (p *Poller) Metrics() prometheus.Collector { return pollerMetrics{p} }

type pollerMetrics struct{ p *Poller }

// Describe implements prometheus.Collector.
func (m pollerMetrics) Describe(ch chan<- *prometheus.Desc) {
	p := m.p
	ch <- p.descUp
	ch <- p.descDuration
	ch <- p.descErrors
	ch <- p.descSkipped
}

// Collect implements prometheus.Collector.
func (m pollerMetrics) Collect(ch chan<- prometheus.Metric) {
	p := m.p
	for _, st := range p.Stats() {
		if st.State == StatePending {
			continue
		}
		lv := []string{st.Name, st.Type}
		ch <- prometheus.MustNewConstMetric(p.descUp, prometheus.GaugeValue, st.State.up(), lv...)
		ch <- prometheus.MustNewConstMetric(p.descDuration, prometheus.GaugeValue, st.Duration.Seconds(), lv...)
		ch <- prometheus.MustNewConstMetric(p.descErrors, prometheus.CounterValue, float64(st.Errors), lv...)
		ch <- prometheus.MustNewConstMetric(p.descSkipped, prometheus.CounterValue, float64(st.Skipped), lv...)
	}
}
