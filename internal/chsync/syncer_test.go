package chsync_test

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/greenloop/greenloop/internal/chsync"
)

// fakeTable is what a Syncer reads: the next Load's answer.
type fakeTable struct {
	mu    sync.Mutex
	items []string
	bad   []error
	err   error
	loads int
}

func (f *fakeTable) set(items []string, bad []error, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.items, f.bad, f.err = items, bad, err
}

func (f *fakeTable) load(context.Context) ([]string, []error, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.loads++
	return f.items, f.bad, f.err
}

// records is a slog.Handler that keeps each record's level, message and
// attributes (as "key=value" joined by spaces), for the Syncer's and the
// test's goroutines.
type records struct {
	mu    sync.Mutex
	lines []string
}

func (r *records) Enabled(context.Context, slog.Level) bool { return true }
func (r *records) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *records) WithGroup(string) slog.Handler            { return r }

func (r *records) Handle(_ context.Context, rec slog.Record) error {
	line := rec.Level.String() + " " + rec.Message
	rec.Attrs(func(a slog.Attr) bool {
		line += " " + a.String()
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines = append(r.lines, line)
	return nil
}

// count returns how many records start with prefix.
func (r *records) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.lines {
		if strings.HasPrefix(l, prefix) {
			n++
		}
	}
	return n
}

func (r *records) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.lines, "\n")
}

// values returns every metric of reg by name, the value of its one series.
func values(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]float64, len(mfs))
	for _, mf := range mfs {
		m := mf.GetMetric()
		if len(m) != 1 {
			t.Fatalf("%s: %d series, want 1", mf.GetName(), len(m))
		}
		out[mf.GetName()] = m[0].GetGauge().GetValue() + m[0].GetCounter().GetValue()
	}
	return out
}

// newSyncer returns a Syncer of "widgets" over tbl, whose Apply records what
// it applied and skips the items named "dup".
func newSyncer(t *testing.T, tbl *fakeTable, o chsync.Options) (*chsync.Syncer[string], *[][]string) {
	t.Helper()
	applied := new([][]string)
	s, err := chsync.New(chsync.Spec[string]{
		Noun: "widgets",
		Load: tbl.load,
		Apply: func(items []string) (int, []error) {
			var kept []string
			var skipped []error
			for _, it := range items {
				if it == "dup" {
					skipped = append(skipped, errors.New("widget dup skipped: taken"))
					continue
				}
				kept = append(kept, it)
			}
			*applied = append(*applied, kept)
			return len(kept), skipped
		},
		BadRowMsg:    "bad widget row skipped",
		BadRowLevel:  slog.LevelWarn,
		LoadedAttrs:  []any{"shelf", 7},
		MetricPrefix: "test_widgets",
		BadRowsHelp:  "Widget rows skipped.",
		InForce:      prometheus.NewGauge(prometheus.GaugeOpts{Name: "test_widgets", Help: "Widgets in force."}),
	}, o)
	if err != nil {
		t.Fatal(err)
	}
	return s, applied
}

func TestSyncerRefresh(t *testing.T) {
	tbl := &fakeTable{}
	reg := prometheus.NewRegistry()
	logs := &records{}
	start := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	now := start
	s, applied := newSyncer(t, tbl, chsync.Options{
		Registerer: reg, Logger: slog.New(logs), Clock: func() time.Time { return now },
	})
	if s.InForce() != -1 {
		t.Errorf("InForce before a refresh: %d, want -1", s.InForce())
	}
	badRow := errors.New(`widgets row "x" skipped: bent`)
	down := errors.New("dial tcp: connection refused")
	for _, st := range []struct {
		name      string
		items     []string
		bad       []error
		err       error
		clock     time.Duration // since start
		applied   int           // sets applied so far
		inForce   int
		errors    float64
		badRows   float64
		logFailed int // "refreshing widgets from ClickHouse failed" lines so far
		logBad    int // "bad widget row skipped" lines so far
		logLoaded int // "widgets loaded from ClickHouse" lines so far
		logAgain  int // "widgets refreshed from ClickHouse again" lines so far
	}{
		{name: "first", items: []string{"a", "b"}, applied: 1, inForce: 2, logLoaded: 1},
		{name: "same count: not logged again", items: []string{"a", "c"}, clock: 5 * time.Second, applied: 2, inForce: 2, logLoaded: 1},
		{name: "bad rows skipped, logged once", items: []string{"a"}, bad: []error{badRow}, clock: 10 * time.Second,
			applied: 3, inForce: 1, badRows: 1, logBad: 1, logLoaded: 2},
		{name: "same bad rows not logged again", items: []string{"a"}, bad: []error{badRow}, clock: 20 * time.Second,
			applied: 4, inForce: 1, badRows: 1, logBad: 1, logLoaded: 2},
		{name: "rows Apply skips count as bad", items: []string{"a", "dup"}, bad: []error{badRow}, clock: 25 * time.Second,
			applied: 5, inForce: 1, badRows: 2, logBad: 3, logLoaded: 2},
		{name: "down keeps the last good set", err: down, clock: 30 * time.Second,
			applied: 5, inForce: 1, errors: 1, badRows: 2, logFailed: 1, logBad: 3, logLoaded: 2},
		{name: "still down: counted, not logged within a minute", err: down, clock: 40 * time.Second,
			applied: 5, inForce: 1, errors: 2, badRows: 2, logFailed: 1, logBad: 3, logLoaded: 2},
		{name: "down a minute after the last log: logged again", err: down, clock: 90 * time.Second,
			applied: 5, inForce: 1, errors: 3, badRows: 2, logFailed: 2, logBad: 3, logLoaded: 2},
		{name: "back: logged as such", items: []string{"b", "c", "d"}, clock: 100 * time.Second,
			applied: 6, inForce: 3, errors: 3, logFailed: 2, logBad: 3, logLoaded: 2, logAgain: 1},
		{name: "empty table applies an empty set", items: []string{}, clock: 110 * time.Second,
			applied: 7, inForce: 0, errors: 3, logFailed: 2, logBad: 3, logLoaded: 3, logAgain: 1},
	} {
		now = start.Add(st.clock)
		tbl.set(st.items, st.bad, st.err)
		err := s.Refresh(context.Background())
		if st.err != nil {
			if !errors.Is(err, st.err) || !strings.HasPrefix(err.Error(), "refresh widgets: ") {
				t.Fatalf("%s: Refresh error %v, want refresh widgets: %v", st.name, err, st.err)
			}
		} else if err != nil {
			t.Fatalf("%s: Refresh: %v", st.name, err)
		}
		if len(*applied) != st.applied {
			t.Fatalf("%s: %d sets applied, want %d", st.name, len(*applied), st.applied)
		}
		if s.InForce() != st.inForce {
			t.Errorf("%s: InForce %d, want %d", st.name, s.InForce(), st.inForce)
		}
		got := values(t, reg)
		for name, want := range map[string]float64{
			"test_widgets_refresh_errors_total": st.errors,
			"test_widgets":                      float64(st.inForce),
			"test_widgets_bad_rows":             st.badRows,
		} {
			if v, ok := got[name]; !ok || v != want {
				t.Errorf("%s: %s = %v (found %v), want %v", st.name, name, v, ok, want)
			}
		}
		for prefix, want := range map[string]int{
			"ERROR refreshing widgets from ClickHouse failed; the last good set stays in force err=dial tcp": st.logFailed,
			"WARN bad widget row skipped err=":                      st.logBad,
			"INFO widgets loaded from ClickHouse widgets=":          st.logLoaded,
			"INFO widgets refreshed from ClickHouse again widgets=": st.logAgain,
		} {
			if got := logs.count(prefix); got != want {
				t.Errorf("%s: %d log records %q, want %d:\n%s", st.name, got, prefix, want, logs)
			}
		}
	}
	if got, want := values(t, reg)["test_widgets_last_refresh_timestamp_seconds"], float64(start.Add(110*time.Second).Unix()); got != want {
		t.Errorf("last refresh %v, want %v", got, want)
	}
	for _, want := range []string{
		"INFO widgets loaded from ClickHouse widgets=2 shelf=7",
		"INFO widgets loaded from ClickHouse widgets=0 shelf=7",
		"INFO widgets refreshed from ClickHouse again widgets=3",
		`WARN bad widget row skipped err=widgets row "x" skipped: bent`,
		"WARN bad widget row skipped err=widget dup skipped: taken",
	} {
		if logs.count(want) == 0 {
			t.Errorf("no log record %q:\n%s", want, logs)
		}
	}
}

// The timeout bounds each Load, and is at most the interval.
func TestSyncerTimeout(t *testing.T) {
	for _, tc := range []struct {
		name     string
		o        chsync.Options
		min, max time.Duration
	}{
		{name: "defaults", o: chsync.Options{}, min: 4 * time.Second, max: 5 * time.Second},
		{name: "explicit", o: chsync.Options{Timeout: 2 * time.Second}, min: time.Second, max: 2 * time.Second},
		{name: "at most the interval", o: chsync.Options{Interval: time.Second, Timeout: time.Minute}, min: 0, max: time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var left time.Duration
			s, err := chsync.New(chsync.Spec[int]{
				Noun: "ints",
				Load: func(ctx context.Context) ([]int, []error, error) {
					dl, ok := ctx.Deadline()
					if !ok {
						return nil, nil, errors.New("no deadline")
					}
					left = time.Until(dl)
					return nil, nil, nil
				},
				Apply:   func(items []int) (int, []error) { return len(items), nil },
				InForce: prometheus.NewGauge(prometheus.GaugeOpts{Name: "ints", Help: "x"}),
			}, tc.o)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Refresh(context.Background()); err != nil {
				t.Fatal(err)
			}
			if left <= tc.min || left > tc.max {
				t.Errorf("Load had %v left, want in (%v, %v]", left, tc.min, tc.max)
			}
		})
	}
}

// Run refreshes on its interval, goes on through failed reads, and stops
// with its context.
func TestSyncerRun(t *testing.T) {
	tbl := &fakeTable{err: errors.New("down")}
	s, _ := newSyncer(t, tbl, chsync.Options{Interval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	go func() { s.Run(ctx); close(stopped) }()
	loads := func() int {
		tbl.mu.Lock()
		defer tbl.mu.Unlock()
		return tbl.loads
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5 s", what)
			}
		}
	}
	waitFor("two failed reads", func() bool { return loads() >= 2 })
	tbl.set([]string{"a", "b"}, nil, nil)
	waitFor("a good read applied", func() bool { return s.InForce() == 2 })
	cancel()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not stop with its context")
	}
	n := loads()
	time.Sleep(50 * time.Millisecond)
	if loads() != n {
		t.Errorf("reads went on after Run stopped: %d, then %d", n, loads())
	}
}

func TestNewErrors(t *testing.T) {
	gauge := func() prometheus.Gauge { return prometheus.NewGauge(prometheus.GaugeOpts{Name: "w", Help: "x"}) }
	load := func(context.Context) ([]int, []error, error) { return nil, nil, nil }
	apply := func([]int) (int, []error) { return 0, nil }
	for _, tc := range []struct {
		name string
		sp   chsync.Spec[int]
	}{
		{name: "no Load", sp: chsync.Spec[int]{Noun: "w", Apply: apply, InForce: gauge()}},
		{name: "no Apply", sp: chsync.Spec[int]{Noun: "w", Load: load, InForce: gauge()}},
		{name: "no InForce", sp: chsync.Spec[int]{Noun: "w", Load: load, Apply: apply}},
	} {
		if _, err := chsync.New(tc.sp, chsync.Options{}); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	// Registering twice on one registry is an error, not a panic.
	reg := prometheus.NewRegistry()
	tbl := &fakeTable{}
	newSyncer(t, tbl, chsync.Options{Registerer: reg})
	_, err := chsync.New(chsync.Spec[string]{Noun: "widgets", Load: tbl.load, Apply: func([]string) (int, []error) { return 0, nil },
		MetricPrefix: "test_widgets", InForce: gauge()}, chsync.Options{Registerer: reg})
	if err == nil || !strings.HasPrefix(err.Error(), "widgets syncer metrics: ") {
		t.Errorf("second syncer on one registry: %v, want a widgets syncer metrics error", err)
	}
}
