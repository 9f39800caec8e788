package tsdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"path/filepath"
	"sync"

	"github.com/oklog/ulid/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	ptsdb "github.com/prometheus/prometheus/tsdb"
	"github.com/prometheus/prometheus/tsdb/chunks"
	"github.com/prometheus/prometheus/tsdb/encoding"
	"github.com/prometheus/prometheus/tsdb/fileutil"
	"github.com/prometheus/prometheus/tsdb/index"
)

// The TSDB's index (format 2) names each label of a series by the number of
// its string in the block's symbol table, and finds the string by jumping
// to every 32nd symbol and walking the rest: about 16 strings decoded for
// each label of each series read. A query over 10,000 series of five blocks
// spent an eighth of its CPU there. Queries on blocks on disk therefore read
// series through symbolIndex, which looks symbols up in a table of where
// each one starts: built once per block (one pass over its symbol table,
// 4 bytes a symbol) and kept for the most recently used blocks.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockChunkQuerier is the store's tsdb.Options.BlockChunkQuerierFunc: a
// block on disk is read through symbolIndex, anything else (the head) as the
// library does.
func (c *symbolCache) blockChunkQuerier(b ptsdb.BlockReader, mint, maxt int64) (storage.ChunkQuerier, error) {
	if pb, ok := b.(*ptsdb.Block); ok {
		return ptsdb.NewBlockChunkQuerier(symbolBlock{pb, c}, mint, maxt)
	}
	return ptsdb.NewBlockChunkQuerier(b, mint, maxt)
}

// blockQuerier is blockChunkQuerier for sample queriers (the PromQL engine).
func (c *symbolCache) blockQuerier(b ptsdb.BlockReader, mint, maxt int64) (storage.Querier, error) {
	if pb, ok := b.(*ptsdb.Block); ok {
		return ptsdb.NewBlockQuerier(symbolBlock{pb, c}, mint, maxt)
	}
	return ptsdb.NewBlockQuerier(b, mint, maxt)
}

// symbolCacheBlocks is how many blocks' symbol offsets are kept: more than a
// store holds at once with the default retention and compaction.
const symbolCacheBlocks = 64

// symbolCache keeps the symbol offsets of recently read blocks, by block
// id (a block's files never change).
type symbolCache struct {
	mu      sync.Mutex
	tick    uint64
	entries map[ulid.ULID]*symbolOffsets
}

// symbolOffsets is where each symbol of one block's index starts.
type symbolOffsets struct {
	offsets []uint32
	used    uint64 // the cache's tick at the last use
}

func newSymbolCache() *symbolCache {
	return &symbolCache{entries: map[ulid.ULID]*symbolOffsets{}}
}

// offsets returns block id's offsets, reading them from b when not kept.
func (c *symbolCache) offsets(id ulid.ULID, b byteSlice) ([]uint32, error) {
	c.mu.Lock()
	c.tick++
	if e, ok := c.entries[id]; ok {
		e.used = c.tick
		c.mu.Unlock()
		return e.offsets, nil
	}
	c.mu.Unlock()
	offs, err := readSymbolOffsets(b)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= symbolCacheBlocks {
		var oldest ulid.ULID
		least := uint64(math.MaxUint64)
		for k, e := range c.entries {
			if e.used < least {
				oldest, least = k, e.used
			}
		}
		delete(c.entries, oldest)
	}
	c.entries[id] = &symbolOffsets{offsets: offs, used: c.tick}
	return offs, nil
}

// symbolBlock is a block whose index reader is a symbolIndex.
type symbolBlock struct {
	*ptsdb.Block
	cache *symbolCache
}

// Index implements tsdb.BlockReader. When the block's index file cannot be
// read that way (not format 2, unreadable), it is the library's reader.
func (b symbolBlock) Index() (ptsdb.IndexReader, error) {
	ir, err := b.Block.Index()
	if err != nil {
		return nil, err
	}
	// The library's reader keeps the block from being deleted until it is
	// closed, so the file is there while this one maps it.
	si, err := openSymbolIndex(filepath.Join(b.Dir(), "index"), ir, b.Meta().ULID, b.cache)
	if err != nil {
		return ir, nil
	}
	return si, nil
}

// symbolIndex is a block's index reader whose Series looks the symbols up
// in a table of their offsets; everything else is the library's reader.
type symbolIndex struct {
	ptsdb.IndexReader
	mf      *fileutil.MmapFile
	b       byteSlice
	offsets []uint32 // of each symbol in b
	dec     index.Decoder
}

func openSymbolIndex(path string, ir ptsdb.IndexReader, id ulid.ULID, cache *symbolCache) (*symbolIndex, error) {
	mf, err := fileutil.OpenMmapFile(path)
	if err != nil {
		return nil, err
	}
	b := byteSlice(mf.Bytes())
	offs, err := cache.offsets(id, b)
	if err != nil {
		mf.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	si := &symbolIndex{IndexReader: ir, mf: mf, b: b, offsets: offs}
	si.dec = index.Decoder{LookupSymbol: si.lookup}
	return si, nil
}

// readSymbolOffsets reads where each symbol of the index file's bytes b starts.
func readSymbolOffsets(b byteSlice) ([]uint32, error) {
	if b.Len() < index.HeaderLen || binary.BigEndian.Uint32(b) != index.MagicIndex {
		return nil, errors.New("not an index file")
	}
	if v := b[4]; v != index.FormatV2 {
		return nil, fmt.Errorf("index format %d, want %d", v, index.FormatV2)
	}
	toc, err := index.NewTOCFromByteSlice(b)
	if err != nil {
		return nil, err
	}
	if toc.Symbols > uint64(b.Len()) {
		return nil, errors.New("symbol table out of range")
	}
	d := encoding.NewDecbufAt(b, int(toc.Symbols), castagnoli)
	base := int(toc.Symbols) + 4 + d.Len() // where d.B starts in b, plus its length
	n := d.Be32int()
	if d.Err() != nil {
		return nil, fmt.Errorf("symbol table: %w", d.Err())
	}
	if base > math.MaxUint32 {
		return nil, errors.New("symbol table beyond 4 GiB")
	}
	if n < 0 || n > d.Len() {
		return nil, fmt.Errorf("symbol table: %d symbols in %d bytes", n, d.Len())
	}
	offsets := make([]uint32, n)
	for i := range n {
		offsets[i] = uint32(base - d.Len())
		d.UvarintBytes()
	}
	if d.Err() != nil {
		return nil, fmt.Errorf("symbol table: %w", d.Err())
	}
	return offsets, nil
}

// lookup returns symbol o.
func (si *symbolIndex) lookup(_ context.Context, o uint32) (string, error) {
	if int(o) >= len(si.offsets) {
		return "", fmt.Errorf("unknown symbol %d", o)
	}
	d := encoding.Decbuf{B: si.b[si.offsets[o]:]}
	s := d.UvarintStr()
	if d.Err() != nil {
		return "", fmt.Errorf("symbol %d: %w", o, d.Err())
	}
	return s, nil
}

// Series implements tsdb.IndexReader as the library's index.Reader does
// (series are 16-byte aligned; the entry's checksum is verified).
func (si *symbolIndex) Series(ref storage.SeriesRef, builder *labels.ScratchBuilder, chks *[]chunks.Meta) error {
	d := encoding.NewDecbufUvarintAt(si.b, int(ref)*16, castagnoli)
	if d.Err() != nil {
		return fmt.Errorf("read series %d: %w", ref, d.Err())
	}
	builder.Reset()
	if err := si.dec.Series(d.Get(), builder, chks); err != nil {
		return fmt.Errorf("read series %d: %w", ref, err)
	}
	return nil
}

// Close unmaps the file, then closes the library's reader.
func (si *symbolIndex) Close() error {
	var err error
	if si.mf != nil {
		err = si.mf.Close()
	}
	return errors.Join(err, si.IndexReader.Close())
}

// byteSlice is index.ByteSlice over a byte slice.
type byteSlice []byte

func (b byteSlice) Len() int                    { return len(b) }
func (b byteSlice) Range(start, end int) []byte { return b[start:end] }
