package chnative

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"slices"
	"unsafe"

	"github.com/ClickHouse/ch-go/proto"
)

// Fixed is a result column of UInt64, Int64 or Float64 values decoded into
// the spare capacity of V. Unlike ch-go's columns it does not clear that
// memory first: a column given a reused buffer costs only the copy from the
// connection. Decoding appends; Reset empties V and keeps its buffer.
type Fixed[T uint64 | int64 | float64] struct {
	V []T
}

// Type is the column's ClickHouse type.
func (c *Fixed[T]) Type() proto.ColumnType {
	var zero T
	switch any(zero).(type) {
	case uint64:
		return proto.ColumnTypeUInt64
	case int64:
		return proto.ColumnTypeInt64
	default:
		return proto.ColumnTypeFloat64
	}
}

// Rows is the number of values.
func (c *Fixed[T]) Rows() int { return len(c.V) }

// Reset empties the column, keeping its buffer.
func (c *Fixed[T]) Reset() { c.V = c.V[:0] }

// DecodeColumn appends rows values read from r.
func (c *Fixed[T]) DecodeColumn(r *proto.Reader, rows int) error {
	if rows <= 0 {
		return nil
	}
	n := len(c.V)
	if cap(c.V)-n < rows {
		c.V = slices.Grow(c.V, rows)
	}
	c.V = c.V[:n+rows]
	dst := unsafe.Slice((*byte)(unsafe.Pointer(&c.V[n])), rows*8)
	if err := r.ReadFull(dst); err != nil {
		return fmt.Errorf("%s column: %w", c.Type(), err)
	}
	if !littleEndian { // the wire is little-endian
		for i := 0; i < len(dst); i += 8 {
			binary.NativeEndian.PutUint64(dst[i:], bits.ReverseBytes64(binary.NativeEndian.Uint64(dst[i:])))
		}
	}
	return nil
}

var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

var (
	_ proto.ColResult = (*Fixed[uint64])(nil)
	_ proto.ColResult = (*Fixed[int64])(nil)
	_ proto.ColResult = (*Fixed[float64])(nil)
)
