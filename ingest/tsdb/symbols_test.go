package tsdb

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	ptsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/index"
)

// blocksStore opens a store and writes series (shared and per-block label
// values, unicode, an empty-looking value) over three 2 h blocks, compacted.
func blocksStore(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	const h = int64(3600_000)
	base := int64(1_700_000_000_000) / (2 * h) * (2 * h)
	r := rand.New(rand.NewPCG(7, 8))
	for blk := range 4 {
		app := s.Appender(context.Background())
		for i := range 300 {
			ls := labels.FromStrings("__name__", "greenloop_energy_joules_total", "site", fmt.Sprintf("site-%d", i%7),
				"node", fmt.Sprintf("node-%04d-Ω", i+blk*(i%3)), "rack", fmt.Sprintf("r%d", r.IntN(40)))
			for k := range 12 {
				if _, err := app.Append(0, ls, base+int64(blk)*2*h+int64(k)*10*60_000, float64(k*i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := app.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DB().Compact(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(s.DB().Blocks()); n < 3 {
		t.Fatalf("%d blocks, want at least 3", n)
	}
	return s
}

// TestSymbolIndexSeries reads every series of every block through the
// library's index reader and through symbolIndex: same labels, same chunks.
func TestSymbolIndexSeries(t *testing.T) {
	s := blocksStore(t)
	ctx := context.Background()
	for _, b := range s.DB().Blocks() {
		lib, err := b.Index()
		if err != nil {
			t.Fatal(err)
		}
		fast, err := symbolBlock{b, s.symbols}.Index()
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := fast.(*symbolIndex); !ok {
			t.Fatalf("block %s: index read by %T, want *symbolIndex", b.Meta().ULID, fast)
		}
		name, value := index.AllPostingsKey()
		p, err := lib.Postings(ctx, name, value)
		if err != nil {
			t.Fatal(err)
		}
		var lb, fb labels.ScratchBuilder
		var lc, fc []chunks.Meta
		n := 0
		for p.Next() {
			ref := p.At()
			if err := lib.Series(ref, &lb, &lc); err != nil {
				t.Fatal(err)
			}
			if err := fast.Series(ref, &fb, &fc); err != nil {
				t.Fatal(err)
			}
			if !labels.Equal(lb.Labels(), fb.Labels()) || !slices.Equal(lc, fc) {
				t.Fatalf("series %d: %s %v, want %s %v", ref, fb.Labels(), fc, lb.Labels(), lc)
			}
			n++
		}
		if err := p.Err(); err != nil {
			t.Fatal(err)
		}
		if n < 300 {
			t.Fatalf("block %s: %d series compared", b.Meta().ULID, n)
		}
		if err := fast.Series(storage.SeriesRef(1<<40), &fb, &fc); err == nil {
			t.Error("a series past the file's end read without error")
		}
		lib.Close()
		fast.Close()
	}
}

// TestSymbolIndexQueries: the store's queriers (which read blocks through
// symbolIndex) answer as plain library queriers over the same blocks and head.
func TestSymbolIndexQueries(t *testing.T) {
	s := blocksStore(t)
	ctx := context.Background()
	mint, maxt := int64(0), int64(1<<62)
	for _, ms := range [][]*labels.Matcher{
		{labels.MustNewMatcher(labels.MatchEqual, "__name__", "greenloop_energy_joules_total")},
		{labels.MustNewMatcher(labels.MatchRegexp, "node", "node-00[1-3].*"), labels.MustNewMatcher(labels.MatchNotEqual, "site", "site-2")},
	} {
		got, err := s.Querier(mint, maxt)
		if err != nil {
			t.Fatal(err)
		}
		var want []storage.Querier
		for _, b := range s.DB().Blocks() {
			q, err := ptsdb.NewBlockQuerier(b, mint, maxt)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, q)
		}
		hq, err := ptsdb.NewBlockQuerier(ptsdb.NewRangeHead(s.DB().Head(), mint, maxt), mint, maxt)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, hq)
		wq := storage.NewMergeQuerier(want, nil, storage.ChainedSeriesMerge)
		a := dump(t, got.Select(ctx, true, nil, ms...))
		b := dump(t, wq.Select(ctx, true, nil, ms...))
		got.Close()
		wq.Close()
		if len(a) == 0 || !slices.Equal(a, b) {
			t.Fatalf("%v: %d series, want %d", ms, len(a), len(b))
		}
	}
}

func dump(t *testing.T, ss storage.SeriesSet) []string {
	t.Helper()
	var out []string
	var it = storage.SeriesSet(ss)
	for it.Next() {
		s := it.At()
		n := 0
		si := s.Iterator(nil)
		for si.Next() != 0 {
			n++
		}
		out = append(out, fmt.Sprintf("%s %d", s.Labels(), n))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestSymbolIndexFallback: an index file the reader cannot take (format 1,
// truncated, missing) leaves the block to the library's reader.
func TestSymbolIndexFallback(t *testing.T) {
	s := blocksStore(t)
	b := s.DB().Blocks()[0]
	raw, err := os.ReadFile(filepath.Join(b.Dir(), "index"))
	if err != nil {
		t.Fatal(err)
	}
	lib, err := b.Index()
	if err != nil {
		t.Fatal(err)
	}
	defer lib.Close()
	v1 := slices.Clone(raw)
	v1[4] = 1
	for name, data := range map[string][]byte{"format 1": v1, "truncated": raw[:40], "empty": nil} {
		if _, err := readSymbolOffsets(byteSlice(data)); err == nil {
			t.Errorf("%s: read as format 2", name)
		}
	}
	if _, err := openSymbolIndex(filepath.Join(t.TempDir(), "index"), lib, b.Meta().ULID, newSymbolCache()); err == nil {
		t.Error("a missing file opened")
	}
}

// TestSymbolCache: a block's offsets are read once and kept; past
// symbolCacheBlocks blocks the least recently used one goes.
func TestSymbolCache(t *testing.T) {
	s := blocksStore(t)
	b := s.DB().Blocks()[0]
	raw, err := os.ReadFile(filepath.Join(b.Dir(), "index"))
	if err != nil {
		t.Fatal(err)
	}
	c := newSymbolCache()
	first, err := c.offsets(b.Meta().ULID, byteSlice(raw))
	if err != nil || len(first) == 0 {
		t.Fatalf("%d offsets, %v", len(first), err)
	}
	again, err := c.offsets(b.Meta().ULID, nil) // kept: the bytes are not read
	if err != nil || &again[0] != &first[0] {
		t.Fatalf("second read: %v, not the kept table", err)
	}
	var ids []ulid.ULID
	for i := range symbolCacheBlocks {
		id := ulid.ULID{byte(i + 1)}
		ids = append(ids, id)
		if _, err := c.offsets(id, byteSlice(raw)); err != nil {
			t.Fatal(err)
		}
		if i == 10 {
			c.offsets(b.Meta().ULID, nil) // keep the real block recent
		}
	}
	if len(c.entries) != symbolCacheBlocks {
		t.Fatalf("%d entries, want %d", len(c.entries), symbolCacheBlocks)
	}
	if _, ok := c.entries[b.Meta().ULID]; !ok {
		t.Error("a recently used block was evicted")
	}
	if _, ok := c.entries[ids[0]]; ok {
		t.Error("the least recently used block was kept")
	}
}
