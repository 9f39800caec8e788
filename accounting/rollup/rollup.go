// Package rollup keeps hourly energy roll-ups of the raw energy and power
// series, so that reports over long ranges (a year of 10 000 series at 15 s)
// read 8 760 points per series instead of two million samples: a Job computes
// each completed UTC hour with package energy and stores it as series next to
// the raw ones, re-computing hours that receive late samples; Compute and
// HourlyEnergy answer energy queries from the roll-ups, falling back to raw
// samples for hours not rolled up yet.
//
// # Stored series
//
// For a raw series greenloop_energy_joules_total{site="fra1",node="n1"} the
// job writes, per UTC hour [h, h+1h):
//
//	greenloop_energy_hourly_joules{site="fra1",node="n1",source_metric="greenloop_energy_joules_total"}
//	greenloop_energy_hourly_completeness_ratio{...}  only when the hour is not fully covered (< 1)
//	greenloop_energy_hourly_estimated_joules{...}    only when part of the energy is spread over a counter gap
//
// with every label of the raw series kept (tenant included) and the raw
// metric name in source_metric, so a counter and a power gauge of the same
// device stay apart.
//
// # Versions: one timestamp per computation
//
// The first computation of an hour is stored at the hour's start h. The
// TSDB keeps one value per series and timestamp (it refuses a different one
// in the head, and keeps either one arbitrarily when blocks overlap), and a
// deletion's tombstone would also hide what is appended after it, so a
// re-computed hour that changed is stored at the next free millisecond,
// h+1 ms, h+2 ms, ...: the stored points of an hour are its versions, and the
// one with the greatest timestamp within [h, h+1h) is the current one. A
// re-computation that gives the same figures writes nothing, which makes the
// job idempotent. The completeness and estimated points of a version share its
// timestamp exactly; their absence there means 1 and 0. PromQL sees the
// current version as the latest sample; range functions over these series
// (sum_over_time) would add up old versions too — use Compute instead.
//
// # Group sums in another store (ClickHouse)
//
// A store whose raw samples are kept for a short time (the ClickHouse
// backend: 15 days) keeps no roll-up series: a GroupJob computes the same
// group sums with the same code (Job.scanHours, the groups) and writes them
// to a GroupStore (a table kept as long as the hourly data), and
// ComputeWith reads them through a GroupSource, raw samples for the rest.
// Its versions, markers and change detection from the store's own sample
// counts (several servers, late data written to any of them) are described
// in groupjob.go.
package rollup

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/validate"
	"github.com/greenloop/greenloop/internal/sample"
)

// Names of the stored roll-up series and of the label naming the raw metric.
const (
	EnergyMetric       = "greenloop_energy_hourly_joules"
	CompletenessMetric = "greenloop_energy_hourly_completeness_ratio"
	EstimatedMetric    = "greenloop_energy_hourly_estimated_joules"
	SourceMetricLabel  = "source_metric"
)

// DefaultMetrics are the raw metrics rolled up when Options.Metrics is empty:
// the canonical energy counter and the canonical power gauge. Every series of
// each is rolled up, a power gauge even where the device has a counter too:
// roll-ups are complete per hour and metric, which is what lets a reader tell
// a rolled-up hour from one that is not (see Compute).
var DefaultMetrics = []string{"greenloop_energy_joules_total", "greenloop_power_watts"}

const hourMs = int64(time.Hour / time.Millisecond)

// Writer stores series; *ingest.Writer implements it. The tenant label of a
// raw series is passed as WriteOptions.Tenant, so the writer stamps it back.
type Writer interface {
	WriteSeries(ctx context.Context, o ingest.WriteOptions, series []sample.Series) (ingest.Result, error)
}

// Options configure a Job. Zero values take the documented defaults.
type Options struct {
	// Source reads the raw series and the stored roll-ups: the whole store,
	// NOT confined to a tenant (not an ingest.TenantQueryable).
	Source storage.Queryable
	// Writer stores roll-ups of hours within the store's out-of-order window
	// (a Writer over the store, its MaxAge at least that window).
	Writer Writer
	// Backfill stores roll-ups of older hours (a Writer over the embedded
	// store's Backfill(), its MaxAge at least Horizon). Nil: such hours are
	// neither caught up nor re-computed, and a warning says so.
	Backfill Writer
	// OutOfOrderWindow is the store's window for late samples; hours older
	// than it less an hour of margin go through Backfill. Zero means 72 h.
	OutOfOrderWindow time.Duration
	// Late tells which hours received late samples after they were rolled
	// up; nil: hours are computed once, never re-computed.
	Late *ingest.LateWrites
	// Metrics are the raw metric names rolled up; empty means DefaultMetrics.
	Metrics []string
	// Settle is how long after an hour's end it is rolled up (samples still
	// in flight); zero means 5 minutes. It is raised to the lookback.
	Settle time.Duration
	// Every is the period of Run; zero means 5 minutes.
	Every time.Duration
	// Start is the first hour to roll up; zero means the hour of the oldest
	// raw sample. Catch-up never reaches further back than Horizon.
	Start time.Time
	// Horizon bounds how far back the job catches up and re-computes; zero means 400 days.
	Horizon time.Duration
	// Recheck is how far back from the last rolled-up hour the job
	// re-computes once at start, for late samples that arrived while it was
	// not running; zero means the out-of-order window. At least BatchHours.
	Recheck time.Duration
	// BatchHours is how many hours one computation (one scan of the raw
	// series, one write per tenant) covers; zero means 24.
	BatchHours int
	// MaxHoursPerRun bounds one RunOnce (re-computations first, then new
	// hours); zero means 31 days of hours. Run goes on at once while work is left.
	MaxHoursPerRun int
	// Bridge is the longest counter gap across a batch's start or end whose
	// increase is counted, as energy.Compute counts it within one range:
	// the samples around it are looked up beyond the lookback. An hour with a
	// gap still open at its batch's end is computed again at every run for
	// Bridge after it. Zero means 6 hours; at most Lookback disables it.
	Bridge time.Duration
	// Interval, GapFactor, WrapAt and Lookback are passed to energy.Query
	// (see there); Lookback zero means 10 minutes.
	Interval  time.Duration
	GapFactor float64
	WrapAt    float64
	Lookback  time.Duration
	// Clock gives "now"; nil means time.Now.
	Clock func() time.Time
	// Logger receives progress and errors; nil discards them.
	Logger *slog.Logger
}

// Stats count a job's work since it was created.
type Stats struct {
	// HoursComputed counts hour computations (one hour of every series of
	// every metric counts once); re-computations included.
	HoursComputed int64
	// SeriesHours counts per-series hours computed.
	SeriesHours int64
	// PointsWritten counts roll-up points stored; Unchanged counts
	// re-computed series-hours whose figures were already stored.
	PointsWritten, Unchanged int64
	// GroupPointsWritten counts the points of group sums stored (see GroupEnergyMetric).
	GroupPointsWritten int64
	// LastRunTook is how long the last RunOnce that had work took.
	LastRunTook time.Duration
	// CatchingUp is true while runs leave work (a backlog of hours is being
	// rolled up); CatchUpHours and CatchUpTook are the hours computed and the
	// time spent since the backlog began, or by the last one once it is done.
	CatchingUp   bool
	CatchUpHours int64
	CatchUpTook  time.Duration
	// Next is the first hour not rolled up yet (zero before the first run).
	Next time.Time
}

// Job computes and stores the hourly roll-ups.
type Job struct {
	o   Options
	log *slog.Logger

	mu        sync.Mutex
	ready     bool
	first     int64            // ms: the first hour of the rolled-up range
	next      int64            // ms: the first hour not rolled up yet
	redo      map[int64]bool   // hours to re-compute
	seqOf     map[int64]uint64 // hour → LateWrites.Seq() taken before its last computation (absent: 0)
	open      map[int64]int64  // hour with a counter gap open at its end → until when to compute it again (ms)
	stats     Stats
	selectors map[string]string // metric → selector
	// bulkBridge looks the bridge samples of a scan up in two reads of all
	// series rather than per series (GroupJob: ClickHouse).
	bulkBridge bool
}

// NewJob checks the options and returns a job; nothing runs until Run or RunOnce.
func NewJob(o Options) (*Job, error) {
	if o.Writer == nil {
		return nil, errors.New("rollup: options need Source and Writer")
	}
	return newJob(o)
}

// newJob checks the options but Writer and sets the defaults.
func newJob(o Options) (*Job, error) {
	if o.Source == nil {
		return nil, errors.New("rollup: options need Source")
	}
	if o.OutOfOrderWindow == 0 {
		o.OutOfOrderWindow = 72 * time.Hour
	}
	if len(o.Metrics) == 0 {
		o.Metrics = DefaultMetrics
	}
	for _, m := range o.Metrics {
		k, err := energy.ClassifyMetric(m)
		if err != nil {
			return nil, fmt.Errorf("rollup: metric %q: %w", m, err)
		}
		if k.Dimension != energy.DimEnergy {
			return nil, fmt.Errorf("rollup: metric %q measures %s, want energy", m, k.Dimension)
		}
		if !validate.ValidMetricName(m) {
			return nil, fmt.Errorf("rollup: metric %q: invalid name", m)
		}
	}
	if o.Settle == 0 {
		o.Settle = 5 * time.Minute
	}
	if o.Every == 0 {
		o.Every = 5 * time.Minute
	}
	if o.Horizon == 0 {
		o.Horizon = 400 * 24 * time.Hour
	}
	if o.Lookback == 0 {
		o.Lookback = 10 * time.Minute
	}
	if o.Bridge == 0 {
		o.Bridge = 6 * time.Hour
	}
	if o.Settle < o.Lookback {
		o.Settle = o.Lookback
	}
	if o.BatchHours == 0 {
		o.BatchHours = 24
	}
	if o.Recheck == 0 {
		o.Recheck = o.OutOfOrderWindow
	}
	if o.Recheck < time.Duration(o.BatchHours)*time.Hour {
		o.Recheck = time.Duration(o.BatchHours) * time.Hour
	}
	if o.MaxHoursPerRun == 0 {
		o.MaxHoursPerRun = 31 * 24
	}
	if o.Settle < 0 || o.Every < 0 || o.Horizon < 0 || o.Lookback < 0 || o.BatchHours < 0 || o.MaxHoursPerRun < 0 || o.Interval < 0 || o.WrapAt < 0 {
		return nil, errors.New("rollup: negative duration or count in options")
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	j := &Job{o: o, log: o.Logger, redo: map[int64]bool{}, seqOf: map[int64]uint64{}, open: map[int64]int64{}, selectors: map[string]string{}}
	for _, m := range o.Metrics {
		j.selectors[m] = fmt.Sprintf("{__name__=%q}", m)
	}
	return j, nil
}

// Stats returns the job's counters.
func (j *Job) Stats() Stats {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := j.stats
	if j.next != 0 {
		s.Next = time.UnixMilli(j.next).UTC()
	}
	return s
}

// Recompute marks the hours overlapping [from, to) for re-computation at
// the next run (for an import of old data into a store whose late writes are
// not tracked).
func (j *Job) Recompute(from, to time.Time) {
	j.mu.Lock()
	defer j.mu.Unlock()
	for h := floorHour(from.UnixMilli()); h < to.UnixMilli(); h += hourMs {
		if j.ready && h < j.next && h >= j.first {
			j.redo[h] = true
		}
	}
}

// Run rolls up every Every until ctx ends, at once again while a run leaves
// work. Errors are logged, and the hours they concern retried.
func (j *Job) Run(ctx context.Context) error {
	return runEvery(ctx, j.o.Every, j.log, "rollup: run failed", j.RunOnce)
}

// runEvery calls once every interval until ctx ends, at once again while it
// reports more work; its errors are logged with msg.
func runEvery(ctx context.Context, every time.Duration, log *slog.Logger, msg string, once func(context.Context) (bool, error)) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		more, err := once(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			log.Error(msg, "err", err)
			more = false
		}
		if more {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
}

func floorHour(ms int64) int64 {
	h := ms / hourMs * hourMs
	if h > ms {
		h -= hourMs
	}
	return h
}

// RunOnce rolls up the hours completed since the last run and re-computes
// those that received late samples, at most MaxHoursPerRun of them. more
// says work is left.
func (j *Job) RunOnce(ctx context.Context) (more bool, err error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	started, hours0 := time.Now(), j.stats.HoursComputed
	defer func() { j.noteRun(started, hours0, more, err) }()
	now := j.o.Clock()
	if !j.ready {
		if err := j.init(ctx, now); err != nil {
			return false, err
		}
		if !j.ready {
			return false, nil // no raw data yet
		}
	}
	end := floorHour(now.Add(-j.o.Settle).UnixMilli()) // hours before end are complete
	horizon := floorHour(now.Add(-j.o.Horizon).UnixMilli())
	if j.first < horizon {
		j.first = horizon
		if j.next < horizon {
			j.next = horizon
		}
	}
	backfillFrom := now.Add(-j.o.OutOfOrderWindow + time.Hour).UnixMilli()
	if j.o.Backfill == nil && j.next < backfillFrom {
		j.log.Warn("rollup: no backfill writer; hours older than the out-of-order window are skipped", "from", time.UnixMilli(j.next).UTC(), "to", time.UnixMilli(floorHour(backfillFrom)+hourMs).UTC())
		j.next = floorHour(backfillFrom) + hourMs
	}
	// Hours touched by late samples since they were computed.
	if j.o.Late != nil {
		l := j.o.Lookback.Milliseconds()
		for h := j.first; h < j.next; h += hourMs {
			if !j.redo[h] && j.o.Late.Changed(h-l, h+hourMs+l, j.seqOf[h]) {
				j.redo[h] = true
			}
		}
	}
	// Hours with a gap open at their end, until it may have closed.
	for h, until := range j.open {
		if now.UnixMilli() > until || h < j.first {
			delete(j.open, h)
			continue
		}
		j.redo[h] = true
	}
	var work []int64
	for h := range j.redo {
		if h < j.first || (j.o.Backfill == nil && h < backfillFrom) {
			delete(j.redo, h)
			continue
		}
		work = append(work, h)
	}
	slices.Sort(work)
	if len(work) > j.o.MaxHoursPerRun {
		work = work[:j.o.MaxHoursPerRun]
		more = true
	}
	nRedo := len(work)
	for h := j.next; h < end; h += hourMs {
		if len(work) >= j.o.MaxHoursPerRun {
			more = true
			break
		}
		work = append(work, h)
	}
	// Contiguous runs, cut into batches, each on one side of the backfill line.
	for i := 0; i < len(work); {
		k := i + 1
		for k < len(work) && k-i < j.o.BatchHours && work[k] == work[k-1]+hourMs && (work[k] < backfillFrom) == (work[i] < backfillFrom) {
			k++
		}
		a, b := work[i], work[k-1]+hourMs
		var seq uint64
		if j.o.Late != nil {
			seq = j.o.Late.Seq()
		}
		w := j.o.Writer
		if a < backfillFrom {
			w = j.o.Backfill
		}
		if err := j.computeBatch(ctx, a, b, w); err != nil {
			return false, fmt.Errorf("rollup %s to %s: %w", time.UnixMilli(a).UTC().Format(time.RFC3339), time.UnixMilli(b).UTC().Format(time.RFC3339), err)
		}
		for h := a; h < b; h += hourMs {
			delete(j.redo, h)
			j.seqOf[h] = seq
		}
		if b > j.next {
			j.next = b
		}
		j.stats.HoursComputed += (b - a) / hourMs
		i = k
	}
	if len(work) > 0 {
		j.log.Info("rollup: hours rolled up", "recomputed", nRedo, "new", len(work)-nRedo, "next", time.UnixMilli(j.next).UTC(),
			"took", time.Since(started).Round(time.Millisecond))
	}
	// Forget sequence numbers of hours that left the horizon.
	for h := range j.seqOf {
		if h < j.first {
			delete(j.seqOf, h)
		}
	}
	return more, nil
}

// noteRun records how long a run with work took, and the progress and
// duration of a catch-up: runs that leave work, up to the one that does not.
// Durations are wall time (the Clock gives the data's "now", not elapsed time).
func (j *Job) noteRun(started time.Time, hours0 int64, more bool, err error) {
	took, hours := time.Since(started), j.stats.HoursComputed-hours0
	if hours > 0 {
		j.stats.LastRunTook = took
	}
	switch {
	case more && err == nil:
		if !j.stats.CatchingUp {
			j.stats.CatchingUp, j.stats.CatchUpHours, j.stats.CatchUpTook = true, 0, 0
			j.log.Info("rollup: catching up: more hours are due than one run computes", "max_hours_per_run", j.o.MaxHoursPerRun)
		}
		j.stats.CatchUpHours += hours
		j.stats.CatchUpTook += took
		rate := 0.0
		if j.stats.CatchUpTook > 0 {
			rate = float64(j.stats.CatchUpHours) / j.stats.CatchUpTook.Seconds()
		}
		j.log.Info("rollup: catch-up progress", "hours", j.stats.CatchUpHours, "took", j.stats.CatchUpTook.Round(time.Millisecond),
			"hours_per_s", math.Round(rate*100)/100, "next", time.UnixMilli(j.next).UTC())
	case j.stats.CatchingUp && err == nil:
		j.stats.CatchingUp = false
		j.stats.CatchUpHours += hours
		j.stats.CatchUpTook += took
		j.log.Info("rollup: caught up", "hours", j.stats.CatchUpHours, "took", j.stats.CatchUpTook.Round(time.Millisecond),
			"next", time.UnixMilli(j.next).UTC())
	}
}

// init finds where the roll-ups stand: the first hour to cover (Start, or
// the oldest raw sample) and the hour after the last rolled-up one.
func (j *Job) init(ctx context.Context, now time.Time) error {
	nowMs := now.UnixMilli()
	horizon := floorHour(now.Add(-j.o.Horizon).UnixMilli())
	var first int64
	if !j.o.Start.IsZero() {
		first = floorHour(j.o.Start.UnixMilli())
	} else {
		oldest, ok, err := j.oldestRaw(ctx, horizon, nowMs)
		if err != nil {
			return err
		}
		if !ok {
			return nil
		}
		first = floorHour(oldest)
	}
	first = max(first, horizon)
	last, ok, err := j.lastRolled(ctx, max(first, horizon), nowMs)
	if err != nil {
		return err
	}
	j.first, j.next = first, first
	if ok && last >= first {
		j.next = last + hourMs
		for h := max(first, j.next-j.o.Recheck.Milliseconds()); h < j.next; h += hourMs {
			j.redo[floorHour(h)] = true
		}
	}
	j.ready = true
	j.log.Info("rollup: starting", "first", time.UnixMilli(j.first).UTC(), "next", time.UnixMilli(j.next).UTC(), "recheck", len(j.redo))
	return nil
}

// oldestRaw returns the timestamp of the oldest raw sample of the rolled-up metrics since mint.
func (j *Job) oldestRaw(ctx context.Context, mint, maxt int64) (int64, bool, error) {
	q, err := j.o.Source.Querier(mint, maxt)
	if err != nil {
		return 0, false, fmt.Errorf("open querier: %w", err)
	}
	defer q.Close()
	oldest, found := int64(math.MaxInt64), false
	for _, m := range j.o.Metrics {
		set := q.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt}, labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, m))
		for set.Next() {
			it := set.At().Iterator(nil)
			if it.Seek(mint) != 0 {
				t := it.AtT()
				if t < oldest {
					oldest, found = t, true
				}
			}
			if err := it.Err(); err != nil {
				return 0, false, fmt.Errorf("read %s: %w", m, err)
			}
		}
		if err := set.Err(); err != nil {
			return 0, false, fmt.Errorf("select %s: %w", m, err)
		}
	}
	return oldest, found, nil
}

// lastRolled returns the start of the latest hour with a stored roll-up,
// looking back from maxt over growing windows.
func (j *Job) lastRolled(ctx context.Context, mint, maxt int64) (int64, bool, error) {
	for w := 2 * 24 * hourMs; ; w *= 4 {
		lo := max(maxt-w, mint)
		last, ok, err := j.lastRolledIn(ctx, lo, maxt)
		if err != nil || ok {
			return last, ok, err
		}
		if lo == mint {
			return 0, false, nil
		}
		maxt = lo
	}
}

func (j *Job) lastRolledIn(ctx context.Context, mint, maxt int64) (int64, bool, error) {
	q, err := j.o.Source.Querier(mint, maxt)
	if err != nil {
		return 0, false, fmt.Errorf("open querier: %w", err)
	}
	defer q.Close()
	set := q.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt},
		labels.MustNewMatcher(labels.MatchEqual, model.MetricNameLabel, EnergyMetric),
		labels.MustNewMatcher(labels.MatchRegexp, SourceMetricLabel, regexpAlternatives(j.o.Metrics)))
	last, found := int64(math.MinInt64), false
	for set.Next() {
		it := set.At().Iterator(nil)
		for it.Next() != 0 {
			if t := it.AtT(); t >= mint && t <= maxt && t > last {
				last, found = t, true
			}
		}
		if err := it.Err(); err != nil {
			return 0, false, fmt.Errorf("read %s: %w", EnergyMetric, err)
		}
	}
	if err := set.Err(); err != nil {
		return 0, false, fmt.Errorf("select %s: %w", EnergyMetric, err)
	}
	return floorHour(last), found, nil
}

func regexpAlternatives(names []string) string {
	s := ""
	for i, n := range names {
		if i > 0 {
			s += "|"
		}
		s += n // metric names hold no regexp metacharacters ([a-zA-Z0-9_:])
	}
	return s
}
