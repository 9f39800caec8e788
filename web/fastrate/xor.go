package fastrate

import (
	"encoding/binary"
	"errors"
	"math"
)

// errCorrupt: the chunk's bytes do not decode as a Prometheus XOR chunk.
var errCorrupt = errors.New("fastrate: corrupt XOR chunk")

// decodeXOR appends the samples of a Prometheus XOR chunk (the Gorilla
// encoding of package chunkenc: a 16-bit sample count, the first timestamp
// as a varint and value as 64 bits, the second timestamp as a delta, then
// delta-of-deltas in 1, 16, 20, 24 or 68 bits and values XORed with the
// previous one) with timestamps in [mint, maxt] to ts and vs. It does what
// chunkenc's iterator does, in one loop without an interface call per
// sample; the tests check it against that iterator bit for bit.
//
// scratch is reused between calls to hold the bytes with the padding the
// 64-bit reads need.
func decodeXOR(data []byte, mint, maxt int64, ts []int64, vs []float64, scratch *[]byte) ([]int64, []float64, error) {
	if len(data) < 2 {
		return ts, vs, errCorrupt
	}
	total := int(binary.BigEndian.Uint16(data))
	if total == 0 {
		return ts, vs, nil
	}
	b := append((*scratch)[:0], data...)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 0)
	*scratch = b
	r := bitReader{b: b, end: uint(len(data)) * 8, pos: 16}

	// First sample: varint timestamp and raw value, byte-aligned.
	t, n := binary.Varint(b[2:len(data)])
	if n <= 0 {
		return ts, vs, errCorrupt
	}
	r.pos += uint(n) * 8
	vbits := r.read64()
	var (
		tDelta   uint64
		leading  uint8 = 0xff
		trailing uint8
	)
	for i := 0; ; i++ {
		if r.pos > r.end {
			return ts, vs, errCorrupt
		}
		if t > maxt {
			return ts, vs, nil
		}
		if t >= mint {
			ts, vs = append(ts, t), append(vs, math.Float64frombits(vbits))
		}
		if i+1 == total {
			return ts, vs, nil
		}
		if i == 0 {
			// Second sample: the delta as a uvarint, byte-aligned.
			if r.pos%8 != 0 {
				return ts, vs, errCorrupt
			}
			d, n := binary.Uvarint(b[r.pos/8 : len(data)])
			if n <= 0 {
				return ts, vs, errCorrupt
			}
			r.pos += uint(n) * 8
			tDelta = d
		} else {
			var dod int64
			w := r.peek()
			switch {
			case w>>63 == 0:
				r.pos++
			case w>>62 == 0b10:
				r.pos += 2
				dod = signed(r.read(14), 14)
			case w>>61 == 0b110:
				r.pos += 3
				dod = signed(r.read(17), 17)
			case w>>60 == 0b1110:
				r.pos += 4
				dod = signed(r.read(20), 20)
			default:
				r.pos += 4
				dod = int64(r.read64())
			}
			tDelta = uint64(int64(tDelta) + dod)
		}
		t += int64(tDelta)
		// The value.
		w := r.peek()
		switch {
		case w>>63 == 0:
			r.pos++
		case w>>62 == 0b10:
			if leading == 0xff {
				return ts, vs, errCorrupt // reuse before any leading/trailing was sent
			}
			r.pos += 2
			vbits ^= r.readN(64-leading-trailing) << trailing
		default:
			r.pos += 2
			l := uint8(r.read(5))
			m := uint8(r.read(6))
			if m == 0 {
				m = 64
			}
			if int(l)+int(m) > 64 {
				return ts, vs, errCorrupt
			}
			leading, trailing = l, 64-l-m
			vbits ^= r.readN(m) << trailing
		}
	}
}

// signed turns the sz-bit two's-complement-like field of a delta-of-delta
// into its value, as chunkenc reads it.
func signed(bits uint64, sz uint) int64 {
	if bits > 1<<(sz-1) {
		bits -= 1 << sz
	}
	return int64(bits)
}

// bitReader reads big-endian bit fields from b, which holds 8 bytes of
// padding past end (in bits) so that a 64-bit load never runs off it.
type bitReader struct {
	b        []byte
	pos, end uint
}

// peek returns the 64 bits from pos on, left-aligned (at least 57 of them
// valid). Past the end it returns zeros; the caller checks pos against end.
func (r *bitReader) peek() uint64 {
	i := r.pos >> 3
	if i+8 > uint(len(r.b)) {
		return 0
	}
	return binary.BigEndian.Uint64(r.b[i:]) << (r.pos & 7)
}

// read reads n ≤ 57 bits.
func (r *bitReader) read(n uint) uint64 {
	v := r.peek() >> (64 - n)
	r.pos += n
	return v
}

func (r *bitReader) read64() uint64 {
	hi := r.read(32)
	return hi<<32 | r.read(32)
}

// readN reads 1 to 64 bits.
func (r *bitReader) readN(n uint8) uint64 {
	if n > 57 {
		hi := r.read(uint(n) - 32)
		return hi<<32 | r.read(32)
	}
	return r.read(uint(n))
}
