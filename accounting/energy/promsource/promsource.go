// Package promsource reads raw samples for the energy package from a
// Prometheus storage.Queryable (the embedded TSDB, or any store behind the
// same interface), selecting series with a PromQL series selector.
package promsource

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"

	"github.com/greenloop/greenloop/accounting/energy"
)

// Source is an energy.Source over a storage.Queryable. Scope it to a tenant
// by passing a Queryable that only returns that tenant's series.
type Source struct {
	q storage.Queryable
	p parser.Parser
}

// New returns a Source reading from q.
func New(q storage.Queryable) *Source {
	return &Source{q: q, p: parser.NewParser(parser.Options{})}
}

var _ energy.Source = (*Source)(nil)

// Scan implements energy.Source: it parses selector (e.g.
// greenloop_energy_joules_total{site="fra1",component="it"}) and visits each
// matching series with its raw float samples in [from, to]. Native histogram
// samples are skipped.
func (s *Source) Scan(ctx context.Context, selector string, from, to time.Time, visit func(map[string]string, energy.SampleIterator) error) error {
	ms, err := s.p.ParseMetricSelector(selector)
	if err != nil {
		return fmt.Errorf("parse selector %q: %w", selector, err)
	}
	mint, maxt := from.UnixMilli(), to.UnixMilli()
	q, err := s.q.Querier(mint, maxt)
	if err != nil {
		return fmt.Errorf("open querier: %w", err)
	}
	defer q.Close()
	set := q.Select(ctx, false, &storage.SelectHints{Start: mint, End: maxt}, ms...)
	var ci chunkenc.Iterator
	it := &iterator{mint: mint, maxt: maxt, bt: make([]int64, 0, 512), bv: make([]float64, 0, 512)}
	for set.Next() {
		if err := ctx.Err(); err != nil {
			return err
		}
		series := set.At()
		ci = series.Iterator(ci)
		it.ci, it.done = ci, false
		if err := visit(labelMap(series.Labels()), it); err != nil {
			return err
		}
	}
	if err := set.Err(); err != nil {
		return fmt.Errorf("select %s: %w", selector, err)
	}
	return nil
}

func labelMap(ls labels.Labels) map[string]string {
	m := make(map[string]string, ls.Len())
	ls.Range(func(l labels.Label) { m[l.Name] = l.Value })
	return m
}

// iterator adapts a chunkenc.Iterator: float samples in [mint, maxt] only.
type iterator struct {
	ci         chunkenc.Iterator
	mint, maxt int64
	t          int64
	v          float64
	done       bool
	bt         []int64
	bv         []float64
}

func (it *iterator) Next() bool {
	if it.done {
		return false
	}
	for {
		switch it.ci.Next() {
		case chunkenc.ValNone:
			it.done = true
			return false
		case chunkenc.ValFloat:
			t, v := it.ci.At()
			if t < it.mint {
				continue
			}
			if t > it.maxt {
				it.done = true
				return false
			}
			it.t, it.v = t, v
			return true
		default: // histograms carry no energy reading
		}
	}
}

func (it *iterator) At() (int64, float64) { return it.t, it.v }

// NextBatch implements energy.BatchIterator, reading up to 512 samples at a time.
func (it *iterator) NextBatch() ([]int64, []float64) {
	it.bt, it.bv = it.bt[:0], it.bv[:0]
	for len(it.bt) < cap(it.bt) && it.Next() {
		it.bt = append(it.bt, it.t)
		it.bv = append(it.bv, it.v)
	}
	return it.bt, it.bv
}

func (it *iterator) Err() error { return it.ci.Err() }
