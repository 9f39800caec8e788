package service

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"

	"github.com/greenloop/greenloop/accounting/energy"
	"github.com/greenloop/greenloop/accounting/energy/promsource"
	"github.com/greenloop/greenloop/accounting/rollup"
	"github.com/greenloop/greenloop/ingest"
	"github.com/greenloop/greenloop/ingest/clickhouse"
)

// EnergySource answers the Accountant's energy queries (hourly energy of a
// site's meters) over the series of one tenant ("" when the store is not
// split by tenant). Implementations must confine the read to that tenant.
type EnergySource interface {
	Energy(ctx context.Context, tenant string, q energy.Query) (*energy.Result, error)
}

// RawEnergy computes energy from the raw samples of Store.
type RawEnergy struct{ Store storage.Queryable }

// Energy implements EnergySource.
func (r RawEnergy) Energy(ctx context.Context, tenant string, q energy.Query) (*energy.Result, error) {
	return energy.Compute(ctx, promsource.New(ingest.TenantQueryable(r.Store, tenant)), q)
}

// RollupEnergy reads energy from the hourly rollups package rollup keeps in
// Store (the embedded TSDB), raw samples for hours not rolled up.
type RollupEnergy struct{ Store storage.Queryable }

// Energy implements EnergySource.
func (r RollupEnergy) Energy(ctx context.Context, tenant string, q energy.Query) (*energy.Result, error) {
	return rollup.Compute(ctx, ingest.TenantQueryable(r.Store, tenant), q)
}

// ClickHouseEnergy reads energy from the ClickHouse backend. With Groups
// (the group sums package rollup's GroupJob keeps, see ClickHouseGroups), a
// selector on a group's labels only (metric, site, component, tenant) reads
// each whole UTC hour within one bucket from the group sums where computed
// and the rest from raw samples (rollup.ComputeWith: the embedded store's
// figures). Otherwise it reads the raw samples when they cover the range
// and are not too many (RawSamples), and else, as when an hour without
// group sums is older than the raw samples, the hourly rollup table in SQL
// (rollup.ComputeReadings: the same figures as the raw samples for
// regularly sampled series, see there for the differences), with the
// tenant's matcher in the query. Queries whose range or buckets are not
// whole UTC hours are computed from raw samples.
type ClickHouseEnergy struct {
	Store  *clickhouse.Store
	Groups *clickhouse.EnergyGroups
	// RawSamples caps the raw samples read instead of the hourly rollup
	// table: a query the group sums cannot answer, whose range (with its
	// lookback) the raw samples still cover and whose selectors match at
	// most this many samples (counted in the hourly rollups), is computed
	// from raw samples, exactly as on the embedded store. 0 means
	// DefaultRawSamples; negative always reads the hourly table.
	RawSamples int64
}

// Energy implements EnergySource.
func (c ClickHouseEnergy) Energy(ctx context.Context, tenant string, q energy.Query) (*energy.Result, error) {
	if c.Groups != nil {
		r, err := rollup.ComputeWith(ctx, ingest.TenantQueryable(c.Store, tenant),
			rollup.GroupQuery{Source: tenantGroups{g: c.Groups, tenant: tenant}, RawSince: c.Store.RawSince().Add(rawMargin)}, q)
		if !errors.Is(err, rollup.ErrNoGroupSums) {
			return r, err
		}
	}
	src := &chReadings{st: c.Store, tenant: tenant}
	r, err := rollup.ComputeReadings(ctx, src, q)
	if errors.Is(err, rollup.ErrNotHourly) {
		return RawEnergy{Store: c.Store}.Energy(ctx, tenant, q)
	}
	if err != nil {
		return r, err
	}
	// The hourly readings approximate irregular sampling (see
	// rollup.ComputeReadings); where the raw samples still cover the
	// query and are not too many to read, the figures come from them.
	_, lookback, _, _ := q.Limits()
	limit := c.RawSamples
	if limit == 0 {
		limit = DefaultRawSamples
	}
	if limit > 0 && src.samples <= limit && !q.From.Add(-lookback).Before(c.Store.RawSince().Add(rawMargin)) {
		return RawEnergy{Store: c.Store}.Energy(ctx, tenant, q)
	}
	return r, nil
}

// DefaultRawSamples is ClickHouseEnergy.RawSamples' default.
const DefaultRawSamples = 20_000_000

// chReadings reads hourly readings of one tenant's series from ClickHouse,
// counting the raw samples they stand for.
type chReadings struct {
	st      *clickhouse.Store
	tenant  string
	samples int64
}

// HourlyReadings implements rollup.ReadingSource.
func (c *chReadings) HourlyReadings(ctx context.Context, selector string, from, to time.Time) ([]rollup.ReadingSeries, error) {
	ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(selector)
	if err != nil {
		return nil, fmt.Errorf("parse selector %q: %w", selector, err)
	}
	if c.tenant != "" {
		ms = append(ms, labels.MustNewMatcher(labels.MatchEqual, ingest.TenantLabel, c.tenant))
	}
	h := time.Hour.Milliseconds()
	// The hour starting at s is the bucket ending at s+1h.
	rs, err := c.st.Rollups(ctx, time.Hour, from.UnixMilli()+h, to.UnixMilli(), ms...)
	if err != nil {
		return nil, fmt.Errorf("hourly rollups of %s: %w", selector, err)
	}
	out := make([]rollup.ReadingSeries, 0, len(rs))
	for _, s := range rs {
		if c.tenant != "" && s.Labels.Get(ingest.TenantLabel) != c.tenant {
			return nil, fmt.Errorf("hourly rollups of %s: series %s is not tenant %q's", selector, s.Labels, c.tenant)
		}
		r := rollup.ReadingSeries{Labels: s.Labels.Map(), Hours: make([]rollup.Reading, len(s.Buckets))}
		for i, b := range s.Buckets {
			r.Hours[i] = rollup.Reading{Start: b.End - h, LastT: b.LastTS, First: b.First, Last: b.Last, Max: b.Max,
				Sum: b.Avg * float64(b.Count), Count: int(b.Count)}
			c.samples += int64(b.Count)
		}
		out = append(out, r)
	}
	return out, nil
}

// energyMemoKey is the context key of an EnergyMemo.
type energyMemoKey struct{}

// EnergyMemo keeps the hourly energy the Accountant reads during one piece
// of work (an EU report reads the same meters for the year's KPIs, monthly
// table, grid import and emissions), so that each meter is read once:
// queries on whole hours are answered from one hourly computation per
// tenant, selectors, range and query knobs, summed into the buckets asked
// for. Install it with WithEnergyMemo on the context of that work only: it
// never forgets, and later samples are not seen.
type EnergyMemo struct {
	mu      sync.Mutex
	entries map[string]*memoEntry
	// Reads counts the computations made, Hits the answers from memory.
	Reads, Hits int
}

type memoEntry struct {
	once sync.Once
	res  *energy.Result
	err  error
}

// WithEnergyMemo returns ctx carrying a new EnergyMemo, and the memo.
func WithEnergyMemo(ctx context.Context) (context.Context, *EnergyMemo) {
	m := &EnergyMemo{entries: map[string]*memoEntry{}}
	return context.WithValue(ctx, energyMemoKey{}, m), m
}

// EnergyMemoFrom returns the context's EnergyMemo, nil when it has none.
func EnergyMemoFrom(ctx context.Context) *EnergyMemo {
	m, _ := ctx.Value(energyMemoKey{}).(*EnergyMemo)
	return m
}

// energy answers q from the memo's hourly computation with src, or with src
// alone when q's range or buckets are not whole hours.
func (m *EnergyMemo) energy(ctx context.Context, src EnergySource, tenant string, q energy.Query) (*energy.Result, error) {
	edges, err := q.Buckets.Edges(q.From, q.To)
	if err != nil {
		return src.Energy(ctx, tenant, q)
	}
	hq := q
	hq.Buckets = energy.Bucketing{Calendar: energy.Hour}
	hourly, err := hq.Buckets.Edges(q.From, q.To)
	if err != nil || !subsetOf(edges, hourly) {
		return src.Energy(ctx, tenant, q)
	}
	// The hours are those of q.From's location (a half-hour offset moves them).
	loc := q.From.Location()
	key := fmt.Sprintf("%q %q %d %d %s/%p %d %v %v %d %d", tenant, q.Selectors, q.From.UnixMilli(), q.To.UnixMilli(), loc, loc,
		q.Interval, q.GapFactor, q.WrapAt, q.Lookback, q.MaxGaps)
	m.mu.Lock()
	e := m.entries[key]
	if e == nil {
		e = &memoEntry{}
		m.entries[key] = e
		m.Reads++
	} else {
		m.Hits++
	}
	m.mu.Unlock()
	e.once.Do(func() { e.res, e.err = src.Energy(ctx, tenant, hq) })
	if e.err != nil {
		return nil, e.err
	}
	return rebucket(e.res, edges), nil
}

// subsetOf says whether every edge of a is one of b's (both ascending).
func subsetOf(a, b []time.Time) bool {
	j := 0
	for _, t := range a {
		for j < len(b) && b[j].Before(t) {
			j++
		}
		if j == len(b) || !b[j].Equal(t) {
			return false
		}
	}
	return true
}

// rebucket sums an hourly result into the buckets of edges (a subset of its
// own edges): energy adds up, completeness is weighted by the hours' spans.
// The result is a new value; gaps and counters are copied.
func rebucket(h *energy.Result, edges []time.Time) *energy.Result {
	r := *h
	r.Gaps = slices.Clone(h.Gaps)
	r.Buckets = make([]energy.Bucket, len(edges)-1)
	j := 0
	for i := range r.Buckets {
		b := &r.Buckets[i]
		b.Start, b.End = edges[i], edges[i+1]
		var covered float64
		for ; j < len(h.Buckets) && h.Buckets[j].Start.Before(b.End); j++ {
			hb := h.Buckets[j]
			b.Energy += hb.Energy
			b.Estimated += hb.Estimated
			covered += hb.Completeness * float64(hb.End.Sub(hb.Start))
		}
		if span := float64(b.End.Sub(b.Start)); span > 0 {
			b.Completeness = covered / span
		}
	}
	return &r
}
