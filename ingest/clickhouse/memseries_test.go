package clickhouse

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/histogram"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
	"github.com/prometheus/prometheus/tsdb/chunks"
)

// listSamples are Prometheus' reference samples for the iterator test.
type listSample struct {
	t int64
	v float64
}

func (s listSample) T() int64                    { return s.t }
func (listSample) ST() int64                     { return 0 }
func (s listSample) F() float64                  { return s.v }
func (listSample) H() *histogram.Histogram       { return nil }
func (listSample) FH() *histogram.FloatHistogram { return nil }
func (listSample) Type() chunkenc.ValueType      { return chunkenc.ValFloat }
func (s listSample) Copy() chunks.Sample         { return s }

type listSamples []listSample

func (l listSamples) Get(i int) chunks.Sample { return l[i] }
func (l listSamples) Len() int                { return len(l) }

// A series in pieces iterates as Prometheus' list iterator does over the
// same samples, through any sequence of Next and Seek, and AppendFloats
// hands out what is left within bounds.
func TestFloatIterator(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		var pieces [][]int64
		var vpieces [][]float64
		var all listSamples
		tt := int64(rng.IntN(5))
		for range rng.IntN(4) {
			n := rng.IntN(5) // empty pieces too
			var ts []int64
			var vs []float64
			for range n {
				tt += 1 + int64(rng.IntN(3))
				ts, vs = append(ts, tt), append(vs, float64(tt)*1.5)
				all = append(all, listSample{tt, float64(tt) * 1.5})
			}
			pieces, vpieces = append(pieces, ts), append(vpieces, vs)
		}
		s := &series{ts: pieces, vs: vpieces}
		got := s.Iterator(nil)
		want := storage.NewListSeriesIterator(all)
		for step := range 12 {
			var g, w chunkenc.ValueType
			op := "next"
			if rng.IntN(2) == 0 {
				seek := int64(rng.IntN(int(tt) + 3))
				op = "seek"
				g, w = got.Seek(seek), want.Seek(seek)
			} else {
				g, w = got.Next(), want.Next()
			}
			if g != w {
				t.Fatalf("trial %d step %d (%s): %v, want %v (pieces %v)", trial, step, op, g, w, pieces)
			}
			if g == chunkenc.ValNone {
				break
			}
			gt, gv := got.At()
			wt, wv := want.At()
			if gt != wt || gv != wv || got.AtT() != wt {
				t.Fatalf("trial %d step %d (%s): at %d %g, want %d %g", trial, step, op, gt, gv, wt, wv)
			}
			// What is left, within bounds.
			lo, hi := wt+int64(rng.IntN(3)), wt+int64(rng.IntN(8))
			ats, avs := got.(*floatIterator).AppendFloats([]int64{-1}, []float64{-1}, lo, hi)
			var wts []int64
			for _, x := range all {
				if x.t >= wt && x.t >= lo && x.t <= hi {
					wts = append(wts, x.t)
				}
			}
			if !slices.Equal(ats[1:], wts) || len(avs) != len(ats) || ats[0] != -1 {
				t.Fatalf("trial %d: AppendFloats(%d, %d) from %d = %v, want %v", trial, lo, hi, wt, ats[1:], wts)
			}
			for i := 1; i < len(ats); i++ {
				if avs[i] != float64(ats[i])*1.5 {
					t.Fatalf("trial %d: value of %d is %g", trial, ats[i], avs[i])
				}
			}
		}
	}
}

// collect uses runs in place when they are in order and apart, whatever
// order they were read in, and otherwise sorts a copy, the last row read
// winning a tie.
func TestCollect(t *testing.T) {
	type blk struct {
		ids []uint64
		ts  []int64
	}
	for _, tc := range []struct {
		name    string
		blocks  []blk
		wantTS  []int64
		wantVS  []float64 // the value of a row is its position in the read, from 1
		inPlace bool
	}{
		{"one run", []blk{{[]uint64{7, 7, 7}, []int64{1, 2, 3}}}, []int64{1, 2, 3}, []float64{1, 2, 3}, true},
		{"two parts, later first", []blk{{[]uint64{7, 7}, []int64{5, 6}}, {[]uint64{7, 7}, []int64{1, 2}}}, []int64{1, 2, 5, 6}, []float64{3, 4, 1, 2}, true},
		{"runs in one block", []blk{{[]uint64{7, 7, 9, 7}, []int64{3, 4, 1, 8}}}, []int64{3, 4, 8}, []float64{1, 2, 4}, true},
		{"overlapping parts", []blk{{[]uint64{7, 7}, []int64{1, 3}}, {[]uint64{7, 7}, []int64{2, 4}}}, []int64{1, 2, 3, 4}, []float64{1, 3, 2, 4}, false},
		{"resent sample, later part wins", []blk{{[]uint64{7, 7}, []int64{1, 2}}, {[]uint64{7}, []int64{2}}}, []int64{1, 2}, []float64{1, 3}, false},
		{"resent sample read first", []blk{{[]uint64{7}, []int64{2}}, {[]uint64{7, 7}, []int64{1, 2}}}, []int64{1, 2}, []float64{2, 3}, false},
		{"out of order within a run", []blk{{[]uint64{7, 7, 7}, []int64{2, 1, 3}}}, []int64{1, 2, 3}, []float64{2, 1, 3}, false},
	} {
		var b runBlocks
		byID := map[uint64]*runs{}
		pos := 0.0
		for _, bl := range tc.blocks {
			vs := make([]float64, len(bl.ts))
			for i := range vs {
				pos++
				vs[i] = pos
			}
			b.add(byID, bl.ids, slices.Clone(bl.ts), vs)
		}
		ts, vs := b.collect(byID[7])
		var gotTS []int64
		var gotVS []float64
		for i := range ts {
			gotTS, gotVS = append(gotTS, ts[i]...), append(gotVS, vs[i]...)
		}
		if !slices.Equal(gotTS, tc.wantTS) || !slices.Equal(gotVS, tc.wantVS) {
			t.Errorf("%s: %v %v, want %v %v", tc.name, gotTS, gotVS, tc.wantTS, tc.wantVS)
		}
		inPlace := true
		for _, p := range ts {
			inPlace = inPlace && inBlocks(p, b.ts)
		}
		if inPlace != tc.inPlace {
			t.Errorf("%s: in place %v, want %v", tc.name, inPlace, tc.inPlace)
		}
	}
}

// inBlocks reports whether p is a slice of one of the blocks' arrays.
func inBlocks(p []int64, blocks [][]int64) bool {
	for _, b := range blocks {
		for k := range b {
			if len(p) > 0 && &p[0] == &b[k] {
				return true
			}
		}
	}
	return false
}
