package tsdb

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb/chunkenc"
)

// chunkDump lists each series with its samples, read from the chunks the set
// hands out (whole, as fastrate asks for them).
func chunkDump(t *testing.T, ss storage.ChunkSeriesSet) []string {
	t.Helper()
	var out []string
	for ss.Next() {
		s := ss.At()
		line := s.Labels().String()
		it := s.Iterator(nil)
		last := int64(math.MinInt64)
		for it.Next() {
			m := it.At()
			if m.Chunk == nil {
				t.Fatalf("%s: chunk not populated", s.Labels())
			}
			if m.MinTime <= last {
				t.Fatalf("%s: chunks out of order (%d after %d)", s.Labels(), m.MinTime, last)
			}
			last = m.MaxTime
			ci := m.Chunk.Iterator(nil)
			for ci.Next() == chunkenc.ValFloat {
				ts, v := ci.At()
				line += fmt.Sprintf(" %d:%g", ts, v)
			}
		}
		if err := it.Err(); err != nil {
			t.Fatal(err)
		}
		out = append(out, line)
	}
	if err := ss.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestBlockChunkRead: the store's chunk querier, which reads blocks itself
// when it can, hands out the same series and chunks as the library's over
// blocks and head, for whole-chunk reads of any range and selector; with
// out-of-order samples or deletions in the range it is the library's.
func TestBlockChunkRead(t *testing.T) {
	const h = int64(3600_000)
	ctx := context.Background()
	for _, tc := range []struct {
		name       string
		ooo        bool // an out-of-order sample into an old block's range, left in the head
		deletion   bool
		wantDirect bool
	}{
		{"blocks and head", false, false, true},
		{"out-of-order samples in the head", true, false, false},
		{"a deletion", false, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.TempDir(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			base := int64(1_700_000_000_000) / (2 * h) * (2 * h)
			r := rand.New(rand.NewPCG(11, 12))
			var lsets []labels.Labels
			for i := range 120 {
				lsets = append(lsets, labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", fmt.Sprintf("s%d", i%5), "node", fmt.Sprintf("n%03d", i)))
			}
			// Ten hours; series come and go, so that some are in some blocks only.
			for ts := base; ts < base+10*h; ts += 60_000 {
				app := s.Appender(ctx)
				for i, ls := range lsets {
					if (i%7 == 0 && ts > base+3*h && ts < base+6*h) || (i%11 == 0 && ts < base+5*h) {
						continue
					}
					if _, err := app.Append(0, ls, ts, float64(ts-base)/1000*float64(1+i%9)+r.Float64()); err != nil {
						t.Fatal(err)
					}
				}
				if err := app.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.DB().Compact(ctx); err != nil {
				t.Fatal(err)
			}
			if len(s.DB().Blocks()) < 2 {
				t.Fatalf("%d blocks, want several", len(s.DB().Blocks()))
			}
			if tc.ooo {
				app := s.Appender(ctx)
				if _, err := app.Append(0, lsets[3], base+90*60_000+30_000, 1); err != nil {
					t.Fatal(err)
				}
				if err := app.Commit(); err != nil {
					t.Fatal(err)
				}
			}
			if tc.deletion {
				if err := s.DB().Delete(ctx, base+2*h, base+3*h, labels.MustNewMatcher(labels.MatchEqual, "site", "s1")); err != nil {
					t.Fatal(err)
				}
			}
			for _, w := range []struct {
				mint, maxt int64
				ms         []*labels.Matcher
			}{
				{base, base + 10*h, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "__name__", "greenloop_energy_joules_total")}},
				{base + 90*60_000, base + 9*h, []*labels.Matcher{labels.MustNewMatcher(labels.MatchRegexp, "site", "s[13]")}},
				{base + 5*h, base + 5*h + 1, []*labels.Matcher{labels.MustNewMatcher(labels.MatchNotEqual, "node", "n004")}},
				{base - 5*h, base - h, []*labels.Matcher{labels.MustNewMatcher(labels.MatchEqual, "site", "s2")}},
			} {
				hints := &storage.SelectHints{Start: w.mint, End: w.maxt, DisableTrimming: true}
				got, err := s.ChunkQuerier(w.mint, w.maxt)
				if err != nil {
					t.Fatal(err)
				}
				_, direct := got.(*blockChunkRead)
				want, err := s.DB().ChunkQuerier(w.mint, w.maxt)
				if err != nil {
					t.Fatal(err)
				}
				a := chunkDump(t, got.Select(ctx, true, hints, w.ms...))
				b := chunkDump(t, want.Select(ctx, true, hints, w.ms...))
				got.Close()
				want.Close()
				// The out-of-order sample and the deletion lie at 1.5 h and in
				// 2-3 h: only windows over them must go to the library.
				touches := w.mint <= base+3*h && w.maxt >= base+90*60_000
				if direct != tc.wantDirect && (tc.wantDirect || touches) {
					t.Errorf("[%d, %d]: read directly %v, want %v", w.mint, w.maxt, direct, tc.wantDirect)
				}
				if !slices.Equal(a, b) {
					t.Fatalf("[%d, %d] %v: %d series, want %d", w.mint, w.maxt, w.ms, len(a), len(b))
				}
				if w.mint >= base && len(a) == 0 {
					t.Fatalf("[%d, %d] %v: nothing read; the comparison proves nothing", w.mint, w.maxt, w.ms)
				}
			}
		})
	}
}
