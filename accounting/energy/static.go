package energy

import (
	"context"
	"sort"
	"time"
)

// StaticSeries is one series held in memory: labels (with "__name__") and
// samples in time order, T in Unix milliseconds.
type StaticSeries struct {
	Labels map[string]string
	T      []int64
	V      []float64
}

// StaticSource is a Source over series held in memory, keyed by the exact
// selector string that returns them. It serves tests, examples, and callers
// that already hold samples.
type StaticSource map[string][]StaticSeries

// Scan implements Source.
func (s StaticSource) Scan(ctx context.Context, selector string, from, to time.Time, visit func(map[string]string, SampleIterator) error) error {
	lo, hi := from.UnixMilli(), to.UnixMilli()
	for _, ser := range s[selector] {
		if err := ctx.Err(); err != nil {
			return err
		}
		i := sort.Search(len(ser.T), func(i int) bool { return ser.T[i] >= lo })
		j := sort.Search(len(ser.T), func(i int) bool { return ser.T[i] > hi })
		it := &sliceIterator{t: ser.T[i:j], v: ser.V[i:j], i: -1}
		if err := visit(ser.Labels, it); err != nil {
			return err
		}
	}
	return nil
}

type sliceIterator struct {
	t []int64
	v []float64
	i int
}

func (it *sliceIterator) Next() bool {
	it.i++
	return it.i < len(it.t)
}

func (it *sliceIterator) At() (int64, float64) { return it.t[it.i], it.v[it.i] }

func (it *sliceIterator) Err() error { return nil }

// NextBatch implements BatchIterator: the rest of the slice at once.
func (it *sliceIterator) NextBatch() ([]int64, []float64) {
	if it.i+1 >= len(it.t) {
		it.i = len(it.t)
		return nil, nil
	}
	start := it.i + 1 // it.i is the sample Next last returned
	it.i = len(it.t)
	return it.t[start:], it.v[start:]
}
