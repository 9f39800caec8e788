package tsdb

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"math"
	"path/filepath"

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
// series through symbolIndex, which notes where every symbol starts once per
// query (one pass over the table) and decodes each symbol at most once.

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// blockChunkQuerier is the store's tsdb.Options.BlockChunkQuerierFunc: a
// block on disk is read through symbolIndex, anything else (the head) as the
// library does.
func blockChunkQuerier(b ptsdb.BlockReader, mint, maxt int64) (storage.ChunkQuerier, error) {
	if pb, ok := b.(*ptsdb.Block); ok {
		return ptsdb.NewBlockChunkQuerier(symbolBlock{pb}, mint, maxt)
	}
	return ptsdb.NewBlockChunkQuerier(b, mint, maxt)
}

// blockQuerier is blockChunkQuerier for sample queriers (the PromQL engine).
func blockQuerier(b ptsdb.BlockReader, mint, maxt int64) (storage.Querier, error) {
	if pb, ok := b.(*ptsdb.Block); ok {
		return ptsdb.NewBlockQuerier(symbolBlock{pb}, mint, maxt)
	}
	return ptsdb.NewBlockQuerier(b, mint, maxt)
}

// symbolBlock is a block whose index reader is a symbolIndex.
type symbolBlock struct{ *ptsdb.Block }

// Index implements tsdb.BlockReader. When the block's index file cannot be
// read that way (not format 2, unreadable), it is the library's reader.
func (b symbolBlock) Index() (ptsdb.IndexReader, error) {
	ir, err := b.Block.Index()
	if err != nil {
		return nil, err
	}
	// The library's reader keeps the block from being deleted until it is
	// closed, so the file is there while this one maps it.
	si, err := openSymbolIndex(filepath.Join(b.Dir(), "index"), ir)
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
	strs    []string // symbols decoded so far
	done    []bool
	dec     index.Decoder
}

func openSymbolIndex(path string, ir ptsdb.IndexReader) (*symbolIndex, error) {
	mf, err := fileutil.OpenMmapFile(path)
	if err != nil {
		return nil, err
	}
	si, err := newSymbolIndex(byteSlice(mf.Bytes()), ir)
	if err != nil {
		mf.Close()
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	si.mf = mf
	return si, nil
}

// newSymbolIndex reads the symbol table of the index file's bytes b.
func newSymbolIndex(b byteSlice, ir ptsdb.IndexReader) (*symbolIndex, error) {
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
	base := int(toc.Symbols) + 4 + d.Len() // where d.B starts in b
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
	si := &symbolIndex{IndexReader: ir, b: b, offsets: make([]uint32, n), strs: make([]string, n), done: make([]bool, n)}
	for i := range n {
		si.offsets[i] = uint32(base - d.Len())
		d.UvarintBytes()
	}
	if d.Err() != nil {
		return nil, fmt.Errorf("symbol table: %w", d.Err())
	}
	si.dec = index.Decoder{LookupSymbol: si.lookup}
	return si, nil
}

// lookup returns symbol o.
func (si *symbolIndex) lookup(_ context.Context, o uint32) (string, error) {
	if int(o) >= len(si.offsets) {
		return "", fmt.Errorf("unknown symbol %d", o)
	}
	if si.done[o] {
		return si.strs[o], nil
	}
	d := encoding.Decbuf{B: si.b[si.offsets[o]:]}
	s := d.UvarintStr()
	if d.Err() != nil {
		return "", fmt.Errorf("symbol %d: %w", o, d.Err())
	}
	si.strs[o], si.done[o] = s, true
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
