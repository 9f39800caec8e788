package fastrate

import (
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"slices"
	"unsafe"

	"github.com/prometheus/prometheus/model/value"
)

// errCorrupt: the chunk's bytes do not decode as a Prometheus XOR chunk.
var errCorrupt = errors.New("fastrate: corrupt XOR chunk")

// appendDecoded appends the samples of a Prometheus XOR chunk's bytes (the
// Gorilla encoding of package chunkenc: a 16-bit sample count, the first
// timestamp as a varint and value as 64 bits, the second timestamp as a
// delta, then delta-of-deltas in 1, 16, 20, 24 or 68 bits and values XORed
// with the previous one) with timestamps in [mint, maxt] to the series'
// samples, stale markers left out and counter resets noted, as load does
// through chunkenc's iterator. It decodes in one loop, most samples with two
// 64-bit loads; the tests check it against chunkenc bit for bit.
//
// A timestamp not after the previous sample's (chunks that overlap) gives
// errOverlap; bytes that do not decode, errCorrupt.
func (e *evaluator) appendDecoded(data []byte) error {
	if len(data) < 2 {
		return errCorrupt
	}
	total := int(binary.BigEndian.Uint16(data))
	if total == 0 {
		return nil
	}
	// A copy with padding: every load reads 8 bytes, and one sample's loads
	// reach at most 113 bits past the position checked against the end
	// (see ld).
	b := append(e.scratch[:0], data...)
	b = append(b, make([]byte, xorPadding)...)
	e.scratch = b
	base := unsafe.Pointer(unsafe.SliceData(b))
	end := uint(len(data)) * 8

	// First sample: varint timestamp and raw value, byte-aligned.
	t, n := binary.Varint(b[2:len(data)])
	if n <= 0 {
		return errCorrupt
	}
	pos := 16 + uint(n)*8
	if pos+64 > end {
		return errCorrupt
	}
	vbits := binary.BigEndian.Uint64(b[pos>>3:])
	pos += 64
	var (
		tDelta   uint64
		leading  uint = 0xff
		trailing uint
		err      error
		// backwards is set when a delta is not positive: the chunk's
		// timestamps do not increase (chunks that overlap, or damage).
		backwards bool
	)
	// Room for every sample of the chunk, written by index (k). The loop
	// only decodes: the range's start, stale markers, resets and the order
	// are dealt with after it, so that it keeps few values live.
	k0 := len(e.ts)
	if need := k0 + total; cap(e.ts) < need || cap(e.vs) < need {
		e.ts = slices.Grow(e.ts, total)
		e.vs = slices.Grow(e.vs, total)
	}
	ts, vs := e.ts[:k0+total], e.vs[:k0+total]
	k := k0
	maxt := e.maxt
loop:
	for i := 0; ; i++ {
		// The sample decoded last (t, vbits).
		if t > maxt {
			break loop
		}
		ts[k], vs[k] = t, math.Float64frombits(vbits)
		k++
		if i+1 == total {
			break loop
		}
		// The next timestamp. w holds the bits from pos on, left-aligned,
		// at least avail of them the chunk's (or the padding's): one load
		// serves a regular sample's timestamp and most values.
		var (
			w     uint64
			avail uint
		)
		if i == 0 {
			// The second sample's delta, a uvarint, byte-aligned.
			d, n := binary.Uvarint(b[pos>>3 : len(data)])
			if n <= 0 {
				err = errCorrupt
				break loop
			}
			pos += uint(n) * 8
			tDelta = d
			backwards = int64(d) <= 0
			w, avail = ld(base, pos), 57
		} else {
			w, avail = ld(base, pos), 56
			switch {
			case w>>63 == 0:
				pos++
				w <<= 1
			case w>>62 == 0b10:
				tDelta += uint64(signed((w<<2)>>50, 14))
				pos += 16
				w, avail = ld(base, pos), 57
				backwards = backwards || int64(tDelta) <= 0
			case w>>61 == 0b110:
				tDelta += uint64(signed((w<<3)>>47, 17))
				pos += 20
				w, avail = ld(base, pos), 57
				backwards = backwards || int64(tDelta) <= 0
			case w>>60 == 0b1110:
				tDelta += uint64(signed((w<<4)>>44, 20))
				pos += 24
				w, avail = ld(base, pos), 57
				backwards = backwards || int64(tDelta) <= 0
			default:
				tDelta += ld64(base, pos+4)
				pos += 68
				w, avail = ld(base, pos), 57
				backwards = backwards || int64(tDelta) <= 0
			}
		}
		t += int64(tDelta)
		// The next value: unchanged, XOR in the previous window, or in a new one.
		switch {
		case w>>63 == 0:
			pos++
		case w>>62 == 0b10:
			if leading == 0xff {
				err = errCorrupt // reuse before any window was sent
				break loop
			}
			sz := 64 - leading - trailing
			var bits uint64
			switch {
			case 2+sz <= avail:
				bits = (w << 2) >> (64 - sz)
			case sz <= 57:
				bits = ld(base, pos+2) >> (64 - sz)
			default:
				bits = ldN(base, pos+2, sz)
			}
			pos += 2 + sz
			vbits ^= bits << trailing
		default:
			l := uint((w >> 57) & 31)
			m := uint((w >> 51) & 63)
			if m == 0 {
				m = 64
			}
			if l+m > 64 {
				err = errCorrupt
				break loop
			}
			leading, trailing = l, 64-l-m
			var bits uint64
			switch {
			case 13+m <= avail:
				bits = (w << 13) >> (64 - m)
			case m <= 57:
				bits = ld(base, pos+13) >> (64 - m)
			default:
				bits = ldN(base, pos+13, m)
			}
			pos += 13 + m
			vbits ^= bits << trailing
		}
		if pos > end {
			err = errCorrupt
			break loop
		}
	}
	n, overlap := e.keep(ts[:k], vs[:k], k0)
	e.ts, e.vs = ts[:n], vs[:n]
	if err == nil && (backwards || overlap) {
		err = errOverlap
	}
	return err
}

// keep finishes the samples appendDecoded wrote from k0 on: it drops those
// before mint and the stale markers, notes the resets, and returns the
// number of samples kept, and whether the chunk overlaps the one before (its
// first sample in the range not after that one's last).
func (e *evaluator) keep(ts []int64, vs []float64, k0 int) (int, bool) {
	k := len(ts)
	first := k0
	for first < k && ts[first] < e.mint {
		first++
	}
	if first > k0 {
		copy(ts[k0:], ts[first:k])
		copy(vs[k0:], vs[first:k])
		k -= first - k0
	}
	if k0 > 0 && k > k0 && ts[k0] <= ts[k0-1] {
		return k, true
	}
	j := k0
	if j == 0 && j < k {
		if math.Float64bits(vs[0]) == value.StaleNaN {
			return e.compact(ts, vs, 0, k), false
		}
		j = 1
	}
	for ; j < k; j++ {
		v := vs[j]
		if math.Float64bits(v) == value.StaleNaN {
			return e.compact(ts, vs, j, k), false
		}
		if v < vs[j-1] {
			e.resets = append(e.resets, j)
		}
	}
	return k, false
}

// compact is keep from the stale marker at j on, moving the samples it keeps down.
func (e *evaluator) compact(ts []int64, vs []float64, j, k int) int {
	w := j
	for ; j < k; j++ {
		v := vs[j]
		if math.Float64bits(v) == value.StaleNaN {
			continue
		}
		if w > 0 && v < vs[w-1] {
			e.resets = append(e.resets, w)
		}
		ts[w], vs[w] = ts[j], v
		w++
	}
	return w
}

// xorPadding is the zero bytes appendDecoded puts after a chunk's copy: a
// sample's loads start at most 68 + 45 bits past the position the loop
// checked against the chunk's end, and read 8 bytes.
const xorPadding = 32

// ld returns the 64 bits from bit pos of the padded copy at base,
// left-aligned, without bounds checks: pos must be within the chunk's bits
// plus 113 (xorPadding).
func ld(base unsafe.Pointer, pos uint) uint64 {
	return bits.ReverseBytes64(*(*uint64)(unsafe.Add(base, pos>>3))) << (pos & 7)
}

// ld64 returns the 64 bits from bit pos on, through ld.
func ld64(base unsafe.Pointer, pos uint) uint64 {
	return ld(base, pos)&^0xffffffff | ld(base, pos+32)>>32
}

// ldN returns the n bits (1 to 64) from bit pos on, through ld.
func ldN(base unsafe.Pointer, pos, n uint) uint64 {
	if n > 57 {
		return ld64(base, pos) >> (64 - n)
	}
	return ld(base, pos) >> (64 - n)
}

// signed turns the sz-bit two's-complement-like field of a delta-of-delta
// into its value, as chunkenc reads it.
func signed(v uint64, sz uint) int64 {
	if v > 1<<(sz-1) {
		v -= 1 << sz
	}
	return int64(v)
}
