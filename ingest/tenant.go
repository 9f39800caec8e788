package ingest

import (
	"context"
	"slices"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/util/annotations"
)

// TenantQueryable confines every read to one tenant's series and hides the
// tenant label, so a tenant's queries look the same as in single-tenant mode.
// An empty tenant returns q unchanged (single-tenant mode).
func TenantQueryable(q storage.Queryable, tenant string) storage.Queryable {
	if tenant == "" {
		return q
	}
	tq := tenantQueryable{q: q, m: labels.MustNewMatcher(labels.MatchEqual, TenantLabel, tenant)}
	if cq, ok := q.(storage.ChunkQueryable); ok {
		return tenantChunkQueryable{tenantQueryable: tq, cq: cq}
	}
	return tq
}

// tenantChunkQueryable also hands out whole chunks (for readers that decode
// them themselves), confined to the tenant as the samples are.
type tenantChunkQueryable struct {
	tenantQueryable
	cq storage.ChunkQueryable
}

func (t tenantChunkQueryable) ChunkQuerier(mint, maxt int64) (storage.ChunkQuerier, error) {
	q, err := t.cq.ChunkQuerier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return tenantChunkQuerier{q: q, m: t.m}, nil
}

type tenantChunkQuerier struct {
	q storage.ChunkQuerier
	m *labels.Matcher
}

func (t tenantChunkQuerier) confine(ms []*labels.Matcher) []*labels.Matcher {
	return append(ms[:len(ms):len(ms)], t.m)
}

func (t tenantChunkQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.ChunkSeriesSet {
	return &tenantChunkSeriesSet{ChunkSeriesSet: t.q.Select(ctx, sortSeries, hints, t.confine(ms)...)}
}

func (t tenantChunkQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if name == TenantLabel {
		return nil, nil, nil
	}
	return t.q.LabelValues(ctx, name, hints, t.confine(ms)...)
}

func (t tenantChunkQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	names, ann, err := t.q.LabelNames(ctx, hints, t.confine(ms)...)
	if i, found := slices.BinarySearch(names, TenantLabel); found {
		names = slices.Delete(slices.Clone(names), i, i+1)
	}
	return names, ann, err
}

func (t tenantChunkQuerier) Close() error { return t.q.Close() }

type tenantChunkSeriesSet struct {
	storage.ChunkSeriesSet
}

func (s *tenantChunkSeriesSet) At() storage.ChunkSeries {
	return tenantChunkSeries{ChunkSeries: s.ChunkSeriesSet.At()}
}

type tenantChunkSeries struct {
	storage.ChunkSeries
}

func (s tenantChunkSeries) Labels() labels.Labels {
	return labels.NewBuilder(s.ChunkSeries.Labels()).Del(TenantLabel).Labels()
}

type tenantQueryable struct {
	q storage.Queryable
	m *labels.Matcher
}

func (t tenantQueryable) Querier(mint, maxt int64) (storage.Querier, error) {
	q, err := t.q.Querier(mint, maxt)
	if err != nil {
		return nil, err
	}
	return tenantQuerier{q: q, m: t.m}, nil
}

type tenantQuerier struct {
	q storage.Querier
	m *labels.Matcher
}

// confine adds the tenant's own matcher to the caller's: a caller's matcher on
// the tenant label can only narrow the view (asking for another tenant finds nothing).
func (t tenantQuerier) confine(ms []*labels.Matcher) []*labels.Matcher {
	return append(ms[:len(ms):len(ms)], t.m)
}

func (t tenantQuerier) Select(ctx context.Context, sortSeries bool, hints *storage.SelectHints, ms ...*labels.Matcher) storage.SeriesSet {
	return &tenantSeriesSet{SeriesSet: t.q.Select(ctx, sortSeries, hints, t.confine(ms)...)}
}

func (t tenantQuerier) LabelValues(ctx context.Context, name string, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	if name == TenantLabel {
		return nil, nil, nil
	}
	return t.q.LabelValues(ctx, name, hints, t.confine(ms)...)
}

func (t tenantQuerier) LabelNames(ctx context.Context, hints *storage.LabelHints, ms ...*labels.Matcher) ([]string, annotations.Annotations, error) {
	names, ann, err := t.q.LabelNames(ctx, hints, t.confine(ms)...)
	if i, found := slices.BinarySearch(names, TenantLabel); found {
		names = slices.Delete(slices.Clone(names), i, i+1)
	}
	return names, ann, err
}

func (t tenantQuerier) Close() error { return t.q.Close() }

type tenantSeriesSet struct {
	storage.SeriesSet
}

func (s *tenantSeriesSet) At() storage.Series {
	return tenantSeries{Series: s.SeriesSet.At()}
}

type tenantSeries struct {
	storage.Series
}

func (s tenantSeries) Labels() labels.Labels {
	return labels.NewBuilder(s.Series.Labels()).Del(TenantLabel).Labels()
}
