package rollup

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/accounting/energy"
)

// Group sums kept outside the store's series (the ClickHouse backend's
// energy_group_1h table): a GroupJob computes them with the same code as
// the Job (scanHours, groups), and writes them to a GroupStore instead of
// series; ComputeWith reads them through a GroupSource.
//
// # Rows, versions and markers
//
// One computation of an hour writes, in one WriteGroups, one GroupRow per
// group (tenant, source_metric, site, component) and one marker row (all
// four empty) that says the hour was computed, with the hour's input
// signature and the computation's Version (the job's clock, in ms, read
// before the raw samples). A re-computation writes new rows with a greater
// Version; readers take, per group and hour, the row of the greatest
// Version (before any merge). Figures depend only on the raw samples, so two
// jobs computing an hour from the same samples write the same figures, and
// whichever Version wins, the answer is the same.
//
// # Members
//
// With the rows, a computation writes the group's members: each series
// summed, over the batch's hours (the series' roll-up key, SeriesKey), so
// that a reader counts the series of a range as Compute counts the
// series' roll-ups. As in the Job, a series read in a batch (a sample
// within its range or lookback) is a member for all the batch's hours;
// batches are cut at multiples of BatchHours since the epoch (UTC days), so
// that servers catching up at different times write the same members.
//
// # Change detection
//
// The store counts the raw samples inserted per series and hour (GroupStore
// Counts: ClickHouse's samples_1h cnt, which only grows, a resent batch
// included). The signature of hour h is the count of samples in
// (h − 1h, h + 2h] of the rolled-up metrics: a sample in that span can change
// the hour (lookback, interpolation across its ends). Every run compares the
// signatures of the recent hours (GroupOptions.Recent) with those the
// markers were computed from, and every FullEvery runs those of the whole
// horizon; hours whose signature differs, or with samples but no marker, are
// computed (again). Samples written by any server are seen. A counter gap
// bridged across a batch's end (Options.Bridge) is re-computed while it
// may close, as by the Job.

// GroupRow is the sums of one group in one hour, or an hour's marker (Tenant,
// SourceMetric, Site and Component empty, figures 0).
type GroupRow struct {
	Tenant, SourceMetric, Site, Component string
	// Hour is the hour's start, Unix ms.
	Hour int64
	// Energy and Estimated are in joules; Covered is the sum of the series'
	// completeness (covered series-hours).
	Energy, Covered, Estimated float64
	// Inputs is the hour's signature the row was computed from.
	Inputs uint64
	// Version orders the computations of an hour; the greatest is current.
	Version uint64
}

// Marker reports whether r is an hour's marker.
func (r GroupRow) Marker() bool {
	return r.SourceMetric == "" && r.Tenant == "" && r.Site == "" && r.Component == ""
}

// GroupMember says that a raw series (Series: its roll-up key, see
// SeriesKey) is summed in a group over the hours [From, To).
type GroupMember struct {
	Tenant, SourceMetric, Site, Component string
	From, To                              int64
	Series                                uint64
}

// GroupStore keeps group sums outside the raw store.
type GroupStore interface {
	// Counts returns the number of raw samples of the metrics inserted in
	// each hourly bucket (Start, Start+1h] whose start lies in [from, to),
	// by the bucket's start (Unix ms); buckets without samples may be absent.
	Counts(ctx context.Context, metrics []string, from, to int64) (map[int64]uint64, error)
	// Computed returns the current markers of the hours in [from, to): hour → Inputs.
	Computed(ctx context.Context, from, to int64) (map[int64]uint64, error)
	// WriteGroups stores the rows and members of one computation.
	WriteGroups(ctx context.Context, rows []GroupRow, members []GroupMember) error
}

// GroupOptions configure a GroupJob beyond the Job's Options.
type GroupOptions struct {
	// Store keeps the group sums.
	Store GroupStore
	// Recent is how far back every run checks for changed hours; zero means
	// the out-of-order window plus 2 hours.
	Recent time.Duration
	// FullEvery is how many runs apart the whole horizon is checked (the
	// first run does it); zero means 12 (an hour at the default period).
	FullEvery int
}

// GroupJob computes the hourly group sums of the raw series of a store
// and keeps them in a GroupStore. Options.Horizon must not exceed the raw
// samples' retention (older hours cannot be computed again and are left as
// they are); Writer, Backfill and Late are not used.
type GroupJob struct {
	j    *Job
	gs   GroupStore
	g    GroupOptions
	runs int
}

// NewGroupJob checks the options and returns a job; nothing runs until Run or RunOnce.
func NewGroupJob(o Options, g GroupOptions) (*GroupJob, error) {
	if g.Store == nil {
		return nil, errors.New("rollup: group job needs a GroupStore")
	}
	j, err := newJob(o)
	if err != nil {
		return nil, err
	}
	j.bulkBridge = true
	if g.Recent <= 0 {
		g.Recent = j.o.OutOfOrderWindow + 2*time.Hour
	}
	if g.FullEvery <= 0 {
		g.FullEvery = 12
	}
	return &GroupJob{j: j, gs: g.Store, g: g}, nil
}

// Stats returns the job's counters (PointsWritten counts rows, markers included).
func (g *GroupJob) Stats() Stats {
	g.j.mu.Lock()
	defer g.j.mu.Unlock()
	return g.j.stats
}

// Run computes every Options.Every until ctx ends, at once again while a
// run leaves work. Errors are logged, and the hours they concern retried.
func (g *GroupJob) Run(ctx context.Context) error {
	return runEvery(ctx, g.j.o.Every, g.j.log, "rollup: group run failed", g.RunOnce)
}

// Signatures returns the signature of each hour in [from, to) with
// samples, from the counts (GroupStore.Counts) of the buckets starting in
// [from − 1h, to + 1h): what a GroupJob stores in the rows it computes.
func Signatures(counts map[int64]uint64, from, to int64) map[int64]uint64 {
	out := map[int64]uint64{}
	for h := from; h < to; h += hourMs {
		// Samples in (h − 1h, h + 2h]: the buckets starting at h − 1h, h and h + 1h.
		if s := counts[h-hourMs] + counts[h] + counts[h+hourMs]; s > 0 {
			out[h] = s
		}
	}
	return out
}

// Pending returns the hours in [from, to) to compute: with samples and no
// marker, or a marker computed from another signature; and the signatures.
func (g *GroupJob) pending(ctx context.Context, from, to int64) ([]int64, map[int64]uint64, error) {
	counts, err := g.gs.Counts(ctx, g.j.o.Metrics, from-hourMs, to+hourMs)
	if err != nil {
		return nil, nil, fmt.Errorf("sample counts: %w", err)
	}
	sig := Signatures(counts, from, to)
	done, err := g.gs.Computed(ctx, from, to)
	if err != nil {
		return nil, nil, fmt.Errorf("computed hours: %w", err)
	}
	var out []int64
	for h, s := range sig {
		if in, ok := done[h]; !ok || in != s {
			out = append(out, h)
		}
	}
	slices.Sort(out)
	return out, sig, nil
}

// RunOnce computes the hours that changed or were never computed, at most
// MaxHoursPerRun of them, oldest first; more says work is left.
func (g *GroupJob) RunOnce(ctx context.Context) (more bool, err error) {
	j := g.j
	j.mu.Lock()
	defer j.mu.Unlock()
	started, hours0 := time.Now(), j.stats.HoursComputed
	defer func() { j.noteRun(started, hours0, more, err) }()
	now := j.o.Clock()
	version := uint64(now.UnixMilli())
	end := floorHour(now.Add(-j.o.Settle).UnixMilli()) // hours before end are complete
	from := max(floorHour(now.Add(-j.o.Horizon).UnixMilli())+hourMs, end-g.g.Recent.Milliseconds())
	if !j.o.Start.IsZero() {
		from = max(from, floorHour(j.o.Start.UnixMilli()))
	}
	full := g.runs%g.g.FullEvery == 0
	if full {
		from = floorHour(now.Add(-j.o.Horizon).UnixMilli()) + hourMs
		if !j.o.Start.IsZero() {
			from = max(from, floorHour(j.o.Start.UnixMilli()))
		}
	}
	work, sig, err := g.pending(ctx, from, end)
	if err != nil {
		return false, err
	}
	// Hours with a gap open at their end, until it may have closed.
	for h, until := range j.open {
		if now.UnixMilli() > until || h < from || h >= end {
			delete(j.open, h)
			continue
		}
		if !slices.Contains(work, h) {
			work = append(work, h)
		}
	}
	slices.Sort(work)
	if len(work) > j.o.MaxHoursPerRun {
		work = work[:j.o.MaxHoursPerRun]
		more = true
	}
	// Contiguous runs, cut into batches at multiples of BatchHours since
	// the epoch (UTC days by default): which series a group sums in an hour
	// depends on its batch (a series with a sample within the batch's
	// lookback counts in all its hours), so servers catching up at
	// different times cut alike.
	span := int64(j.o.BatchHours) * hourMs
	for i := 0; i < len(work); {
		k := i + 1
		for k < len(work) && work[k] == work[k-1]+hourMs && floorDiv(work[k], span) == floorDiv(work[i], span) {
			k++
		}
		a, b := work[i], work[k-1]+hourMs
		if err := g.computeBatch(ctx, a, b, sig, version); err != nil {
			return false, fmt.Errorf("group sums %s to %s: %w", time.UnixMilli(a).UTC().Format(time.RFC3339), time.UnixMilli(b).UTC().Format(time.RFC3339), err)
		}
		j.stats.HoursComputed += (b - a) / hourMs
		i = k
	}
	if !more {
		g.runs++
	}
	if len(work) > 0 {
		j.log.Info("rollup: group sums computed", "hours", len(work), "full_check", full,
			"took", time.Since(started).Round(time.Millisecond))
	}
	return more, nil
}

// computeBatch computes the hours [a, b) of every series of every metric
// and writes their group sums, members and markers.
func (g *GroupJob) computeBatch(ctx context.Context, a, b int64, sig map[int64]uint64, version uint64) error {
	j := g.j
	n := int((b - a) / hourMs)
	var buf samples
	open := map[int64]bool{}
	var rows []GroupRow
	var members []GroupMember
	for _, m := range j.o.Metrics {
		grp := groups{}
		err := j.scanHours(ctx, a, b, m, &buf, open, func(ls map[string]string, r *energy.Result) error {
			j.stats.SeriesHours += int64(n)
			acc := grp.add(ls, m, n, func(i int) float64 { return float64(r.Buckets[i].Energy) },
				func(i int) float64 { return r.Buckets[i].Completeness }, func(i int) float64 { return float64(r.Buckets[i].Estimated) })
			acc.members = append(acc.members, SeriesKey(ls))
			return nil
		})
		if err != nil {
			return fmt.Errorf("metric %s: %w", m, err)
		}
		for _, ga := range grp.sorted() {
			for i := range n {
				rows = append(rows, GroupRow{Tenant: ga.tenant, SourceMetric: ga.metric, Site: ga.site, Component: ga.component,
					Hour: a + int64(i)*hourMs, Energy: ga.e[i], Covered: ga.c[i], Estimated: ga.est[i], Inputs: sig[a+int64(i)*hourMs], Version: version})
			}
			slices.Sort(ga.members)
			for _, s := range slices.Compact(ga.members) {
				members = append(members, GroupMember{Tenant: ga.tenant, SourceMetric: ga.metric, Site: ga.site, Component: ga.component,
					From: a, To: b, Series: s})
			}
		}
	}
	for h := a; h < b; h += hourMs {
		rows = append(rows, GroupRow{Hour: h, Inputs: sig[h], Version: version})
	}
	if err := g.gs.WriteGroups(ctx, rows, members); err != nil {
		return fmt.Errorf("write group sums: %w", err)
	}
	deadline := b + j.o.Bridge.Milliseconds()
	for h := range open {
		j.open[h] = deadline
	}
	j.stats.PointsWritten += int64(len(rows))
	j.stats.GroupPointsWritten += int64(len(rows) - n)
	return nil
}

// SeriesKey is the key a GroupMember names raw series ls by (its labels,
// the metric name under "__name__"): the hash of its roll-up labels, as
// Compute counts series.
func SeriesKey(ls map[string]string) uint64 { return seriesKey(ls) }

// GroupHour is the sums of the groups a selector matches in one hour.
type GroupHour struct {
	// Energy and Estimated are in joules; Covered in series-hours.
	Energy, Covered, Estimated float64
}

// GroupSource reads group sums kept outside the store's series.
type GroupSource interface {
	// GroupSums returns, for each hour in [from, to) that has a current
	// marker, the sums of the current rows of the groups ms match (matchers
	// on source_metric, tenant, site and component only; a group without a
	// row in a computed hour had no series then), and the keys (SeriesKey)
	// of the series summed in those groups over hours overlapping [from, to).
	GroupSums(ctx context.Context, ms []*labels.Matcher, from, to int64) (map[int64]GroupHour, []uint64, error)
}

// ErrNoGroupSums is returned by ComputeWith when a selector cannot be
// answered from group sums and raw samples: it names other labels than a
// group's, or an hour without group sums is older than RawSince.
var ErrNoGroupSums = errors.New("no group sums for the query")

// GroupQuery says where ComputeWith reads group sums.
type GroupQuery struct {
	Source GroupSource
	// RawSince is the oldest time the raw samples still cover (their
	// retention); hours before it must have group sums.
	RawSince time.Time
}

// ComputeWith answers q like Compute, reading the whole UTC hours within
// one bucket from gq's group sums where computed and the rest from the raw
// samples of src (per-series roll-ups are not read). The figures equal
// Compute's over a store holding the same group sums, and the same series
// count (the members of the groups, and the raw parts' series).
func ComputeWith(ctx context.Context, src storage.Queryable, gq GroupQuery, q energy.Query) (*energy.Result, error) {
	if len(q.Selectors) == 0 {
		return nil, errors.New("rollup query: no selector")
	}
	if gq.Source == nil {
		return nil, errors.New("rollup query: no group source")
	}
	edges, err := q.Buckets.Edges(q.From, q.To)
	if err != nil {
		return nil, fmt.Errorf("rollup query buckets: %w", err)
	}
	p := parser.NewParser(parser.Options{})
	for i, sel := range q.Selectors {
		r, matched, has, err := computeSelector(ctx, src, &gq, p, q, edges, sel)
		if err != nil {
			return nil, fmt.Errorf("selector %s: %w", sel, err)
		}
		if matched && (has || i == len(q.Selectors)-1) {
			return r, nil
		}
	}
	return nil, fmt.Errorf("%w: %s", energy.ErrNoSeries, strings.Join(q.Selectors, ", "))
}

// readGroupSource adds the group sums of the hours [h0, h1) that lie within
// one bucket and marks them rolled; the members count as series.
func (a *acc) readGroupSource(ctx context.Context, gs GroupSource, ms []*labels.Matcher, h0, h1 int64, bucketOf []int32, rolled []bool) error {
	hours, members, err := gs.GroupSums(ctx, ms, h0, h1)
	if err != nil {
		return fmt.Errorf("group sums: %w", err)
	}
	any := false
	for h, g := range hours {
		if h < h0 || h >= h1 || h%hourMs != 0 {
			continue
		}
		i := (h - h0) / hourMs
		b := bucketOf[i]
		if b < 0 {
			continue
		}
		rolled[i] = true
		any = true
		a.energy[b] += g.Energy
		a.estimated[b] += g.Estimated
		a.covered[b] += g.Covered * float64(hourMs)
	}
	if any && len(members) > 0 {
		a.has = true
		for _, k := range members {
			a.seen[k] = struct{}{}
		}
	}
	return nil
}

// floorDiv is a / b rounded down.
func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}
