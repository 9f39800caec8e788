package clickhouse

import (
	"cmp"
	"slices"
	"sort"
	"sync"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// series is one series read into memory: its float samples in time order,
// one per timestamp, in pieces (ts[i] and vs[i] have one length; every
// piece is in time order and ends before the next begins).
type series struct {
	lset labels.Labels
	ts   [][]int64
	vs   [][]float64
}

func (s *series) Labels() labels.Labels { return s.lset }

func (s *series) Iterator(it chunkenc.Iterator) chunkenc.Iterator {
	fi, ok := it.(*floatIterator)
	if !ok {
		fi = &floatIterator{}
	}
	*fi = floatIterator{ts: s.ts, vs: s.vs, i: -1}
	return fi
}

// floatIterator walks float samples held in pieces of slices: sample i of
// piece p is the current one.
type floatIterator struct {
	ts [][]int64
	vs [][]float64
	p  int
	i  int
}

func (it *floatIterator) Next() chunkenc.ValueType {
	for it.p < len(it.ts) {
		if it.i+1 < len(it.ts[it.p]) {
			it.i++
			return chunkenc.ValFloat
		}
		it.p, it.i = it.p+1, -1
	}
	return chunkenc.ValNone
}

// millis is a time in Unix milliseconds. Seek's parameter is declared with
// it (it is int64, so Seek still implements chunkenc.Iterator) because
// go vet's stdmethods check takes a Seek(int64) method for a misspelt
// io.Seeker.
type millis = int64

func (it *floatIterator) Seek(t millis) chunkenc.ValueType {
	if it.i < 0 {
		it.i = 0
	}
	for ; it.p < len(it.ts); it.p, it.i = it.p+1, 0 {
		ts := it.ts[it.p]
		if it.i >= len(ts) || ts[len(ts)-1] < t {
			continue
		}
		if ts[it.i] < t {
			rest := ts[it.i:]
			it.i += sort.Search(len(rest), func(k int) bool { return rest[k] >= t })
		}
		return chunkenc.ValFloat
	}
	return chunkenc.ValNone
}

func (it *floatIterator) At() (int64, float64) { return it.ts[it.p][it.i], it.vs[it.p][it.i] }
func (it *floatIterator) AtHistogram(*histogram.Histogram) (int64, *histogram.Histogram) {
	return it.ts[it.p][it.i], nil
}
func (it *floatIterator) AtFloatHistogram(*histogram.FloatHistogram) (int64, *histogram.FloatHistogram) {
	return it.ts[it.p][it.i], nil
}
func (it *floatIterator) AtT() int64 { return it.ts[it.p][it.i] }
func (*floatIterator) AtST() int64   { return 0 }
func (*floatIterator) Err() error    { return nil }

// AppendFloats appends to ts and vs the samples from the current one on
// (all of them before the first Next or Seek) with mint <= t <= maxt, and
// leaves the iterator where it is. Callers that evaluate a whole series
// (web/fastrate) take them all at once, without a call per sample.
func (it *floatIterator) AppendFloats(ts []int64, vs []float64, mint, maxt int64) ([]int64, []float64) {
	i := max(it.i, 0)
	for p := it.p; p < len(it.ts); p, i = p+1, 0 {
		pts, pvs := it.ts[p][i:], it.vs[p][i:]
		if len(pts) == 0 || pts[len(pts)-1] < mint {
			continue
		}
		if pts[0] > maxt {
			break
		}
		lo := sort.Search(len(pts), func(k int) bool { return pts[k] >= mint })
		hi := sort.Search(len(pts), func(k int) bool { return pts[k] > maxt })
		if lo < hi {
			ts, vs = append(ts, pts[lo:hi]...), append(vs, pvs[lo:hi]...)
		}
	}
	return ts, vs
}

// runBlocks keeps the time and value columns of a raw read's blocks; runs
// locate each series' rows in them.
type runBlocks struct {
	ts [][]int64
	vs [][]float64
}

// runs are where one series' rows are (in read order), and their count.
type runs struct {
	spans []span
	n     int
}

type span struct{ blk, lo, hi int32 }

// add keeps a block (ts and vs are not copied and must not be reused) and
// records each series' run of rows in it.
func (b *runBlocks) add(byID map[uint64]*runs, ids []uint64, ts []int64, vs []float64) {
	blk := int32(len(b.ts))
	b.ts, b.vs = append(b.ts, ts), append(b.vs, vs)
	for lo := 0; lo < len(ids); {
		id := ids[lo]
		hi := lo + 1
		for hi < len(ids) && ids[hi] == id {
			hi++
		}
		r := byID[id]
		if r == nil {
			r = &runs{}
			byID[id] = r
		}
		r.spans = append(r.spans, span{blk, int32(lo), int32(hi)})
		r.n += hi - lo
		lo = hi
	}
}

// collect returns a series' samples in time order, one per timestamp (of
// several rows with one timestamp, the last one read). Runs each in order
// and apart from the others are used in place, in time order; otherwise
// they are copied into one piece and sorted.
func (b *runBlocks) collect(r *runs) ([][]int64, [][]float64) {
	sps := r.spans
	inPlace := true
	for _, sp := range sps {
		if !strictlyIncreasing(b.ts[sp.blk][sp.lo:sp.hi]) {
			inPlace = false
			break
		}
	}
	if inPlace {
		first := func(sp span) int64 { return b.ts[sp.blk][sp.lo] }
		slices.SortFunc(sps, func(x, y span) int { return cmp.Compare(first(x), first(y)) })
		for k := 1; k < len(sps) && inPlace; k++ {
			prev := sps[k-1]
			inPlace = b.ts[prev.blk][prev.hi-1] < first(sps[k])
		}
		if inPlace {
			ts, vs := make([][]int64, len(sps)), make([][]float64, len(sps))
			for k, sp := range sps {
				ts[k], vs[k] = b.ts[sp.blk][sp.lo:sp.hi:sp.hi], b.vs[sp.blk][sp.lo:sp.hi:sp.hi]
			}
			return ts, vs
		}
		// Sorted by time, not read order: restore it for the copy, so that
		// the last row read wins a tie.
		slices.SortFunc(sps, func(x, y span) int {
			if c := cmp.Compare(x.blk, y.blk); c != 0 {
				return c
			}
			return cmp.Compare(x.lo, y.lo)
		})
	}
	ts, vs := make([]int64, 0, r.n), make([]float64, 0, r.n)
	for _, sp := range sps {
		ts = append(ts, b.ts[sp.blk][sp.lo:sp.hi]...)
		vs = append(vs, b.vs[sp.blk][sp.lo:sp.hi]...)
	}
	ts, vs = sortSamples(ts, vs)
	return [][]int64{ts}, [][]float64{vs}
}

func strictlyIncreasing(ts []int64) bool {
	for i := 1; i < len(ts); i++ {
		if ts[i] <= ts[i-1] {
			return false
		}
	}
	return true
}

// sortSamples puts samples in time order, one per timestamp (of several
// with one timestamp, the last one), in place.
func sortSamples(ts []int64, vs []float64) ([]int64, []float64) {
	if !slices.IsSorted(ts) {
		idx := make([]int32, len(ts))
		for i := range idx {
			idx[i] = int32(i)
		}
		slices.SortStableFunc(idx, func(a, b int32) int { return cmp.Compare(ts[a], ts[b]) })
		ts2, vs2 := make([]int64, len(ts)), make([]float64, len(ts))
		for i, j := range idx {
			ts2[i], vs2[i] = ts[j], vs[j]
		}
		ts, vs = ts2, vs2
	}
	k := 0
	for i := range ts {
		if k > 0 && ts[i] == ts[k-1] {
			vs[k-1] = vs[i]
			continue
		}
		ts[k], vs[k] = ts[i], vs[i]
		k++
	}
	return ts[:k], vs[:k]
}

// blockBuf holds the time and value columns of one block of a raw read.
type blockBuf struct {
	ts []int64
	vs []float64
}

// blockRows is the capacity of a new blockBuf: ClickHouse's max_block_size.
const blockRows = 65536

// blockBufs recycles blockBufs between raw reads: a read decodes into them
// without clearing them first, and the series it returns use them in place
// until their querier is closed.
var blockBufs = sync.Pool{New: func() any {
	return &blockBuf{ts: make([]int64, 0, blockRows), vs: make([]float64, 0, blockRows)}
}}

func getBlockBuf() *blockBuf { return blockBufs.Get().(*blockBuf) }

func putBlockBuf(b *blockBuf) {
	b.ts, b.vs = b.ts[:0], b.vs[:0]
	blockBufs.Put(b)
}
